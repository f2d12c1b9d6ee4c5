"""Genetic Attention, eq. (2) of the HKT paper (arXiv 2508.09743).

    alpha = softmax(Q K^T / sqrt(c)),   GA(tau, x') = V - reshape(alpha V)

with Q = x' (the receiving activation), K = V = tau (the transferred activation),
tokens = flattened spatial positions and c = channels. GA is the part of V that the
attention-weighted average of V (what the receiver "already perceives") does not explain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

VECTOR_MODES = ("gated", "literal")


def genetic_attention(child: torch.Tensor, parent: torch.Tensor, *, vector_mode: str = "gated") -> torch.Tensor:
    """Return GA(parent, child) for activations of identical shape.

    child:  the query Q = x', shape (B, C) or (B, C, *spatial) with 1 to 3 spatial dimensions.
    parent: the transferred signal K = V = tau(x), same shape as `child`.

    Feature maps run through `scaled_dot_product_attention` (whose default scale is exactly
    1/sqrt(C)), so memory grows linearly with the number of tokens on kernels that support it.

    Vectors (B, C) have a single token: the softmax over one key is 1, alpha V = V and the
    literal equation is identically zero (`vector_mode="literal"` returns that zero).
    `vector_mode="gated"` (default) is the authors' public CIFAR code: a per-sample gate
    s = sigmoid(<q, k> / sqrt(C)) and GA = V - (s V + (1 - s) Q) = (1 - s)(V - Q).
    """
    if child.shape != parent.shape:
        raise ValueError(
            f"genetic_attention needs equal shapes, got child {tuple(child.shape)} "
            f"and parent {tuple(parent.shape)}; put a Transfer in front of the parent signal"
        )
    if child.dim() == 2:
        return _vector_ga(child, parent, vector_mode)
    if not 3 <= child.dim() <= 5:
        raise ValueError(
            f"genetic_attention takes (B, C), (B, C, L), (B, C, H, W) or (B, C, D, H, W); got {child.dim()} dimensions"
        )
    batch, channels = child.shape[:2]
    # (B, C, *S) -> (B, 1, N, C). `contiguous()` matters: on the CPU a transposed view sends
    # SDPA to its quadratic-memory math path (measured: 2.8 GB at 128x128 instead of 0.5 GB).
    q = child.flatten(2).transpose(1, 2).contiguous().unsqueeze(1)
    v = parent.flatten(2).transpose(1, 2).contiguous().unsqueeze(1)
    attended = F.scaled_dot_product_attention(q, v, v)
    residual = (v - attended).squeeze(1)  # (B, N, C)
    return residual.transpose(1, 2).reshape(child.shape)


def _vector_ga(q: torch.Tensor, v: torch.Tensor, vector_mode: str) -> torch.Tensor:
    if vector_mode == "literal":
        # softmax over a single key is 1, so V - alpha V = 0: kept for the degeneracy ablation.
        return v - v
    if vector_mode == "gated":
        gate = torch.sigmoid((q * v).sum(dim=1, keepdim=True) / q.shape[1] ** 0.5)
        return v - (gate * v + (1 - gate) * q)
    raise ValueError(f"vector_mode must be one of {VECTOR_MODES}, got {vector_mode!r}")
