"""Invalid configurations fail before any job runs, naming the key."""

import copy
import subprocess
import sys
from itertools import pairwise

import pytest
import yaml
from conftest import REPO, planned_jobs

from hkt import config as C


@pytest.fixture
def default():
    return C.load(REPO / "config" / "config.yaml")


def test_shipped_configs_are_valid(default):
    C.validate(default)
    C.validate(C.load(REPO / "config" / "paper.yaml"))


def dry_run(*args):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_configfile_replaces_the_default_instead_of_merging_into_it(default, tmp_path):
    # Merged, a key missing from a paper-scale file would silently keep its smoke value.
    out = dry_run("--configfile", "config/paper.yaml")
    assert out.returncode == 0, out.stderr
    assert "hkt/literal_vector_ga/seed2/child.pt" in out.stdout and "results/data/data-cifar10/all.json" in out.stdout
    partial = {k: v for k, v in default.items() if k != "methods"}
    (tmp_path / "partial.yaml").write_text(yaml.safe_dump(partial))
    out = dry_run("--configfile", str(tmp_path / "partial.yaml"))
    assert out.returncode != 0 and "'methods' is a required property" in out.stdout + out.stderr


def mutate(cfg, path, value):
    cfg = copy.deepcopy(cfg)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


BAD = [
    (("methods", "kd", "module"), "baselines.nonexistent", r"methods\.kd\.module: cannot import"),
    (
        ("methods", "inhernet", "arch"),
        "baselines.nowhere:{parent}",
        r"methods\.inhernet\.arch \('baselines\.nowhere:resnet20' for tasks\.cifar10\): .*cannot import",
    ),
    (
        ("methods", "inhernet", "arch"),
        "baselines.inhernet:{parent}@heads=2",
        r"methods\.inhernet\.arch .*give exactly one of budget=<arch> or rank=<fraction>",
    ),
    (
        ("methods", "inhernet", "init"),
        "child",
        r"methods\.inhernet\.arch: a run that deploys its own architecture cannot start from the trained child",
    ),
    (("methods", "inhernet", "schedule"), "long", r"methods\.inhernet\.schedule: 'long' is not one of"),
    (
        ("tasks", "cifar10", "data", "dataset"),
        "cifar100",
        r"tasks\.cifar10\.parent\.arch: 'resnet20' has 10 outputs, but data\.dataset 'cifar100' has 100 classes",
    ),
    (("tasks", "cifar10", "child", "arch"), "cifar1000_resnet8", r"tasks\.cifar10\.child\.arch: unknown CIFAR ResNet"),
    (
        ("tasks", "flow", "report", "exports"),
        {"kitti_tset": ["hkt/default"]},
        r"tasks\.flow\.report\.exports\.kitti_tset: the flow task has no such export; it has \['kitti_test'\]",
    ),
    (("tasks", "flow", "report", "exports"), {"kitti_test": ["hkt/nope"]}, r"exports\.kitti_test\[0\]: 'hkt/nope'"),
    (("tasks", "cifar10", "bench", "runs"), ["alone/default", "dkd/default"], r"bench\.runs\[1\]: 'dkd/default'"),
    (("tasks", "cifar10", "runs"), ["alone/default", "dkd/default"], r"tasks\.cifar10\.runs\[1\]: 'dkd/default'"),
    (
        ("methods", "hkt", "params", "lambda"),
        1.5,
        r"methods\.hkt\.variants\.default\.params: .*lambda must lie in \[0, 1\]",
    ),
    (
        ("methods", "hkt", "params", "alphas"),
        [0.5, 0.3, 0.2],
        r"methods\.hkt\.variants\.default\.params: .*max\(alpha1, alpha3\) <= alpha2",
    ),
    (
        ("methods", "hkt", "params", "stages"),
        3,
        r"methods\.hkt\.variants\.default\.params: stages = 3 exceeds the 2 aligned blocks",
    ),
    (
        ("methods", "hkt", "params", "mixtur"),
        "ga",
        r"methods\.hkt\.variants\.default\.params\.mixtur: unknown parameter",
    ),
    (
        ("methods", "kd", "params", "temperature"),
        -1,
        r"methods\.kd\.variants\.default\.params: temperature must be > 0",
    ),
    (("tasks", "cifar10", "parent", "arch"), "resnet21", r"tasks\.cifar10\.parent\.arch: unknown CIFAR ResNet"),
    (("tasks", "cifar10", "data", "resoluton"), 16, r"config key tasks\.cifar10\.data\.resoluton: unknown parameter"),
    (
        ("tasks", "cifar10", "data", "resolution"),
        64,
        r"config key tasks\.cifar10\.data: resolution must lie in \[8, 32\]",
    ),
    (
        ("tasks", "cifar10", "child", "finetune", "lr"),
        "0.02",
        r"config key tasks\.cifar10\.child\.finetune\.lr: '0\.02' is not of type",
    ),
    (
        ("tasks", "cifar10", "child", "finetune", "optimizer"),
        "lion",
        r"tasks\.cifar10\.child\.finetune\.optimizer: 'lion' is not one of",
    ),
    (
        ("tasks", "cifar10", "report", "tables", "table9"),
        {"paper": "table9"},
        r"tasks\.cifar10\.report\.tables\.table9: the cifar10 task makes no such table",
    ),
    (
        ("tasks", "cifar10", "report", "figures"),
        ["learning_curves", "roc"],
        r"tasks\.cifar10\.report\.figures\[1\]: the cifar10 task makes no figure 'roc'",
    ),
    (
        ("tasks", "cifar10", "module"),
        "no.such.package",
        r"tasks\.cifar10\.module: task 'cifar10': cannot import its package",
    ),
    (("seeds",), [0, 0], r"config key seeds: .*non-unique"),
    (("scale",), "tiny", r"config key scale: 'tiny' is not one of"),
    (
        ("tasks", "cifar10", "parent", "published"),
        "no_such_release",
        r"tasks\.cifar10\.parent\.published: 'no_such_release'",
    ),
    (
        ("tasks", "cifar10", "report", "tables", "table2", "rows"),
        [{"paper": "hkt2", "run": "hkt/no_ga_typo"}],
        r"report\.tables\.table2\.rows\[0\]\.run: 'hkt/no_ga_typo' is not in",
    ),
    (
        ("tasks", "cifar10", "report", "tables", "comparisons", "controls"),
        ["alone/typo"],
        r"report\.tables\.comparisons\.controls\[0\]: 'alone/typo' is not in",
    ),
    (("methods", "alone", "variants", "default", "init"), "child", r"starts from the trained child"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[".".join(p) for p, _, _ in BAD])
def test_invalid_config_names_the_key(default, path, value, message):
    with pytest.raises(ValueError, match=message):
        C.validate(mutate(default, path, value))


def test_snakemake_refuses_an_invalid_config_before_scheduling_any_job(default, tmp_path):
    bad = mutate(default, ("methods", "hkt", "params", "lambda"), 1.5)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    out = dry_run("--configfile", str(tmp_path / "bad.yaml"))
    assert out.returncode != 0
    log = out.stdout + out.stderr
    assert "invalid configuration" in log and "lambda must lie in [0, 1]" in log
    assert "Job stats" not in log  # nothing was scheduled


def test_jobs_that_others_wait_on_start_first_then_a_trained_tasks_report_then_the_runs_task_by_task(default):
    # On 2 cores every task's evaluation, tables and figures used to wait for the last training
    # job of any task, and the default DAG ended with 100 seconds of one job at a time.
    out = dry_run("--forceall")
    assert out.returncode == 0, out.stderr
    jobs = {(j.rule, j.wildcards): j.priority for j in planned_jobs(out.stdout)}
    heads = {
        k: p
        for k, p in jobs.items()
        if k[0] in ("prepare_data", "train_parent", "train_parent_stage", "train_run_stage")
        or "method=alone, variant=default," in k[1]
    }
    report = {k: p for k, p in jobs.items() if k[0] in ("evaluate", "export", "table", "figure", "report_html")}
    runs = {k: p for k, p in jobs.items() if k[0] == "train_run" and k not in heads}
    # data roots, parents, flow's parent stage, flow's alone stages, alone x 3 tasks x 2 seeds
    assert len(heads) == 3 + 3 + 1 + 2 + 6
    assert len(report) == 3 + 1 + 7 + 5 + 1 and len(runs) == 50
    assert min(heads.values()) > max(report.values()) > max(runs.values())
    by_task = [{p for k, p in runs.items() if f"task={task}," in k[1]} for task in default["tasks"]]
    assert all(min(first) > max(later) for first, later in pairwise(by_task)), by_task


def test_run_specs_resolve_the_schedule_and_name_their_upstream_jobs_by_hash(default):
    a = C.run_specs(default, "cifar10", "hkt", "default", 0)
    assert len(a) == 1 and a[0]["stage"] == "main"
    assert C.config_hash(a) != C.config_hash(C.run_specs(default, "cifar10", "hkt", "no_ga", 0))
    assert C.config_hash(a) != C.config_hash(C.run_specs(default, "cifar10", "hkt", "default", 1))
    finetune, train = (default["tasks"]["cifar10"]["child"][k] for k in ("finetune", "train"))
    resolved = a[0]["schedule"]  # init: child; every value resolved, defaults included
    assert {k: resolved[k] for k in finetune} == C.canonical(finetune) and resolved["optimizer"] == "sgd"
    alone = C.run_specs(default, "cifar10", "alone", "default", 0)[0]["schedule"]
    assert {k: alone[k] for k in train} == C.canonical(train)
    assert a[0]["params"]["lam"] == 0.6 and a[0]["params"]["extractor"] == "none"
    assert a[0]["upstream"] == {
        "parent": C.config_hash(C.parent_specs(default, "cifar10")[-1]),
        "init": C.config_hash(C.run_specs(default, "cifar10", "alone", "default", 0)[-1]),
    }


def test_a_list_of_stages_gives_one_specification_per_stage_each_naming_the_one_before(default):
    cfg = copy.deepcopy(default)
    one = cfg["tasks"]["cifar10"]["child"]["train"]
    cfg["tasks"]["cifar10"]["child"]["train"] = [
        {"name": "coarse", "data": {"resolution": 8}, **one},
        {"name": "fine", **one, "lr": 0.01},
    ]
    C.validate(cfg)
    coarse, fine = C.run_specs(cfg, "cifar10", "alone", "default", 0)
    assert (coarse["stage"], fine["stage"]) == ("coarse", "fine") and coarse["stages"] == ["coarse", "fine"]
    assert coarse["data"]["resolution"] == 8 and fine["data"]["resolution"] == 16
    assert fine["schedule"]["lr"] == 0.01 and "name" not in fine["schedule"]
    assert fine["upstream"] == {"previous_stage": C.config_hash(coarse)}
    cfg["tasks"]["cifar10"]["child"]["train"][0]["data"] = {"resolution": 4}
    with pytest.raises(ValueError, match=r"tasks\.cifar10\.child\.train\[0\]\.data: resolution must lie"):
        C.validate(cfg)


def test_writing_a_default_out_changes_no_specification_and_duplicate_stage_names_are_refused(default):
    explicit = copy.deepcopy(default)
    explicit["tasks"]["cifar10"]["child"]["finetune"]["bf16"] = False
    explicit["methods"]["hkt"]["params"]["transfer"] = "conv"
    assert C.run_specs(default, "cifar10", "hkt", "no_ga", 1) == C.run_specs(explicit, "cifar10", "hkt", "no_ga", 1)
    one = default["tasks"]["cifar10"]["child"]["train"]
    twice = mutate(default, ("tasks", "cifar10", "child", "train"), [{"name": "a", **one}, {"name": "a", **one}])
    with pytest.raises(ValueError, match=r"tasks\.cifar10\.child\.train: stage names must be unique"):
        C.validate(twice)


def test_specifications_ignore_key_order(default):
    reordered = copy.deepcopy(default)
    data = reordered["tasks"]["cifar10"]["data"]
    reordered["tasks"]["cifar10"]["data"] = dict(reversed(list(data.items())))
    assert repr(C.run_specs(default, "cifar10", "hkt", "default", 0)) == repr(
        C.run_specs(reordered, "cifar10", "hkt", "default", 0)
    )
    assert repr(C.evaluation_spec(default, "cifar10")) == repr(C.evaluation_spec(reordered, "cifar10"))
