"""Score the parent and every deployed child on the test split; write the long-format CSV."""
import importlib
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

task = snakemake.wildcards.task
pipeline = importlib.import_module(f"hkt.tasks.{task}.pipeline")
parent_seed = snakemake.config["tasks"][task]["parent"]["seed"]
runs = {("parent", "default", parent_seed): snakemake.params.parent, **snakemake.params.runs}
pipeline.evaluate(snakemake.config, runs, snakemake.output.metrics, threads=snakemake.threads)
