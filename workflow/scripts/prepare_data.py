"""Prepare one dataset (download + verify + extract, or generate) and write its manifest last."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

import importlib

pipeline = importlib.import_module(f"hkt.tasks.{snakemake.params.task}.pipeline")
pipeline.prepare_data(snakemake.params.data)
