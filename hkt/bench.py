"""Benchmark: training-step time and peak memory of each task's methods, and parent vs child inference.

    python -m hkt.bench --config config/config.yaml --config config/paper.yaml --task flow \
        --out results/bench/flow_train_step.csv --figure results/bench/flow_train_step.png

For every config file and the task's `bench` block (`tasks.<task>.bench.runs`), each run's
training step is timed at the shapes of its last stage (the stage's data block and batch, or
`bench.batch_size`), at the config's architectures, on random tensors (step time does not
depend on values or on trained weights): forward passes, loss, backward, gradient clipping and
the optimiser update of the stage's recipe, synchronised on CUDA, after warm-up steps
(`bench.data` may override the stage's data keys, e.g. a smaller patch). Parent and child
inference are timed as evaluation times them (`evaluation.timing`).

Every measurement runs in its own process, one after another, so that each peak memory is its
own (CUDA: peak allocated; CPU: peak resident set of the process, the model and data included)
and nothing else competes for the processor; the ratios of one invocation compare like with like.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import pandas as pd
import torch

from hkt import config as C
from hkt.fields import dataclass_from
from hkt.methods import load_method, make_params
from hkt.runmeta import device_name, git_commit, pick_device
from hkt.schedule import Schedule
from hkt.tasks import get_task
from hkt.train import _to

INFERENCE = ("parent", "child")  # pseudo-runs: inference of the two architectures


def _first(x, n: int):
    return tuple(_first(v, n) for v in x) if isinstance(x, tuple) else x[:n]


def _setup(config_path: str, task_name: str, threads: int):
    torch.set_num_threads(threads)
    cfg = C.validate(C.load(config_path))
    t = cfg["tasks"][task_name]
    task = get_task(task_name, t.get("module"))
    ev = dataclass_from(task.eval_config, t["evaluation"], f"tasks.{task_name}.evaluation")
    return cfg, t, task, ev, pick_device(cfg["device"])


def _peak_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def _timed(fn, *, steps: int, warmup: int, device: torch.device) -> list[float]:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def measure_step(config_path: str, task_name: str, run: str, *, steps: int, warmup: int, threads: int) -> dict:
    """Median step time and peak memory of one run's last training stage."""
    cfg, t, task, ev, device = _setup(config_path, task_name, threads)
    method, variant = run.split("/")
    spec = C.run_specs(cfg, task_name, method, variant, 0)[-1]
    module = load_method(spec["module"])
    params = make_params(module, spec["params"])
    schedule = dataclass_from(Schedule, spec["schedule"], "schedule")
    batch_size = t["bench"].get("batch_size") or schedule.batch_size
    overrides = t["bench"].get("data") or {}
    data = C.task_config(task, {**spec["data"], **overrides}, f"tasks.{task_name}.bench.data")
    bench = task.benchmark(data, ev, batch_size, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    child = task.build_model(spec["arch"])
    parent = task.build_model(spec["parent_arch"]) if module.NEEDS_PARENT else None
    x, y = bench.batch
    objective = module.build(child, parent, bench.task or task, params, _first(x, 2)).to(device).train()
    x, y = _to(x, device), _to(y, device)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = schedule.make_optimizer(trainable)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if schedule.bf16 else nullcontext()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        with autocast:
            loss, _ = objective(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if schedule.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(trainable, schedule.grad_clip)
        optimizer.step()

    times = _timed(step, steps=steps, warmup=warmup, device=device)
    shape = tuple((x[0] if isinstance(x, tuple) else x).shape)
    return _row(
        times, device, kind="train_step", run=run, batch_size=batch_size, input_shape=shape, stage=spec["stage"]
    )


@torch.no_grad()
def measure_inference(config_path: str, task_name: str, role: str, *, steps: int, warmup: int, threads: int) -> dict:
    """Median time of the evaluation's timed inference for the parent or the child architecture."""
    cfg, t, task, ev, device = _setup(config_path, task_name, threads)
    arch = t[role]["arch"]
    overrides = (t.get("bench") or {}).get("data") or {}
    data = C.task_config(task, {**C.resolved_data(cfg, task_name, t["data"]), **overrides}, f"tasks.{task_name}.data")
    bench = task.benchmark(data, ev, 1, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = task.build_model(arch).to(device).eval()
    inp = _to(bench.infer_input, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = _timed(lambda: bench.infer(model, inp), steps=steps, warmup=warmup, device=device)
    times = [s / bench.infer_batch for s in times]
    shape = tuple((inp[0] if isinstance(inp, tuple) else inp).shape)
    return _row(times, device, kind="inference", run=role, batch_size=bench.infer_batch, input_shape=shape, stage="-")


def _row(times: list[float], device: torch.device, **fields) -> dict:
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {
        **fields,
        "input_shape": "x".join(map(str, fields["input_shape"])),
        "median_ms": 1000 * statistics.median(times),
        "q1_ms": 1000 * q[0],
        "q3_ms": 1000 * q[2],
        "peak_mb": _peak_mb(device),
        "device": device_name(device),
    }


def _in_subprocess(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "hkt.bench", "--one", *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench measurement {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(config_paths: list[str], task_name: str, *, threads: int, log=print) -> pd.DataFrame:
    rows, commit = [], git_commit()
    for path in config_paths:
        cfg = C.validate(C.load(path))
        t = cfg["tasks"].get(task_name)
        if t is None or "bench" not in t:
            log(f"{path}: no tasks.{task_name}.bench block; skipped")
            continue
        opts = {"steps": t["bench"].get("steps", 20), "warmup": t["bench"].get("warmup", 3)}
        measured = []
        for name in [*t["bench"]["runs"], *INFERENCE]:
            common = [path, task_name, name, str(opts["steps"]), str(opts["warmup"]), str(threads)]
            row = _in_subprocess(common)
            log(f"{Path(path).name} {task_name} {name}: {row['median_ms']:.1f} ms, peak {row['peak_mb']:.0f} MB")
            measured.append(row)
        steps = {r["run"]: r["median_ms"] for r in measured if r["kind"] == "train_step"}
        first = t["bench"]["runs"][0]
        for row in measured:
            row.update(
                config=Path(path).name,
                scale=cfg["scale"],
                task=task_name,
                child=t["child"]["arch"],
                parent=t["parent"]["arch"],
                **opts,
                threads=threads,
                torch=torch.__version__,
                commit=commit,
            )
            if row["kind"] == "train_step":
                row["reference"] = first
                row["ratio"] = row["median_ms"] / steps[first]
            else:
                row["reference"] = "child"
                row["ratio"] = row["median_ms"] / next(r["median_ms"] for r in measured if r["run"] == "child")
        rows += measured
    if not rows:
        raise ValueError(f"no config among {config_paths} has a tasks.{task_name}.bench block")
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hkt.io import atomic_path

    configs = list(dict.fromkeys(table["config"]))
    fig, axes = plt.subplots(2, len(configs), figsize=(max(7.0, 5.5 * len(configs)), 7.5), squeeze=False)
    for col, name in enumerate(configs):
        for row, kind in enumerate(("train_step", "inference")):
            ax, sub = axes[row][col], table[(table.config == name) & (table.kind == kind)]
            bars = ax.bar(
                sub["run"],
                sub["median_ms"],
                yerr=[sub["median_ms"] - sub["q1_ms"], sub["q3_ms"] - sub["median_ms"]],
                capsize=4,
            )
            for bar, ratio, peak in zip(bars, sub["ratio"], sub["peak_mb"], strict=True):
                ax.annotate(
                    f"{ratio:.2f}x\n{peak:.0f} MB",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 3),
                    textcoords="offset points",
                )
            first = sub.iloc[0]
            what = "training step" if kind == "train_step" else "inference per input"
            ax.set_title(
                f"{name}: {what}\n{first.child} child, {first.parent} parent, input {first.input_shape}", fontsize=8
            )
            ax.set_ylabel("ms (median, IQR)")
            ax.margins(y=0.25)
            ax.tick_params(axis="x", labelsize=7, rotation=20)
    fig.suptitle(
        f"{table['task'].iloc[0]}: ratios to {table['reference'].iloc[0]} (steps) and to the child (inference), "
        f"peak memory\n{table['device'].iloc[0]}, {table['threads'].iloc[0]} thread(s), commit {table['commit'].iloc[0]}",
        fontsize=9,
    )
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", nargs=6, metavar=("CONFIG", "TASK", "RUN", "STEPS", "WARMUP", "THREADS"))
    parser.add_argument("--config", action="append", help="config file (repeatable)")
    parser.add_argument("--task")
    parser.add_argument("--out")
    parser.add_argument("--figure")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    if args.one:  # one measurement, in a process of its own: print its row as JSON
        path, task_name, name, steps, warmup, threads = args.one
        kw = {"steps": int(steps), "warmup": int(warmup), "threads": int(threads)}
        fn = measure_inference if name in INFERENCE else measure_step
        print(json.dumps(fn(path, task_name, name, **kw)))
        return
    if not (args.config and args.task and args.out):
        parser.error("--config, --task and --out are required")
    table = run(args.config, args.task, threads=args.threads)
    from hkt.io import atomic_path

    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    if args.figure:
        figure(table, args.figure)
    print(table[["config", "kind", "run", "median_ms", "ratio", "peak_mb"]].to_string(index=False))


if __name__ == "__main__":
    main()
