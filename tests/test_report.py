"""Run-against-control statistics in the generated tables."""

import pandas as pd
import pytest

from hkt.report import compare


def _rows(method, values_by_seed):
    return [
        {
            "task": "cifar10",
            "method": method,
            "variant": "default",
            "dataset": "d",
            "split": "test",
            "metric": "top1_acc",
            "seed": seed,
            "value": value,
            "scale": "smoke",
        }
        for seed, value in values_by_seed.items()
    ]


def test_paired_test_matches_seeds_and_removes_the_spread_between_children():
    # The control varies a lot between seeds; the run is its own seed's control plus about 1 point.
    control = {0: 50.0, 1: 60.0, 2: 70.0}
    run = {0: 51.0, 1: 61.1, 2: 70.9, 3: 61.0}  # seed 3 has no control: excluded from the pairing
    results = pd.DataFrame(_rows("alone", control) + _rows("hkt", run))
    row = compare(results, metric="top1_acc", split="test", controls=["alone/default"]).iloc[0]
    assert row["run"] == "hkt/default" and row["n"] == 4 and row["paired_n"] == 3
    assert row["paired_diff"] == pytest.approx(1.0) and row["test"] == "paired"
    assert row["paired_p"] < 0.01 < 0.5 < row["welch_p"] and row["verdict"] == "better"


def test_a_single_shared_seed_gives_no_test():
    results = pd.DataFrame(_rows("alone", {0: 50.0, 1: 60.0}) + _rows("hkt", {1: 61.0, 2: 70.0}))
    row = compare(results, metric="top1_acc", split="test", controls=["alone/default"]).iloc[0]
    assert row["paired_n"] == 1 and row["paired_diff"] == pytest.approx(1.0)
    assert pd.isna(row["paired_t"]) and pd.isna(row["paired_p"])
    assert not pd.isna(row["welch_p"]) and row["test"] == "welch"


def test_identical_seed_differences_give_no_paired_test_rather_than_p_zero():
    results = pd.DataFrame(_rows("alone", {0: 50.0, 1: 60.0}) + _rows("hkt", {0: 50.5, 1: 60.5}))
    row = compare(results, metric="top1_acc", split="test", controls=["alone/default"]).iloc[0]
    assert row["paired_diff"] == pytest.approx(0.5)
    assert pd.isna(row["paired_p"])
