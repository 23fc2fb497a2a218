"""How a sweep stops: Ctrl-C that saves the chunk in flight, and processes that fail together.

`Interrupts` defers SIGINT while a sweep runs: the first Ctrl-C asks the sweep to stop once the
chunk in flight is written, a second one abandons it at once (KeyboardInterrupt). `wait` polls a
condition so that a Ctrl-C is seen while a compiled chunk runs.

Under `jax.distributed`, `agree` is the processes' barrier and exchange of outcomes: every process
passes what stopped it (an exception, or None), and every process then raises the first one, the
same one line everywhere, so that a refusal seen by one process (a different sweep at `out`, seen
by process 0) stops them all instead of leaving the others at a barrier until a timeout.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

POLL_SECONDS = 0.05
# Exception types that `agree` raises again, by name, on the processes that did not see them.
_KINDS = (ValueError, FileNotFoundError, PermissionError, OSError, RuntimeError, KeyboardInterrupt)
_MESSAGE_BYTES = 4096


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep after the chunk in flight was saved (or, at a second Ctrl-C,
    abandoned). saved: chunks of the sweep in `out` (0 without `out`); total: chunks of the sweep;
    out: the output directory or None. busy: work still runs on background threads (an
    abandoned chunk, a compilation): a process that ends now should end at once (`os._exit`,
    as `jaxprune.cli.exit_interrupted` does), since interpreter shutdown would wait for it.
    The library only raises; the command line and scripts end the process."""

    def __init__(
        self, saved: int, total: int, out: Path | None, abandoned: bool = False, busy: bool = False
    ):
        super().__init__(f"sweep interrupted: {saved} of {total} chunks saved in {out}")
        self.saved, self.total, self.out, self.abandoned = saved, total, out, abandoned
        self.busy = busy or abandoned

    def summary(self, command: str | None = None) -> str:
        """One line for a command-line front end: what is saved and the command that resumes."""
        if self.out is None:
            return (
                f"interrupted: nothing saved (no output directory) of {self.total} chunks; "
                f"give an output directory to make a sweep resumable."
            )
        again = f": {command}" if command else " in the same output directory"
        return (
            f"interrupted: {self.saved} of {self.total} chunks saved in {self.out}; "
            f"resume by running the same sweep again{again}"
        )


class Interrupts:
    """Context manager: while it is active (in the main thread), the first SIGINT sets
    `requested` and prints `note`; a second one sets `abandoned` and raises KeyboardInterrupt.
    The previous handler is restored on exit. In another thread it does nothing (Python
    delivers signals to the main thread only)."""

    def __init__(self, note: Callable[[str], None] = lambda text: None):
        self.requested = self.abandoned = False
        self._note = note
        self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            self.abandoned = True
            raise KeyboardInterrupt
        self.requested = True
        self._note("Ctrl-C: finishing and saving the chunk in flight (Ctrl-C again to abandon it)")

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def wait(done: Callable[[], bool]) -> None:
    """Return once done() is true, sleeping between checks, so that signal handlers run (a
    blocking wait inside XLA would hold a Ctrl-C until the computation ends)."""
    while not done():
        time.sleep(POLL_SECONDS)


def _encode(error: BaseException | None) -> np.ndarray:
    """[kind + 1 (0: no error), message bytes, zero padding] as uint8 (_MESSAGE_BYTES + 1,)."""
    status = np.zeros(_MESSAGE_BYTES + 1, np.uint8)
    if error is not None:
        kind = next((i for i, k in enumerate(_KINDS) if isinstance(error, k)), None)
        message = str(error) if kind is not None else f"{type(error).__name__}: {error}"
        kind = _KINDS.index(RuntimeError) if kind is None else kind
        encoded = message.encode()[:_MESSAGE_BYTES]
        status[0] = kind + 1
        status[1 : 1 + len(encoded)] = np.frombuffer(encoded, np.uint8)
    return status


def agree(error: BaseException | None, interrupted: Callable[[], BaseException]) -> None:
    """Every process's outcome to every process (a barrier under `jax.distributed`; with one
    process it only raises `error`). Raises, on every process, the error of the first process
    that had one: its own exception there, the same type and message on the others. An
    interrupt on any process becomes `interrupted()` everywhere, so that each one reports what
    is saved once all have written their chunks. Returns when no process had an error."""
    if jax.process_count() == 1:
        if error is not None:
            raise error
        return
    from jax.experimental import multihost_utils

    statuses = np.asarray(multihost_utils.process_allgather(_encode(error)))
    failed = [p for p in range(len(statuses)) if statuses[p, 0]]
    if not failed:
        return
    kind = _KINDS[int(statuses[failed[0], 0]) - 1]
    if kind is KeyboardInterrupt:
        raise interrupted() from error
    if failed[0] == jax.process_index():
        raise error
    message = bytes(statuses[failed[0], 1:]).rstrip(b"\0").decode(errors="replace")
    raise kind(message)
