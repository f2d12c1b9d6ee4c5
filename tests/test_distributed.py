"""Data-parallel training (torchrun, gloo, two CPU processes) keeps the single-process contract."""

import json

import pandas as pd
import torch
from conftest import run_spec

from hkt.launch import launch
from hkt.models import load_checkpoint
from hkt.tasks.cifar10.models import build as build_cifar_resnet


def test_two_gloo_processes_write_what_one_process_writes(trained, tmp_path):
    cfg, _, parent, init = trained
    spec = run_spec(dict(cfg, device="cpu"), "hkt", "default")
    job = dict(parent=str(parent), init=str(init), threads=1)
    assert launch(spec, str(tmp_path / "single"), processes=1, **job) == 0
    assert launch(spec, str(tmp_path / "ddp"), processes=2, **job) == 0
    for name in ("child.pt", "curve.csv", "meta.json"):
        assert (tmp_path / "ddp" / name).exists()
    assert not (tmp_path / "ddp" / "checkpoint.pt").exists()
    one, two = (json.loads((tmp_path / d / "meta.json").read_text()) for d in ("single", "ddp"))
    assert one["world_size"] == 1 and two["world_size"] == 2
    assert one["config_hash"] == two["config_hash"] and set(one) == set(two)
    c1, c2 = (pd.read_csv(tmp_path / d / "curve.csv") for d in ("single", "ddp"))
    assert list(c1.columns) == list(c2.columns) and c1["step"].tolist() == c2["step"].tolist()
    child = build_cifar_resnet(cfg["tasks"]["cifar10"]["child"]["arch"])
    load_checkpoint(child, tmp_path / "ddp" / "child.pt")
    # both ranks trained one model: the global batch is the same, each rank saw half of it
    saved = torch.load(tmp_path / "ddp" / "child.pt", weights_only=True)["state_dict"]
    start = torch.load(init / "child.pt", weights_only=True)["state_dict"]
    assert any(not torch.equal(saved[k], start[k]) for k in saved)
