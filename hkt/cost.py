"""The cost of a paper-scale replication, from `make bench`'s measured step times.

    python -m hkt.cost --config config/paper.yaml --bench results/bench/*_train_step.csv \
        --out results/bench/cost

For every task block of the config that `make bench` measured (rows of that config file), every
run, seed and training stage: the stage's steps times the run's measured step time, scaled
linearly from the measured batch to the stage's batch. A run that was not timed is charged at a
timed run of the same method (ablations cost what their method costs), else at the slowest timed
run; a parent that is trained (not a published release) at the child-alone step times the
measured parent/child inference ratio. The `timed_as` column says which. Evaluation and data
preparation are not counted (minutes against days). Earlier stages at smaller crops (RAFT's
FlyingChairs and Things stages) are charged at the last stage's shapes, so flow figures are upper
bounds. A block that was not measured borrows the measurements of a block of the same task
package with the same parent and child (the three optical-flow regimes share RAFT's Sintel-stage
measurement). Hours are device-hours on the device that `make bench` ran on (its `device` column).
Where `make bench` measured copies of a run training at once on one device (`bench.concurrent`),
`packed_hours` is the same work at the best measured throughput: the wall-clock time of the
block's runs trained that many at a time (every run assumed to pack as the measured one does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from hkt import config as C
from hkt.fields import dataclass_from
from hkt.schedule import Schedule
from hkt.tasks import task_module


def _timed_as(run: str, measured: dict[str, float]) -> str:
    if run in measured:
        return run
    method = run.split("/")[0]
    same_method = [r for r in measured if r.split("/")[0] == method]
    if same_method:
        return same_method[0]
    return max(measured, key=measured.get)


def _measured_block(cfg: dict, task: str, measured: set) -> str | None:
    """The block whose measurements stand for `task`: its own, else a measured block of the same
    task package with the same parent and child (e.g. the flow regimes share one measurement)."""
    if task in measured:
        return task
    t = cfg["tasks"][task]
    for other in sorted(measured & set(cfg["tasks"])):
        o = cfg["tasks"][other]
        same = task_module(other, o.get("module")) == task_module(task, t.get("module"))
        if same and (o["parent"]["arch"], o["child"]["arch"]) == (t["parent"]["arch"], t["child"]["arch"]):
            return other
    return None


def cost_table(config_path: str, bench: pd.DataFrame) -> pd.DataFrame:
    cfg = C.validate(C.load(config_path))
    name = Path(config_path).name
    bench = bench[(bench["config"] == name)]
    if "switch" in bench:
        bench = bench[bench["switch"].fillna("-") == "-"]
    rows, packing = [], {}
    for task in cfg["tasks"]:
        timed_block = _measured_block(cfg, task, set(bench["task"]))
        if timed_block is None:
            continue
        mine = bench[bench["task"] == timed_block]
        steps = mine[mine["kind"] == "train_step"]
        step_ms = dict(zip(steps["run"], steps["median_ms"], strict=True))
        step_batch = dict(zip(steps["run"], steps["batch_size"], strict=True))
        infer = dict(
            zip(mine[mine.kind == "inference"]["run"], mine[mine.kind == "inference"]["median_ms"], strict=True)
        )
        device = steps["device"].iloc[0]
        packing[task] = _best_packing(mine)
        prefix = "" if timed_block == task else f"{timed_block}: "
        for run in cfg["tasks"][task]["runs"]:
            timed = _timed_as(run, step_ms)
            specs = C.run_specs(cfg, task, *run.split("/"), cfg["seeds"][0])
            rows.append(
                _row(task, run, prefix + timed, specs, step_ms[timed], step_batch[timed], len(cfg["seeds"]), device)
            )
        if cfg["tasks"][task]["parent"]["source"] == "train" and "alone/default" in step_ms:
            ratio = infer["parent"] / infer["child"]
            specs = C.parent_specs(cfg, task)
            timed = f"{prefix}alone/default x {ratio:.2f} (parent/child inference)"
            rows.append(
                _row(
                    task,
                    "parent",
                    timed,
                    specs,
                    step_ms["alone/default"] * ratio,
                    step_batch["alone/default"],
                    1,
                    device,
                )
            )
    table = pd.DataFrame(rows)
    if not table.empty:
        table["packed_copies"] = table["task"].map(lambda task: packing[task][0])
        table["packed_hours"] = table["hours"] / table["task"].map(lambda task: packing[task][1])
    return table


def _best_packing(block: pd.DataFrame) -> tuple[int, float]:
    """(copies, throughput) of the measured concurrency with the most throughput: runs trained
    that many at a time on one device finish `throughput` times sooner than one at a time
    (`bench.concurrent`; (1, 1.0) where it was not measured)."""
    if "copies" not in block or not (block["kind"] == "concurrent").any():
        return 1, 1.0
    best = block[block["kind"] == "concurrent"].sort_values("throughput").iloc[-1]
    return (int(best["copies"]), float(best["throughput"])) if best["throughput"] > 1 else (1, 1.0)


def _row(task, run, timed, specs, ms, measured_batch, seeds, device) -> dict:
    hours = 0.0
    steps = 0
    for spec in specs:
        schedule = dataclass_from(Schedule, spec["schedule"], "schedule")
        hours += schedule.steps * ms * schedule.batch_size / measured_batch / 3.6e6
        steps += schedule.steps
    return {
        "task": task,
        "run": run,
        "seeds": seeds,
        "steps_per_seed": steps,
        "timed_as": timed,
        "measured_step_ms": ms,
        "measured_batch": measured_batch,
        "hours": hours * seeds,
        "device": device,
    }


def to_markdown(table: pd.DataFrame, config_name: str) -> str:
    device = ", ".join(sorted(table["device"].unique()))
    lines = [
        f"Paper-scale training cost ({config_name}): device-hours on **{device}** (the device `make bench` ran on), "
        "from measured step times; every seed of every run, the parent where it is trained. See hkt/cost.py for "
        "what is estimated.",
        "",
        "The last column is the wall-clock time on one device when the block's runs train several at once, at the "
        "throughput measured for that many copies of one run (`bench.concurrent`); a dash where it was not measured.",
        "",
        "| task | runs (incl. parent) | seeds | total hours | largest run (hours, all seeds) | runs at once: hours |",
        "|---|---:|---:|---:|---|---|",
    ]
    for task, group in table.groupby("task", sort=False):
        top = group.loc[group["hours"].idxmax()]
        copies = int(group["packed_copies"].iloc[0])
        packed = f"{copies}: {group['packed_hours'].sum():,.1f}" if copies > 1 else "–"
        lines.append(
            f"| {task} | {len(group)} | {group['seeds'].max()} | {group['hours'].sum():,.0f} | "
            f"{top['run']} ({top['hours']:,.0f}) | {packed} |"
        )
    lines.append(f"| **all** | {len(table)} | | **{table['hours'].sum():,.0f}** | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--bench", nargs="+", required=True, help="results/bench/<task>_train_step.csv files")
    parser.add_argument("--out", required=True, help="writes <out>.csv and <out>.md")
    args = parser.parse_args(argv)
    from hkt.io import atomic_write_text

    bench = pd.concat([pd.read_csv(p) for p in args.bench], ignore_index=True)
    table = cost_table(args.config, bench)
    if table.empty:
        raise SystemExit(f"no bench rows for {args.config}: run `make bench` first")
    atomic_write_text(f"{args.out}.csv", table.to_csv(index=False))
    atomic_write_text(f"{args.out}.md", to_markdown(table, Path(args.config).name))
    print(to_markdown(table, Path(args.config).name))


if __name__ == "__main__":
    main()
