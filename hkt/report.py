"""Tables beside the paper: seed summaries, the paper-vs-suite table, and method comparisons.

Inputs are the long-format results (one row per task, method, variant, split, metric, seed)
and the frozen transcription of the paper (results/paper/results.csv). Every table carries
the scale it was produced at; a smoke-scale table says so in its title.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from hkt import stats
from hkt.conventions import PARENT_RUN, real_dataset, run_name
from hkt.io import atomic_path, atomic_write_text

SCALE_NOTE = {
    "smoke": "SMOKE SCALE (embedded default: generated data, reduced models and schedules). "
    "Not a reproduction of the paper; the paper's numbers are shown only for layout.",
    "paper": "Paper scale.",
    "rehearsal": "REHEARSAL (make rehearse): the paper's configuration at its real shapes for a few steps, on "
    "generated stand-in data with random-weight stand-ins for published checkpoints. These are no results.",
}


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample standard deviation and count over seeds for every run, split and metric."""
    keys = ["task", "method", "variant", "dataset", "split", "metric", "scale"]
    grouped = results.groupby(keys, sort=False)["value"]
    out = grouped.agg(mean="mean", std="std", n="count").reset_index()
    out["std"] = out["std"].fillna(0.0)
    return out


@dataclass(frozen=True)
class Column:
    """One column of a paper table: a metric on a dataset and split, as the paper names them."""

    metric: str
    title: str
    digits: int
    dataset: str = "-"  # the paper's dataset name
    split: str = "test"  # the paper's split
    suite_split: str | None = None  # the suite's split when it differs ('-' for model properties)
    training: str | None = None  # the paper's training regime for this column, if not the row's ('-')
    paper_metric: str | None = None  # the paper's metric set beside this one, when it has another name


def paper_dataset(dataset: str) -> str:
    """The paper's name for a suite dataset: generated stand-ins stand for the real dataset."""
    return real_dataset(dataset)


def paper_table(
    results: pd.DataFrame,
    paper: pd.DataFrame,
    *,
    table: str,
    rows: list[dict],
    columns: list[Column],
    extra_runs: list[str],
) -> pd.DataFrame:
    """Tidy table: one line per (row, column) with paper value, suite mean/std/n and difference.

    rows: {"paper": paper method id, "training": regime ('-' if none), "run": suite run
          ("method/variant", "parent", or None for a literature row without a reproduction),
          "label": optional}; paper cells are matched on (method, training, dataset, split,
          metric) and the row label is the paper's own. A row with paper None places a suite run
          that the paper lacks (e.g. the matched-budget control beside the child) under `label`.
    extra_runs: suite runs without a paper row (baselines and ablations), shown after them.
    """
    summary = summarise(results)
    summary["paper_dataset"] = summary["dataset"].map(paper_dataset)
    scale = ",".join(sorted(results["scale"].unique()))
    paper = paper[paper["table"] == table]
    lines = []
    order = [(r.get("paper"), r.get("training", "-"), r["run"], r.get("label")) for r in rows]
    order += [(None, None, run, None) for run in extra_runs]
    for paper_id, training, run, label in order:
        method, variant = ("parent", "default") if run == "parent" else (run or "-/-").split("/")
        mine_run = summary[(summary.method == method) & (summary.variant == variant)]
        label = label or run or paper_id
        if paper_id is not None:
            printed = paper[(paper.method == paper_id) & (paper.training == training)]
            if printed.empty:
                raise ValueError(f"{table}: the paper has no row for method {paper_id!r}, training {training!r}")
            label = printed["row"].iloc[0] + (f" [{training}]" if training != "-" else "")
        for col in columns:
            split = col.suite_split or col.split
            mine = mine_run[
                (mine_run.metric == col.metric)
                & (mine_run.split == split)
                & ((mine_run.paper_dataset == col.dataset) | (mine_run.dataset == "-"))
            ]
            theirs = (
                paper[
                    (paper.method == paper_id)
                    & (paper.training == (col.training or training))
                    & (paper.dataset == col.dataset)
                    & (paper.split == col.split)
                    & (paper.metric == (col.paper_metric or col.metric))
                ]
                if paper_id is not None
                else paper.iloc[0:0]
            )
            if len(theirs) > 1 or len(mine) > 1:
                raise ValueError(f"{table}: several values for {label} / {col.title}")
            p = float(theirs["value"].iloc[0]) if len(theirs) else math.nan
            m = float(mine["mean"].iloc[0]) if len(mine) else math.nan
            lines.append(
                {
                    "row": label,
                    "run": run,
                    "column": col.title,
                    "metric": col.metric,
                    "dataset": col.dataset,
                    "split": col.split,
                    "paper": p,
                    "paper_approx": bool(len(theirs) and _truthy(theirs["approx"].iloc[0])),
                    "suite_mean": m,
                    "suite_std": float(mine["std"].iloc[0]) if len(mine) else math.nan,
                    "n_seeds": int(mine["n"].iloc[0]) if len(mine) else 0,
                    "diff": m - p,
                    "scale": scale,
                }
            )
    return pd.DataFrame(lines)


def write_paper_table(
    inp, outs: dict, *, paper: str, rows: list[dict], columns: list[Column], title: str, caption: str, notes: list[str]
) -> pd.DataFrame:
    """The paper's table `paper` beside the suite's runs, as CSV, Markdown and LaTeX; the suite's
    runs without a paper row follow the rows (`rows` as in `paper_table`)."""
    spec = inp.spec
    extra = [r for r in spec["runs"] if r not in {row["run"] for row in rows}]
    table = paper_table(inp.results, inp.paper, table=paper, rows=rows, columns=columns, extra_runs=extra)
    with atomic_path(outs["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    cols, body = wide(table, columns)
    seeds = ", ".join(str(s) for s in spec["seeds"])
    notes = [
        f"Suite: mean ± sample std over seeds {seeds}; Δ = suite − paper.",
        *notes,
        "Deviations from the paper: results/discrepancies.csv.",
    ]
    atomic_write_text(outs["md"], to_markdown(title, spec["scale"], cols, body, notes))
    atomic_write_text(outs["tex"], to_latex(caption, spec["scale"], cols, body))
    return table


def _truthy(value) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes")


def compare(
    results: pd.DataFrame,
    *,
    metric: str,
    split: str,
    controls: list[str],
    dataset: str | None = None,
    better: str = "max",
) -> pd.DataFrame:
    """Every run against each control run over seeds (hkt.stats: the seed-paired t-test where the
    runs share seeds, else Welch's; Holm's correction over the whole table; verdicts).

    Runs that start from the trained child start from the child *of the same seed*, so the
    seed-matched differences remove the child-to-child spread that dominates Welch's test.
    """
    sub = results[(results.metric == metric) & (results.split == split)]
    if dataset is not None:  # the paper's name: a generated stand-in counts as its dataset
        sub = sub[sub["dataset"].map(paper_dataset) == dataset]
    runs = stats.samples(sub)
    lines = []
    for control in controls:
        for run, values in runs.items():
            if run == control or run == run_name(*PARENT_RUN) or control not in runs:
                continue
            lines.append(
                {"run": run, "control": control, "metric": metric, "split": split,
                 **stats.difference(values, runs[control], better=better)}
            )  # fmt: skip
    return stats.verdicts(pd.DataFrame(lines))


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
def scale_suffix(scale: str) -> str:
    """What a figure title says about its scale: smoke numbers are never a reproduction."""
    return f" — {scale.upper()} SCALE" + (": not a reproduction" if scale == "smoke" else "")


def save_figure(fig, path, *, dpi: int = 130) -> None:
    """Write a matplotlib figure atomically (format from the suffix) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=str(path).rsplit(".", 1)[-1])
    plt.close(fig)


def fmt(x: float, digits: int) -> str:
    """A number with `digits` decimals, or an en dash for a missing one."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def wide(table: pd.DataFrame, columns: list[Column]) -> tuple[list[str], list[list[str]]]:
    """Rows of strings: Model | Run | per column: paper, suite mean ± std (n), difference."""
    cols = ["Model", "Run"]
    for col in columns:
        cols += [f"{col.title} paper", f"{col.title} suite", f"{col.title} Δ"]
    body = []
    for (row, run), group in table.groupby(["row", "run"], sort=False, dropna=False):
        cells = [row, run if isinstance(run, str) else "–"]  # literature rows have no suite run
        for col in columns:
            g = group[group.column == col.title].iloc[0]
            paper = ("~" if g.paper_approx else "") + fmt(g.paper, col.digits)
            suite = (
                "–"
                if g.n_seeds == 0
                else f"{fmt(g.suite_mean, col.digits)} ± {fmt(g.suite_std, col.digits)} (n={g.n_seeds})"
            )
            cells += [paper, suite, fmt(g["diff"], col.digits)]
        body.append(cells)
    return cols, body


def to_markdown(title: str, scale: str, cols: list[str], body: list[list[str]], notes: list[str] = ()) -> str:
    lines = [
        f"# {title}",
        "",
        f"**{SCALE_NOTE.get(scale, scale)}**",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    lines += [""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def to_latex(caption: str, scale: str, cols: list[str], body: list[list[str]]) -> str:
    def esc(s: str) -> str:
        return (
            s.replace("\\", r"\textbackslash{}")
            .replace("_", r"\_")
            .replace("%", r"\%")
            .replace("&", r"\&")
            .replace("#", r"\#")
            .replace("±", r"$\pm$")
            .replace("Δ", r"$\Delta$")
            .replace("~", r"$\sim$")
            .replace("–", "--")
        )

    spec = "ll" + "r" * (len(cols) - 2)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(esc(c) for c in cols) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(esc(c) for c in r) + r" \\" for r in body]
    lines += [
        r"\bottomrule",
        r"\end{tabular}",
        rf"\caption{{{esc(caption)} {esc(SCALE_NOTE.get(scale, scale))}}}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The comparisons table every task can list (tasks.<task>.report.tables.comparisons)
# ---------------------------------------------------------------------------------------------
def metric_direction(spec: dict, metric: str) -> str:
    """ "max" or "min": whether higher is better for `metric` of the spec's task (its resolved
    `directions`, Task.directions)."""
    return spec["directions"].get(metric, "max")


def row_roles(table: dict) -> dict:
    """The paper's method id -> the suite's run, of a table block's rows that name both: a figure
    shows the runs a table reports under the roles the paper gives them."""
    return {row["paper"]: row["run"] for row in table.get("rows", []) if row.get("run") and row["paper"]}


def comparisons_table(inp, outs: dict) -> pd.DataFrame:
    """Every run against each control named in the config, with hkt.stats' tests and verdicts."""
    options = inp.spec["report"]["tables"]["comparisons"]
    controls = [r for r in options["controls"] if r in inp.spec["runs"]]
    table = compare(
        inp.results,
        metric=options["metric"],
        split=options.get("split", "test"),
        controls=controls,
        dataset=options.get("dataset"),
        better=metric_direction(inp.spec, options["metric"]),
    )
    with atomic_path(outs["csv"]) as tmp:
        table.to_csv(tmp, index=False)
    on = f"{options['dataset']}, " if options.get("dataset") else ""
    title = f"{inp.spec['task']}: comparisons ({on}{options['metric']}, {options.get('split', 'test')} split)"
    cols = [
        "Run",
        "Control",
        "Mean",
        "Control mean",
        "Δ",
        "n",
        "test",
        "95% CI of Δ",
        "p",
        "p (Holm)",
        "detectable",
        "verdict",
    ]
    body = [
        [
            r.run,
            r.control,
            fmt(r.mean, 2),
            fmt(r.ref_mean, 2),
            f"{r.diff:+.2f}",
            f"{r.n}/{r.ref_n}" + (f" ({r.paired_n} paired)" if r.test == "paired" else ""),
            r.test,
            "–" if math.isnan(r.ci_low) else f"[{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
            fmt(r.p, 3),
            fmt(r.p_holm, 3),
            fmt(r.detectable, 2),
            r.verdict,
        ]
        for r in table.itertuples()
    ]
    notes = [stats.describe().format(n=int(table["p"].notna().sum()) if len(table) else 0)]
    scale = inp.spec["scale"]
    if "md" in outs:
        atomic_write_text(outs["md"], to_markdown(title, scale, cols, body, notes))
    if "tex" in outs:
        atomic_write_text(outs["tex"], to_latex(title + ".", scale, cols, body))
    return table


def read_paper(paths) -> pd.DataFrame:
    """The printed numbers tables are set beside: the HKT paper's transcription and the
    literature's (other papers' numbers, e.g. the CIFAR-100 rows), in one frame."""
    paths = [paths] if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__") else list(paths)
    return pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)


def figure_device():
    """Where a figure runs its models: the job's GPU if it was given one (tasks.<task>.resources.figure)."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
