"""A sweep's progress (tqdm) and messages (the `jaxprune` logger): runs done, rate, ETA.

Messages go to `logging.getLogger("jaxprune")` at INFO. Until the application configures logging
(the root logger has a handler), a default handler writes them to stderr as `[jaxprune] ...`;
after that they propagate to the application's handlers. `logging.getLogger("jaxprune")
.setLevel(logging.WARNING)` silences them; `jaxprune.sweep(..., progress=False)` silences the
sweep's bar and messages.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

logger = logging.getLogger("jaxprune")

# One bar format for the terminal bar and the log lines: done/total, resumed runs, the rate of the
# runs computed here (resumed ones excluded), elapsed time and ETA.
BAR_FORMAT = (
    "{desc}{percentage:3.0f}%|{bar:24}| {n_fmt}/{total_fmt} runs{postfix} {rate_noinv_fmt} "
    "elapsed {elapsed} ETA {remaining}"
)
UNIT = " runs"  # tqdm's rate reads "<rate> runs/s"


class _Stderr(logging.StreamHandler):
    """Writes to sys.stderr as it is at each message (so redirections and pytest's capture apply),
    and only while the application has not configured logging (the root logger has no handler)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        self.addFilter(lambda record: not logging.getLogger().handlers)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it; sys.stderr is read at each message
        pass


if not any(isinstance(h, _Stderr) for h in logger.handlers):
    logger.addHandler(_Stderr())
if logger.level == logging.NOTSET:
    logger.setLevel(logging.INFO)


class ProgressBar:
    """`started()` once computing starts, `update(runs)` after each chunk, `note(text)` for a
    message. On a terminal a tqdm bar redraws in place; elsewhere (a log file, a notebook's
    captured stderr) each update is one INFO line of the `jaxprune` logger. Silent when `enabled`
    is False."""

    def __init__(self, total: int, enabled: bool = True, stream=None, label: str = "jaxprune"):
        self.total, self.enabled, self.label = total, enabled, label
        self.stream = sys.stderr if stream is None else stream
        self.done = self.resumed = 0
        self.start = time.perf_counter()
        self._shown = False
        self._bar = None  # the terminal's tqdm bar, made when first shown

    def _terminal(self) -> bool:
        return getattr(self.stream, "isatty", lambda: False)()

    def line(self) -> str:
        """The progress as one line of text (without the logger's `[jaxprune]` prefix)."""
        return tqdm.format_meter(
            self.done,
            self.total,
            time.perf_counter() - self.start,
            ascii=True,
            unit=UNIT,
            bar_format=BAR_FORMAT,
            postfix=self._postfix(),
            initial=self.resumed,  # tqdm's rate counts the runs since `initial`: computed ones
        )

    def _postfix(self) -> str | None:
        return f"{self.resumed} resumed" if self.resumed else None

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
        if not self._terminal():
            logger.info(self.line())
            return
        if self._bar is None:
            self._bar = tqdm(
                total=self.total,
                desc=f"[{self.label}] ",
                unit=UNIT,
                bar_format=BAR_FORMAT,
                file=self.stream,
                smoothing=0,  # the average rate since the start, as in the log lines
                leave=True,
            )
            if (self._bar.ncols or 1) <= 0 or (self._bar.nrows or 1) <= 0:  # size unknown
                self._bar.ncols = self._bar.nrows = None  # the line untrimmed, never hidden
            # elapsed time counts from the sweep's start (compilation included), as in the log
            self._bar.start_t -= time.perf_counter() - self.start
        self._bar.initial = self.resumed
        self._bar.postfix = self._postfix()
        self._bar.update(self.done - self._bar.n)
        if self.done >= self.total:
            self._bar.close()

    def note(self, text: str) -> None:
        """A message on its own line (e.g. the plan, waiting for other processes)."""
        if not self.enabled:
            return
        if self._bar is not None and not self._bar.disable:
            with tqdm.external_write_mode(file=self.stream):
                logger.info(text)
        else:
            logger.info(text)
