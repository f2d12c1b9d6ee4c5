"""Build results/report.html from every task's tables, figures and metrics."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.html_report import build

build(
    snakemake.params.tasks,
    snakemake.input.register,
    snakemake.output[0],
    title="HKT replication suite: results beside the paper",
)
