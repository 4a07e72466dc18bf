"""Escapes through the network: traffic to listeners the test runs on loopback, and DNS.

Every listener is started by the test on 127.0.0.1 (or a unix path / abstract name),
answers ``ACK``, and is stopped after the test. The sandbox runs with
``network=False`` (the default): traffic must not reach the host's listeners.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

import pytest

from .harness import SOCKET_REFUSED, Listener, ListenerKind, Side, assert_refused, assert_refused_as

TCP = """
import socket
stage("socket")
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(3)
stage("connect")
s.connect(tuple(inputs["address"]))
stage("send")
s.sendall(inputs["token"].encode() + b"\\n")
stage("recv")
return s.recv(16).decode()
"""

UDP = """
import socket
stage("socket")
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
stage("connect")
s.connect(tuple(inputs["address"]))
stage("send")
s.send(inputs["token"].encode() + b"\\n")
stage("recv")
return s.recv(16).decode()
"""

UNIX = """
import socket
stage("socket")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(3)
stage("connect")
s.connect(inputs["address"])      # a path, or "\\0name" for the abstract namespace
stage("send")
s.sendall(inputs["token"].encode() + b"\\n")
stage("recv")
return s.recv(16).decode()
"""

# A raw IP socket: the code writes the UDP header itself (checksum 0 is valid over IPv4).
RAW = """
import socket, struct
stage("socket")
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
payload = inputs["token"].encode() + b"\\n"
header = struct.pack("!HHHH", 40000, inputs["address"][1], 8 + len(payload), 0)
stage("send")
s.sendto(header + payload, (inputs["address"][0], 0))
return "sent"
"""

# ECONNREFUSED: nothing listens there in the sandbox's own network namespace;
# ENETUNREACH: its loopback is down; EACCES/EPERM: landlock (TCP rights, socket scoping)
PRIVATE_NET = frozenset({"ECONNREFUSED", "ENETUNREACH", "EACCES", "EPERM"})

NETWORK_CASES = [
    pytest.param(
        "tcp", TCP, {"socket": SOCKET_REFUSED, "connect": PRIVATE_NET}, id="tcp-to-loopback"
    ),
    pytest.param(
        "udp",
        UDP,
        {
            "socket": SOCKET_REFUSED,
            "connect": PRIVATE_NET,
            "send": PRIVATE_NET,
            # the ICMP "port unreachable" of the sandbox's own loopback
            "recv": frozenset({"ECONNREFUSED"}),
        },
        id="udp-to-loopback",
    ),
    pytest.param(
        "unix",
        UNIX,
        # ENOENT: the socket's path is not in the sandbox's mount namespace
        {"socket": SOCKET_REFUSED, "connect": frozenset({"ENOENT", "EACCES", "EPERM"})},
        id="unix-socket-by-path",
    ),
    pytest.param(
        "abstract",
        UNIX,
        # abstract names belong to a network namespace (ECONNREFUSED in a private one);
        # landlock's abstract-socket scoping gives EPERM
        {"socket": SOCKET_REFUSED, "connect": frozenset({"ECONNREFUSED", "EPERM"})},
        id="abstract-unix-socket",
    ),
    pytest.param(
        "udp",
        RAW,
        {"socket": SOCKET_REFUSED, "send": frozenset({"ENETUNREACH", "EPERM", "EACCES"})},
        id="raw-ip-socket",
    ),
]


@pytest.mark.parametrize(("kind", "code", "refusals"), NETWORK_CASES)
def test_traffic_to_host_listener(
    side: Side,
    listener: Callable[[ListenerKind], Listener],
    kind: ListenerKind,
    code: str,
    refusals: dict[str, frozenset[str]],
) -> None:
    if side.is_baseline and code is RAW and os.geteuid() != 0:
        pytest.skip(
            f"raw sockets need CAP_NET_RAW; as uid {os.geteuid()} the unsandboxed baseline "
            "cannot open one either"
        )
    server = listener(kind)
    secret = f"exfil-{os.urandom(6).hex()}"
    outcome = side.attack(code, {"address": server.address, "token": secret})
    server.settle()
    if side.is_baseline:
        assert outcome.value == ("sent" if code is RAW else "ACK\n")
        assert server.got(secret), f"the {kind} listener got nothing: {server.received}"
        return
    assert_refused_as(outcome.report, refusals)
    assert server.received == [], f"traffic reached the host's {kind} listener"


PACKET = """
import socket
stage("socket")
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))  # ETH_P_ALL
stage("bind")
s.bind(("lo", 0))
s.close()
return "sniffing"
"""


def test_packet_socket(side: Side) -> None:
    """A packet socket sees every frame on an interface (sniffing)."""
    if side.is_baseline and os.geteuid() != 0:
        pytest.skip(
            f"packet sockets need CAP_NET_RAW; as uid {os.geteuid()} the unsandboxed "
            "baseline cannot open one either"
        )
    outcome = side.attack(PACKET)
    if side.is_baseline:
        assert outcome.value == "sniffing"
        return
    assert_refused(outcome.report, SOCKET_REFUSED, stages={"socket"})


INTERFACES = """
import socket
stage("if_nameindex")      # a netlink socket under the hood
return sorted(name for _, name in socket.if_nameindex())
"""


def test_host_network_interfaces(side: Side) -> None:
    """Netlink: the host's interfaces (landlock does not cover netlink, FIELD_NOTES 9)."""
    host_names = {name for _, name in socket.if_nameindex()} - {"lo"}
    if side.is_baseline and not host_names:
        pytest.skip("this host has no interface but lo: nothing for the baseline to show")
    outcome = side.attack(INTERFACES)
    if side.is_baseline:
        assert host_names <= set(outcome.value)
        return
    report = outcome.report
    if report["ok"]:
        # a private network namespace: its own loopback at most
        assert set(report["value"]) <= {"lo"}, f"host interfaces visible: {report['value']}"
    else:
        assert_refused(report, SOCKET_REFUSED)


DNS = """
import socket, struct
out = {}
def udp_socket():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
    return "created"
out["socket"] = attempt(udp_socket)
try:
    infos = socket.getaddrinfo(inputs["name"], 80)
    out["getaddrinfo"] = {"ok": True, "value": sorted({i[4][0] for i in infos})}
except socket.gaierror as exc:
    out["getaddrinfo"] = {"ok": False, "exc": "gaierror", "errno": str(exc.errno), "msg": str(exc)}
def query():
    stage("socket")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(3)
    qname = b"".join(bytes([len(p)]) + p.encode() for p in inputs["name"].split(".")) + b"\\0"
    packet = struct.pack("!HHHHHH", 0x5342, 0x0100, 1, 0, 0, 0) + qname + struct.pack("!HH", 1, 1)
    stage("connect")
    s.connect(tuple(inputs["server"]))
    stage("send")
    s.send(packet)
    stage("recv")
    return s.recv(512).decode(errors="replace")
out["query"] = attempt(query)
return out
"""


def test_dns(side: Side, listener: Callable[[ListenerKind], Listener]) -> None:
    """A resolver lookup (exfiltration through a name), and a query to a DNS server the
    test runs. There is no real network here, so the baseline shows the lookup reaches
    the resolver and the hand-made query reaches the test's server."""
    server = listener("udp")
    label = f"sbx{os.urandom(6).hex()}"
    name = f"{label}.example.com"
    outcome = side.attack(DNS, {"name": name, "server": server.address})
    server.settle()
    report = outcome.value
    if side.is_baseline:
        assert report["socket"] == {"ok": True, "value": "created"}
        # resolved or not, the lookup ran through the resolver (no network here)
        assert report["getaddrinfo"]["ok"] or report["getaddrinfo"]["exc"] == "gaierror"
        assert report["query"] == {"ok": True, "value": "ACK\n"}
        assert server.got(label)
        return
    assert_refused(report["socket"], SOCKET_REFUSED)
    assert report["getaddrinfo"]["ok"] is False, f"a lookup succeeded: {report['getaddrinfo']}"
    assert_refused(report["query"], SOCKET_REFUSED, stages={"socket"})
    assert server.received == [], "a DNS query reached the test's server"
