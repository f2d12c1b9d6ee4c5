"""The task is the unit of extension, and a changed recipe reruns exactly what it changes.

A toy task (tests/toytask: two-image inputs, regression, lower is better, two training stages)
runs through the whole DAG with a config that holds no CIFAR block, registered only through
its config entry. The dry runs then check Snakemake's provenance: a changed value reruns the
jobs whose specification it enters and everything downstream of them, and nothing else.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import REPO, planned_jobs, workflow_copy

pytestmark = pytest.mark.slow
TOY = REPO / "tests" / "toytask"


def snakemake(work, *args, timeout=900):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def toy_dag(tmp_path_factory):
    work = workflow_copy(tmp_path_factory.mktemp("toy"))
    shutil.copy(TOY / "config.yaml", work / "config" / "config.yaml")
    out = snakemake(work)
    assert out.returncode == 0, out.stderr[-5000:]
    return work


def scheduled(work, config: dict) -> list[str]:
    """Jobs a dry run would start with this config: 'rule:wildcards' strings."""
    path = work / "changed.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    out = snakemake(work, "-n", "--configfile", str(path))
    assert out.returncode == 0, out.stderr[-3000:]
    return sorted(f"{j.rule}:{j.wildcards}" for j in planned_jobs(out.stdout) if j.wildcards)


def toy_config() -> dict:
    return yaml.safe_load((TOY / "config.yaml").read_text())


def test_a_task_from_outside_hkt_runs_through_the_dag_with_no_cifar_in_the_config(toy_dag):
    metrics = pd.read_csv(toy_dag / "results" / "toy" / "metrics.csv")
    assert set(metrics.task) == {"toy"}
    assert set(metrics.method + "/" + metrics.variant) == {
        "parent/default",
        "alone/default",
        "alone/finetune",
        "hkt/default",
        "hkt/no_ga",
    }
    for ext in ("csv", "md", "tex"):
        assert (toy_dag / "results" / "tables" / "toy" / f"summary.{ext}").stat().st_size > 0
        assert (toy_dag / "results" / "tables" / "toy" / f"comparisons.{ext}").stat().st_size > 0
    assert (toy_dag / "figures" / "toy_mse.png").read_bytes()[:4] == b"\x89PNG"
    assert not (toy_dag / "results" / "cifar10").exists()


def test_every_stage_starts_from_the_previous_one_and_the_child_learns(toy_dag):
    run = toy_dag / "results" / "runs" / "toy" / "alone" / "default" / "seed0"
    coarse, fine = (json.loads(p.read_text()) for p in (run / "stage-coarse" / "meta.json", run / "meta.json"))
    assert coarse["spec"]["stage"] == "coarse" and fine["spec"]["stage"] == "fine"
    assert coarse["spec"]["data"]["noise"] == 0.0 and fine["spec"]["data"]["noise"] == 0.05
    assert fine["spec"]["upstream"] == {"previous_stage": coarse["config_hash"]}
    assert (run / "stage-coarse" / "method.pt").exists() and not (run / "method.pt").exists()
    assert pd.read_csv(run / "curve.csv")["step"].max() == 40  # the second stage's own schedule
    metrics = pd.read_csv(toy_dag / "results" / "toy" / "metrics.csv")
    test = metrics[(metrics.metric == "mse") & (metrics.split == "test")].groupby(["method", "variant"])["value"].mean()
    # predicting the mean target has MSE = mean variance of (gain, offset), both uniform on width 1
    # and 2: (1/12 + 4/12) / 2 = 0.21
    assert (test < 0.05).all(), test


def test_selection_follows_the_task_direction_lowest_validation_mse(toy_dag):
    run = toy_dag / "results" / "runs" / "toy" / "hkt" / "default" / "seed1"
    curve = pd.read_csv(run / "curve.csv")
    meta = json.loads((run / "meta.json").read_text())
    assert meta["selected"]["mse"] == pytest.approx(curve["val_mse"].min())


def test_an_unchanged_config_and_a_reordered_reformatted_one_rerun_nothing(toy_dag):
    assert scheduled(toy_dag, toy_config()) == []
    reordered = toy_config()
    task = reordered["tasks"]["toy"]
    task["data"] = dict(reversed(list(task["data"].items())))
    task["child"] = {"finetune": task["child"]["finetune"], "arch": "small", "train": task["child"]["train"]}
    reordered["methods"] = dict(reversed(list(reordered["methods"].items())))
    assert scheduled(toy_dag, reordered) == []


def test_a_changed_finetune_rate_reruns_the_finetuned_runs_only(toy_dag):
    cfg = toy_config()
    cfg["tasks"]["toy"]["child"]["finetune"]["lr"] = 0.002
    trained = [j for j in scheduled(toy_dag, cfg) if j.startswith("train")]
    assert trained == sorted(
        f"train_run:task=toy, method={m}, variant={v}, seed={s}"
        for m, v in (("alone", "finetune"), ("hkt", "default"), ("hkt", "no_ga"))
        for s in (0, 1)
    )


def test_a_changed_variant_parameter_reruns_exactly_that_variants_seeds(toy_dag):
    cfg = toy_config()
    cfg["methods"]["hkt"]["variants"]["no_ga"] = {"params": {"mixture": "add", "lambda": 0.3}}
    jobs = scheduled(toy_dag, cfg)
    assert [j for j in jobs if j.startswith("train")] == [
        f"train_run:task=toy, method=hkt, variant=no_ga, seed={s}" for s in (0, 1)
    ]
    assert "evaluate:task=toy" in jobs and "table:task=toy, name=summary" in jobs


def test_a_changed_first_stage_reruns_both_stages_and_everything_downstream_but_not_the_parent(toy_dag):
    cfg = toy_config()
    cfg["tasks"]["toy"]["child"]["train"][0]["steps"] = 50
    trained = {j.split(":")[0] + ":" + j.split("method=")[1] for j in scheduled(toy_dag, cfg) if j.startswith("train")}
    assert trained == {
        "train_run_stage:alone, variant=default, seed=0, stage=coarse",
        "train_run_stage:alone, variant=default, seed=1, stage=coarse",
        *(
            f"train_run:{r}, seed={s}"
            for r in ("alone, variant=default", "alone, variant=finetune", "hkt, variant=default", "hkt, variant=no_ga")
            for s in (0, 1)
        ),
    }


def test_evaluation_refuses_a_model_trained_with_another_specification_naming_the_key(toy_dag, tmp_path):
    work = shutil.copytree(toy_dag, tmp_path / "w")  # modification times kept
    cfg = toy_config()
    cfg["methods"]["hkt"]["variants"]["no_ga"] = {"params": {"mixture": "add", "lambda": 0.3}}
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    # only modification times count, so the stale runs are not retrained; evaluation is forced
    out = snakemake(work, "--rerun-triggers", "mtime", "--forcerun", "evaluate")
    assert out.returncode != 0
    log = (work / "logs" / "toy" / "evaluate.log").read_text()
    assert re.search(r"toy hkt/no_ga seed 0 .* was trained with another specification .*changed: params\.lam\b", log)


STAGE_DRIVER = """
import os, signal, sys, yaml
from hkt import signals
signals.catch()
from hkt import config as C, pipeline
from hkt.signals import PREEMPTED_EXIT_CODE, Preempted
cfg, out, init, stop_at = yaml.safe_load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
coarse, fine = C.run_specs(cfg, "toy", "alone", "default", 0)

def log(msg):
    if f"step={stop_at} " in msg:
        os.kill(os.getpid(), signal.SIGURG)

try:
    pipeline.train_stage(fine, out, init_path=init, log=log)
except Preempted as stop:
    print(stop)
    sys.exit(PREEMPTED_EXIT_CODE)
"""


def test_a_later_stage_stopped_by_the_pre_timeout_signal_resumes_and_ends_as_in_one_go(toy_dag, tmp_path):
    import torch

    work = shutil.copytree(toy_dag, tmp_path / "w")
    run = work / "results" / "runs" / "toy" / "alone" / "default" / "seed0"
    out = tmp_path / "fine"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]))

    def drive(stop_at):
        return subprocess.run(
            [
                sys.executable,
                "-c",
                STAGE_DRIVER,
                str(TOY / "config.yaml"),
                str(out),
                str(run / "stage-coarse"),
                str(stop_at),
            ],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    stopped = drive(20)
    assert stopped.returncode == 75, stopped.stderr[-3000:]
    assert (out / "checkpoint.pt").exists() and not (out / "child.pt").exists()
    assert drive("none").returncode == 0
    resumed = torch.load(out / "child.pt", weights_only=True)["state_dict"]
    whole = torch.load(run / "child.pt", weights_only=True)["state_dict"]  # the DAG's uninterrupted stage
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)
