"""Progress of a long scoring run, as log lines on stderr: rows done of total, %, rows/s, ETA."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class Progress:
    """Prints a line at the start, then at most every ``interval_s`` seconds, and at the end.

    Lines, not a redrawn bar: they read the same in a terminal, a pod's log
    and a KFP task's log.
    """

    def __init__(self, total_rows: int, label: str, interval_s: float = 5.0, stream: TextIO | None = None) -> None:
        self.total, self.label, self.interval_s = total_rows, label, interval_s
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = self._last = time.monotonic()
        self._print()

    def advance(self, rows: int) -> None:
        self.update(self.done + rows)

    def update(self, done_rows: int) -> None:
        self.done = done_rows
        if time.monotonic() - self._last >= self.interval_s:
            self._print()

    def finish(self) -> None:
        self._print()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        eta = _duration((self.total - self.done) / rate) if rate > 0 else "unknown"
        return (f"[batch] {self.label}: {self.done:,}/{self.total:,} rows ({pct:.1f}%), {rate:,.0f} rows/s, "
                f"elapsed {_duration(elapsed)}, ETA {eta}")

    def _print(self) -> None:
        self._last = time.monotonic()
        print(self.line(), file=self.stream, flush=True)
