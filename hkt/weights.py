"""Validation of the loss weights of eq. (9): L = a1 L1 + a2 L2 + a3 L3."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

CONSTRAINTS = "alpha_i in [0, 1], sum(alpha) = 1, max(alpha1, alpha3) <= alpha2"


def _fraction(value, index: int) -> Fraction:
    try:
        # str() first so that 0.1 means one tenth, not the nearest binary float
        return Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError) as err:
        raise ValueError(f"alphas[{index}] = {value!r} is not a number or a fraction like '1/3'") from err


def loss_weights(alphas: Sequence, *, ablation: bool = False) -> tuple[float, float, float]:
    """Check (alpha1, alpha2, alpha3) against the paper's constraints and return them as floats.

    Entries may be numbers or fraction strings ("1/3") so that equal weights are exact.
    An explicit ablation may break the sum and ordering constraints (e.g. alpha3 = 0 with the
    others unchanged): its weights are renormalised to sum 1. The [0, 1] range always holds.
    """
    if len(alphas) != 3:
        raise ValueError(f"alphas needs three weights (alpha1, alpha2, alpha3), got {len(alphas)}")
    a = [_fraction(v, i) for i, v in enumerate(alphas)]
    for i, v in enumerate(a):
        if not 0 <= v <= 1:
            raise ValueError(f"constraint alpha_i in [0, 1] violated: alphas[{i}] = {float(v)}")
    total = sum(a)
    if ablation:
        if total == 0:
            raise ValueError("alphas are all zero: nothing would be trained")
        return tuple(float(v / total) for v in a)
    if total != 1:
        raise ValueError(
            f"constraint sum(alpha) = 1 violated: the alphas sum to {float(total)}; "
            f"mark the variant `ablation: true` to renormalise an ablation instead"
        )
    if max(a[0], a[2]) > a[1]:
        raise ValueError(
            f"constraint max(alpha1, alpha3) <= alpha2 violated: alphas = "
            f"{[float(v) for v in a]}; mark the variant `ablation: true` for an ablation outside it"
        )
    return tuple(float(v) for v in a)
