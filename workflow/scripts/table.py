"""Table 2 beside the paper (CSV, Markdown, LaTeX) and the method comparisons."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.tasks.cifar10 import tables

out = snakemake.output
tables.table2(snakemake.config, snakemake.input.metrics, snakemake.input.paper, out.csv, out.md, out.tex,
              out.comparisons)
