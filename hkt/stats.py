"""Every p-value, interval and verdict the suite prints: one run against another over seeds.

Used by the DAG's comparison tables (hkt.report) and by `hkt compare`. Two samples of a metric,
indexed by seed (a run fine-tuned from the child of seed k shares that child with every other run
of seed k, so seeds pair):

- the test: the paired t-test on the seeds both runs have when they share at least two and their
  differences vary, else Welch's t-test (scipy's `ttest_rel` / `ttest_ind(equal_var=False)`);
  none when neither is defined (fewer than two seeds a side, or no spread at all);
- the 95% t-interval of the difference that belongs to that test (paired: of the mean seed-matched
  difference; Welch: with Welch-Satterthwaite degrees of freedom);
- the detectable difference: the smallest |difference| that test finds at `level` (two-sided,
  before any correction) with 80% power, given the seeds' observed spread;
- Hedges' g (the difference in pooled standard deviations, small-sample corrected).

A family of comparisons gets Holm's step-down correction (`holm`): the verdict says better or worse
only when the corrected p is below `level`; a comparison with no test says why ("too few seeds",
"no spread"), never a direction. Intervals over two seeds are wide, and say so by their width.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats

LEVEL = 0.05  # two-sided, family-wise after Holm's correction
POWER = 0.8  # of the detectable difference
CORRECTION = "Holm"
TOO_FEW = "too few seeds"
NO_SPREAD = "no spread"
NOT_SIGNIFICANT = "no significant difference"
# differences whose spread is below this fraction of their size are identical (accuracies are
# quantised to 1/N): the paired t is then undefined, not infinite
_IDENTICAL = 1e-9


def samples(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """{"method/variant": its values indexed by seed} of long-format results rows."""
    run = frame["method"] + "/" + frame["variant"]
    return {name: g.set_index("seed")["value"].sort_index() for name, g in frame.groupby(run, sort=False)}


def _quiet(test, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's precision note on near-equal data
        return test(*args, **kwargs)


def welch(a, b) -> dict:
    """Welch's t-test of mean(a) - mean(b): t, p, degrees of freedom and standard error (NaN where undefined)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    out = dict.fromkeys(("welch_t", "welch_p", "welch_df", "welch_se"), math.nan)
    if min(len(a), len(b)) < 2:
        return out
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:  # two constant samples: t undefined
        return out
    result = _quiet(stats.ttest_ind, a, b, equal_var=False)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return {
        "welch_t": float(result.statistic),
        "welch_p": float(result.pvalue),
        "welch_df": df,
        "welch_se": math.sqrt(va + vb),
    }


def paired(a: pd.Series, b: pd.Series) -> dict:
    """The paired t-test on the seeds (index) both samples have."""
    seeds = a.index.intersection(b.index)
    diffs = a[seeds].to_numpy(float) - b[seeds].to_numpy(float)
    out = {"paired_n": len(seeds), "paired_diff": float(diffs.mean()) if len(diffs) else math.nan}
    out.update(dict.fromkeys(("paired_t", "paired_p", "paired_se"), math.nan))
    if len(diffs) >= 2 and np.ptp(diffs) > _IDENTICAL * max(1.0, np.abs(diffs).max()):
        result = _quiet(stats.ttest_rel, a[seeds].to_numpy(float), b[seeds].to_numpy(float))
        out.update(
            paired_t=float(result.statistic),
            paired_p=float(result.pvalue),
            paired_se=float(diffs.std(ddof=1) / math.sqrt(len(diffs))),
        )
    return out


def hedges_g(a, b) -> float:
    """(mean(a) - mean(b)) / pooled sample std, times the small-sample correction 1 - 3/(4(na+nb)-9)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    if min(na, nb) < 2:
        return math.nan
    pooled = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return math.nan
    return (a.mean() - b.mean()) / pooled * (1 - 3 / (4 * (na + nb) - 9))


def mean_interval(values, level: float = 0.95) -> tuple[float, float]:
    """The t-interval of a sample's mean (NaN with fewer than two values)."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return math.nan, math.nan
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def difference(new: pd.Series, old: pd.Series, *, better: str = "max", level: float = LEVEL) -> dict:
    """One sample against another (Series of values indexed by seed): means, spreads, the test and
    its interval, the detectable difference and Hedges' g; `gain` is signed so that positive is better."""
    a, b = new.to_numpy(float), old.to_numpy(float)
    sign = 1 if better == "max" else -1
    out = {
        "n": len(a),
        "mean": a.mean() if len(a) else math.nan,
        "std": a.std(ddof=1) if len(a) > 1 else math.nan,
        "ref_n": len(b),
        "ref_mean": b.mean() if len(b) else math.nan,
        "ref_std": b.std(ddof=1) if len(b) > 1 else math.nan,
    }
    out["diff"] = out["mean"] - out["ref_mean"]
    out["gain"] = sign * out["diff"]
    out.update(welch(a, b))
    out.update(paired(new, old))
    out["hedges_g"] = hedges_g(a, b)
    if not math.isnan(out["paired_p"]):
        test, diff, se, df, p = "paired", out["paired_diff"], out["paired_se"], out["paired_n"] - 1, out["paired_p"]
    elif not math.isnan(out["welch_p"]):
        test, diff, se, df, p = "welch", out["diff"], out["welch_se"], out["welch_df"], out["welch_p"]
    else:
        test, diff, se, df, p = "none", out["diff"], math.nan, math.nan, math.nan
    out["test"], out["p"] = test, p
    if test == "none":
        out["ci_low"] = out["ci_high"] = out["detectable"] = math.nan
        out["no_test"] = TOO_FEW if min(len(a), len(b)) < 2 and out["paired_n"] < 2 else NO_SPREAD
    else:
        half = stats.t.ppf(1 - level / 2, df) * se
        out["ci_low"], out["ci_high"] = diff - half, diff + half
        out["detectable"] = (stats.t.ppf(1 - level / 2, df) + stats.t.ppf(POWER, df)) * se
        out["no_test"] = ""
    return out


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error); NaN entries are not tests and stay NaN."""
    p = np.asarray(pvalues, float)
    out = np.full_like(p, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    m = len(tested)
    if m == 0:
        return out
    order = tested[np.argsort(p[tested], kind="stable")]
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def verdicts(frame: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """`frame` (rows of `difference`) with `p_holm` (Holm over every tested row of the frame: the
    family is what one table or one command prints) and `verdict`."""
    frame = frame.copy()
    if not len(frame):
        return frame.assign(p_holm=[], verdict=[])
    frame["p_holm"] = holm(frame["p"])

    def verdict(row) -> str:
        if row["test"] == "none":
            return row["no_test"]
        if row["p_holm"] < level:
            return "better" if row["gain"] > 0 else "worse"
        return NOT_SIGNIFICANT

    frame["verdict"] = frame.apply(verdict, axis=1)
    return frame


def describe(level: float = LEVEL) -> str:
    """The sentence every comparison prints under its numbers."""
    return (
        f"Test: paired t on the seeds both runs share (at least two, with varying differences), else Welch's t; "
        f"p_holm: {CORRECTION}-corrected over the {{n}} tests printed; better/worse only where p_holm < {level:g}; "
        f"CI: the test's 95% t-interval of Δ; detectable: the smallest |Δ| that test finds at {level:g} "
        f"(uncorrected) with {POWER:.0%} power, given the seeds' spread."
    )
