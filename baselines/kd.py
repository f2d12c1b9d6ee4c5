"""Knowledge distillation of Hinton, Vinyals and Dean (2015) on output logits.

    L = (1 - alpha) CE(s, y) + alpha T^2 KL(softmax(t / T) || softmax(s / T))

The T^2 factor keeps the soft-target gradients on the scale of the hard-target ones.
Defaults T = 4, alpha = 0.9 are the common CIFAR settings (e.g. RepDistiller); the HKT
paper reports no KD row for CIFAR-10, so these are the suite's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hkt.methods import Method

NEEDS_PARENT = True


@dataclass(frozen=True)
class Params:
    temperature: float = 4.0
    alpha: float = 0.9

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")


class KD(Method):
    def __init__(self, child, parent, task, params: Params):
        super().__init__(child, parent, task)
        self.params = params

    def loss(self, x, y):
        t = self.params.temperature
        student = self.task.forward(self.child, x)
        with torch.no_grad():
            teacher = self.task.forward(self.parent, x)
        hard = self.task.task_loss(student, y)
        # KL per prediction (per image, or per voxel of a segmentation), summed over classes and
        # averaged over predictions: `batchmean` on (B, C) logits, the same per voxel on (B, C, ...)
        positions = student.numel() // student.shape[1]
        kl = F.kl_div(
            F.log_softmax(student / t, dim=1), F.log_softmax(teacher / t, dim=1), reduction="sum", log_target=True
        )
        soft = kl / positions * t * t
        a = self.params.alpha
        return (1 - a) * hard + a * soft, {"task": hard, "kd": soft}


def build(child, parent, task, params: Params, sample) -> KD:
    return KD(child, parent, task, params)
