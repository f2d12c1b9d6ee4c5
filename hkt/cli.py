"""Command-line entry for one training job, and its launcher.

    python -m hkt.cli train --config CFG.json --task cifar10 --method hkt --variant default \
        --seed 0 --out results/runs/... [--parent P] [--init I] [--threads N]
    python -m hkt.cli parent --config CFG.json --task cifar10 --out results/runs/cifar10/parent

The workflow calls `launch`: a single process runs in the calling interpreter; several
processes (data parallelism over the GPUs of one job, or gloo processes on a CPU) run this
module under torchrun, which sets up torch.distributed for each of them.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

from hkt import signals
from hkt.signals import PREEMPTED_EXIT_CODE, Preempted


def run(kind: str, cfg: dict, task: str, out: str, *, method: str | None = None, variant: str | None = None,
        seed: int | None = None, parent: str | None = None, init: str | None = None, threads: int = 1) -> None:
    pipeline = importlib.import_module(f"hkt.tasks.{task}.pipeline")
    if kind == "parent":
        pipeline.obtain_parent(cfg, out, threads=threads)
    else:
        pipeline.train_run(cfg, method, variant, seed, out, parent_path=parent, init_path=init, threads=threads)


def launch(kind: str, cfg: dict, task: str, out: str, *, processes: int = 1, **job) -> int:
    """Run one job; return its exit code (PREEMPTED_EXIT_CODE after a pre-emption checkpoint)."""
    if processes == 1:
        try:
            run(kind, cfg, task, out, **job)
        except Preempted as stop:
            print(stop, flush=True)
            return PREEMPTED_EXIT_CODE
        return 0
    from hkt.io import atomic_write_json

    config_file = Path(out) / "job-config.json"
    atomic_write_json(config_file, cfg)
    args = [f"--{k}={v}" for k, v in job.items() if v is not None]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "hkt.cli", kind, f"--config={config_file}", f"--task={task}", f"--out={out}", *args]
    print("launching", " ".join(command), flush=True)
    return subprocess.call(command)


def main(argv=None) -> int:
    signals.catch()  # before torch is imported: a pre-timeout warning during start-up is kept
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["train", "parent"])
    parser.add_argument("--config", required=True, help="resolved configuration as JSON")
    parser.add_argument("--task", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--method")
    parser.add_argument("--variant")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--parent")
    parser.add_argument("--init")
    parser.add_argument("--threads", type=int, default=1)
    a = parser.parse_args(argv)
    cfg = json.loads(Path(a.config).read_text())
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch
        import torch.distributed as dist

        dist.init_process_group("nccl" if cfg["device"] != "cpu" and torch.cuda.is_available() else "gloo")
    try:
        run(a.kind, cfg, a.task, a.out, method=a.method, variant=a.variant,
            seed=a.seed, parent=a.parent, init=a.init, threads=a.threads)
    except Preempted as stop:
        print(stop, flush=True)
        return PREEMPTED_EXIT_CODE
    finally:
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
