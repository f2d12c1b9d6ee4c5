"""One figure of a task (named in tasks.<task>.report.figures)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.tasks import report_input

inp, task = report_input(snakemake.params.spec, snakemake.input.metrics, snakemake.input.paper, snakemake.params.models)
task.figures[snakemake.wildcards.name](inp, snakemake.output.figure)
