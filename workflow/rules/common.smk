# Configuration check and the small input functions the other rule files share.
import sys
from pathlib import Path

sys.path.insert(0, workflow.basedir)  # the suite runs from its checkout, installed or not

from hkt import config as C
from hkt.methods import load_method

try:
    C.validate(config)
except ValueError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None

RUNS = "results/runs"
SEEDS = config["seeds"]


wildcard_constraints:
    task="[a-z0-9]+",
    method="[A-Za-z0-9_]+",
    variant="[A-Za-z0-9_.-]+",
    seed="[0-9]+",


def job(task, kind, key):
    """A job's resource from the config (tasks.<task>.resources.<kind>.<key>), for rule settings."""
    return config["tasks"][task]["resources"][kind][key]


def job_resources(kind, task=None):
    """Keyword arguments for `resources:`, read per job so that every task brings its own."""
    pick = (lambda w, key: job(task, kind, key)) if task else (lambda w, key: job(w.task, kind, key))
    resources = {
        "mem_mb": lambda w: pick(w, "mem_mb"),
        "runtime": lambda w: pick(w, "runtime"),
        "gpu": lambda w: pick(w, "gpus"),  # SLURM --gpus; caps GPU jobs locally with --resources gpu=N
    }
    if kind in ("parent", "train") and config["preempt_signal_seconds"]:
        # Pre-timeout warning: the trainer checkpoints on SIGURG and exits; a retry resumes.
        resources["slurm_extra"] = f"--signal=URG@{config['preempt_signal_seconds']}"
    return resources


def data_manifest(task):
    return f"{config['tasks'][task]['data']['root']}/manifest.json"


def parent_dir(task):
    return f"{RUNS}/{task}/parent"


def run_dir(task, method, variant, seed):
    return f"{RUNS}/{task}/{method}/{variant}/seed{seed}"


def run_outputs(task, method, variant, seed):
    d = run_dir(task, method, variant, seed)
    return [f"{d}/child.pt", f"{d}/curve.csv", f"{d}/meta.json"]


def task_runs(task):
    """(method, variant, seed) of every run the config lists for `task`."""
    return [(m, v, s) for m, v in C.runs(config, task) for s in SEEDS]


def final_targets():
    targets = []
    for task in config["tasks"]:
        targets += [f"results/{task}/metrics.csv", *report_targets(task)]
    return targets
