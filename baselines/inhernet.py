"""InherNet (Zhou, Shi, Xu, Jiang and Chen 2026, "Beyond Student: an asymmetric network for
neural network inheritance"; read here through the summary in shared/seeds/004): the child is
the parent itself, compressed, instead of a smaller network taught by it.

Every convolution of the parent becomes an asymmetric low-rank layer

    h = W_d * x                        shared down projection: rank r, the original kernel size
    y = sum_m g_m(x) W_u^(m) h         M expert up projections (1x1), mixed by a softmax gate

initialised from the parent's weights by SVD of the kernel reshaped to (out, in * kh * kw):
W_d = sqrt(S_r) V_r^T and every W_u^(m) = U_r sqrt(S_r) (plus a little noise, so that the heads
can drift apart), which makes the layer the best rank-r approximation of the parent's at the
start. Batch normalisation and the remaining layers are copied from the parent; then the whole
network is fine-tuned on the task loss.

The architecture is a method-brought one (hkt.tasks.build_model): `baselines.inhernet:<parent
arch>@<options>`, built on the task's own parent architecture, so InherNet applies to any
task's parent without changes to the suite. Options (comma-separated `key=value`):

    budget=<arch>  the largest uniform rank fraction whose network has at most the parameters of
                   the task's architecture <arch> (the child's budget); or
    rank=<f>       the rank fraction itself, 0 < f <= 1 (r = max(1, floor(f * min(out, in*kh*kw))))
    heads=<M>      expert up projections per layer (default 2)
    gate=0|1       the softmax gate (default 1); gate=0 averages the heads (the no-gate ablation)

The seed leaves open: which layers are decomposed (here every ordinary convolution whose
decomposition is smaller than it; linear layers are kept dense), the gate's input (here the
layer input, average-pooled), the heads' initialisation and whether distillation joins the
fine-tuning (here: none). See results/discrepancies.csv, `inhernet-*`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from hkt.methods import Method
from hkt.tasks import Task

NEEDS_PARENT = True


# ---------------------------------------------------------------------------------------------
# The inherited layer and network
# ---------------------------------------------------------------------------------------------
class InheritedConv2d(nn.Module):
    """One shared rank-r down convolution, M 1x1 up heads and a softmax gate over the heads
    computed from the pooled input.

    sum_m g_m U_m h is computed as one 1x1 convolution with the heads side by side,
    [U_1 ... U_M] (g_1 h, ..., g_M h): the gate scales the r-channel code instead of M full
    outputs (1.6x faster on a CPU at CIFAR sizes). A bias, where the parent's layer has one, is
    shared by the heads: with gates summing to one it is the same as M equal biases.
    """

    def __init__(self, conv: nn.Conv2d, rank: int, heads: int, gate: bool):
        super().__init__()
        self.out_channels, self.rank, self.heads = conv.out_channels, rank, heads
        self.down = nn.Conv2d(
            conv.in_channels, rank, conv.kernel_size, conv.stride, conv.padding, conv.dilation, bias=False
        )
        self.up = nn.Conv2d(heads * rank, conv.out_channels, 1, bias=conv.bias is not None)
        self.gate = nn.Linear(conv.in_channels, heads) if gate and heads > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(x)
        if self.heads > 1:
            b, r = h.shape[:2]
            if self.gate is None:  # the no-gate ablation: the heads' mean
                g = h.new_full((b, self.heads), 1.0 / self.heads)
            else:
                g = F.softmax(self.gate(x.mean((2, 3))), dim=1)
            h = (g.view(b, self.heads, 1, 1, 1) * h.unsqueeze(1)).flatten(1, 2)
        return self.up(h)

    @torch.no_grad()
    def inherit(self, conv: nn.Conv2d, noise: float, generator: torch.Generator) -> float:
        """SVD initialisation from `conv`; returns the relative Frobenius error of the rank-r kernel."""
        weight = conv.weight.detach().to(torch.float64)
        matrix = weight.reshape(weight.shape[0], -1)
        u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
        root = s[: self.rank].sqrt()
        down = (root[:, None] * vh[: self.rank]).reshape(self.rank, *weight.shape[1:])
        up = u[:, : self.rank] * root[None, :]  # (out, r)
        self.down.weight.copy_(down.to(self.down.weight.dtype))
        heads = up.repeat(1, self.heads)  # (out, M * r): every head starts as U_r sqrt(S_r)
        if self.heads > 1 and noise > 0:
            heads = heads + noise * up.std() * torch.randn(heads.shape, generator=generator, dtype=heads.dtype)
        self.up.weight.copy_(heads[:, :, None, None].to(self.up.weight.dtype))
        if conv.bias is not None:
            self.up.bias.copy_(conv.bias.detach())
        return float((s[self.rank :] ** 2).sum().sqrt() / (s**2).sum().sqrt())


@dataclass(frozen=True)
class ArchOptions:
    base: str
    budget: str | None = None
    rank: float | None = None
    heads: int = 2
    gate: bool = True


def parse_arch(name: str) -> ArchOptions:
    base, _, rest = name.partition("@")
    options: dict = {}
    for item in filter(None, rest.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in ("budget", "rank", "heads", "gate") or key in options:
            raise ValueError(f"InherNet architecture {name!r}: bad option {item!r} (budget, rank, heads, gate)")
        options[key] = value
    try:
        opts = ArchOptions(
            base=base,
            budget=options.get("budget"),
            rank=float(options["rank"]) if "rank" in options else None,
            heads=int(options.get("heads", 2)),
            gate=options.get("gate", "1") == "1",
        )
    except ValueError as err:
        raise ValueError(f"InherNet architecture {name!r}: {err}") from err
    if (opts.budget is None) == (opts.rank is None):
        raise ValueError(f"InherNet architecture {name!r}: give exactly one of budget=<arch> or rank=<fraction>")
    if opts.rank is not None and not 0 < opts.rank <= 1:
        raise ValueError(f"InherNet architecture {name!r}: rank must lie in (0, 1], got {opts.rank}")
    if opts.heads < 1 or options.get("gate", "1") not in ("0", "1"):
        raise ValueError(f"InherNet architecture {name!r}: heads must be >= 1 and gate 0 or 1")
    return opts


def _decomposable(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [
        (name, m)
        for name, m in model.named_modules()
        if type(m) is nn.Conv2d and m.groups == 1  # grouped/depthwise kernels are left as they are
    ]


def _rank(conv: nn.Conv2d, fraction: float) -> int:
    full = min(conv.out_channels, conv.weight[0].numel())
    return max(1, math.floor(fraction * full))


def _size(conv: nn.Conv2d, rank: int, heads: int, gate: bool) -> int:
    """Parameters of the inherited layer replacing `conv` at `rank`."""
    k = conv.weight[0].numel()
    bias = conv.out_channels if conv.bias is not None else 0
    gating = (conv.in_channels + 1) * heads if gate and heads > 1 else 0
    return rank * k + heads * rank * conv.out_channels + bias + gating


def _plan(model: nn.Module, fraction: float, heads: int, gate: bool) -> dict[str, int]:
    """Rank of each convolution that the decomposition at `fraction` makes smaller."""
    return {
        name: _rank(conv, fraction)
        for name, conv in _decomposable(model)
        if _size(conv, _rank(conv, fraction), heads, gate)
        < conv.weight.numel() + (conv.bias is not None) * conv.out_channels
    }


def _count(model: nn.Module, plan: dict[str, int], heads: int, gate: bool) -> int:
    convs = dict(_decomposable(model))
    saved = sum(
        sum(p.numel() for p in convs[name].parameters()) - _size(convs[name], r, heads, gate)
        for name, r in plan.items()
    )
    return sum(p.numel() for p in model.parameters()) - saved


def build_model(name: str, task: Task) -> nn.Module:
    """The InherNet form of the task's architecture `name`'s base (see the module docstring)."""
    opts = parse_arch(name)
    model = task.build_model(opts.base)
    fraction = opts.rank
    if fraction is None:
        budget = sum(p.numel() for p in task.build_model(opts.budget).parameters())
        fraction = _fit(model, budget, opts)
    for layer, rank in _plan(model, fraction, opts.heads, opts.gate).items():
        parent_name, _, attr = layer.rpartition(".")
        owner = model.get_submodule(parent_name) if parent_name else model
        setattr(owner, attr, InheritedConv2d(getattr(owner, attr), rank, opts.heads, opts.gate))
    return model


def _fit(model: nn.Module, budget: int, opts: ArchOptions) -> float:
    """The largest rank fraction (to 1/1024) whose network stays within `budget` parameters."""
    lo, hi = 0.0, 1.0
    if _count(model, _plan(model, 1 / 1024, opts.heads, opts.gate), opts.heads, opts.gate) > budget:
        raise ValueError(
            f"InherNet architecture of {opts.base}: no rank fits the budget of {opts.budget} ({budget} parameters)"
        )
    for _ in range(10):
        mid = (lo + hi) / 2
        if _count(model, _plan(model, mid, opts.heads, opts.gate), opts.heads, opts.gate) <= budget:
            lo = mid
        else:
            hi = mid
    return max(lo, 1 / 1024)


@torch.no_grad()
def inherit(child: nn.Module, parent: nn.Module, *, noise: float, seed: int) -> dict[str, float]:
    """Copy the parent into the inherited network: SVD for each inherited layer, everything else
    (batch normalisation, linear layers, undecomposed convolutions) as it is. Returns each
    inherited layer's relative approximation error."""
    parent_modules = dict(parent.named_modules())
    generator = torch.Generator().manual_seed(seed)
    errors, inherited = {}, set()
    for name, module in child.named_modules():
        if isinstance(module, InheritedConv2d):
            source = parent_modules.get(name)
            if type(source) is not nn.Conv2d or source.out_channels != module.out_channels:
                raise ValueError(f"InherNet: the parent has no convolution matching the child's layer {name!r}")
            errors[name] = module.inherit(source, noise, generator)
            inherited.add(name)
    own = child.state_dict()
    for key, value in parent.state_dict().items():
        if key.rpartition(".")[0] in inherited:
            continue
        if key not in own or own[key].shape != value.shape:
            raise ValueError(f"InherNet: the parent's {key!r} has no counterpart in the inherited network")
        own[key].copy_(value)
    return errors


# ---------------------------------------------------------------------------------------------
# The method
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Params:
    svd_init: bool = True  # False: the no-SVD ablation (the same network, randomly initialised)
    head_noise: float = 0.01  # std of the heads' symmetry-breaking noise, relative to the weights'

    def __post_init__(self):
        if self.head_noise < 0:
            raise ValueError(f"head_noise must be >= 0, got {self.head_noise}")


class InherNet(Method):
    """Fine-tuning of the inherited network on the task loss; the parent is read once, at build."""

    def __init__(self, child, parent, task, params: Params):
        super().__init__(child, None, task)  # nothing of the parent is needed after inheritance
        if not any(isinstance(m, InheritedConv2d) for m in child.modules()):
            raise ValueError(
                "InherNet needs an inherited architecture: set methods.<name>.arch to baselines.inhernet:..."
            )
        self.errors = (
            inherit(child, parent, noise=params.head_noise, seed=torch.initial_seed()) if params.svd_init else {}
        )

    def loss(self, x, y):
        loss = self.task.task_loss(self.task.forward(self.child, x), y)
        return loss, {"task": loss}


def build(child, parent, task, params: Params, sample) -> InherNet:
    return InherNet(child, parent, task, params)
