"""A progress bar over the runs of a sweep, on stderr: runs done, rate and ETA."""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):  # NaN or inf
        return "--:--"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class ProgressBar:
    """`started()` once computing starts, `update(runs)` after each chunk. On a terminal the
    bar redraws in place; in a log file each update is one line. Silent when `enabled` is False."""

    WIDTH = 24

    def __init__(self, total: int, enabled: bool = True, stream=None, label: str = "jaxprune"):
        self.total, self.enabled, self.label = total, enabled, label
        self.stream = sys.stderr if stream is None else stream
        self.done = self.resumed = 0
        self.start = time.perf_counter()
        self._shown = False

    def line(self) -> str:
        """The bar as text: done/total, percent, rate of the runs computed here, elapsed, ETA."""
        elapsed = time.perf_counter() - self.start
        computed = self.done - self.resumed
        rate = computed / elapsed if elapsed > 0 and computed else float("nan")
        left = self.total - self.done
        eta = 0.0 if left == 0 else (left / rate if rate == rate and rate > 0 else float("nan"))
        filled = round(self.WIDTH * self.done / self.total) if self.total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        resumed = f", {self.resumed} resumed" if self.resumed else ""
        rate_text = f"{rate:.1f}" if rate == rate else "--"
        return (
            f"[{self.label}] |{bar}| {self.done}/{self.total} runs "
            f"({100 * self.done / max(self.total, 1):.0f}%{resumed}) {rate_text} runs/s "
            f"elapsed {_clock(elapsed)} ETA {_clock(eta)}"
        )

    def started(self) -> None:
        """Show the bar once computing starts (after the first compilation), before any chunk
        ends; later calls do nothing."""
        if not self._shown:
            self.update(0)

    def update(self, runs: int, resumed: bool = False) -> None:
        self.done += runs
        if resumed:
            self.resumed += runs
        self._shown = True
        if not self.enabled:
            return
        tty = getattr(self.stream, "isatty", lambda: False)()
        end = "\n" if not tty or self.done >= self.total else ""
        print(("\r" if tty else "") + self.line(), end=end, file=self.stream, flush=True)

    def note(self, text: str) -> None:
        """A message on its own line (e.g. waiting for other processes)."""
        if self.enabled:
            print(f"[{self.label}] {text}", file=self.stream, flush=True)
