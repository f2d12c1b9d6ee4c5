# HKT replication suite: the DAG.
#   snakemake --cores all                   embedded default (smoke scale, offline, minutes)
#   snakemake --cores all --profile slurm   paper scale on a SLURM GPU cluster
# The configuration is validated (schema + method parameters) before any job is scheduled.

# --configfile REPLACES the default rather than being merged over it: a key missing from a
# paper-scale file must fail validation, never silently keep its smoke-scale value.
# Single values are overridden with --config key=value.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        final_targets(),
    default_target: True
