"""Train one stage of a run or of the parent (or take a published parent); resumes from its checkpoint."""

import sys
from pathlib import Path

from hkt import signals

signals.catch()  # first: SLURM's pre-timeout warning may arrive while the job is still starting
sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)

from hkt.launch import launch

init = snakemake.input.get("init")
code = launch(
    snakemake.params.spec,
    str(Path(snakemake.output.weights).parent),
    processes=snakemake.params.processes,
    parent=snakemake.input.get("parent"),
    init=str(Path(init).parent) if init else None,
    threads=snakemake.threads,
)
if code == signals.PREEMPTED_EXIT_CODE:
    signals.requeue_planned_stop()  # a time limit: SLURM restarts this job, no retry is spent
sys.exit(code)
