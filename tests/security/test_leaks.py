"""Smaller leaks of host details (issue 14): the host name in /etc/hosts, the kernel's
command line, the host's cgroup paths. Each is shown on the baseline, then absent in the
sandbox."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .harness import Side

READ = """
stage("read")
return open(inputs["path"]).read()
"""


def test_etc_hosts_does_not_show_the_host_name(side: Side) -> None:
    host = socket.gethostname()
    text = side.attack(READ, {"path": "/etc/hosts"}).value
    if side.is_baseline:
        if host not in Path("/etc/hosts").read_text():
            pytest.skip(f"this host's /etc/hosts does not name it ({host})")
        assert host in text
        return
    assert host not in text.split(), text
    assert "localhost" in text.split()  # names still resolve to loopback


def test_kernel_command_line_is_masked(side: Side) -> None:
    text = side.attack(READ, {"path": "/proc/cmdline"}).value
    if side.is_baseline:
        assert text.strip(), "this kernel has an empty command line"
        return
    if side.engine_name == "gvisor":
        # gVisor's kernel answers with its own made-up line, nothing of the host's
        assert "gvisor" in text and Path("/proc/cmdline").read_text().strip() not in text
        return
    assert text == ""


def test_cgroup_paths_are_the_sandboxs_own(side: Side) -> None:
    lines = side.attack(READ, {"path": "/proc/self/cgroup"}).value.splitlines()
    paths = {line.split(":", 2)[2] for line in lines}
    if side.is_baseline:
        if paths == {"/"}:
            pytest.skip("the tests run in the root cgroup: nothing to hide here")
        assert paths != {"/"}
        return
    if side.engine_name == "gvisor":
        # the runner's own cgroup in gVisor's kernel, named by a counter (not its secret id)
        host = {line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().split()}
        assert len(paths) == 1 and not paths & (host - {"/"}), lines
        assert next(iter(paths))[1:].startswith("r"), lines
        return
    assert paths == {"/"}, lines
