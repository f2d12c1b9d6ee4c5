"""Prepare one task's data (download + verify + extract, or generate); its record is written last."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.pipeline import prepare_data

prepare_data(snakemake.params.spec, snakemake.output.record)
