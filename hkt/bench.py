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
import dataclasses
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch

from hkt import config as C
from hkt.benchplan import SUITE, Measurement, bench_block
from hkt.fields import dataclass_from
from hkt.methods import load_method, make_params
from hkt.runmeta import device_name, git_commit, pick_device
from hkt.schedule import Schedule
from hkt.tasks import build_model, get_task
from hkt.train import step_function, to_device

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


class _Step(NamedTuple):
    step: Callable  # (inputs, targets) on the device -> None: one optimisation step
    bench: Any  # the task's BenchData at the stage's shapes
    spec: dict  # the run's last stage
    batch_size: int
    dtype: str  # of the forward passes: "float32", or "bf16 autocast" (the stage's or a switch's)


def _training_step(cfg, t, task, ev, device, task_name: str, name: str, switches=()) -> _Step:
    """One run's last training stage as `make bench` times it: its objective, optimiser and
    schedule (with the named speed switches on), built as training builds them."""
    method, variant = name.split("/")
    spec = C.run_specs(cfg, task_name, method, variant, 0)[-1]
    module = load_method(spec["module"])
    params = make_params(module, spec["params"])
    schedule = dataclass_from(Schedule, {**spec["schedule"], **{k: True for k in switches}}, "schedule")
    block = bench_block(t, f"tasks.{task_name}")
    batch_size = block.batch_size or schedule.batch_size
    overrides = block.data or {}
    data = C.task_config(task, {**spec["data"], **overrides}, f"tasks.{task_name}.bench.data")
    bench = task.benchmark(data, ev, batch_size, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    child = build_model(task, spec["arch"])
    parent = build_model(task, spec["parent_arch"]) if module.NEEDS_PARENT else None
    objective = module.build(child, parent, bench.adapt(task), params, _first(bench.batch[0], 2)).to(device).train()
    trainable = [p for p in objective.parameters() if p.requires_grad]
    optimizer = schedule.make_optimizer(trainable)
    step = step_function(objective, objective, trainable, optimizer, schedule, device)
    return _Step(step, bench, spec, batch_size, "bf16 autocast" if schedule.bf16 else "float32")


def measure_step(
    config_path: str, task_name: str, run: str, *, switches: tuple = (), steps: int, warmup: int, threads: int
) -> dict:
    """Median step time and peak memory of one run's last training stage, with the speed switches
    `switches` turned on."""
    cfg, t, task, ev, device = _setup(config_path, task_name, threads)
    name = run
    built = _training_step(cfg, t, task, ev, device, task_name, name, list(switches))
    x, y = (to_device(v, device) for v in built.bench.batch)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    _wait_for_the_others()
    times = _timed(lambda: built.step(x, y), steps=steps, warmup=warmup, device=device)
    return _row(
        times,
        device,
        kind="train_step",
        run=name,
        switch="+".join(switches) or "-",
        dtype=built.dtype,
        batch_size=built.batch_size,
        input_shape=_shape(x),
        stage=built.spec["stage"],
    )


def measure(m: Measurement) -> dict:
    """The row of one measurement, in this process."""
    timing = {"steps": m.steps, "warmup": m.warmup, "threads": m.threads}
    if m.kind == "ga":
        return measure_ga(m.side, m.channels, threads=m.threads)
    if m.kind == "pipeline":
        return measure_pipeline(m.config, m.task, m.workers, **timing)
    if m.kind == "inference":
        return measure_inference(m.config, m.task, m.run, **timing)
    return measure_step(m.config, m.task, m.run, switches=m.switches, **timing)


def measure_pipeline(
    config_path: str, task_name: str, workers: int | None, *, steps: int, warmup: int, threads: int
) -> dict:
    """Time per training step of `bench.pipelines.run` with the batches read as well: from the
    task's own batches (`workers` None, labelled `suite`: Task.training, built on the training
    device) or from the plain DataLoader loop that the task describes with `workers` processes
    (labelled `dataloader:<workers>`: Task.plain_loader). Both read
    one dataset, prepared for the measurement in a temporary folder (`bench.pipelines.data` may
    replace the source, e.g. a generated stand-in of the real size and on-disk layout: the time
    does not depend on the pixels)."""
    cfg, t, task, ev, device = _setup(config_path, task_name, threads)
    block = bench_block(t, f"tasks.{task_name}").pipelines
    built = _training_step(cfg, t, task, ev, device, task_name, block.run)
    with tempfile.TemporaryDirectory() as tmp:
        key = f"tasks.{task_name}.bench.pipelines.data"
        data = C.task_config(task, {**built.spec["data"], **(block.data or {}), "root": tmp}, key)
        task.prepare_data(data, allow_network=False)
        pipeline = SUITE if workers is None else f"dataloader:{workers}"
        if workers is None:
            batches = task.training(data, batch_size=built.batch_size, seed=0, device=device).batches
            counter = itertools.count()

            def fetch():
                return batches(next(counter))
        else:
            stream = iter(task.plain_loader(data, batch_size=built.batch_size, seed=0, device=device, workers=workers))

            def fetch():
                return next(stream)

        shapes = set()

        def one_step():
            x, y = fetch()
            shapes.add(_shape(x))
            built.step(to_device(x, device), to_device(y, device))

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = _timed(one_step, steps=steps, warmup=warmup, device=device)
    return _row(
        times,
        device,
        kind="pipeline",
        run=block.run,
        switch="-",
        dtype=built.dtype,
        pipeline=pipeline,
        batch_size=built.batch_size,
        input_shape=_one(shapes, f"{pipeline} batches"),
        stage=built.spec["stage"],
    )


def _one(shapes: set, what: str) -> tuple:
    if len(shapes) != 1:
        raise RuntimeError(f"{what} changed shape during the measurement: {sorted(shapes)}")
    return next(iter(shapes))


def _shape(x) -> tuple:
    return tuple((x[0] if isinstance(x, tuple) else x).shape)


# Concurrent copies of one run meet here before their timed steps, so that they overlap.
BARRIER_ENV = "HKT_BENCH_BARRIER"


def _wait_for_the_others(timeout_s: float = 600.0) -> None:
    """With HKT_BENCH_BARRIER=<folder>:<copies>, wait until that many processes have arrived."""
    barrier = os.environ.get(BARRIER_ENV)
    if not barrier:
        return
    folder, copies = barrier.rsplit(":", 1)
    Path(folder, f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(Path(folder).glob("ready-*"))) < int(copies):
        if time.monotonic() > deadline:
            raise TimeoutError(f"only some of the {copies} concurrent copies reached the barrier in {folder}")
        time.sleep(0.01)


def measure_concurrent(
    config_path: str, task_name: str, run: str, copies: int, *, steps: int, warmup: int, threads: int
) -> dict:
    """`copies` processes training the same run at once on one device (the moonshot's way of
    filling a GPU that one small model leaves idle): each copy's median step, and what the device
    does in all (`throughput`: runs' steps per second, relative to one copy alone)."""
    one = Measurement("train_step", config_path, task_name, run, steps=steps, warmup=warmup, threads=threads)
    with tempfile.TemporaryDirectory() as barrier:
        env = {**os.environ, BARRIER_ENV: f"{barrier}:{copies}"}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "hkt.bench", "--one", json.dumps(dataclasses.asdict(one))],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(copies)
        ]
        outputs = [proc.communicate() for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        if proc.returncode != 0:
            raise RuntimeError(f"bench measurement of {copies} concurrent copies of {run} failed:\n{err[-4000:]}")
    rows = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    median = statistics.mean(r["median_ms"] for r in rows)
    return {
        **rows[0],
        "kind": "concurrent",
        "copies": copies,
        "median_ms": median,
        "q1_ms": min(r["median_ms"] for r in rows),  # the fastest and slowest copy's median
        "q3_ms": max(r["median_ms"] for r in rows),
        "peak_mb": max(r["peak_mb"] for r in rows),  # per process
    }


@torch.no_grad()
def measure_inference(config_path: str, task_name: str, role: str, *, steps: int, warmup: int, threads: int) -> dict:
    """Median time of the evaluation's timed inference for the parent or the child architecture."""
    cfg, t, task, ev, device = _setup(config_path, task_name, threads)
    arch = t[role]["arch"]
    overrides = (t.get("bench") or {}).get("data") or {}
    data = C.task_config(task, {**C.resolved_data(cfg, task_name, t["data"]), **overrides}, f"tasks.{task_name}.data")
    bench = task.benchmark(data, ev, 1, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = build_model(task, arch).to(device).eval()
    inp = to_device(bench.infer_input, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = _timed(lambda: bench.infer(model, inp), steps=steps, warmup=warmup, device=device)
    times = [s / bench.infer_batch for s in times]
    return _row(
        times,
        device,
        kind="inference",
        run=role,
        switch="-",
        dtype="float32",
        batch_size=bench.infer_batch,
        input_shape=_shape(inp),
        stage="-",
    )


# GA against the feature-map size: square maps of these sides (256 x 256 = 65,536 tokens), c = 32
GA_SIDES = (16, 32, 64, 128, 256)
GA_CHANNELS = 32


def measure_ga(side: int, channels: int, *, threads: int) -> dict:
    """Time and peak memory of Genetic Attention's forward and backward pass on one
    (1, channels, side, side) pair; memory is the growth over the process before the tensors
    existed (CPU: peak resident set; CUDA: peak allocated)."""
    from hkt.attention import genetic_attention

    torch.set_num_threads(threads)
    device = pick_device("auto")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    before = _peak_mb(device)
    g = torch.Generator().manual_seed(0)
    q, v = (torch.randn(1, channels, side, side, generator=g).to(device).requires_grad_() for _ in range(2))
    repeats = max(1, min(5, 2**22 // side**2))  # ~4 million token-passes; one pass at 256 x 256

    def run():
        genetic_attention(q, v).square().sum().backward()

    times = _timed(run, steps=repeats, warmup=1 if side <= 128 else 0, device=device)
    grown = _peak_mb(device) - before
    return {
        "side": side,
        "tokens": side * side,
        "channels": channels,
        "median_ms": 1000 * statistics.median(times),
        "repeats": repeats,
        "peak_growth_mb": grown,
        "kb_per_token": 1024 * grown / (side * side),
        "device": device_name(device),
        "threads": threads,
        "torch": torch.__version__,
    }


def run_ga(*, threads: int, sides=GA_SIDES, channels: int = GA_CHANNELS, log=print) -> pd.DataFrame:
    rows, commit = [], git_commit()
    for side in sides:
        row = in_subprocess(Measurement("ga", side=side, channels=channels, threads=threads))
        log(f"GA {side}x{side} (c={channels}): {row['median_ms']:.0f} ms, +{row['peak_growth_mb']:.0f} MB")
        rows.append({**row, "commit": commit})
    return pd.DataFrame(rows)


def ga_figure(table: pd.DataFrame, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hkt.report import save_figure

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    n = table["tokens"].to_numpy(dtype=float)
    left.loglog(n, table["median_ms"], "o-", label="measured")
    left.loglog(n, table["median_ms"].iloc[-1] * (n / n[-1]) ** 2, ":", label="∝ tokens²")
    left.set(xlabel="tokens (side²)", ylabel="forward + backward (ms)", title="time")
    right.loglog(n, table["peak_growth_mb"].clip(lower=1e-3), "o-", label="measured")
    right.loglog(n, table["peak_growth_mb"].iloc[-1] * n / n[-1], ":", label="∝ tokens")
    right.loglog(n, 4 * n**2 / 2**20, "--", label="one N×N fp32 matrix")
    right.set(xlabel="tokens (side²)", ylabel="peak memory growth (MB)", title="memory")
    for ax in (left, right):
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    first = table.iloc[0]
    fig.suptitle(
        f"Genetic Attention (eq. 2) on (1, {first.channels}, side, side) maps: {first.device}, "
        f"{first.threads} thread(s), torch {first.torch}, commit {first.commit}",
        fontsize=9,
    )
    fig.tight_layout()
    save_figure(fig, path)


def _row(times: list[float], device: torch.device, **fields) -> dict:
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {
        **fields,
        "input_shape": "x".join(map(str, fields["input_shape"])),
        "median_ms": 1000 * statistics.median(times),
        "mean_ms": 1000 * statistics.mean(times),  # with a data pipeline, its stalls show here
        "q1_ms": 1000 * q[0],
        "q3_ms": 1000 * q[2],
        "peak_mb": _peak_mb(device),
        "device": device_name(device),
    }


def in_subprocess(m: Measurement) -> dict:
    """The row of one measurement, measured in a fresh process."""
    args = [sys.executable, "-m", "hkt.bench", "--one", json.dumps(dataclasses.asdict(m))]
    proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench measurement {m} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(config_paths: list[str], task_name: str, *, threads: int, log=print) -> pd.DataFrame:
    rows, commit = [], git_commit()
    for path in config_paths:
        cfg = C.validate(C.load(path))
        t = cfg["tasks"].get(task_name)
        if t is None or "bench" not in t:
            log(f"{path}: no tasks.{task_name}.bench block; skipped")
            continue
        block = bench_block(t, f"tasks.{task_name}")
        opts = {"steps": block.steps, "warmup": block.warmup}
        measured = []
        for m in block.plan(path, task_name, threads=threads, inference=INFERENCE):
            row = in_subprocess(m)
            log(f"{Path(path).name} {task_name} {m.label}: {row['median_ms']:.1f} ms, peak {row['peak_mb']:.0f} MB")
            measured.append(row)
        concurrent = block.concurrent
        for copies in concurrent.copies if concurrent else []:
            row = measure_concurrent(path, task_name, concurrent.run, copies, threads=threads, **opts)
            log(f"{Path(path).name} {task_name} {copies} x {concurrent.run}: {row['median_ms']:.1f} ms per copy")
            measured.append(row)
        steps = {r["run"]: r["median_ms"] for r in measured if r["kind"] == "train_step" and r["switch"] == "-"}
        first = block.runs[0]
        suite = next((r["mean_ms"] for r in measured if r.get("pipeline") == SUITE), None)
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
            if row["kind"] == "pipeline":  # against the suite's own batches: mean step, stalls included
                row["reference"] = f"{row['run']} ({SUITE} batches)"
                row["ratio"] = row["mean_ms"] / suite
            elif row["kind"] == "concurrent":  # against the same run alone on the device
                row["reference"] = f"{row['run']} (alone on the device)"
                row["ratio"] = row["median_ms"] / steps[row["run"]]
                row["throughput"] = row["copies"] / row["ratio"]
            elif row["kind"] == "train_step" and row["switch"] != "-":  # against the same run without it
                row["reference"] = row["run"]
                row["ratio"] = row["median_ms"] / steps[row["run"]]
            elif row["kind"] == "train_step":
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

    from hkt.report import save_figure

    configs = list(dict.fromkeys(table["config"]))
    if "switch" not in table:
        table = table.assign(switch="-")
    panels = [("train_step", "training step"), ("inference", "inference per input")]
    if (table["switch"] != "-").any():
        panels.append(("switch", "training step with a speed switch (ratio to the same run without)"))
    if (table["kind"] == "pipeline").any():
        panels.append(("pipeline", "step with its batches read (mean; ratio to the suite's batches)"))
    if (table["kind"] == "concurrent").any():
        panels.append(("concurrent", "copies at once on one device (step per copy; ratio to one alone)"))
    fig, axes = plt.subplots(
        len(panels), len(configs), figsize=(max(7.0, 5.5 * len(configs)), 3.8 * len(panels)), squeeze=False
    )
    for col, name in enumerate(configs):
        for row, (kind, what) in enumerate(panels):
            ax = axes[row][col]
            if kind == "switch":
                sub = table[(table.config == name) & (table.switch != "-")]
                labels = sub["run"] + "\n+" + sub["switch"]
            elif kind == "pipeline":
                sub = table[(table.config == name) & (table.kind == kind)]
                sub = sub.assign(median_ms=sub["mean_ms"], q1_ms=sub["mean_ms"], q3_ms=sub["mean_ms"])
                labels = sub["pipeline"].str.replace("dataloader:", "DataLoader\nworkers=")
            elif kind == "concurrent":
                sub = table[(table.config == name) & (table.kind == kind)]
                labels = sub["copies"].astype(int).astype(str) + " x " + sub["run"]
            else:
                sub = table[(table.config == name) & (table.kind == kind) & (table.switch == "-")]
                labels = sub["run"]
            if sub.empty:
                ax.set_visible(False)
                continue
            bars = ax.bar(
                labels,
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
    save_figure(fig, path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", metavar="JSON", help="one Measurement, as JSON: print its row as JSON")
    parser.add_argument("--ga", action="store_true", help="Genetic Attention against the feature-map size")
    parser.add_argument("--config", action="append", help="config file (repeatable)")
    parser.add_argument("--task")
    parser.add_argument("--out")
    parser.add_argument("--figure")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    if args.one:  # one measurement, in a process of its own
        print(json.dumps(measure(dataclass_from(Measurement, json.loads(args.one), "--one"))))
        return
    if args.ga:
        if not args.out:
            parser.error("--out is required")
        table = run_ga(threads=args.threads)
        from hkt.io import atomic_path

        with atomic_path(args.out) as tmp:
            table.to_csv(tmp, index=False)
        if args.figure:
            ga_figure(table, args.figure)
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
