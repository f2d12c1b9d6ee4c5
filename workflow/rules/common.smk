# Configuration check, the resolved job specifications and the small input functions that the
# other rule files share. Nothing here names a task; every task is a package plus a config block.
import os
import re
import sys
from functools import lru_cache

sys.path.insert(0, workflow.basedir)  # the suite runs from its checkout, installed or not

from hkt import config as C
from hkt.conventions import PAPER_CLAIMS, WEIGHTS

# Validated where the DAG is planned; a cluster job's own Snakemake (`--mode remote`, twice per SLURM
# job) reads the same configuration and skips it: every method and task package imported and
# every architecture built again cost each job seconds of its start.
if not workflow.remote_exec:
    try:
        C.validate(config)
    except ValueError as err:
        raise WorkflowError(f"invalid configuration: {err}") from None

RUNS = "results/runs"
# the configuration file the DAG runs on (the last --configfile, else the default), for the commands
# that read a block's task package and controls from it (`hkt compare`, `hkt freeze`)
CONFIG_FILE = (workflow.configfiles or ["config/config.yaml"])[-1]
SEEDS = config["seeds"]
MANIFEST = C.manifest_for(config)


wildcard_constraints:
    task="[a-z0-9-]+",
    dataroot="[A-Za-z0-9_.-]+",
    part="[a-z0-9_]+",
    method="[A-Za-z0-9_]+",
    variant="[A-Za-z0-9_.-]+",
    seed="[0-9]+",
    stage="[A-Za-z0-9_.-]+",
    name="[A-Za-z0-9_]+",


# Figures that run models (flow's Figure 4, LiTS's overlays) may need more than a plotting job:
# tasks.<task>.resources.figure, optional; plotting-only figures keep these defaults.
FIGURE_RESOURCES = {"threads": 1, "mem_mb": 2000, "runtime": 10, "gpus": 0}


# Scheduling. Among the jobs ready to run, Snakemake starts those of higher priority first. Jobs
# that others wait on go first (data, the parent's stages, the child alone that `init: child` runs
# start from, a run's earlier stages), so that the long chains start at once; then a task's
# evaluation, exports, tables and figures, so that a task whose runs are trained reports while
# others still train; then the other runs, task by task in the config's order, so that the tasks
# finish one after another and only the last task's report is left when training ends. Without
# these, every task's report waited for the last training job and the default DAG's last
# 100 seconds ran one job at a time on a 2-core machine.
PRIORITY_CHAIN_HEAD = 2000
PRIORITY_REPORT = 1000
TASK_ORDER = {task: k for k, task in enumerate(config["tasks"])}


def run_priority(w):
    """train_run's priority: the child alone heads the chains of the runs that start from it."""
    if (w.method, w.variant) == C.CHILD_RUN:
        return PRIORITY_CHAIN_HEAD
    return PRIORITY_REPORT - 1 - TASK_ORDER[w.task]


def job(task, kind, key):
    """A job's resource from the config (tasks.<task>.resources.<kind>.<key>), for rule settings."""
    block = config["tasks"][task]["resources"]
    if kind == "figure" and kind not in block:
        return FIGURE_RESOURCES[key]
    return block[kind][key]


def plotting_resources():
    """Tables and the report page: a CPU, minutes; on a SLURM site, its CPU partition."""
    resources = {"runtime": 10, "mem_mb": 2000}
    if config.get("cluster"):
        resources["slurm_partition"] = config["cluster"]["cpu_partition"]
    return resources


def job_resources(kind, task=lambda w: w.task):
    """Keyword arguments for `resources:`, read per job so that every task brings its own."""
    resources = {
        "mem_mb": lambda w: job(task(w), kind, "mem_mb"),
        "runtime": lambda w: job(task(w), kind, "runtime"),
        "gpu": lambda w: job(task(w), kind, "gpus"),  # SLURM --gpus; caps GPU jobs locally with --resources gpu=N
    }
    if config.get("cluster"):  # a SLURM site's partitions (GPU jobs apart) and GPU memory classes
        resources["slurm_partition"] = lambda w: C.slurm_partition(config, task(w), kind, job(task(w), kind, "gpus"))
        resources["constraint"] = lambda w: C.gpu_constraint(
            config, config["tasks"][task(w)]["resources"].get(kind, {}).get("gpu_mem_mb"), job(task(w), kind, "gpus")
        )
    if kind in ("parent", "train") and config["preempt_signal_seconds"]:
        # Pre-timeout warning: the trainer checkpoints on SIGURG and exits; a retry resumes.
        resources["slurm_extra"] = f"--signal=URG@{config['preempt_signal_seconds']}"
    return resources


# ---------------------------------------------------------------------------------------------
# Specifications (hkt.config) and where each job writes
# ---------------------------------------------------------------------------------------------
@lru_cache(maxsize=None)
def parent_specs(task):
    return C.parent_specs(config, task, MANIFEST)


@lru_cache(maxsize=None)
def run_specs(task, method, variant, seed):
    return C.run_specs(config, task, method, variant, int(seed), MANIFEST)


@lru_cache(maxsize=None)
def data_jobs():
    """(data root key, part) -> the specification of the job that prepares it (hkt.config.data_jobs)."""
    return C.data_jobs(config)


def data_job(w):
    return data_jobs()[(w.dataroot, w.part)]


def job_downloads(spec):
    """The files of the network a data job reads (hkt.tasks.Task.downloads)."""
    task = C.get_task(spec["task"], spec.get("task_module"))
    return [] if task.downloads is None else task.downloads(C.task_config(task, spec["data"], "data"), spec["part"])


def data_downloads(w):
    return [d.path for d in job_downloads(data_job(w))]


def all_downloads():
    """Every file of the network that some data job reads, once, by its place on disk."""
    return {d.path: d for spec in data_jobs().values() for d in job_downloads(spec)}


def data_record(task):
    """The records of the data jobs a block reads: one per part of its root, shared by the blocks
    that read the same root (the three flow regimes fetch and extract FlyingChairs once)."""
    key = C.data_root_key(config, task)
    return [f"results/data/{key}/{part}.json" for part in C.data_parts(config, task)]


def model_dir(base, specs, stage=None):
    """The final stage writes into `base`; an earlier stage into `base/stage-<name>`."""
    return base if stage in (None, specs[-1]["stage"]) else f"{base}/stage-{stage}"


def stage_spec(specs, stage=None):
    if stage is None:
        return specs[-1]
    for spec in specs:
        if spec["stage"] == stage:
            return spec
    raise WorkflowError(f"no stage {stage!r}; the stages are {[s['stage'] for s in specs]}")


def parent_dir(task, stage=None):
    return model_dir(f"{RUNS}/{task}/parent", parent_specs(task), stage)


def run_dir(task, method, variant, seed, stage=None):
    return model_dir(f"{RUNS}/{task}/{method}/{variant}/seed{seed}", run_specs(task, method, variant, seed), stage)


def task_runs(task):
    """(method, variant, seed) of every run the config lists for `task`."""
    return [(m, v, s) for m, v in C.runs(config, task) for s in SEEDS]


def final_models(task):
    """(method, variant, seed) -> (model directory, current specification) of every evaluated model."""
    parent = parent_specs(task)[-1]
    models = {("parent", "default", parent["seed"]): (parent_dir(task), parent)}
    models.update({(m, v, s): (run_dir(task, m, v, s), run_specs(task, m, v, s)[-1]) for m, v, s in task_runs(task)})
    return dict(sorted(models.items()))  # params compare by repr: the order of `runs` must not matter


def report_targets(task):
    block = config["tasks"][task]["report"]
    return [f"results/tables/{task}/{name}.{ext}" for name in block["tables"] for ext in ("csv", "md", "tex")] + [
        f"figures/{task}_{name}.png" for name in block["figures"]]


def export_targets(task):
    exports = config["tasks"][task]["report"].get("exports") or {}
    return [f"results/exports/{task}/{name}/{run}/seed{SEEDS[0]}" for name, runs in exports.items() for run in runs]


def export_model(w):
    """(weights file, model directory, current specification) of the model an export reads."""
    model_dir, spec = final_models(w.task)[(w.method, w.variant, int(w.seed))]
    return f"{model_dir}/{WEIGHTS[spec['role']]}", model_dir, spec


def final_targets():
    targets = []
    for task in config["tasks"]:
        targets += [f"results/{task}/metrics.csv", *report_targets(task), *export_targets(task)]
    return [*targets, "results/report.html"]


# ---------------------------------------------------------------------------------------------
# Inputs and parameters of the data and training jobs
# ---------------------------------------------------------------------------------------------
def manifest_entry(place_at):
    """The data/MANIFEST.yaml checkpoint entry stored at `place_at`."""
    for name, entry in MANIFEST["checkpoints"].items():
        if entry.get("place_at") == place_at:
            return name, entry
    raise WorkflowError(f"{place_at} is not the place_at of any checkpoint in data/MANIFEST.yaml")


def parent_inputs(w):
    specs = parent_specs(w.task)
    spec = stage_spec(specs, w.get("stage"))
    inputs = {"data": data_record(w.task)}
    if spec["source"] == "published":
        inputs["published"] = spec["checkpoint"]["place_at"]
    k = specs.index(spec)
    if k > 0:
        inputs["init"] = f"{parent_dir(w.task, specs[k - 1]['stage'])}/method.pt"
    return inputs


def run_inputs(w):
    specs = run_specs(w.task, w.method, w.variant, w.seed)
    spec = stage_spec(specs, w.get("stage"))
    inputs = {"data": data_record(w.task)}
    if spec["needs_parent"]:
        inputs["parent"] = f"{parent_dir(w.task)}/parent.pt"
    k = specs.index(spec)
    if k > 0:
        inputs["init"] = f"{run_dir(w.task, w.method, w.variant, w.seed, specs[k - 1]['stage'])}/method.pt"
    elif spec["init"] == "child":
        inputs["init"] = f"{run_dir(w.task, *C.CHILD_RUN, w.seed)}/child.pt"
    return inputs


def parent_spec_param(w):
    return stage_spec(parent_specs(w.task), w.get("stage"))


def run_spec_param(w):
    return stage_spec(run_specs(w.task, w.method, w.variant, w.seed), w.get("stage"))


PARENT = f"{RUNS}/{{task}}/parent"
RUN = f"{RUNS}/{{task}}/{{method}}/{{variant}}/seed{{seed}}"
