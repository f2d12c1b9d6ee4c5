"""Stop requests by signal, caught from the first line of a job onwards.

SLURM's pre-timeout warning (`--signal=URG@<seconds>`) can arrive while a job is still starting
(importing torch, loading data). SIGURG is ignored by default, so a warning that arrives before
a handler exists is lost: job scripts call `catch()` first, and the training loop reads
`requested()` after every step. This module imports nothing heavy so that `catch()` is cheap.
SIGTERM (scancel, pre-emption, requeue, the time limit itself) and SIGUSR1 are caught alike.
"""

from __future__ import annotations

import signal

PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGURG)
PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: try again later


class Preempted(RuntimeError):
    """Raised after a checkpoint was saved because the job was asked to stop."""


_state: dict = {"signal": None, "previous": None}


def _handler(signum, frame) -> None:
    _state["signal"] = signal.Signals(signum).name


def catch() -> bool:
    """Install the handlers (main thread only); False if they were installed already."""
    if _state["previous"] is not None:
        return False
    _state["previous"] = {s: signal.signal(s, _handler) for s in PREEMPT_SIGNALS}
    return True


def release() -> None:
    """Restore the previous handlers (for callers that caught only for a while, e.g. tests)."""
    if _state["previous"] is not None:
        for s, h in _state["previous"].items():
            signal.signal(s, h)
        _state["previous"] = None


def requested() -> str | None:
    """The name of the first stop signal received, or None."""
    return _state["signal"]
