"""Benchmark: wall time of one training step for child-alone, KD and HKT, and their ratios.

    python -m hkt.bench --config config/config.yaml --config config/paper.yaml \
        --out results/bench/cifar10_train_step.csv --figure results/bench/cifar10_train_step.png

For each configuration the child/parent architectures, resolution and batch size are those of
its CIFAR-10 task; weights are randomly initialised (step time does not depend on them) and the
batch is a fixed random tensor, so only the optimisation step is timed: forward passes, loss,
backward, optimiser update, CUDA-synchronised, after warm-up steps. All methods of one
configuration are measured in the same process, one after another, so their ratios compare
like with like.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from hkt import config as C
from hkt.methods import load_method, make_params
from hkt.runmeta import device_name, git_commit, pick_device
from hkt.tasks.cifar10 import TASK

METHODS = ("alone/default", "kd/default", "hkt/default")


def step_times(cfg: dict, run: str, *, steps: int, warmup: int, device: torch.device) -> list[float]:
    method, variant = run.split("/")
    spec = C.run_specs(cfg, "cifar10", method, variant, 0)[-1]
    task_cfg = cfg["tasks"]["cifar10"]
    module = load_method(spec["module"])
    params = make_params(module, spec["params"])
    torch.manual_seed(0)
    child = TASK.build_model(task_cfg["child"]["arch"])
    parent = TASK.build_model(task_cfg["parent"]["arch"]) if module.NEEDS_PARENT else None
    res, batch = task_cfg["data"]["resolution"], spec["schedule"]["batch_size"]
    x = torch.randn(batch, 3, res, res, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    objective = module.build(child, parent, TASK, params, x[:2].cpu()).to(device).train()
    optimizer = torch.optim.SGD([p for p in objective.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    for i in range(warmup + steps):
        sync()
        start = time.perf_counter()
        loss, _ = objective.loss(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def run(config_paths: list[str], *, steps: int, warmup: int, threads: int) -> pd.DataFrame:
    torch.set_num_threads(threads)
    rows, commit = [], git_commit()
    for path in config_paths:
        cfg = C.validate(C.load(path))
        device = pick_device(cfg["device"])
        task_cfg = cfg["tasks"]["cifar10"]
        medians = {}
        for name in METHODS:
            times = step_times(cfg, name, steps=steps, warmup=warmup, device=device)
            q = statistics.quantiles(times, n=4)
            medians[name] = statistics.median(times)
            rows.append(
                {
                    "config": Path(path).name,
                    "scale": cfg["scale"],
                    "method": name,
                    "child": task_cfg["child"]["arch"],
                    "parent": task_cfg["parent"]["arch"],
                    "resolution": task_cfg["data"]["resolution"],
                    "batch_size": task_cfg["child"]["train"]["batch_size"],
                    "median_ms": 1000 * medians[name],
                    "q1_ms": 1000 * q[0],
                    "q3_ms": 1000 * q[2],
                    "steps": steps,
                    "warmup": warmup,
                    "device": device_name(device),
                    "torch": torch.__version__,
                    "commit": commit,
                }
            )
        for row in rows[-len(METHODS) :]:
            row["ratio_to_alone"] = medians[row["method"]] / medians["alone/default"]
            row["ratio_to_kd"] = medians[row["method"]] / medians["kd/default"]
    return pd.DataFrame(rows)


def figure(table: pd.DataFrame, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hkt.io import atomic_path

    configs = list(dict.fromkeys(table["config"]))
    fig, axes = plt.subplots(1, len(configs), figsize=(5 * len(configs), 4), squeeze=False)
    for ax, name in zip(axes[0], configs, strict=True):
        sub = table[table.config == name]
        bars = ax.bar(
            sub["method"],
            sub["median_ms"],
            yerr=[sub["median_ms"] - sub["q1_ms"], sub["q3_ms"] - sub["median_ms"]],
            capsize=4,
        )
        for bar, ratio in zip(bars, sub["ratio_to_alone"], strict=True):
            ax.annotate(
                f"{ratio:.2f}x",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
                xytext=(0, 3),
                textcoords="offset points",
            )
        first = sub.iloc[0]
        ax.set(
            title=f"{name}: {first.child} child, {first.parent} parent\n{first.resolution}px, batch {first.batch_size}",
            ylabel="ms per training step (median, IQR)",
        )
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle(f"Training step time on {table['device'].iloc[0]}", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", action="append", required=True, help="config file (repeatable)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--figure")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    table = run(args.config, steps=args.steps, warmup=args.warmup, threads=args.threads)
    from hkt.io import atomic_path

    with atomic_path(args.out) as tmp:
        table.to_csv(tmp, index=False)
    if args.figure:
        figure(table, args.figure)
    print(table[["config", "method", "median_ms", "ratio_to_alone", "ratio_to_kd"]].to_string(index=False))


if __name__ == "__main__":
    main()
