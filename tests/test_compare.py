"""New runs against the frozen results: like with like only."""

import pandas as pd
import pytest
from conftest import REPO

from hkt.compare import compare, main

FROZEN = REPO / "results" / "frozen" / "smoke" / "cifar10_metrics.csv"


def test_frozen_smoke_results_hold_every_default_run_and_are_labelled():
    frozen = pd.read_csv(FROZEN)
    assert set(frozen.scale) == {"smoke"} and set(frozen.dataset) == {"cifar10-generated"}
    assert frozen["commit"].str.fullmatch(r"[0-9a-f]{40}").all()  # produced from a clean commit
    assert {"parent/default", "alone/default", "hkt/default"} <= set(frozen.method + "/" + frozen.variant)


def test_a_new_run_is_set_against_the_frozen_references(tmp_path):
    frozen = pd.read_csv(FROZEN)
    new = frozen[frozen.method == "kd"].assign(variant="mine")
    table = compare(frozen, new, metric="top1_acc", split="test", references=["alone/default", "hkt/default"])
    assert set(table.run) == {"kd/mine"} and set(table.reference) == {"frozen alone/default", "frozen hkt/default"}
    kd = frozen[(frozen.method == "kd") & (frozen.metric == "top1_acc") & (frozen.split == "test")]["value"]
    assert table["mean"].iloc[0] == pytest.approx(kd.mean())
    new.to_csv(tmp_path / "new.csv", index=False)
    main(["--frozen", str(FROZEN), "--new", str(tmp_path / "new.csv"), "--out", str(tmp_path / "vs.md")])
    assert "frozen hkt/default" in (tmp_path / "vs.md").read_text() and (tmp_path / "vs.csv").exists()


def test_scales_and_datasets_are_never_mixed():
    frozen = pd.read_csv(FROZEN)
    with pytest.raises(ValueError, match="scale"):
        compare(frozen, frozen.assign(scale="paper"), metric="top1_acc", split="test", references=["alone/default"])
    with pytest.raises(ValueError, match="dataset"):
        compare(frozen, frozen.assign(dataset="cifar10"), metric="top1_acc", split="test", references=["alone/default"])
    with pytest.raises(ValueError, match="no run"):
        compare(frozen, frozen, metric="top1_acc", split="test", references=["dkd/default"])


def test_new_results_with_model_property_rows_compare_on_the_metric_rows_only():
    frozen = pd.read_csv(FROZEN)
    new = frozen[frozen.method == "kd"].assign(variant="mine")
    properties = new[new.metric == "params_m"].assign(dataset="-", split="-")  # as evaluation now writes them
    new = pd.concat([new[new.metric != "params_m"], properties])
    table = compare(frozen, new, metric="top1_acc", split="test", references=["alone/default"])
    assert set(table.run) == {"kd/mine"}
