"""HKT as a registered method: Algorithm 1 with the combined loss of eq. (9).

    L = alpha1 L1 + alpha2 L2 + alpha3 L3 (+ align_weight * alignment for the "mse" mixture)

L1 supervises the child path that received the parent (backbone inheritance), L2 the plain
child (native supervision), L3 the parent head fed with child-mixed features (head inheritance).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hkt.attention import VECTOR_MODES
from hkt.etm import EXTRACTORS, MIXTURE_MODES, TRANSFERS
from hkt.inheritance import HEAD_QUERIES, build_inheritance, coinciding_stage_counts, merge_blocks, mixing_plans
from hkt.methods import BATCH_NORMS, Method, require_blocks
from hkt.models import evaluating
from hkt.weights import loss_weights

NEEDS_PARENT = True
PARAM_ALIASES = {"lambda": "lam"}  # `lambda` is the paper's name and a Python keyword


@dataclass(frozen=True)
class Params:
    stages: int = 2  # n of nHKT: aligned blocks used (2 on CIFAR, 3 on RAFT/LiTS)
    lam: float = 0.6  # lambda of eq. (3); 0.6 in the authors' CIFAR code
    alphas: tuple = ("1/3", "1/3", "1/3")  # eq. (9); the authors' code sums three equal losses
    ablation: bool = False  # allow weights outside the paper's constraints (renormalised)
    mixture: str = "ga"  # ga | add (no-GA ablation) | mse (footnote-1 ablation)
    vector_mode: str = "gated"  # GA on (B, C) vectors: see hkt.attention
    head_query: str = "parent"  # parent: Algorithm 1 line 6; child: the authors' code
    inherit_loss: str = "ce"  # loss of L1 and L3 (task-specific choices)
    extractor: str = "none"  # E unit: none (identity) | conv (learned residual 3x3); see hkt.etm
    transfer: str = "conv"  # T unit: conv (learned 1x1) | fixed (no-transfer ablation)
    align_weight: float = 1.0  # weight of the MSE alignment of the "mse" mixture
    # The parent's BatchNorm: eval (its running statistics, never updated: the suite's frozen parent) |
    # train (batch statistics, running statistics moving in this job's copy: the authors' trainer.py
    # never calls parent.eval()). Its weights stay frozen either way.
    parent_bn: str = "eval"

    def __post_init__(self):
        if self.stages < 2:
            raise ValueError(f"stages must be at least 2 (one stage boundary), got {self.stages}")
        if not 0.0 <= self.lam <= 1.0:
            raise ValueError(f"lambda must lie in [0, 1] (eq. 3), got {self.lam}")
        for name, value, choices in (
            ("mixture", self.mixture, MIXTURE_MODES),
            ("vector_mode", self.vector_mode, VECTOR_MODES),
            ("head_query", self.head_query, HEAD_QUERIES),
            ("extractor", self.extractor, EXTRACTORS),
            ("transfer", self.transfer, TRANSFERS),
            ("parent_bn", self.parent_bn, ("eval", "train")),
        ):
            if value not in choices:
                raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
        if self.align_weight < 0:
            raise ValueError(f"align_weight must be >= 0, got {self.align_weight}")
        object.__setattr__(self, "weights", loss_weights(self.alphas, ablation=self.ablation))

    def check_task(self, task) -> None:
        require_blocks(task, self.stages, f"stages = {self.stages}")
        if self.inherit_loss not in task.inherit_losses:
            raise ValueError(
                f"inherit_loss must be one of {sorted(task.inherit_losses)} for {task.name}, got {self.inherit_loss!r}"
            )


class HKT(Method):
    def __init__(self, child, parent, task, params: Params, sample):
        super().__init__(child, parent, task)
        params.check_task(task)
        self.params = params
        self.inherit_loss = task.inherit_losses[params.inherit_loss]
        if task.max_stages > 2:
            _refuse_coinciding_plans(child, parent, task, params.stages, sample)
        self.inheritance = build_inheritance(
            self.child_blocks(),
            self.parent_blocks(),
            sample,
            lam=params.lam,
            mixture=params.mixture,
            vector_mode=params.vector_mode,
            head_query=params.head_query,
            leaves=task.mixed_leaves(params.stages) if task.mixed_leaves else None,
            extractor=params.extractor,
            transfer=params.transfer,
        )
        if params.parent_bn == "train":  # after the shape probes above, so that only training moves its statistics
            for module in parent.modules():
                if isinstance(module, BATCH_NORMS):
                    module.train()

    def child_blocks(self):
        return merge_blocks(self.task.blocks(self.child), self.params.stages)

    def parent_blocks(self):
        return merge_blocks(self.task.blocks(self.parent), self.params.stages)

    def loss(self, x, y):
        a1, a2, a3 = self.params.weights
        out = self.inheritance(self.child_blocks(), self.parent_blocks(), x, head=a3 > 0)
        parts = {"L1": self.inherit_loss(out.inherited, y), "L2": self.task.task_loss(out.native, y)}
        total = a1 * parts["L1"] + a2 * parts["L2"]
        if out.head is not None:
            parts["L3"] = self.inherit_loss(out.head, y)
            total = total + a3 * parts["L3"]
        if out.alignment is not None:
            parts["align"] = out.alignment
            total = total + self.params.align_weight * out.alignment
        return total, parts


def _refuse_coinciding_plans(child, parent, task, stages: int, sample) -> None:
    """A stage count whose mixing plan equals another's is not a different method: refuse it
    (on RAFT, mixing the feature maps before the context encoder, which never reads them, is
    mixing them after it). One sample item suffices to trace the blocks."""
    one = sample[:1] if isinstance(sample, torch.Tensor) else type(sample)(t[:1] for t in sample)
    with evaluating(child):  # no BatchNorm statistics move while tracing
        plans = mixing_plans(task.blocks(child), task.blocks(parent), one, task.mixed_leaves)
    same = coinciding_stage_counts(plans, stages)
    if same:
        points = sorted(plans[stages])
        raise ValueError(
            f"on task {task.name}, stages = {stages} and stages = {same[0]} mix the same signals at the same "
            f"points ((boundary, leaf): {points}), so they compute the same losses; give the task's "
            "mixed_leaves a distinct plan per stage count"
        )


def build(child, parent, task, params: Params, sample) -> HKT:
    return HKT(child, parent, task, params, sample)
