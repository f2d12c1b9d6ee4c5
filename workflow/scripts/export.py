"""Write one export (hkt.tasks.Task.exports) of one deployed model."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.pipeline import export

export(
    snakemake.params.spec,
    snakemake.wildcards.name,
    snakemake.params.model_dir,
    snakemake.params.current,
    snakemake.output[0],
    threads=snakemake.threads,
)
