"""hkt.stats, the one module behind every p-value, interval and verdict the suite prints: checked
against scipy on constructed data."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from hkt import stats as S


def _series(values, seeds=None):
    return pd.Series(values, index=seeds if seeds is not None else range(len(values)), dtype=float)


def test_the_tests_and_intervals_are_scipys():
    a, b = _series([71.2, 69.8, 70.5, 72.0]), _series([68.9, 69.5, 67.7, 70.1])
    out = S.difference(a, b)
    welch, paired = sp.ttest_ind(a, b, equal_var=False), sp.ttest_rel(a, b)
    assert out["welch_p"] == pytest.approx(welch.pvalue) and out["paired_p"] == pytest.approx(paired.pvalue)
    assert out["test"] == "paired" and out["p"] == pytest.approx(paired.pvalue)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(paired.confidence_interval(0.95)))
    # no shared seeds: Welch's test and its Welch-Satterthwaite interval
    out = S.difference(a, _series(b.to_numpy(), seeds=[10, 11, 12, 13]))
    assert out["test"] == "welch" and out["p"] == pytest.approx(welch.pvalue)
    assert (out["ci_low"], out["ci_high"]) == pytest.approx(tuple(welch.confidence_interval(0.95)))
    sp_ = math.sqrt((3 * a.var() + 3 * b.var()) / 6)
    assert out["hedges_g"] == pytest.approx((a.mean() - b.mean()) / sp_ * (1 - 3 / (4 * 8 - 9)))
    assert S.mean_interval(a) == pytest.approx(tuple(sp.ttest_1samp(a, 0).confidence_interval(0.95)))


def test_holm_matches_the_step_down_definition():
    p = [0.01, 0.04, math.nan, 0.03, 0.5]
    # sorted 0.01, 0.03, 0.04, 0.5 times 4, 3, 2, 1, made monotone: 0.04, 0.09, 0.09, 0.5
    assert S.holm(p)[[0, 1, 3, 4]] == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert math.isnan(S.holm(p)[2]) and S.holm([0.9, 0.8]).max() == 1.0


def _verdict(a, b, better="max"):
    return S.verdicts(pd.DataFrame([S.difference(_series(a), _series(b), better=better)])).verdict.iloc[0]


def test_identical_results_are_never_better_or_worse():
    for values in ([70.0, 71.0], [70.0, 71.0, 69.5, 70.2, 70.9], [70.0, 70.0, 70.0]):
        assert _verdict(values, values) not in ("better", "worse")


def test_a_weak_two_seed_gain_is_not_better():
    assert _verdict([70.0, 72.6], [69.5, 71.0]) == S.NOT_SIGNIFICANT


def test_a_clear_five_seed_gain_is_better_and_a_clear_loss_worse_in_the_metrics_direction():
    base = [70.1, 69.4, 70.8, 69.9, 70.3]
    gain = [b + 2.0 + d for b, d in zip(base, [0.1, -0.2, 0.15, 0.0, -0.05], strict=True)]
    assert _verdict(gain, base) == "better"
    assert _verdict(gain, base, better="min") == "worse"  # e.g. EPE: higher is worse


def test_too_few_seeds_gives_no_verdict_and_a_correction_can_take_one_away():
    assert _verdict([91.0], [90.0, 90.4]) == S.TOO_FEW
    one = S.difference(_series([72.1, 71.6, 72.5]), _series([70.0, 71.2, 69.9], seeds=[5, 6, 7]), better="max")
    assert one["test"] == "welch" and 0.005 < one["p"] < 0.05
    assert S.verdicts(pd.DataFrame([one])).verdict.iloc[0] == "better"  # alone, it is a finding
    family = S.verdicts(pd.DataFrame([one] + [{**one, "p": 0.5, "gain": 0.1}] * 9))
    assert family.verdict.iloc[0] == S.NOT_SIGNIFICANT and family.p_holm.iloc[0] == pytest.approx(10 * one["p"])


def test_the_detectable_difference_is_found_with_80_percent_power():
    """At Δ = detectable, a two-sided t-test at 0.05 with the same degrees of freedom and standard
    error rejects with probability about 0.8 (scipy's noncentral t)."""
    for a, b in (([71.2, 69.8, 70.5, 72.0], [68.9, 69.5, 67.7, 70.1]), ([1.0, 3.0, 2.0], [2.0, 2.5, 2.2])):
        out = S.difference(_series(a), _series(b))
        df = len(a) - 1 if out["test"] == "paired" else out["welch_df"]
        se = out["paired_se"] if out["test"] == "paired" else out["welch_se"]
        crit = sp.t.ppf(0.975, df)
        nc = out["detectable"] / se
        power = sp.nct.sf(crit, df, nc) + sp.nct.cdf(-crit, df, nc)
        assert power == pytest.approx(0.8, abs=0.05)


def test_a_verdict_needs_a_test_never_a_difference_larger_than_the_spread():
    # two seeds a side, the gain three times the pooled spread: Welch p ~ 0.15, so no verdict
    out = S.difference(_series([70.0, 71.0]), _series([68.0, 69.0], seeds=[5, 6]))
    assert out["diff"] > 2 * np.std([70.0, 71.0], ddof=1) and 0.05 < out["p"] < 0.3
    assert S.verdicts(pd.DataFrame([out])).verdict.iloc[0] == S.NOT_SIGNIFICANT
