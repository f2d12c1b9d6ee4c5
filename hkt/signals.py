"""Stop requests by signal, caught from the first line of a job onwards.

SLURM's pre-timeout warning (`--signal=URG@<seconds>`) can arrive while a job is still starting
(importing torch, loading data). SIGURG is ignored by default, so a warning that arrives before
a handler exists is lost: job scripts call `catch()` first, and the training loop reads
`requested()` after every step. This module imports nothing heavy so that `catch()` is cheap.
SIGTERM (scancel, pre-emption, requeue, the time limit itself) and SIGUSR1 are caught alike.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

PREEMPT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGURG)
PREEMPTED_EXIT_CODE = 75  # EX_TEMPFAIL: try again later
PLANNED_STOP = "SIGURG"  # the pre-timeout warning the workflow asks SLURM for (--signal=URG@<seconds>)


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


def request(name: str) -> None:
    """Record a stop request as if signal `name` had arrived (a rehearsal's stop, HKT_STOP_ONCE)."""
    _state["signal"] = _state["signal"] or name


def requested() -> str | None:
    """The name of the first stop signal received, or None."""
    return _state["signal"]


def requeue_planned_stop(wait: float = 300.0) -> bool:
    """After a planned stop (SLURM's pre-timeout warning, checkpoint saved), ask SLURM to requeue
    this very job: it starts again under the same job id and resumes from the checkpoint, so a
    schedule longer than the partition's time limit spends none of the workflow's retries, which
    stay for real failures. Then wait for SLURM to end this instance (it sends SIGTERM).

    Returns False, having done nothing, outside a SLURM job, after another stop (scancel and
    pre-emption send SIGTERM: those go to the workflow's retries), or when scontrol refuses (a
    site with JobRequeue=0); the caller then exits with PREEMPTED_EXIT_CODE as before."""
    job = os.environ.get("SLURM_JOB_ID")
    if requested() != PLANNED_STOP or not job:
        return False
    try:
        done = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        print(f"scontrol requeue {job} failed ({err}); leaving the resumption to the workflow's retries", flush=True)
        return False
    if done.returncode != 0:
        print(f"scontrol requeue {job} refused: {done.stderr.strip()}; the workflow's retries resume it", flush=True)
        return False
    print(f"planned stop: SLURM job {job} requeued; it resumes from the checkpoint under the same id", flush=True)
    for s in PREEMPT_SIGNALS:  # SLURM now ends this instance with SIGTERM: let it
        signal.signal(s, signal.SIG_DFL)
    time.sleep(wait)
    return True
