"""Attention transfer (Zagoruyko and Komodakis, ICLR 2017, "Paying More Attention to Attention"):
the task loss plus, at the end of each group of layers, the squared distance between the child's
and the parent's normalised spatial attention maps:

    Q(A) = vec(mean_c |A_c|^p) / || vec(mean_c |A_c|^p) ||_2          (p = 2)
    L = task(s, y) + beta / 2 * sum_j mean( (Q(A_s^j) - Q(A_t^j))^2 )

beta = 1000 and p = 2 as in the authors' CIFAR code (attention-transfer, `at` and `at_loss`). The
layers are the task's named feature points (hkt.features; on CIFAR ResNets the three groups,
`stage1`..`stage3`; on LiTS `decoded`) or module paths. Where the two maps differ in size, the parent's attention
map is resized to the child's before normalising (bilinear / trilinear); channel counts may
differ freely, since attention averages over channels. A method written against named layers
only: nothing in hkt/ knows it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hkt.features import FeatureTap
from hkt.methods import Method

NEEDS_PARENT = True
_RESIZE = {1: "linear", 2: "bilinear", 3: "trilinear"}


@dataclass(frozen=True)
class Params:
    beta: float = 1000.0  # the authors' CIFAR weight
    p: float = 2.0  # attention as mean_c |A_c|^p
    layers: tuple = ("stage1", "stage2", "stage3")  # feature points (or module paths) of both networks

    def __post_init__(self):
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.p <= 0:
            raise ValueError(f"p must be > 0, got {self.p}")
        if not self.layers:
            raise ValueError("layers: name at least one feature point or module path")


def attention(feature: torch.Tensor, p: float, size: tuple | None = None) -> torch.Tensor:
    """Q(A): the channel mean of |A|^p, resized to `size` if given, flattened and L2-normalised."""
    if feature.dim() < 3:
        raise ValueError(f"attention needs a feature map (B, C, *spatial), got shape {tuple(feature.shape)}")
    a = feature.abs().pow(p).mean(dim=1, keepdim=True)
    if size is not None and tuple(a.shape[2:]) != tuple(size):
        a = F.interpolate(a, size=size, mode=_RESIZE[a.dim() - 2], align_corners=False)
    return F.normalize(a.flatten(1), dim=1)


def attention_loss(student: torch.Tensor, teacher: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """mean((Q(A_s) - Q(A_t))^2), the teacher's map at the student's size."""
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"batch sizes differ: {student.shape[0]} and {teacher.shape[0]}")
    return (attention(student, p) - attention(teacher, p, student.shape[2:])).pow(2).mean()


class AttentionTransfer(Method):
    def __init__(self, child, parent, task, params: Params):
        super().__init__(child, parent, task)
        self.params = params
        # hooks on both networks: they run exactly as they do alone, their group outputs are kept
        self.__dict__["student"] = FeatureTap(child, params.layers, task.feature_points(child))
        self.__dict__["teacher"] = FeatureTap(parent, params.layers, task.feature_points(parent))

    def loss(self, x, y):
        out = self.task.forward(self.child, x)
        with torch.no_grad():
            self.task.forward(self.parent, x)
        pairs = zip(self.student.take(), self.teacher.take(), strict=True)
        transfer = sum(attention_loss(s, t, self.params.p) for s, t in pairs)
        task = self.task.task_loss(out, y)
        return task + self.params.beta / 2 * transfer, {"task": task, "at": transfer}


def build(child, parent, task, params: Params, sample) -> AttentionTransfer:
    return AttentionTransfer(child, parent, task, params)
