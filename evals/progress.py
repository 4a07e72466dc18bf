"""Progress for long runs: a bar on a terminal, one line per item otherwise (logs, CI)."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """``step(label, status)`` after each item; ``close()`` at the end.

    >>> import io
    >>> p = Progress(2, "snippets", io.StringIO())
    >>> p.step("a", "ok"); p.step("b", "REGRESSION"); p.close()
    >>> print(p.out.getvalue(), end="")
    [snippets 1/2] a: ok
    [snippets 2/2] b: REGRESSION
    """

    def __init__(self, total: int, title: str, out: TextIO | None = None, width: int = 30) -> None:
        self.total = max(total, 1)
        self.title = title
        self.out = out if out is not None else sys.stderr
        self.width = width
        self.done = 0
        self.bar = self.out.isatty()

    def step(self, label: str, status: str) -> None:
        self.done += 1
        if not self.bar:
            print(f"[{self.title} {self.done}/{self.total}] {label}: {status}", file=self.out)
            return
        filled = self.width * self.done // self.total
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"\r{self.title} [{bar}] {self.done}/{self.total} {label[:40]}: {status[:40]}"
        self.out.write(line.ljust(self.width + 110))
        self.out.flush()

    def close(self) -> None:
        if self.bar:
            self.out.write("\n")
            self.out.flush()
