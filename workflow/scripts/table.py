"""One table of a task (named in tasks.<task>.report.tables), as CSV, Markdown and LaTeX."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.tasks import report_input

inp, task = report_input(snakemake.params.spec, snakemake.input.metrics, snakemake.input.paper)
task.tables[snakemake.wildcards.name](inp, {ext: snakemake.output[ext] for ext in ("csv", "md", "tex")})
