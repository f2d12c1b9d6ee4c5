"""What a training stage prints at a steady cadence, for a researcher tailing a SLURM log of a
100k-step stage: wall-clock time, the stage and its step out of the total, steps per second, the
stage's ETA, the mean training loss since the last line, the latest and best validation score,
the learning rate and the peak memory (the device's on a GPU, the process's resident set on a
CPU). One line every `every` steps (Schedule.log_every; by default 1% of the stage):

    2026-12-01 10:30:05 flow hkt/default seed 0 stage 'things' | step 1200/100000 (1.2%) | 3.41 steps/s
      | eta 8:02:33 | loss 4.123 | val epe 2.310 (best 2.100 at 1000) | lr 1.2e-04 | peak cuda 18.3 GiB
"""

from __future__ import annotations

import datetime as dt
import resource
import time
from collections.abc import Callable

import torch


def peak_memory(device: torch.device) -> str:
    """The peak memory so far: allocated on a CUDA device, else this process's resident set."""
    if device.type == "cuda":
        return f"peak cuda {torch.cuda.max_memory_allocated(device) / 2**30:.1f} GiB"
    return f"peak rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB"  # ru_maxrss: KiB


def clock_text(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """Progress lines of one stage: `due(step)` says when, `report(...)` writes one."""

    def __init__(
        self, label: str, total: int, start: int, every: int, device, log: Callable[[str], None], clock=time.monotonic
    ):
        self.label, self.total, self.every, self.device, self.log, self.clock = label, total, every, device, log, clock
        self.last_step, self.last_time = start, clock()
        self.loss = [0.0, 0]

    def due(self, step: int) -> bool:
        return step % self.every == 0 or step == self.total

    def add_losses(self, total: float, count: int) -> None:
        self.loss[0] += total
        self.loss[1] += count

    def report(self, step: int, lr: float, state: dict, select: tuple[str, str]) -> None:
        now = self.clock()
        rate = (step - self.last_step) / max(now - self.last_time, 1e-9)
        eta = (self.total - step) / rate if rate > 0 else float("inf")
        metric = select[0]
        parts = [
            f"{dt.datetime.now().strftime('%Y-%m-%d %H:%M:%S')} {self.label}",
            f"step {step}/{self.total} ({100 * step / self.total:.1f}%)",
            f"{rate:.3g} steps/s",
            f"eta {clock_text(eta) if eta != float('inf') else '?'}",
        ]
        if self.loss[1]:
            parts.append(f"loss {self.loss[0] / self.loss[1]:.4g}")
        if state["curve"]:
            best = state["best"]
            parts.append(
                f"val {metric} {state['curve'][-1][f'val_{metric}']:.4g} (best {best[metric]:.4g} at {best['step']})"
            )
        parts += [f"lr {lr:.3g}", peak_memory(self.device)]
        self.log(" | ".join(parts))
        self.last_step, self.last_time, self.loss = step, now, [0.0, 0]
