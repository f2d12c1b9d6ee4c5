"""Plain flow distillation: the suite's working distillation row for optical flow (not in the paper).

    L = sequence_loss(s, y) + alpha * sum_i gamma^(N-i-1) * mean_{b,c,h,w} |s_i - t_N|

s_1..s_N are the child's flow predictions, t_N the frozen parent's final flow, computed without
gradient: an L1 soft target beside RAFT's ground-truth sequence loss. The mean runs over all
B * 2 * H * W elements, the normalisation of RAFT's sequence loss on dense ground truth, so that
alpha weighs two terms of the same scale. It covers every pixel, also where the ground truth is
sparse (KITTI, HD1K) or excluded (|gt| >= 400 px): the parent's flow is dense, and being a
prediction it is no better where the ground truth is missing, but no worse either.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hkt.methods import Method

NEEDS_PARENT = True


@dataclass(frozen=True)
class Params:
    alpha: float = 0.5  # weight of the soft target beside the ground-truth loss (suite's choice)
    gamma: float = 0.8  # RAFT's weighting of the N predictions

    def __post_init__(self):
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], got {self.gamma}")


def soft_target_loss(predictions, teacher: torch.Tensor, gamma: float) -> torch.Tensor:
    """sum_i gamma^(N-i-1) mean |s_i - teacher| over every element."""
    n = len(predictions)
    return sum(gamma ** (n - i - 1) * (p - teacher).abs().mean() for i, p in enumerate(predictions))


class FlowKD(Method):
    def __init__(self, child, parent, task, params: Params):
        super().__init__(child, parent, task)
        self.params = params

    def loss(self, x, y):
        student = self.task.forward(self.child, x)
        with torch.no_grad():
            teacher = self.task.forward(self.parent, x)[-1]
        task = self.task.task_loss(student, y)
        kd = soft_target_loss(student, teacher, self.params.gamma)
        return task + self.params.alpha * kd, {"task": task, "kd": kd}


def build(child, parent, task, params: Params, sample) -> FlowKD:
    return FlowKD(child, parent, task, params)
