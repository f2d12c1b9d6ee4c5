"""Command-line entry for one training job (a stage of a run or of the parent), and its launcher.

    python -m hkt.launch --spec SPEC.json --out results/runs/... [--parent P] [--init DIR] [--threads N]

SPEC.json is the job's resolved specification (hkt.config.run_specs / parent_specs): the job
reads nothing else. The workflow calls `launch`: a single process runs in the calling
interpreter; several processes (data parallelism over the GPUs of one job, or gloo processes
on a CPU) run this module under torchrun, which sets up torch.distributed for each of them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from hkt import signals
from hkt.signals import PREEMPTED_EXIT_CODE, Preempted


def run(spec: dict, out: str, *, parent: str | None = None, init: str | None = None, threads: int = 1) -> None:
    from hkt import pipeline

    if spec["role"] == "parent":
        pipeline.obtain_parent(spec, out, init_path=init, threads=threads)
    else:
        pipeline.train_stage(spec, out, parent_path=parent, init_path=init, threads=threads)


def launch(spec: dict, out: str, *, processes: int = 1, **job) -> int:
    """Run one job; return its exit code (PREEMPTED_EXIT_CODE after a pre-emption checkpoint)."""
    if processes == 1:
        try:
            run(spec, out, **job)
        except Preempted as stop:
            print(stop, flush=True)
            return PREEMPTED_EXIT_CODE
        return 0
    from hkt.io import atomic_write_json

    spec_file = Path(out) / "job-spec.json"
    atomic_write_json(spec_file, spec)
    args = [f"--{k}={v}" for k, v in job.items() if v is not None]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        "-m",
        "hkt.launch",
        f"--spec={spec_file}",
        f"--out={out}",
        *args,
    ]
    print("launching", " ".join(command), flush=True)
    return subprocess.call(command)


def main(argv=None) -> int:
    signals.catch()  # before torch is imported: a pre-timeout warning during start-up is kept
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="the job's resolved specification as JSON")
    parser.add_argument("--out", required=True)
    parser.add_argument("--parent")
    parser.add_argument("--init")
    parser.add_argument("--threads", type=int, default=1)
    a = parser.parse_args(argv)
    spec = json.loads(Path(a.spec).read_text())
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        import torch
        import torch.distributed as dist

        dist.init_process_group("nccl" if spec["device"] != "cpu" and torch.cuda.is_available() else "gloo")
    try:
        run(spec, a.out, parent=a.parent, init=a.init, threads=a.threads)
    except Preempted as stop:
        print(stop, flush=True)
        return PREEMPTED_EXIT_CODE
    finally:
        if distributed:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
