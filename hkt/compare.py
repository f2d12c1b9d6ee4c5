"""Compare new results with the suite's frozen reproductions and with the paper.

    hkt compare results/lits/metrics.csv [more.csv ...] --frozen results/frozen/smoke --out results/compare/mine
    hkt freeze results/*/metrics.csv --out results/frozen/smoke        (the DAG's `freeze` rule runs this)

A results file is the long format every evaluation writes (one row per task, method, variant,
dataset, split, metric and seed). For every (task, dataset, split, metric) of the new file and
every new run, each frozen run of the same task is set against it:

- mean ± sample std over seeds of both;
- the difference of means, signed so that a positive `gain` is better (the task declares which
  direction is better for each metric: EPE, Fl-all and errors are lower-is-better);
- a 95% bootstrap interval of the difference (each side resampled with replacement, seeded);
- Welch's t-test, and a paired t-test on the seeds both have (runs that start from the child of
  seed k share that child with every other run of seed k);
- Hedges' g (standardised difference, small-sample corrected);
- the verdict: "within noise" when the difference is no larger than the pooled seed-to-seed
  standard deviation, else better or worse; "needs ≥ 2 seeds" when either side has one.

Against the paper: the run's mean beside the paper's number for the row the config maps it to
(`tasks.<task>.report.tables.*.rows`), the difference, and whether the paper's number lies in
the bootstrap interval of the run's mean. Frozen files are refused when their sha256 does not
match `MANIFEST.json` (they are written by `hkt freeze`, never by hand); a smoke-scale file is
never compared with paper-scale numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from hkt.io import atomic_write_json, atomic_write_text, file_digest
from hkt.report import paper_dataset, read_paper
from hkt.tasks import get_task

REQUIRED = ("task", "method", "variant", "dataset", "split", "metric", "seed", "value", "scale")
KEY = ("task", "method", "variant", "dataset", "split", "metric", "seed")
COMMON_METRICS = {"params_m": "min", "inference_ms": "min", "extra_params_m": "min"}  # written for every task
MANIFEST = "MANIFEST.json"
NEEDS_SEEDS = "needs ≥ 2 seeds"


# ---------------------------------------------------------------------------------------------
# Reading results, strictly
# ---------------------------------------------------------------------------------------------
def _task(name: str):
    """The task of a results block: `hkt.tasks.<name>`, or for a regime block `<task>-<regime>`."""
    for candidate in (name, name.split("-")[0]):
        try:
            return get_task(candidate)
        except ValueError:
            continue
    raise ValueError(f"unknown task {name!r}")


def directions(task_name: str) -> dict[str, str]:
    task = _task(task_name)
    return {**COMMON_METRICS, task.select[0]: task.select[1], **task.metrics}


def read_results(path: str | Path) -> pd.DataFrame:
    """A results CSV, checked: every problem names the file and the CSV line."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={"value": str, "seed": str}, keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"{path}: cannot read it as a results CSV ({err})") from err
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (a results file has {list(REQUIRED)})")
    line = frame.index + 2  # the header is line 1

    def fail(mask, what):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ValueError(f"{path} line {line[i]}: {what(frame.iloc[i])}")

    values = pd.to_numeric(frame["value"], errors="coerce")
    fail(values.isna().to_numpy(), lambda r: f"value {r['value']!r} of metric {r['metric']!r} is not a number")
    seeds = pd.to_numeric(frame["seed"], errors="coerce")
    fail((seeds.isna() | (seeds != seeds.round())).to_numpy(), lambda r: f"seed {r['seed']!r} is not an integer")
    frame = frame.assign(value=values, seed=seeds.astype(int))
    known = {}
    for i, row in enumerate(frame[["task", "metric"]].itertuples(index=False)):
        if row.task not in known:
            try:
                known[row.task] = directions(row.task)
            except ValueError as err:
                raise ValueError(f"{path} line {line[i]}: {err}") from None
        if row.metric not in known[row.task]:
            raise ValueError(
                f"{path} line {line[i]}: unknown metric {row.metric!r} for task {row.task!r} "
                f"(it reports {sorted(known[row.task])})"
            )
    duplicated = frame.duplicated(list(KEY), keep=False).to_numpy()
    if duplicated.any():
        rows = line[duplicated][:2].tolist()
        r = frame.iloc[int(np.flatnonzero(duplicated)[0])]
        raise ValueError(
            f"{path} lines {rows}: duplicate rows for {r['method']}/{r['variant']} seed {r['seed']} "
            f"{r['dataset']} {r['split']} {r['metric']}"
        )
    scales = list(dict.fromkeys(frame["scale"]))
    if len(scales) > 1:
        i = int(np.flatnonzero((frame["scale"] != scales[0]).to_numpy())[0])
        raise ValueError(f"{path} line {line[i]}: scale {scales[1]!r} after {scales[0]!r}: one file holds one scale")
    return frame


# ---------------------------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------------------------
def bootstrap_interval(a, b=None, *, n_boot: int = 10_000, seed: int = 0, level: float = 0.95):
    """Percentile bootstrap interval of mean(a) - mean(b) (or of mean(a) when b is None): each
    sample resampled with replacement `n_boot` times from one seeded generator, a first, then b."""
    rng = np.random.default_rng(seed)
    a = np.asarray(a, float)
    stat = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(axis=1)
    if b is not None:
        b = np.asarray(b, float)
        stat = stat - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(stat, [tail, 1 - tail])
    return float(low), float(high)


def hedges_g(a, b) -> float:
    """(mean(a) - mean(b)) / pooled sample std, times the small-sample correction 1 - 3/(4(na+nb)-9)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = len(a), len(b)
    pooled = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return math.nan
    return (a.mean() - b.mean()) / pooled * (1 - 3 / (4 * (na + nb) - 9))


def pooled_std(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / (len(a) + len(b) - 2))


def compare_runs(new: pd.Series, old: pd.Series, *, better: str, n_boot: int = 10_000, seed: int = 0) -> dict:
    """Statistics of one new run against one frozen run; both are Series of values indexed by seed."""
    sign = 1 if better == "max" else -1
    a, b = new.to_numpy(float), old.to_numpy(float)
    out = {
        "n": len(a),
        "mean": a.mean(),
        "std": a.std(ddof=1) if len(a) > 1 else math.nan,
        "frozen_n": len(b),
        "frozen_mean": b.mean(),
        "frozen_std": b.std(ddof=1) if len(b) > 1 else math.nan,
        "diff": a.mean() - b.mean(),
        "gain": sign * (a.mean() - b.mean()),
    }
    stats_out = dict.fromkeys(
        ("ci_low", "ci_high", "welch_t", "welch_p", "hedges_g", "noise", "paired_t", "paired_p"), math.nan
    )
    shared = new.index.intersection(old.index)
    stats_out["paired_n"] = len(shared)
    if min(len(a), len(b)) >= 2:
        stats_out["ci_low"], stats_out["ci_high"] = bootstrap_interval(a, b, n_boot=n_boot, seed=seed)
        if a.var() + b.var() > 0:  # two constant samples leave t undefined: no test rather than a warning
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # scipy's precision note on near-equal data
                welch = stats.ttest_ind(a, b, equal_var=False)
            stats_out.update(welch_t=float(welch.statistic), welch_p=float(welch.pvalue), hedges_g=hedges_g(a, b))
        stats_out["noise"] = pooled_std(a, b)
        if abs(out["diff"]) <= stats_out["noise"]:
            verdict = "within noise"
        else:
            verdict = "better" if out["gain"] > 0 else "worse"
    else:
        verdict = NEEDS_SEEDS
    if len(shared) >= 2:
        diffs = new[shared].to_numpy(float) - old[shared].to_numpy(float)
        if np.ptp(diffs) > 1e-12 * max(1.0, np.abs(diffs).max()):  # identical differences: t undefined
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                paired = stats.ttest_rel(new[shared].to_numpy(float), old[shared].to_numpy(float))
            stats_out.update(paired_t=float(paired.statistic), paired_p=float(paired.pvalue))
    return {**out, **stats_out, "verdict": verdict}


# ---------------------------------------------------------------------------------------------
# Comparison tables
# ---------------------------------------------------------------------------------------------
def _runs(frame: pd.DataFrame) -> dict[str, pd.Series]:
    run = frame["method"] + "/" + frame["variant"]
    return {name: g.set_index("seed")["value"].sort_index() for name, g in frame.groupby(run, sort=False)}


def compare(
    new: pd.DataFrame,
    frozen: pd.DataFrame,
    *,
    paper: pd.DataFrame | None = None,
    paper_rows: dict | None = None,
    n_boot: int = 10_000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(against the frozen runs, against the paper) for every scored (task, dataset, split,
    metric) of `new`; validation rows (model selection) are not compared.

    paper_rows: {(task, run): (paper table, paper method id, training)} from the config."""
    if set(new["scale"]) and set(frozen["scale"]) and set(new["scale"]) != set(frozen["scale"]):
        raise ValueError(
            f"cannot compare scale {sorted(set(new['scale']))} with frozen scale {sorted(set(frozen['scale']))}"
        )
    lines, paper_lines = [], []
    scored = new[new["split"] != "val"]
    for (task, dataset, split, metric), group in scored.groupby(["task", "dataset", "split", "metric"], sort=False):
        better = directions(task)[metric]
        old = frozen[
            (frozen.task == task) & (frozen.dataset == dataset) & (frozen.split == split) & (frozen.metric == metric)
        ]
        reference = _runs(old)
        for run, values in _runs(group).items():
            where = {"task": task, "dataset": dataset, "split": split, "metric": metric, "better": better, "run": run}
            for frozen_run, old_values in reference.items():
                lines.append(
                    {
                        **where,
                        "frozen_run": frozen_run,
                        **compare_runs(values, old_values, better=better, n_boot=n_boot, seed=seed),
                    }
                )
            mapped = (paper_rows or {}).get((task, run))
            if paper is not None and mapped is not None:
                table, method, training = mapped
                cell = paper[
                    (paper.table == table)
                    & (paper.method == method)
                    & (paper.training == training)
                    & (paper.dataset == paper_dataset(dataset))
                    & (paper.split == split)
                    & (paper.metric == metric)
                ]
                if len(cell) == 1:
                    value = float(cell["value"].iloc[0])
                    low, high = (
                        bootstrap_interval(values.to_numpy(float), n_boot=n_boot, seed=seed)
                        if len(values) >= 2
                        else (math.nan, math.nan)
                    )
                    paper_lines.append(
                        {
                            **where,
                            "paper_table": table,
                            "paper_row": cell["row"].iloc[0],
                            "paper": value,
                            "n": len(values),
                            "mean": values.mean(),
                            "diff": values.mean() - value,
                            "ci_low": low,
                            "ci_high": high,
                            "paper_in_interval": (low <= value <= high) if len(values) >= 2 else None,
                        }
                    )
    against = pd.DataFrame(lines)
    if len(against):  # best first within each comparison, whatever the metric's direction
        against = against.sort_values(
            ["task", "dataset", "split", "metric", "frozen_run", "gain"], ascending=[True] * 5 + [False], kind="stable"
        )
    return against.reset_index(drop=True), pd.DataFrame(paper_lines)


def paper_rows_from_config(cfg: dict) -> dict:
    """{(task, run): (paper table, paper method id, training)} from every task's report tables."""
    rows = {}
    for task, block in cfg["tasks"].items():
        for table in block["report"]["tables"].values():
            for row in table.get("rows", []):
                if row["run"] is None or row["paper"] is None:  # a printed row alone, or a suite run alone
                    continue
                run = "parent/default" if row["run"] == "parent" else row["run"]  # as results name it
                rows.setdefault((task, run), (table["paper"], row["paper"], row.get("training", "-")))
    return rows


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------
def _num(x, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _mean_std(mean, std, n) -> str:
    return f"{mean:.2f} ± {_num(std)} (n={n})" if n >= 2 else f"{mean:.2f} (n=1)"


def _interval(low, high) -> str:
    return NEEDS_SEEDS if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def to_markdown(against: pd.DataFrame, vs_paper: pd.DataFrame, scale: str) -> str:
    out = [f"# New results against the frozen reproduction ({scale} scale)", ""]
    if scale == "smoke":
        out += ["**SMOKE SCALE: the embedded default, not a reproduction of the paper.**", ""]
    header = (
        "| Run | Frozen run | Mean ± std (n) | Frozen mean ± std (n) | Δ | 95% CI of Δ | Welch p | Paired p (n) "
        "| Hedges g | Verdict |"
    )
    for (task, dataset, split, metric, better), g in against.groupby(
        ["task", "dataset", "split", "metric", "better"], sort=False
    ):
        word = "higher" if better == "max" else "lower"
        out += [f"## {task}: {metric} on {dataset} ({split}; {word} is better)", "", header, "|---" * 10 + "|"]
        for r in g.itertuples():
            paired = f"{_num(r.paired_p, 3)} ({r.paired_n})" if r.paired_n else "–"
            out.append(
                f"| {r.run} | {r.frozen_run} | {_mean_std(r.mean, r.std, r.n)} | "
                f"{_mean_std(r.frozen_mean, r.frozen_std, r.frozen_n)} | {r.diff:+.2f} | {_interval(r.ci_low, r.ci_high)} "
                f"| {_num(r.welch_p, 3)} | {paired} | {_num(r.hedges_g)} | {r.verdict} |"
            )
        out.append("")
    if len(vs_paper):
        out += [
            "## Against the paper",
            "",
            "| Task | Metric | Dataset | Run | Paper row | Paper | Mean (n) | Δ | 95% CI of the mean | Paper inside |",
            "|---" * 10 + "|",
        ]
        for r in vs_paper.itertuples():
            inside = "–" if r.paper_in_interval is None else ("yes" if r.paper_in_interval else "no")
            ci = NEEDS_SEEDS if math.isnan(r.ci_low) else f"[{r.ci_low:.2f}, {r.ci_high:.2f}]"
            out.append(
                f"| {r.task} | {r.metric} | {r.dataset} | {r.run} | {r.paper_row} ({r.paper_table}) | {r.paper:g} "
                f"| {r.mean:.2f} (n={r.n}) | {r.diff:+.2f} | {ci} | {inside} |"
            )
        out.append("")
    out.append(
        "Δ = new − frozen (or − paper); verdict 'within noise' when |Δ| is at most the pooled seed-to-seed "
        "standard deviation; bootstrap: 10,000 resamples, seed 0."
    )
    return "\n".join(out) + "\n"


def terminal(against: pd.DataFrame) -> str:
    if not len(against):
        return "nothing to compare"
    view = against.assign(
        ci=[_interval(lo, hi) for lo, hi in zip(against.ci_low, against.ci_high, strict=True)],
        p=[_num(p, 3) for p in against.welch_p],
    )[["task", "metric", "dataset", "run", "frozen_run", "mean", "frozen_mean", "diff", "ci", "p", "verdict"]]
    return view.to_string(index=False, float_format=lambda x: f"{x:.2f}")


# ---------------------------------------------------------------------------------------------
# Frozen reproductions
# ---------------------------------------------------------------------------------------------
def freeze(results: list[str | Path], out_dir: str | Path, *, allow_dirty: bool = False) -> dict:
    """Write each task's results as `<task>_metrics.csv` under `out_dir` and `MANIFEST.json` (each
    file's sha256, rows, runs, seeds and commits) last. Refuses results of uncommitted code."""
    out_dir = Path(out_dir)
    files = {}
    for path in results:
        frame = read_results(path)
        commits = sorted(set(frame["commit"])) if "commit" in frame else ["unknown"]
        if not allow_dirty and any(c == "unknown" or c.endswith("-dirty") for c in commits):
            raise ValueError(
                f"{path}: produced by uncommitted code (commits {commits}); freeze results of a clean commit"
            )
        for task, part in frame.groupby("task", sort=False):
            name = f"{task}_metrics.csv"
            atomic_write_text(out_dir / name, part.to_csv(index=False))
            files[name] = {
                "sha256": file_digest(out_dir / name),
                "rows": len(part),
                "scale": part["scale"].iloc[0],
                "runs": sorted(set(part["method"] + "/" + part["variant"])),
                "seeds": sorted(int(s) for s in set(part["seed"])),
                "commits": sorted(set(part["commit"])) if "commit" in part else [],
            }
    manifest = {"files": files, "columns": list(REQUIRED), "written_by": "hkt freeze"}
    atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest


def load_frozen(frozen_dir: str | Path) -> pd.DataFrame:
    """Every frozen results file of a folder, after checking it against its manifest."""
    frozen_dir = Path(frozen_dir)
    manifest_path = frozen_dir / MANIFEST
    if not manifest_path.exists():
        raise ValueError(f"{manifest_path}: missing; frozen results are written by `hkt freeze` (snakemake freeze)")
    manifest = json.loads(manifest_path.read_text())
    frames = []
    for name, entry in manifest["files"].items():
        path = frozen_dir / name
        digest = file_digest(path)
        if digest != entry["sha256"]:
            raise ValueError(
                f"{path}: sha256 {digest[:12]}... does not match {manifest_path} ({entry['sha256'][:12]}...): "
                "a frozen file was changed by hand; freeze again with `snakemake freeze`"
            )
        frames.append(read_results(path))
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------
def main(argv=None) -> None:
    from hkt import config as C

    parser = argparse.ArgumentParser(prog="hkt", description="HKT suite: compare results and freeze reproductions")
    sub = parser.add_subparsers(dest="command", required=True)
    cmp_ = sub.add_parser("compare", help="new results against the frozen reproduction and the paper")
    cmp_.add_argument("results", nargs="+", help="results CSVs (long format, as the DAG writes them)")
    cmp_.add_argument("--frozen", default="results/frozen/smoke", help="folder of frozen results with MANIFEST.json")
    cmp_.add_argument("--config", default="config/config.yaml", help="maps runs to the paper's rows")
    cmp_.add_argument(
        "--paper",
        nargs="+",
        default=list(C.PAPER_FILES),
        help="printed numbers: the paper's transcription and the literature's",
    )
    cmp_.add_argument("--out", help="write <out>.csv, <out>_paper.csv and <out>.md")
    cmp_.add_argument("--bootstrap", type=int, default=10_000)
    frz = sub.add_parser("freeze", help="freeze results CSVs with a checksum manifest")
    frz.add_argument("results", nargs="+")
    frz.add_argument("--out", required=True, help="folder, e.g. results/frozen/smoke")
    frz.add_argument("--allow-dirty", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "freeze":
        manifest = freeze(args.results, args.out, allow_dirty=args.allow_dirty)
        print(f"froze {', '.join(manifest['files'])} into {args.out}")
        return
    new = pd.concat([read_results(p) for p in args.results], ignore_index=True)
    rows = paper_rows_from_config(C.load(args.config)) if Path(args.config).exists() else {}
    present = [p for p in args.paper if Path(p).exists()]
    paper = read_paper(present) if present else None
    against, vs_paper = compare(new, load_frozen(args.frozen), paper=paper, paper_rows=rows, n_boot=args.bootstrap)
    print(terminal(against))
    if args.out:
        atomic_write_text(f"{args.out}.csv", against.to_csv(index=False))
        atomic_write_text(f"{args.out}_paper.csv", vs_paper.to_csv(index=False))
        atomic_write_text(f"{args.out}.md", to_markdown(against, vs_paper, new["scale"].iloc[0]))


if __name__ == "__main__":
    main()
