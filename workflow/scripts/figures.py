"""Learning curves and accuracy-vs-parameters figures."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.tasks.cifar10 import tables

tables.figures(snakemake.config, snakemake.input.metrics, snakemake.params.runs, snakemake.output.curves,
               snakemake.output.scatter)
