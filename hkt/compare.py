"""Compare new runs with a frozen results CSV (the suite's published numbers).

    python -m hkt.compare --frozen results/frozen/smoke/cifar10_metrics.csv \
        --new results/cifar10/metrics.csv --out results/tables/cifar10/vs_frozen.md

Only results of the same task, dataset and scale are compared (a smoke-scale run is never set
against paper-scale numbers). For every run of the new file, the frozen runs named by
--reference (default: the child alone and the configuration's HKT) give the baseline, and
Welch's t-test over seeds says how far apart they are.
"""

from __future__ import annotations

import argparse
import math

import pandas as pd
from scipy import stats

from hkt.io import atomic_write_text


def compare(frozen: pd.DataFrame, new: pd.DataFrame, *, metric: str, split: str, references: list[str]) -> pd.DataFrame:
    # like with like: the compared rows only (model properties such as params_m carry dataset '-')
    frozen, new = (f[(f.metric == metric) & (f.split == split)] for f in (frozen, new))
    for column in ("task", "dataset", "scale"):
        a, b = set(frozen[column]), set(new[column])
        if a != b:
            raise ValueError(f"cannot compare: the frozen results have {column} {sorted(a)}, the new ones {sorted(b)}")

    def runs(frame):
        return {
            run: g["value"].to_numpy() for run, g in frame.groupby(frame["method"] + "/" + frame["variant"], sort=False)
        }

    old, fresh = runs(frozen), runs(new)
    missing = [r for r in references if r not in old]
    if missing:
        raise ValueError(f"the frozen results hold no run {missing}; they have {sorted(old)}")
    lines = []
    for run, values in fresh.items():
        for ref in references:
            base = old[ref]
            test = stats.ttest_ind(values, base, equal_var=False) if min(len(values), len(base)) >= 2 else None
            lines.append(
                {
                    "run": run,
                    "reference": f"frozen {ref}",
                    "metric": metric,
                    "split": split,
                    "mean": values.mean(),
                    "std": values.std(ddof=1) if len(values) > 1 else math.nan,
                    "n": len(values),
                    "reference_mean": base.mean(),
                    "reference_std": base.std(ddof=1) if len(base) > 1 else math.nan,
                    "n_reference": len(base),
                    "diff": values.mean() - base.mean(),
                    "p_value": float(test.pvalue) if test else math.nan,
                }
            )
    return pd.DataFrame(lines)


def to_markdown(table: pd.DataFrame, scale: str) -> str:
    lines = [
        f"# New runs against frozen results ({scale} scale)",
        "",
        "| Run | Reference | Mean ± std (n) | Reference mean ± std (n) | Δ | Welch p |",
        "|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.run} | {r.reference} | {r.mean:.2f} ± {r.std:.2f} ({r.n}) | "
            f"{r.reference_mean:.2f} ± {r.reference_std:.2f} ({r.n_reference}) | {r.diff:+.2f} | {r.p_value:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frozen", required=True)
    parser.add_argument("--new", required=True)
    parser.add_argument("--out", required=True, help="Markdown report; a CSV is written beside it")
    parser.add_argument("--metric", default="top1_acc")
    parser.add_argument("--split", default="test")
    parser.add_argument("--reference", action="append", help="frozen run to compare with (repeatable)")
    args = parser.parse_args(argv)
    frozen, new = pd.read_csv(args.frozen), pd.read_csv(args.new)
    table = compare(
        frozen, new, metric=args.metric, split=args.split, references=args.reference or ["alone/default", "hkt/default"]
    )
    atomic_write_text(args.out, to_markdown(table, new["scale"].iloc[0]))
    atomic_write_text(args.out.rsplit(".", 1)[0] + ".csv", table.to_csv(index=False))
    print(to_markdown(table, new["scale"].iloc[0]))


if __name__ == "__main__":
    main()
