"""Tables beside the paper: seed summaries, the paper-vs-suite table, and method comparisons.

Inputs are the long-format results (one row per task, method, variant, split, metric, seed)
and the frozen transcription of the paper (results/paper/results.csv). Every table carries
the scale it was produced at; a smoke-scale table says so in its title.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

SCALE_NOTE = {
    "smoke": "SMOKE SCALE (embedded default: generated data, reduced models and schedules). "
             "Not a reproduction of the paper; the paper's numbers are shown only for layout.",
    "paper": "Paper scale.",
}


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample standard deviation and count over seeds for every run, split and metric."""
    keys = ["task", "method", "variant", "dataset", "split", "metric", "scale"]
    grouped = results.groupby(keys, sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


def paper_table(results: pd.DataFrame, paper: pd.DataFrame, *, table: str, rows: dict[str, str],
                labels: dict[str, str], metrics: dict[str, str], extra_runs: list[str]) -> pd.DataFrame:
    """Tidy table: one line per (row, metric) with paper value, suite mean/std/n and difference.

    rows: paper method id -> suite run ("method/variant", or "parent" for the parent)
    metrics: metric id -> the split it is read from ("test" or "-")
    extra_runs: suite runs without a paper row (baselines and ablations), shown after them.
    """
    summary = summarise(results)
    scale = ",".join(sorted(results["scale"].unique()))
    paper = paper[paper["table"] == table]
    lines = []
    order = [(pid, run) for pid, run in rows.items()] + [(None, run) for run in extra_runs]
    for paper_id, run in order:
        method, variant = ("parent", "default") if run == "parent" else run.split("/")
        for metric, split in metrics.items():
            mine = summary[(summary.method == method) & (summary.variant == variant) &
                           (summary.metric == metric) & (summary.split == split)]
            theirs = paper[(paper.method == paper_id) & (paper.metric == metric)] if paper_id else paper.iloc[0:0]
            p = float(theirs["value"].iloc[0]) if len(theirs) else math.nan
            m = float(mine["mean"].iloc[0]) if len(mine) else math.nan
            lines.append({"row": labels.get(paper_id or run, run), "run": run, "metric": metric,
                          "paper": p, "paper_approx": bool(len(theirs) and _truthy(theirs["approx"].iloc[0])),
                          "suite_mean": m, "suite_std": float(mine["std"].iloc[0]) if len(mine) else math.nan,
                          "n_seeds": int(mine["n"].iloc[0]) if len(mine) else 0,
                          "diff": m - p, "scale": scale})
    return pd.DataFrame(lines)


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def compare(results: pd.DataFrame, *, metric: str, split: str, controls: list[str]) -> pd.DataFrame:
    """Every run against each control run, over seeds: mean difference, Welch's t-test, and a
    paired t-test on the seeds both share.

    Runs that start from the trained child start from the child *of the same seed*, so the
    seed-matched differences remove the child-to-child spread that dominates Welch's test.
    """
    sub = results[(results.metric == metric) & (results.split == split)].copy()
    sub["run"] = sub["method"] + "/" + sub["variant"]
    lines = []
    for control in controls:
        base = sub[sub.run == control].set_index("seed")["value"]
        for run, group in sub.groupby("run", sort=False):
            if run == control or run == "parent/default":
                continue
            vals = group.set_index("seed")["value"]
            welch = stats.ttest_ind(vals, base, equal_var=False) if min(len(vals), len(base)) >= 2 else None
            seeds = vals.index.intersection(base.index)
            diffs = (vals[seeds] - base[seeds]).to_numpy()
            # Identical differences (common with accuracies quantised to 1/N) leave t undefined:
            # report no test rather than scipy's p = 0.
            spread = len(diffs) >= 2 and np.ptp(diffs) > 1e-9 * max(1.0, np.abs(diffs).max())
            paired = stats.ttest_rel(vals[seeds], base[seeds]) if spread else None
            lines.append({"run": run, "control": control, "metric": metric, "split": split,
                          "mean": vals.mean(), "control_mean": base.mean(), "diff": vals.mean() - base.mean(),
                          "n": len(vals), "n_control": len(base),
                          "welch_t": float(welch.statistic) if welch else math.nan,
                          "p_value": float(welch.pvalue) if welch else math.nan,
                          "n_paired": len(seeds),
                          "paired_diff": float(diffs.mean()) if len(diffs) else math.nan,
                          "paired_t": float(paired.statistic) if paired else math.nan,
                          "paired_p": float(paired.pvalue) if paired else math.nan})
    return pd.DataFrame(lines)


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def fmt(x: float, digits: int) -> str:
    """A number with `digits` decimals, or an en dash for a missing one."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def wide(table: pd.DataFrame, headers: dict[str, tuple[str, int]]) -> tuple[list[str], list[list[str]]]:
    """Rows of strings: Model | Run | per metric: paper, suite mean ± std (n), difference."""
    cols = ["Model", "Run"]
    for metric, (title, _) in headers.items():
        cols += [f"{title} paper", f"{title} suite", f"{title} Δ"]
    body = []
    for (row, run), group in table.groupby(["row", "run"], sort=False):
        cells = [row, run]
        for metric, (_, digits) in headers.items():
            g = group[group.metric == metric].iloc[0]
            paper = ("~" if g.paper_approx else "") + fmt(g.paper, digits)
            suite = "–" if g.n_seeds == 0 else f"{fmt(g.suite_mean, digits)} ± {fmt(g.suite_std, digits)} (n={g.n_seeds})"
            cells += [paper, suite, fmt(g["diff"], digits)]
        body.append(cells)
    return cols, body


def to_markdown(title: str, scale: str, cols: list[str], body: list[list[str]], notes: list[str] = ()) -> str:
    lines = [f"# {title}", "", f"**{SCALE_NOTE.get(scale, scale)}**", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def to_latex(caption: str, scale: str, cols: list[str], body: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return (s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%")
                 .replace("&", r"\&").replace("#", r"\#").replace("±", r"$\pm$").replace("Δ", r"$\Delta$")
                 .replace("~", r"$\sim$").replace("–", "--"))

    spec = "ll" + "r" * (len(cols) - 2)
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(esc(c) for c in cols) + r" \\", r"\midrule"]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in body]
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{esc(caption)} {esc(SCALE_NOTE.get(scale, scale))}}}",
              r"\end{table}"]
    return "\n".join(lines) + "\n"
