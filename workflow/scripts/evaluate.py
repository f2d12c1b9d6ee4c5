"""Score the parent and every deployed child on the test split; write the long-format CSV."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.pipeline import evaluate

evaluate(snakemake.params.spec, snakemake.params.models, snakemake.output.metrics, threads=snakemake.threads)
