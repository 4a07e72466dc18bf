"""How a build reports its progress: a bar on a terminal, log lines otherwise.

A build has a few steps (find the index, create the venv, install, inspect, publish);
the installer's own output lines come in between as details. The library logs them
(logger ``sandbox_tool.environments``, INFO); ``sandbox-tool env`` draws a bar when its
standard error is a terminal and prints the lines otherwise.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from typing import Protocol, TextIO

__all__ = ["LineProgress", "LogProgress", "Progress", "TerminalProgress", "for_stream"]

logger = logging.getLogger("sandbox_tool.environments")


class Progress(Protocol):
    """What a build tells while it runs (called from the building thread)."""

    def begin(self, title: str, steps: int) -> None:
        """A build of ``steps`` steps starts."""

    def step(self, text: str) -> None:
        """The next step starts."""

    def detail(self, line: str) -> None:
        """A line of the installer's output."""

    def notice(self, text: str) -> None:
        """Something the user should read (the pip fallback, going offline)."""

    def end(self, text: str) -> None:
        """The build is over (done or failed)."""


class LogProgress:
    """Log lines on the ``sandbox_tool.environments`` logger (the library's default)."""

    def __init__(self, log: logging.Logger = logger) -> None:
        self.log = log

    def begin(self, title: str, steps: int) -> None:
        self.log.info("%s", title)

    def step(self, text: str) -> None:
        self.log.info("%s", text)

    def detail(self, line: str) -> None:
        self.log.debug("  %s", line)

    def notice(self, text: str) -> None:
        self.log.warning("%s", text)

    def end(self, text: str) -> None:
        self.log.info("%s", text)


class LineProgress:
    """Plain lines on a stream (a log file, CI's output): one per step and detail."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()

    def _say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {text}", file=self.stream, flush=True)

    def begin(self, title: str, steps: int) -> None:
        self.started = time.monotonic()
        self._say(title)

    def step(self, text: str) -> None:
        self._say(text)

    def detail(self, line: str) -> None:
        self._say(f"  {line}")

    def notice(self, text: str) -> None:
        self._say(f"note: {text}")

    def end(self, text: str) -> None:
        self._say(text)


class TerminalProgress:
    """One line redrawn in place: a bar over the steps and the latest detail."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.steps = 1
        self.done = 0
        self.text = ""
        self.last = ""

    def _draw(self) -> None:
        filled = self.width * min(self.done, self.steps) // max(self.steps, 1)
        bar = "#" * filled + "-" * (self.width - filled)
        columns = shutil.get_terminal_size((80, 20)).columns
        line = f"[{bar}] {self.done}/{self.steps} {self.text}"
        if self.last:
            line += f": {self.last}"
        print("\r\033[K" + line[: columns - 1], end="", file=self.stream, flush=True)

    def begin(self, title: str, steps: int) -> None:
        print(title, file=self.stream, flush=True)
        self.steps, self.done, self.text, self.last = steps, 0, "", ""
        self._draw()

    def step(self, text: str) -> None:
        self.done += 1
        self.text, self.last = text, ""
        self._draw()

    def detail(self, line: str) -> None:
        self.last = line.strip()
        self._draw()

    def notice(self, text: str) -> None:
        print("\r\033[K" + f"note: {text}", file=self.stream, flush=True)
        self._draw()

    def end(self, text: str) -> None:
        print("\r\033[K" + text, file=self.stream, flush=True)


def for_stream(stream: TextIO | None = None) -> Progress:
    """A bar when ``stream`` (default: standard error) is a terminal, lines otherwise."""
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", None)
    return TerminalProgress(stream) if isatty is not None and isatty() else LineProgress(stream)
