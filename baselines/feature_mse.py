"""Feature-MSE distillation (a FitNets-style hint): task loss plus the mean squared error
between a regressed child feature and the parent's feature at one aligned stage boundary.

    L = CE(s, y) + beta * MSE(T(z_k), ~z_k)

T is the same Transfer unit HKT uses (1x1 convolution + resize, identity for equal shapes), so
the two methods read exactly the same features and differ only in how they use them. Where the
boundary carries several tensors (RAFT: two feature maps and the image), the leaves HKT would
mix there (`task.mixed_leaves`) each get a regressor and the hint is their mean MSE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hkt.etm import Transfer
from hkt.methods import Method, require_blocks

NEEDS_PARENT = True


@dataclass(frozen=True)
class Params:
    beta: float = 1.0
    boundary: int = 1  # which stage boundary (1 = after the first aligned block)

    def __post_init__(self):
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.boundary < 1:
            raise ValueError(f"boundary must be >= 1, got {self.boundary}")

    def check_task(self, task) -> None:
        require_blocks(task, self.boundary + 1, f"boundary = {self.boundary} (a block after it)")


class FeatureMSE(Method):
    def __init__(self, child, parent, task, params: Params, sample):
        super().__init__(child, parent, task)
        params.check_task(task)
        self.params = params
        with torch.no_grad():
            child_feat, parent_feat = self._features(self.child, sample), self._features(self.parent, sample)
        if isinstance(child_feat, torch.Tensor):
            self.leaves = None
            self.regressor = Transfer(tuple(child_feat.shape[1:]), tuple(parent_feat.shape[1:]))
        else:
            mixed = task.mixed_leaves(task.max_stages) if task.mixed_leaves else None
            self.leaves = mixed[params.boundary - 1] if mixed else list(range(len(child_feat)))
            self.regressor = torch.nn.ModuleList(
                Transfer(tuple(child_feat[j].shape[1:]), tuple(parent_feat[j].shape[1:])) for j in self.leaves
            )

    def _features(self, model, x):
        return _run(self.task.blocks(model)[: self.params.boundary], x)

    def loss(self, x, y):
        feat = self._features(self.child, x)
        logits = _run(self.task.blocks(self.child)[self.params.boundary :], feat)
        with torch.no_grad():
            target = self._features(self.parent, x)
        task = self.task.task_loss(logits, y)
        if self.leaves is None:
            hint = F.mse_loss(self.regressor(feat), target)
        else:
            pairs = zip(self.regressor, self.leaves, strict=True)
            hint = torch.stack([F.mse_loss(r(feat[j]), target[j]) for r, j in pairs]).mean()
        return task + self.params.beta * hint, {"task": task, "hint": hint}


def _run(blocks, x):
    for block in blocks:
        x = block(x)
    return x


def build(child, parent, task, params: Params, sample) -> FeatureMSE:
    return FeatureMSE(child, parent, task, params, sample)
