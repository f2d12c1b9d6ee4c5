"""One training stage's recipe: optimiser, learning-rate schedule, clipping and precision.

The learning rate is a pure function of the step (`Schedule.lr_factor`), so a resumed run
follows exactly the curve of an uninterrupted one. Recipes of the three tasks:

    CIFAR (He et al. 2016)   sgd, multistep (milestones as fractions of the steps), warm-up
    RAFT (Teed & Deng 2020)  adamw, onecycle (linear, pct_start 0.05), grad_clip 1
    U-Nets (PocketNet)       adam, constant
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

OPTIMIZERS = ("sgd", "adamw", "adam")
LR_SCHEDULES = ("multistep", "onecycle", "constant")


@dataclass(frozen=True)
class Schedule:
    steps: int
    batch_size: int
    lr: float  # the peak rate (onecycle) or the starting rate (multistep)
    optimizer: str = "sgd"
    momentum: float = 0.9  # sgd
    nesterov: bool = False  # sgd
    betas: tuple = (0.9, 0.999)  # adam, adamw
    eps: float = 1e-8  # adam, adamw
    weight_decay: float = 1e-4
    lr_schedule: str = "multistep"
    milestones: tuple = (0.5, 0.75)  # multistep: fractions of `steps` where the rate is multiplied by gamma
    gamma: float = 0.1
    warmup_steps: int = 0  # multistep: He et al. warm ResNet-110 up at lr/10 for ~400 iterations
    warmup_factor: float = 0.1
    pct_start: float = 0.05  # onecycle: share of the steps spent rising to `lr`
    div_factor: float = 25.0  # onecycle: starts at lr / div_factor ...
    final_div_factor: float = 1e4  # ... and ends at lr / (div_factor * final_div_factor)
    grad_clip: float | None = None  # max global gradient norm (RAFT: 1.0); None = no clipping
    # BatchNorm layers of the trained model keep their running statistics (eval mode) while their
    # weights still train: RAFT's train.py calls freeze_bn() in every stage but chairs, and
    # torchvision's recipe passes --freeze-batch-norm from things on
    freeze_bn: bool = False
    # Speed switches (make bench measures each; tests/test_speed_switches.py checks each keeps
    # training equal within its stated tolerance). Defaults: exact, portable, and fastest on a CPU.
    bf16: bool = False  # bf16 autocast for forward and loss (CUDA or CPU)
    channels_last: bool = False  # NHWC memory layout of the models and 4-D inputs (convolutions on GPUs)
    compile: bool = False  # torch.compile the training objective (pays on long GPU runs; minutes to compile)
    sync_every: int = 1  # read the loss on the host (and check it for NaN/inf) every k steps
    loader_workers: int = 0  # processes that build the next steps' batches while a step trains (hkt.train)
    eval_every: int = 100
    checkpoint_every: int = 100
    log_every: int | None = None  # a progress line every k steps (hkt.progress); None: 1% of the stage, >= sync_every

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {list(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}")
        if not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must lie in (0, 1), got {self.pct_start}")
        if self.lr_schedule == "onecycle" and self.pct_start * self.steps < 2:
            raise ValueError(
                f"onecycle needs pct_start * steps >= 2 to rise at all, got {self.pct_start * self.steps:g}"
            )
        if self.log_every is not None and self.log_every < 1:
            raise ValueError(f"log_every must be >= 1 or null, got {self.log_every}")
        if self.loader_workers < 0:
            raise ValueError(f"loader_workers must be >= 0, got {self.loader_workers}")
        if self.sync_every < 1:
            raise ValueError(f"sync_every must be >= 1, got {self.sync_every}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ValueError(f"grad_clip must be > 0 or null, got {self.grad_clip}")

    def lr_factor(self, step: int) -> float:
        """The rate at `step` as a multiple of `lr`."""
        if self.lr_schedule == "constant":
            return 1.0
        if self.lr_schedule == "onecycle":
            # torch's OneCycleLR with anneal_strategy='linear' and three_phase=False
            start, end = 1 / self.div_factor, 1 / (self.div_factor * self.final_div_factor)
            peak = max(float(self.pct_start * self.steps) - 1, 1.0)
            if step <= peak:
                return start + (1 - start) * step / peak
            return 1 + (end - 1) * min((step - peak) / max(self.steps - 1 - peak, 1.0), 1.0)
        factor = self.gamma ** sum(step >= round(m * self.steps) for m in self.milestones)
        return factor * (self.warmup_factor if step < self.warmup_steps else 1.0)

    def make_optimizer(self, params) -> torch.optim.Optimizer:
        if self.optimizer == "sgd":
            return torch.optim.SGD(
                params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay, nesterov=self.nesterov
            )
        cls = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
        return cls(params, lr=self.lr, betas=tuple(self.betas), eps=self.eps, weight_decay=self.weight_decay)
