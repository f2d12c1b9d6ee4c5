"""Download one published checkpoint named in data/MANIFEST.yaml and verify its checksum."""

import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from hkt.pipeline import published_checkpoint

published_checkpoint(*snakemake.params.entry, allow_network=True, mirrors=snakemake.config.get("mirrors"))
