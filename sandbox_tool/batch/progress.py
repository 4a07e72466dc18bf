"""Progress of a batch on stderr: a bar on a terminal (done, failed, rate, ETA), a line
every ``every`` items otherwise (a log file, CI).

>>> import io
>>> clock = iter([0.0, 2.0]).__next__
>>> p = Progress(total=10, stream=io.StringIO(), tty=False, every=5, clock=clock)
>>> for _ in range(5):
...     p.update(ok=True)
>>> p.stream.getvalue()
'batch: 5/10 done, 0 failed, 2.5/s, ETA 0:00:02\\n'
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_eta"]

_BAR_WIDTH = 24
_REDRAW_SECONDS = 0.1


def format_eta(seconds: float) -> str:
    """``H:MM:SS``."""
    whole = max(0, round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class Progress:
    """Counts finished items and shows it. ``total`` is the number of items to run
    (None when unknown: no ETA); ``clock`` returns seconds."""

    def __init__(
        self,
        total: int | None,
        stream: TextIO,
        *,
        tty: bool,
        every: int = 100,
        label: str = "batch",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream
        self.tty = tty
        self.every = max(1, every)
        self.label = label
        self.clock = clock
        self.done = 0
        self.failed = 0
        self._start = clock()
        self._drawn = float("-inf")

    def update(self, *, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        if self.tty:
            now = self.clock()
            if now - self._drawn >= _REDRAW_SECONDS or self.done == self.total:
                self._drawn = now
                self.stream.write("\r" + self.bar(now))
                self.stream.flush()
        elif self.done % self.every == 0:
            self.stream.write(self.line(self.clock()) + "\n")
            self.stream.flush()

    def skip(self) -> None:
        """One item fewer to run (a bad input line)."""
        if self.total is not None:
            self.total = max(self.total - 1, self.done)

    def finish(self, note: str = "") -> None:
        """The final state, on its own line."""
        now = self.clock()
        text = self.bar(now) if self.tty else self.line(now)
        self.stream.write(("\r" if self.tty else "") + text + (f" {note}" if note else "") + "\n")
        self.stream.flush()

    def _rate(self, now: float) -> float:
        elapsed = now - self._start
        return self.done / elapsed if elapsed > 0 else 0.0

    def _counts(self, now: float) -> str:
        rate = self._rate(now)
        of = f"/{self.total}" if self.total is not None else ""
        text = f"{self.done}{of} done, {self.failed} failed, {rate:.1f}/s"
        if self.total is not None and rate > 0:
            text += f", ETA {format_eta((self.total - self.done) / rate)}"
        return text

    def line(self, now: float) -> str:
        """The text of one progress line."""
        return f"{self.label}: {self._counts(now)}"

    def bar(self, now: float) -> str:
        """The bar a terminal shows (redrawn in place)."""
        if self.total:
            filled = min(_BAR_WIDTH, _BAR_WIDTH * self.done // self.total)
            shape = "#" * filled + "." * (_BAR_WIDTH - filled)
        else:
            shape = "#" * (self.done % (_BAR_WIDTH + 1))
            shape += "." * (_BAR_WIDTH - len(shape))
        return f"[{shape}] {self._counts(now)}\x1b[K"
