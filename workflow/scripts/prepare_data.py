"""Prepare one part of a data root (verify + extract what the local download rules fetched, check
a layout placed by hand, or generate), offline; its record is written last."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.pipeline import prepare_data

prepare_data(snakemake.params.spec, snakemake.output.record, allow_network=False)
