"""Compare new results with the suite's baselines, the frozen reproductions and the paper.

    hkt compare results/cifar10/metrics.csv                  (your runs against the baselines: one screen)
    hkt compare results/cifar10/metrics.csv --all            (every run against every frozen run, every metric)
    hkt freeze results/*/metrics.csv --out results/frozen/smoke        (the DAG's `freeze` rule runs this)

A results file is the long format every evaluation writes (one row per task, method, variant,
dataset, split, metric and seed, with the device it ran on). By default the question is "how do
my runs compare with the suite's baselines?":

- your runs: those of the file that the frozen set does not hold (or those named with --runs);
- the references: the task's controls (the child alone and the fine-tuning control, as the
  config's comparisons table names them) and the best `--best` other baselines, taken from your
  own file where it holds them (the DAG reran them beside your runs: same machine, same commit),
  else from the frozen set;
- the metrics: the task's headline metrics (`Task.headline`: accuracy, EPE and Fl-all, Dice), on
  the scored splits; ranked in the metric's own direction, with the paper's number where the
  config maps a run to a row of the paper's tables;
- each of your runs against each reference by hkt.stats: the paired t-test on shared seeds, else
  Welch's, its 95% t-interval, the smallest difference the seeds could detect, and a verdict that
  says better or worse only when Holm's correction over every test printed leaves p < 0.05.

Smoke-scale results are not bit-reproducible across CPU types: a reference from the frozen set
made on another kind of device is refused at smoke scale (it differs by more than any method's
effect) unless --across-devices is given, and then every line says so. Frozen files are refused
when their sha256 does not match `MANIFEST.json` (they are written by `hkt freeze`, never by
hand); a smoke-scale file is never compared with paper-scale numbers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from hkt import stats
from hkt.conventions import CONTROLS, PARENT_RUN, results_run, run_name
from hkt.io import atomic_write_json, atomic_write_text, file_digest
from hkt.report import paper_dataset
from hkt.tasks import get_task, task_module

REQUIRED = ("task", "method", "variant", "dataset", "split", "metric", "seed", "value", "scale")
KEY = ("task", "method", "variant", "dataset", "split", "metric", "seed")
COMMON_METRICS = {"params_m": "min", "inference_ms": "min", "extra_params_m": "min"}  # written for every task
MANIFEST = "MANIFEST.json"


# ---------------------------------------------------------------------------------------------
# Reading results, strictly
# ---------------------------------------------------------------------------------------------
def task_modules(cfg: dict | None) -> dict[str, str]:
    """Results block -> its task package, as a configuration names it (tasks.<block>.module)."""
    return {name: task_module(name, block.get("module")) for name, block in ((cfg or {}).get("tasks") or {}).items()}


def _task(name: str, modules: dict | None):
    """The task package of a results block: the one its configuration names (`modules`, from
    --config), else hkt.tasks.<name>."""
    try:
        return get_task(name, (modules or {}).get(name))
    except ValueError as err:
        raise ValueError(
            f"{err} (a block of another package is read with the config that names it: --config)"
        ) from None


def directions(task_name: str, modules: dict | None = None) -> dict[str, str]:
    return {**COMMON_METRICS, **_task(task_name, modules).directions()}


def read_results(path: str | Path, modules: dict | None = None) -> pd.DataFrame:
    """A results CSV, checked: every problem names the file and the CSV line. `modules`: results
    block -> task package (task_modules), for blocks of a package not named after them."""
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
                known[row.task] = directions(row.task, modules)
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
# Which runs, against which references, on which metrics
# ---------------------------------------------------------------------------------------------


def device_kind(device) -> str:
    """The kind of device a result came from (processor or GPU model), without its thread count."""
    return re.sub(r" x\d+ threads?$", "", str(device))


def _kinds(frame: pd.DataFrame) -> set[str]:
    return {device_kind(d) for d in frame["device"].dropna()} if "device" in frame else set()


def new_runs(new: pd.DataFrame, frozen: pd.DataFrame, runs: list[str] | None = None) -> dict[str, list[str]]:
    """{task: runs}: the runs named (in every task that has them), else those the frozen set lacks."""
    out = {}
    for task, group in new.groupby("task", sort=False):
        present = list(dict.fromkeys(group["method"] + "/" + group["variant"]))
        held = set(frozen.loc[frozen.task == task, "method"] + "/" + frozen.loc[frozen.task == task, "variant"])
        chosen = [r for r in present if r in runs] if runs else [r for r in present if r not in held]
        if chosen:
            out[task] = chosen
    return out


def controls_from_config(cfg: dict) -> dict[str, list[str]]:
    """{task: control runs}: what each block's comparisons table names as controls."""
    out = {}
    for task, block in cfg["tasks"].items():
        table = block["report"]["tables"].get("comparisons")
        if table:
            out[task] = list(table["controls"])
    return out


def _paper_value(paper, paper_rows, task, run, dataset, split, metric):
    mapped = (paper_rows or {}).get((task, run))
    if paper is None or mapped is None:
        return None
    table, method, training = mapped
    cell = paper[
        (paper.table == table)
        & (paper.method == method)
        & (paper.training == training)
        & (paper.dataset == paper_dataset(dataset))
        & (paper.split == split)
        & (paper.metric == metric)
    ]
    return (float(cell["value"].iloc[0]), cell["row"].iloc[0], table) if len(cell) == 1 else None


def _check_devices(mine: pd.DataFrame, reference: pd.DataFrame, what: str, across_devices: bool) -> str:
    """'' when both were made on one kind of device; else a note (or, at smoke scale, a refusal)."""
    ours, theirs = _kinds(mine), _kinds(reference)
    if not ours or not theirs or ours == theirs:
        return ""
    note = f"{what} ran on {', '.join(sorted(theirs))}; yours on {', '.join(sorted(ours))}"
    if set(mine["scale"]) == {"smoke"} and not across_devices:
        raise ValueError(
            f"{note}. Smoke-scale training is not bit-reproducible across CPU types, and between two "
            "machines it differs by more than any method's effect: compare with the baselines rerun on your "
            "machine (the DAG reruns them beside your runs: `snakemake --cores all`, then "
            "`hkt compare results/<task>/metrics.csv`), or pass --across-devices to compare anyway"
        )
    return note


def focused(
    new: pd.DataFrame,
    frozen: pd.DataFrame,
    *,
    runs: list[str] | None = None,
    controls: dict[str, list[str]] | None = None,
    best: int = 2,
    across_devices: bool = False,
    paper: pd.DataFrame | None = None,
    paper_rows: dict | None = None,
    level: float = stats.LEVEL,
    modules: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(your runs against the references, the ranking, notes) on each task's headline metrics."""
    _check_scales(new, frozen)
    chosen = new_runs(new, frozen, runs)
    pairs, ranking, notes = [], [], []
    for task, mine in chosen.items():
        t = _task(task, modules)
        headline = t.headline or (t.select[0],)
        task_controls = list((controls or {}).get(task, CONTROLS))
        own_runs = set(new.loc[new.task == task, "method"] + "/" + new.loc[new.task == task, "variant"])
        # one source of references: your file where it holds the controls (same machine), else frozen
        from_own = any(c in own_runs and c not in mine for c in task_controls)
        source = new if from_own else frozen
        label = "this file" if from_own else "frozen"
        scored = new[(new.task == task) & new.metric.isin(headline) & (new.split != "val")]
        for (dataset, split, metric), group in scored.groupby(["dataset", "split", "metric"], sort=False):
            better = directions(task, modules)[metric]
            ref_rows = source[
                (source.task == task)
                & (source.dataset == dataset)
                & (source.split == split)
                & (source.metric == metric)
            ]
            references = stats.samples(ref_rows)
            for run in mine:
                references.pop(run, None)
            references.pop(run_name(*PARENT_RUN), None)
            ordered = sorted(references, key=lambda r: references[r].mean(), reverse=better == "max")
            picked = [c for c in task_controls if c in references]
            picked += [r for r in ordered if r not in picked][:best]
            if not from_own and picked:
                note = _check_devices(group, ref_rows, f"the frozen {task} results", across_devices)
                if note and note not in notes:
                    notes.append(note)
            values = stats.samples(group)
            where = {"task": task, "dataset": dataset, "split": split, "metric": metric, "better": better}
            for run in [r for r in mine if r in values] + picked:
                sample = values[run] if run in values and run in mine else references[run]
                cell = _paper_value(paper, paper_rows, task, run, dataset, split, metric)
                ranking.append(
                    {
                        **where,
                        "run": run,
                        "role": "yours" if run in mine else ("control" if run in task_controls else "baseline"),
                        "source": "this file" if run in mine else label,
                        "n": len(sample),
                        "mean": sample.mean(),
                        "std": sample.std(ddof=1) if len(sample) > 1 else math.nan,
                        "paper": cell[0] if cell else math.nan,
                    }
                )
            for run in [r for r in mine if r in values]:
                for ref in picked:
                    pairs.append(
                        {**where, "run": run, "reference": ref, "source": label,
                         **stats.difference(values[run], references[ref], better=better, level=level)}
                    )  # fmt: skip
    ranked = pd.DataFrame(ranking)
    if len(ranked):
        signed = ranked["mean"].where(ranked.better == "max", -ranked["mean"])  # higher is better
        ranked["rank"] = signed.groupby([ranked.task, ranked.dataset, ranked.split, ranked.metric]).rank(
            ascending=False, method="min"
        )
        ranked = ranked.sort_values(["task", "dataset", "split", "metric", "rank"], kind="stable").reset_index(
            drop=True
        )
    return stats.verdicts(pd.DataFrame(pairs), level), ranked, notes


def _check_scales(new: pd.DataFrame, frozen: pd.DataFrame) -> None:
    if set(new["scale"]) and set(frozen["scale"]) and set(new["scale"]) != set(frozen["scale"]):
        raise ValueError(
            f"cannot compare scale {sorted(set(new['scale']))} with frozen scale {sorted(set(frozen['scale']))}"
        )


def compare(
    new: pd.DataFrame,
    frozen: pd.DataFrame,
    *,
    paper: pd.DataFrame | None = None,
    paper_rows: dict | None = None,
    across_devices: bool = False,
    level: float = stats.LEVEL,
    modules: dict | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """--all: (every run of `new` against every frozen run, against the paper) for every scored
    (task, dataset, split, metric); validation rows (model selection) are not compared. Holm's
    correction runs over all of them.

    paper_rows: {(task, run): (paper table, paper method id, training)} from the config."""
    _check_scales(new, frozen)
    lines, paper_lines = [], []
    scored = new[new["split"] != "val"]
    for task in dict.fromkeys(scored["task"]):
        _check_devices(
            scored[scored.task == task], frozen[frozen.task == task], f"the frozen {task} results", across_devices
        )
    for (task, dataset, split, metric), group in scored.groupby(["task", "dataset", "split", "metric"], sort=False):
        better = directions(task, modules)[metric]
        old = frozen[
            (frozen.task == task) & (frozen.dataset == dataset) & (frozen.split == split) & (frozen.metric == metric)
        ]
        reference = stats.samples(old)
        for run, values in stats.samples(group).items():
            where = {"task": task, "dataset": dataset, "split": split, "metric": metric, "better": better, "run": run}
            for frozen_run, old_values in reference.items():
                lines.append(
                    {**where, "reference": frozen_run, "source": "frozen",
                     **stats.difference(values, old_values, better=better, level=level)}
                )  # fmt: skip
            cell = _paper_value(paper, paper_rows, task, run, dataset, split, metric)
            if cell is not None:
                value, row, table = cell
                low, high = stats.mean_interval(values.to_numpy(float))
                paper_lines.append(
                    {
                        **where,
                        "paper_table": table,
                        "paper_row": row,
                        "paper": value,
                        "n": len(values),
                        "mean": values.mean(),
                        "diff": values.mean() - value,
                        "ci_low": low,
                        "ci_high": high,
                        "paper_in_interval": (low <= value <= high) if len(values) >= 2 else None,
                    }
                )
    against = stats.verdicts(pd.DataFrame(lines), level)
    if len(against):  # best first within each comparison, whatever the metric's direction
        against = against.sort_values(
            ["task", "dataset", "split", "metric", "reference", "gain"], ascending=[True] * 5 + [False], kind="stable"
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
                run = results_run(row["run"])
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
    return "–" if math.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def _verdict_lines(pairs: pd.DataFrame) -> list[str]:
    lines = []
    for r in pairs.itertuples():
        test = f"{r.test} p {_num(r.p, 3)}, Holm {_num(r.p_holm, 3)}" if r.test != "none" else "no test"
        lines.append(
            f"  {r.run} vs {r.reference} ({r.source}): Δ {r.diff:+.2f} {_interval(r.ci_low, r.ci_high)}, {test}, "
            f"detectable {_num(r.detectable)} -> {r.verdict}"
        )
    return lines


def screen(pairs: pd.DataFrame, ranking: pd.DataFrame, notes: list[str], scale: str) -> str:
    """The one-screen answer of the default `hkt compare`."""
    if not len(ranking):
        return "nothing to compare: name your runs with --runs, or compare everything with --all"
    out = []
    if scale == "smoke":
        out.append("SMOKE SCALE: the embedded default, not a reproduction of the paper.")
    out += [f"note: {n}" for n in notes]
    for (task, dataset, split, metric, better), g in ranking.groupby(
        ["task", "dataset", "split", "metric", "better"], sort=False
    ):
        word = "higher" if better == "max" else "lower"
        out.append(f"\n{task}: {metric} on {dataset} ({split}; {word} is better)")
        for r in g.itertuples():
            paper = f"   paper {r.paper:g}" if not math.isnan(r.paper) else ""
            out.append(
                f"  {int(r.rank):>2}. {r.run:<32} {_mean_std(r.mean, r.std, r.n):<24} {r.role} ({r.source}){paper}"
            )
        here = pairs[
            (pairs.task == task) & (pairs.dataset == dataset) & (pairs.split == split) & (pairs.metric == metric)
        ]
        out += _verdict_lines(here)
    out.append("\n" + stats.describe().format(n=int(pairs["p"].notna().sum()) if len(pairs) else 0))
    return "\n".join(out) + "\n"


def to_markdown(against: pd.DataFrame, vs_paper: pd.DataFrame, scale: str) -> str:
    """--all: every comparison, grouped by task, dataset, split and metric."""
    out = [f"# New results against the frozen reproduction ({scale} scale)", ""]
    if scale == "smoke":
        out += ["**SMOKE SCALE: the embedded default, not a reproduction of the paper.**", ""]
    header = "| Run | Frozen run | Mean ± std (n) | Frozen mean ± std (n) | Δ | 95% CI of Δ | test | p | p (Holm) | detectable | Verdict |"
    for (task, dataset, split, metric, better), g in against.groupby(
        ["task", "dataset", "split", "metric", "better"], sort=False
    ):
        word = "higher" if better == "max" else "lower"
        out += [f"## {task}: {metric} on {dataset} ({split}; {word} is better)", "", header, "|---" * 11 + "|"]
        for r in g.itertuples():
            out.append(
                f"| {r.run} | {r.reference} | {_mean_std(r.mean, r.std, r.n)} | "
                f"{_mean_std(r.ref_mean, r.ref_std, r.ref_n)} | {r.diff:+.2f} | {_interval(r.ci_low, r.ci_high)} "
                f"| {r.test} | {_num(r.p, 3)} | {_num(r.p_holm, 3)} | {_num(r.detectable)} | {r.verdict} |"
            )
        out.append("")
    if len(vs_paper):
        out += [
            "## Against the paper",
            "",
            "| Task | Metric | Dataset | Run | Paper row | Paper | Mean (n) | Δ | 95% t-interval of the mean | Paper inside |",
            "|---" * 10 + "|",
        ]
        for r in vs_paper.itertuples():
            inside = "–" if r.paper_in_interval is None else ("yes" if r.paper_in_interval else "no")
            ci = "–" if math.isnan(r.ci_low) else f"[{r.ci_low:.2f}, {r.ci_high:.2f}]"
            out.append(
                f"| {r.task} | {r.metric} | {r.dataset} | {r.run} | {r.paper_row} ({r.paper_table}) | {r.paper:g} "
                f"| {r.mean:.2f} (n={r.n}) | {r.diff:+.2f} | {ci} | {inside} |"
            )
        out.append("")
    out.append(
        "Δ = new − frozen (or − paper). "
        + stats.describe().format(n=int(against["p"].notna().sum()) if len(against) else 0)
    )
    return "\n".join(out) + "\n"


def screen_markdown(pairs: pd.DataFrame, ranking: pd.DataFrame, notes: list[str], scale: str) -> str:
    return (
        f"# Your runs against the suite's baselines ({scale} scale)\n\n```\n{screen(pairs, ranking, notes, scale)}```\n"
    )


# ---------------------------------------------------------------------------------------------
# Frozen reproductions
# ---------------------------------------------------------------------------------------------
def freeze(
    results: list[str | Path], out_dir: str | Path, *, allow_dirty: bool = False, modules: dict | None = None
) -> dict:
    """Write each task's results as `<task>_metrics.csv` under `out_dir` and `MANIFEST.json` (each
    file's sha256, rows, runs, seeds and commits) last. Refuses results of uncommitted code."""
    out_dir = Path(out_dir)
    files = {}
    for path in results:
        frame = read_results(path, modules)
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


def load_frozen(frozen_dir: str | Path, modules: dict | None = None) -> pd.DataFrame:
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
        frames.append(read_results(path, modules))
    return pd.concat(frames, ignore_index=True)


def terminal(against: pd.DataFrame) -> str:
    """--all on the terminal: one line per comparison."""
    if not len(against):
        return "nothing to compare"
    view = against.assign(
        ci=[_interval(lo, hi) for lo, hi in zip(against.ci_low, against.ci_high, strict=True)],
        p_=[_num(p, 3) for p in against.p_holm],
    )[["task", "metric", "dataset", "run", "reference", "mean", "ref_mean", "diff", "ci", "test", "p_", "verdict"]]
    return view.rename(columns={"p_": "p_holm"}).to_string(index=False, float_format=lambda x: f"{x:.2f}")
