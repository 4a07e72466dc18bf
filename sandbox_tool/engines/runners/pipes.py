"""The four channels between the host and one runner process, as file descriptors."""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass

__all__ = ["RunnerPipes", "close_quietly"]


@dataclass
class RunnerPipes:
    """The four channels of a runner: the host's ends and the runner's ends."""

    request_r: int
    request_w: int
    stdout_r: int
    stdout_w: int
    stderr_r: int
    stderr_w: int
    control_r: int
    control_w: int

    @classmethod
    def create(cls) -> RunnerPipes:
        """The request channel is a socket pair (a session answers on it); the rest pipes."""
        fds: list[int] = []
        try:
            host, runner = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            fds += [runner.detach(), host.detach()]
            for _ in range(3):
                fds.extend(os.pipe())
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return cls(*fds)

    def runner_ends(self) -> tuple[int, int, int, int]:
        """stdin (the request), stdout, stderr, control: as the runner gets them."""
        return self.request_r, self.stdout_w, self.stderr_w, self.control_w

    def close_runner_ends(self) -> None:
        for fd in self.runner_ends():
            close_quietly(fd)

    def close_host_ends(self) -> None:
        self.close_driven_ends()
        close_quietly(self.control_r)

    def close_driven_ends(self) -> None:
        """The host's ends that driving the runner consumes: all but the control pipe."""
        for fd in (self.request_w, self.stdout_r, self.stderr_r):
            close_quietly(fd)

    def close_all(self) -> None:
        self.close_runner_ends()
        self.close_host_ends()


def close_quietly(fd: int) -> None:
    """Close ``fd``; one closed already is not an error."""
    with contextlib.suppress(OSError):
        os.close(fd)
