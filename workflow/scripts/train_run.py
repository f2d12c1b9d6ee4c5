"""Train one (method, variant, seed) run; resumes from its checkpoint if one exists."""
import sys

from hkt import signals

signals.catch()  # first: SLURM's pre-timeout warning may arrive while the job is still starting
sys.stdout = sys.stderr = open(snakemake.log[0], "a", buffering=1)

from hkt.cli import launch

w = snakemake.wildcards
sys.exit(launch("train", snakemake.config, w.task, snakemake.output.ckpt.rsplit("/", 1)[0],
                processes=snakemake.params.processes, method=w.method, variant=w.variant, seed=int(w.seed),
                parent=snakemake.input.get("parent"), init=snakemake.input.get("init"), threads=snakemake.threads))
