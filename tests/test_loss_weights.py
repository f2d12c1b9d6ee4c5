"""The paper's constraints on eq. (9): alpha_i in [0, 1], sum 1, max(alpha1, alpha3) <= alpha2."""

import pytest

from hkt import loss_weights


def test_valid_weights_pass_exactly_including_fractions():
    assert loss_weights(["1/3", "1/3", "1/3"]) == pytest.approx((1 / 3,) * 3)
    assert loss_weights([0.2, 0.5, 0.3]) == pytest.approx((0.2, 0.5, 0.3))
    assert loss_weights([0.1, 0.8, 0.1]) == pytest.approx((0.1, 0.8, 0.1))  # 0.1 is exact here


@pytest.mark.parametrize(
    "alphas,constraint",
    [
        ([0.5, 0.3, 0.2], r"max\(alpha1, alpha3\) <= alpha2"),
        ([0.2, 0.35, 0.45], r"max\(alpha1, alpha3\) <= alpha2"),
        ([0.3, 0.3, 0.3], r"sum\(alpha\) = 1"),
        ([-0.1, 0.6, 0.5], r"alpha_i in \[0, 1\]"),
        ([0.0, 1.5, 0.0], r"alpha_i in \[0, 1\]"),
    ],
)
def test_violations_name_the_constraint(alphas, constraint):
    with pytest.raises(ValueError, match=constraint):
        loss_weights(alphas)


def test_explicit_ablations_may_leave_the_constraints_and_are_renormalised():
    assert loss_weights(["1/3", "1/3", 0], ablation=True) == pytest.approx((0.5, 0.5, 0.0))
    assert loss_weights([1, 0, 1], ablation=True) == pytest.approx((0.5, 0.0, 0.5))
    with pytest.raises(ValueError, match=r"alpha_i in \[0, 1\]"):
        loss_weights([2, 1, 0], ablation=True)
    with pytest.raises(ValueError, match="all zero"):
        loss_weights([0, 0, 0], ablation=True)


def test_malformed_entries_are_named():
    with pytest.raises(ValueError, match=r"alphas\[1\]"):
        loss_weights([0.2, "half", 0.3])
    with pytest.raises(ValueError, match="three weights"):
        loss_weights([0.5, 0.5])
