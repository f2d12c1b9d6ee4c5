"""n-stage Hereditary Knowledge Transfer: Algorithm 1 of the paper, for any aligned block lists.

A network is given as n aligned functional blocks [b_1, ..., b_n] (callables) such that
b_n(... b_2(b_1(x))) is its forward pass. The value passed between two blocks (a "signal")
is a tensor or a tuple of tensors; with tuples, only the leaves that have an ETM unit are
mixed and the others pass through (RAFT's feature/context boundaries carry several tensors).

Per training batch (Algorithm 1):

    z_1 = c_1(x),  ~z_1 = p_1(x)
    for i = 1 .. n-1:
        phi_c = z_i  + lambda GA(tau_c(~z_i), z_i)      child path receives the parent
        phi_p = ~z_i + lambda GA(tau_p(z_i), ~z_i)      parent path receives the child
        z_{i+1} = c_{i+1}(phi_c),  ~z_{i+1} = p_{i+1}(phi_p)
    native z_n = c_n(... c_1(x))                        the plain child, supervised by L2

The parent's blocks run in eval mode with frozen weights; gradients of the head path reach
the child through the parent's blocks but never change them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from hkt.etm import ETM, Mixture, Transfer, make_extractor

Signal = torch.Tensor | tuple[torch.Tensor, ...]
Block = Callable[[Signal], Signal]
HEAD_QUERIES = ("parent", "child")


class Boundary(nn.Module):
    """The ETM units of one stage boundary in one direction (one unit per mixed leaf)."""

    def __init__(self, units: dict[int, ETM]):
        super().__init__()
        self.units = nn.ModuleDict({str(k): v for k, v in units.items()})

    def forward(self, source: Signal, receiver: Signal) -> tuple[Signal, list[torch.Tensor]]:
        if isinstance(receiver, torch.Tensor):
            mixed, align = self.units["0"](source, receiver)
            return mixed, [] if align is None else [align]
        out, aligns = list(receiver), []
        for key, unit in self.units.items():
            out[int(key)], align = unit(source[int(key)], receiver[int(key)])
            if align is not None:
                aligns.append(align)
        return tuple(out), aligns


@dataclass
class InheritanceOutput:
    inherited: Signal  # z*_n: the child path with the parent mixed in (L1)
    native: Signal  # z_n: the plain child (L2)
    head: Signal | None  # ~z*_n: the parent head fed with child-mixed features (L3)
    alignment: torch.Tensor | None  # mean MSE alignment over mixed leaves ("mse" mixture)


class Inheritance(nn.Module):
    """The trainable part of nHKT: ETM units in both directions at the n-1 stage boundaries."""

    def __init__(self, to_child: Sequence[Boundary], to_parent: Sequence[Boundary], head_query: str = "parent"):
        super().__init__()
        if len(to_child) != len(to_parent):
            raise ValueError("to_child and to_parent need one Boundary per stage boundary each")
        if head_query not in HEAD_QUERIES:
            raise ValueError(f"head_query must be one of {HEAD_QUERIES}, got {head_query!r}")
        self.to_child = nn.ModuleList(to_child)
        self.to_parent = nn.ModuleList(to_parent)
        self.head_query = head_query

    @property
    def stages(self) -> int:
        return len(self.to_child) + 1

    def forward(self, child: Sequence[Block], parent: Sequence[Block], x, *, head: bool = True) -> InheritanceOutput:
        """Run Algorithm 1 on one batch. `head=False` skips the parent's last block (alpha3 = 0)."""
        n = self.stages
        if len(child) != n or len(parent) != n:
            raise ValueError(
                f"{n}-stage inheritance needs {n} child and parent blocks, got {len(child)} and {len(parent)}"
            )
        z = child[0](x)
        with torch.no_grad():  # nothing upstream of ~z_1 belongs to the child
            zp = parent[0](x)
        native, aligns = z, []
        for i in range(1, n):
            phi_c, align = self.to_child[i - 1](zp, z)
            aligns += align
            last = i == n - 1
            if head or not last:
                if self.head_query == "parent":  # Algorithm 1, line 6: the parent's signal is the query
                    phi_p, _ = self.to_parent[i - 1](z, zp)
                else:  # the authors' CIFAR code: the parent head reads the child-query mixture
                    phi_p = _transfer_only(self.to_parent[i - 1], phi_c, zp)
                zp = parent[i](phi_p)
            else:
                zp = None
            native = child[i](native)
            z = child[i](phi_c)
        alignment = torch.stack(aligns).mean() if aligns else None
        return InheritanceOutput(inherited=z, native=native, head=zp, alignment=alignment)


def _transfer_only(boundary: Boundary, signal: Signal, receiver: Signal) -> Signal:
    """E then T of each mixed leaf of `signal`, without the mixture (the authors' head path).

    Leaves without a unit are the receiver's own, as in a mixture: on RAFT the parent's head
    keeps building its correlation pyramid on the parent's feature maps, and on LiTS the parent
    decoder unpacks its own skip connections (the child's would have the child's widths)."""

    def carry(unit, x):
        return unit.transfer(x if unit.extractor is None else unit.extractor(x))

    if isinstance(signal, torch.Tensor):
        return carry(boundary.units["0"], signal)
    out = list(receiver)
    for key, unit in boundary.units.items():
        out[int(key)] = carry(unit, signal[int(key)])
    return tuple(out)


def merge_blocks(blocks: Sequence[Block], stages: int) -> list[Block]:
    """Compose leading blocks so that exactly `stages` aligned blocks remain."""
    if not 2 <= stages <= len(blocks):
        raise ValueError(f"stages must lie in [2, {len(blocks)}] (the aligned blocks available), got {stages}")
    cut = len(blocks) - stages + 1
    head = list(blocks[:cut])

    def first(x):
        for block in head:
            x = block(x)
        return x

    return [first if cut > 1 else blocks[0], *blocks[cut:]]


def _shapes(signal: Signal) -> list[tuple[int, ...]]:
    leaves = [signal] if isinstance(signal, torch.Tensor) else list(signal)
    return [tuple(t.shape[1:]) for t in leaves]


def boundary_signals(blocks: Sequence[Block], x) -> list[Signal]:
    """The signals at the n-1 boundaries of a block list, for shape probing."""
    out = []
    for block in blocks[:-1]:
        x = block(x)
        out.append(x)
    return out


def build_inheritance(
    child: Sequence[Block],
    parent: Sequence[Block],
    sample,
    *,
    lam: float = 0.6,
    mixture: str = "ga",
    vector_mode: str = "gated",
    head_query: str = "parent",
    leaves: Sequence[Sequence[int]] | None = None,
    extractor: str = "none",
    transfer: str = "conv",
) -> Inheritance:
    """Create the ETM units for two aligned block lists by probing them with `sample`.

    `leaves[i]` lists which leaves of boundary i are mixed (default: all). Transfers are the
    identity wherever parent and child shapes already agree. `extractor` and `transfer` choose
    the E and T units (hkt.etm: the defaults, or the ablations that remove them).
    """
    if len(child) != len(parent):
        raise ValueError(f"child has {len(child)} blocks, parent {len(parent)}: they must be aligned")
    with torch.no_grad():
        child_shapes = [_shapes(s) for s in boundary_signals(child, sample)]
        parent_shapes = [_shapes(s) for s in boundary_signals(parent, sample)]
    to_child, to_parent = [], []
    for i, (cs, ps) in enumerate(zip(child_shapes, parent_shapes, strict=True)):
        if len(cs) != len(ps):
            raise ValueError(f"boundary {i + 1}: child carries {len(cs)} tensors, parent {len(ps)}")
        mixed = range(len(cs)) if leaves is None else leaves[i]

        def units(src, dst, mixed=mixed):
            return {
                j: ETM(
                    Transfer(src[j], dst[j], transfer),
                    Mixture(mixture, lam, vector_mode),
                    make_extractor(extractor, src[j]),
                )
                for j in mixed
            }

        to_child.append(Boundary(units(ps, cs)))
        to_parent.append(Boundary(units(cs, ps)))
    return Inheritance(to_child, to_parent, head_query=head_query)


# ---------------------------------------------------------------------------------------------
# Mixing plans: where a stage count mixes, up to blocks that only hand a signal on
# ---------------------------------------------------------------------------------------------
def _leaf_list(signal) -> list:
    return [signal] if isinstance(signal, torch.Tensor) else list(signal)


def _handed_on(block: Block, signal: Signal) -> tuple[dict[int, int], Signal]:
    """Run `block` on `signal`; return {input leaf j: output leaf k} for the leaves it hands on
    untouched (output k *is* input j) and that nothing else in the block reads, and its output.

    Mixing such a leaf before the block or after it is one computation: on RAFT the context
    encoder reads image1 only, so the feature maps pass it by."""
    inputs = [t.detach().requires_grad_(t.is_floating_point()) for t in _leaf_list(signal)]
    with torch.enable_grad():
        out = block(inputs[0] if isinstance(signal, torch.Tensor) else tuple(inputs))
        outs = _leaf_list(out)
        moves = {}
        for j, leaf in enumerate(inputs):
            same = [k for k, o in enumerate(outs) if o is leaf]
            if len(same) != 1:
                continue
            readers = [o.sum() for k, o in enumerate(outs) if k != same[0] and o.requires_grad]
            grads = torch.autograd.grad(readers, leaf, allow_unused=True, retain_graph=True) if readers else (None,)
            if grads[0] is None:
                moves[j] = same[0]
    return moves, out


def mixing_plans(
    child: Sequence[Block], parent: Sequence[Block], sample, leaves: Callable[[int], list] | None = None
) -> dict[int, Counter]:
    """For every stage count 2..n of two aligned (unmerged) block lists: the multiset of points
    it mixes, (boundary, leaf), each moved forward past blocks that only hand that leaf on in both
    networks (see `_handed_on`). Two stage counts with equal plans compute the same losses at
    equal weights, so comparing them measures nothing but initialisation. `leaves(s)` is the
    task's `mixed_leaves` (None: every leaf). Run the child in eval mode: its blocks run once."""
    n = len(child)
    with torch.no_grad():
        zc, zp = child[0](sample), parent[0](sample)
    widths, moves = [len(_leaf_list(zc))], []
    for b in range(1, n - 1):  # the block after boundary b - 1
        mc, zc = _handed_on(child[b], zc)
        mp, zp = _handed_on(parent[b], zp)
        moves.append({j: k for j, k in mc.items() if mp.get(j) == k})
        widths.append(len(_leaf_list(zc)))

    def settle(b: int, j: int) -> tuple[int, int]:
        while b < n - 2 and j in moves[b]:
            b, j = b + 1, moves[b][j]
        return b + 1, j  # 1-based: the boundary after block b + 1

    plans = {}
    for s in range(2, n + 1):
        mixed = leaves(s) if leaves else [range(widths[n - s + i]) for i in range(s - 1)]
        plans[s] = Counter(settle(n - s + i, j) for i in range(s - 1) for j in mixed[i])
    return plans


def coinciding_stage_counts(plans: dict[int, Counter], stages: int) -> list[int]:
    """The other stage counts whose mixing plan equals that of `stages`."""
    return [s for s, plan in plans.items() if s != stages and plan == plans[stages]]
