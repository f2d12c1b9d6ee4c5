"""Shared fixtures: a tiny but complete configuration and its generated dataset."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import torch

from hkt import config as C

REPO = Path(__file__).resolve().parents[1]


def tiny_config(data_root: Path) -> dict:
    """The default config shrunk to seconds: 8x8 images, a few dozen steps, one seed."""
    cfg = copy.deepcopy(C.load(REPO / "config" / "config.yaml"))
    cfg["seeds"] = [0]
    t = cfg["tasks"]["cifar10"]
    t["data"].update(
        root=str(data_root),
        val_size=64,
        resolution=8,
        crop_padding=1,
        generated={"n_train": 384, "n_test": 128, "seed": 7},
    )
    small = {"steps": 12, "batch_size": 32, "lr": 0.05, "warmup_steps": 0, "eval_every": 4, "checkpoint_every": 4}
    for schedule in (t["parent"]["train"], t["child"]["train"], t["child"]["finetune"]):
        schedule.update(small)
    t["evaluation"]["timing"] = {"batch_size": 16, "warmup": 1, "repeats": 2}
    return C.validate(cfg)


class PlannedJob(NamedTuple):
    rule: str
    wildcards: str  # as Snakemake prints them ("task=flow, method=hkt, ..."); "" for none
    priority: int  # 0 where Snakemake prints none (it prints only non-zero ones)


def planned_jobs(dry_run_stdout: str) -> list[PlannedJob]:
    """Every job a Snakemake dry run (`-n`) prints, in its order."""
    jobs = []
    for header in re.finditer(r"^(?:local)?rule (\w+):\n((?:    .*\n?)*)", dry_run_stdout, re.M):
        fields = dict(re.findall(r"^    (\w+): (.*)$", header.group(2), re.M))
        jobs.append(PlannedJob(header.group(1), fields.get("wildcards", ""), int(fields.get("priority", 0))))
    return jobs


def quiet(message):
    pass


def run_spec(cfg: dict, method: str, variant: str, seed: int = 0, task: str = "cifar10", manifest=None) -> dict:
    """The final stage's specification of a run, as the workflow hands it to its job."""
    return C.run_specs(cfg, task, method, variant, seed, manifest)[-1]


def parent_spec(cfg: dict, task: str = "cifar10", manifest=None) -> dict:
    return C.parent_specs(cfg, task, manifest)[-1]


def train_run(cfg: dict, method: str, variant: str, seed: int, out, *, parent=None, init=None, **kw):
    """Train a run's (only) stage as the workflow's job would; `init` is the child-alone run's directory."""
    from hkt import pipeline

    return pipeline.train_stage(
        run_spec(cfg, method, variant, seed), out, parent_path=parent, init_path=init, log=quiet, **kw
    )


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from hkt import pipeline

    root = tmp_path_factory.mktemp("data") / "cifar10-generated"
    pipeline.prepare_data(C.data_spec(tiny_config(root), "cifar10"), root.parent / "record.json")
    return root


@pytest.fixture
def cfg(tiny_data) -> dict:
    return tiny_config(tiny_data)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_data):
    """A tiny parent and child-alone run shared by the tests below: (config, its file, the
    parent's weights, the child-alone run's directory)."""
    import yaml

    from hkt import pipeline

    root = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(tiny_data)
    pipeline.obtain_parent(parent_spec(cfg), root / "parent", log=quiet)
    train_run(cfg, "alone", "default", 0, root / "child")
    cfg_path = root / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg, cfg_path, root / "parent" / "parent.pt", root / "child"


COPY = ["Snakefile", "workflow", "config", "data/MANIFEST.yaml", "results/paper", "results/discrepancies.csv"]


def workflow_copy(work: Path) -> Path:
    """The files the DAG reads, copied so that a test run leaves the checkout untouched."""
    for item in COPY:
        src, dst = REPO / item, work / item
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return work


@pytest.fixture(scope="session")
def dag(tmp_path_factory):
    """The default DAG, run locally once per session (`snakemake --cores all`)."""
    work = workflow_copy(tmp_path_factory.mktemp("dag"))
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "all"], cwd=work, capture_output=True, text=True, timeout=1800
    )
    print(f"default DAG wall time: {time.perf_counter() - started:.0f} s")
    assert out.returncode == 0, out.stderr[-5000:]
    return work


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a Python module into an importable folder; returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(name, source):
        (tmp_path / f"{name}.py").write_text(source)
        return name

    return write
