"""Obtain the task's parent: a verified published checkpoint, or trained with the child-alone loss."""
import sys

from hkt import signals

signals.catch()  # first: SLURM's pre-timeout warning may arrive while the job is still starting
sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)

from hkt.cli import launch

sys.exit(launch("parent", snakemake.config, snakemake.wildcards.task, snakemake.output.ckpt.rsplit("/", 1)[0],
                processes=snakemake.params.processes, threads=snakemake.threads))
