"""Fetch one file of the network that a data job reads, and verify it (a local rule)."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.pipeline import fetch

fetch(snakemake.params.download, mirrors=snakemake.config.get("mirrors"))  # not a param: a mirror reruns nothing
