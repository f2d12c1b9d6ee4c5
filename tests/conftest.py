"""Shared fixtures: a tiny but complete configuration and its generated dataset."""
from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hkt import config as C

REPO = Path(__file__).resolve().parents[1]


def tiny_config(data_root: Path) -> dict:
    """The default config shrunk to seconds: 8x8 images, a few dozen steps, one seed."""
    cfg = copy.deepcopy(C.load(REPO / "config" / "config.yaml"))
    cfg["seeds"] = [0]
    t = cfg["tasks"]["cifar10"]
    t["data"].update(root=str(data_root), val_size=64, resolution=8, crop_padding=1,
                     generated={"n_train": 384, "n_test": 128, "seed": 7})
    small = {"steps": 12, "batch_size": 32, "lr": 0.05, "warmup_steps": 0, "eval_every": 4, "checkpoint_every": 4}
    for schedule in (t["parent"]["train"], t["child"]["train"], t["child"]["finetune"]):
        schedule.update(small)
    t["evaluation"]["timing"] = {"batch_size": 16, "warmup": 1, "repeats": 2}
    return C.validate(cfg)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from hkt.tasks.cifar10 import pipeline

    root = tmp_path_factory.mktemp("data") / "cifar10-generated"
    pipeline.prepare_data(tiny_config(root)["tasks"]["cifar10"]["data"])
    return root


@pytest.fixture
def cfg(tiny_data) -> dict:
    return tiny_config(tiny_data)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, tiny_data):
    """A tiny parent and child-alone run shared by the tests below."""
    import yaml

    from hkt.tasks.cifar10 import pipeline

    root = tmp_path_factory.mktemp("runs")
    cfg = tiny_config(tiny_data)
    pipeline.obtain_parent(cfg, root / "parent", log=lambda m: None)
    pipeline.train_run(cfg, "alone", "default", 0, root / "child", parent_path=None, init_path=None,
                       log=lambda m: None)
    cfg_path = root / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg))
    return cfg, cfg_path, root / "parent" / "child.pt", root / "child" / "child.pt"


COPY = ["Snakefile", "workflow", "config", "data/MANIFEST.yaml", "results/paper"]


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
    out = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "all"], cwd=work,
                         capture_output=True, text=True, timeout=1800)
    print(f"default DAG wall time: {time.perf_counter() - started:.0f} s")
    assert out.returncode == 0, out.stderr[-5000:]
    return work
