"""DRAFT (Tchenko, Hadj Abdelkader and Tabia, ICIP 2024), the HKT authors' distillation for RAFT,
as its public code computes it (github christian-tchenko/DRAFT, `trainKD.py` and
`core/adaptation.py`, `core/distillation.py` at HEAD, read not copied; the paper only cites it):

    L = (1 - alpha) * sequence_loss(s, y) + alpha * sum_i gamma^(N-i-1) * v * KL_i
    KL_i = KLDivLoss(batchmean)( log_softmax(P(s_i) / T), T^2 * softmax(P(t_i) / T) )
    P(f) = where(conv1x1(f) > 0, 1, where(conv1x1(f) < 0, -1, 0)), reshaped to rows (B*C*H, W)

s_i, t_i are the child's and the frozen parent's i-th flows (the parent runs as many updates as
the child), v the share of training pixels (valid, |gt| < 400 px): the public code adds the
scalar KL inside `(valid * (...)).mean()`. The softmax runs along each image row (the implicit
last dimension of the public code's 2-D tensors). T^2 multiplies the teacher's probabilities,
not the loss, as in the public code: the term equals T^2 (KL + ln T^2), Hinton's T^2 KL plus a
constant. The teacher's flow is never a regression target; the parent is RAFT-large (config).

The sign pattern is built from the constants 1, -1, 0 by torch.where, so it is not a function
of the student that autograd can differentiate, and it is piecewise constant in the student's
flow anyway: the distillation term carries no gradient to the student, and DRAFT trains on
(1 - alpha) times RAFT's loss alone (under AdamW, which ignores a constant gradient scale up to
its epsilon and the clipping, that is training the child alone). tests/test_flow_baselines.py
checks both facts. The public code's "mkd" variant (sign patterns of correlation volumes and
feature maps, MSE between sign patterns, KL between sign counts) is built from the same
constants; its training loop optimises the loss above in both branches, and so does this module.

Deviations, none of which can change training since the term has no gradient: the public code
draws a fresh, differently initialised 1x1 convolution (2 -> 2 channels, with bias, PyTorch's
default init) for every sign pattern, teacher and student apart, at every call; here one
projection with the same initial distribution is drawn once from `projection_seed` and shared
by teacher and student, so the logged value is reproducible and the same after a resume.

`form: reskd` is the repository's earlier loss (commit c411672, 2023-10-03, "RsKD checkpoints":
`core/distillation.py` DistillerIKD.rskd_loss as `trainKD.py` calls it), which does carry a
gradient: a softmax along each image row of each flow channel at temperature T (0.1 there, so
flows x 10), KLDivLoss(batchmean, log_target=True), times T, averaged over the B x 2 channel
slices and summed over the N updates without gamma weights:

    L = (1 - alpha) * sequence_loss(s, y) + alpha * sum_i T * KL_i
    KL_i = kl_div(log_softmax(t_i / T), softmax(s_i / T), batchmean, log_target=True) over rows

Kept as the code computes it: `trainKD.py` passes (student, teacher) to a constructor that takes
(teacher, student), so the *student's* row softmax is the target, and that target is given as
probabilities while log_target=True reads it as log-probabilities (the term is
sum exp(p_s) (p_s - log q_t)). Which form produced the published DRAFT numbers is not stated
(results/discrepancies.csv, draft-row).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hkt.methods import Method
from hkt.tasks.flow.metrics import training_mask

NEEDS_PARENT = True
FLOW_CHANNELS = 2
FORMS = ("sign", "reskd")


@dataclass(frozen=True)
class Params:
    alpha: float = 0.1  # DRAFT's default weight of the distillation term (ground truth: 1 - alpha)
    temperature: float = 10.0  # DistillerMKD's default
    gamma: float = 0.8  # RAFT's weighting of the N predictions
    projection_channels: int = 2  # the public code projects the flow to its own channel count
    projection_seed: int = 0
    form: str = "sign"  # sign: the public code's current term (no gradient); reskd: its earlier one

    def __post_init__(self):
        if self.form not in FORMS:
            raise ValueError(f"form must be one of {FORMS}, got {self.form!r}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], got {self.gamma}")
        if self.projection_channels < 1:
            raise ValueError(f"projection_channels must be >= 1, got {self.projection_channels}")


def random_projection(channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight (channels, 2, 1, 1) and bias (channels,) drawn as nn.Conv2d(2, channels, 1)
    initialises them (both U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 2), from `seed`."""
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(FLOW_CHANNELS)
    weight = (torch.rand(channels, FLOW_CHANNELS, 1, 1, generator=g) * 2 - 1) * bound
    bias = (torch.rand(channels, generator=g) * 2 - 1) * bound
    return weight, bias


def sign_pattern(flow: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """+1 / -1 / 0 per element of the 1x1 projection, as rows (B * C * H, W) of float constants."""
    projected = F.conv2d(flow, weight, bias)
    # the public code's construction: integer constants chosen by torch.where, then .float()
    signs = torch.where(projected > 0, 1, torch.where(projected < 0, -1, 0)).float()
    return signs.reshape(-1, signs.shape[-1])


def sign_kl(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """The public code's KL between two sign patterns (rows): T^2 (KL(teacher || student) + ln T^2)."""
    log_student = F.log_softmax(student / temperature, dim=-1)
    scaled_teacher = F.softmax(teacher / temperature, dim=-1) * temperature**2
    return F.kl_div(log_student, scaled_teacher, reduction="batchmean")


def reskd_term(student: list, teacher: list, temperature: float) -> torch.Tensor:
    """The earlier public term: sum_i T * KL_i over the N updates (see the module docstring)."""
    total = student[0].new_zeros(())
    for s, t in zip(student, teacher, strict=True):
        rows_t = t.reshape(-1, t.shape[-1])  # every image row of every flow channel: (B * 2 * H, W)
        rows_s = s.reshape(-1, s.shape[-1])
        kl = F.kl_div(
            F.log_softmax(rows_t / temperature, dim=-1),
            F.softmax(rows_s / temperature, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        total = total + temperature * kl
    return total


class DRAFT(Method):
    def __init__(self, child, parent, task, params: Params):
        super().__init__(child, parent, task)
        self.params = params
        weight, bias = random_projection(params.projection_channels, params.projection_seed)
        # buffers: never trained, moved with the method, and saved in its checkpoints
        self.register_buffer("projection_weight", weight)
        self.register_buffer("projection_bias", bias)

    def distillation(self, student, teacher, y) -> torch.Tensor:
        """sum_i gamma^(N-i-1) * v * KL_i (the term alpha multiplies)."""
        if len(student) != len(teacher):
            raise ValueError(f"student and teacher ran {len(student)} and {len(teacher)} updates")
        flow, valid = y
        share = training_mask(flow, valid).float().mean()
        p, n = self.params, len(student)
        total = flow.new_zeros(())
        for i, (s, t) in enumerate(zip(student, teacher, strict=True)):
            kl = sign_kl(self._signs(s), self._signs(t), p.temperature)
            total = total + p.gamma ** (n - i - 1) * share * kl
        return total

    def _signs(self, flow):
        return sign_pattern(flow, self.projection_weight, self.projection_bias)

    def loss(self, x, y):
        student = self.task.forward(self.child, x)
        with torch.no_grad():
            teacher = self.task.forward(self.parent, x)
        task = self.task.task_loss(student, y)
        if self.params.form == "reskd":
            kd = reskd_term(student, teacher, self.params.temperature)
            parts = {"task": task, "reskd": kd}
        else:
            kd = self.distillation(student, teacher, y)
            parts = {"task": task, "sign_kl": kd}
        a = self.params.alpha
        return (1 - a) * task + a * kd, parts


def build(child, parent, task, params: Params, sample) -> DRAFT:
    return DRAFT(child, parent, task, params)
