"""`hkt compare` and `hkt freeze`: statistics against scipy and a seeded reference, the paper
check, directions of better, frozen checksums, and bad input named by file and line."""

import math
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import REPO
from scipy import stats

from hkt import compare as K

FROZEN = REPO / "results" / "frozen" / "smoke"


def _rows(task, dataset, metric, runs: dict, split="test", scale="smoke") -> pd.DataFrame:
    """Long-format rows: runs = {"method/variant": [value per seed 0, 1, ...]}."""
    lines = []
    for run, values in runs.items():
        method, variant = run.split("/")
        for seed, value in enumerate(values):
            lines.append(
                {"task": task, "method": method, "variant": variant, "dataset": dataset, "split": split,
                 "metric": metric, "seed": seed, "value": value, "scale": scale, "commit": "a" * 40}
            )  # fmt: skip
    return pd.DataFrame(lines)


def test_welch_paired_and_hedges_g_match_scipy_and_the_textbook_formula():
    a = pd.Series([71.2, 69.8, 70.5, 72.0])
    b = pd.Series([68.9, 69.5, 67.7, 70.1])
    out = K.compare_runs(a, b, better="max", n_boot=2000)
    welch = stats.ttest_ind(a, b, equal_var=False)
    paired = stats.ttest_rel(a, b)
    assert out["welch_t"] == pytest.approx(welch.statistic) and out["welch_p"] == pytest.approx(welch.pvalue)
    assert out["paired_t"] == pytest.approx(paired.statistic) and out["paired_n"] == 4
    sp = math.sqrt((3 * a.var() + 3 * b.var()) / 6)
    assert out["hedges_g"] == pytest.approx((a.mean() - b.mean()) / sp * (1 - 3 / (4 * 8 - 9)))
    assert out["diff"] == pytest.approx(a.mean() - b.mean()) and out["verdict"] == "better"


def test_the_bootstrap_interval_is_the_seeded_percentile_reference():
    a, b = np.array([3.0, 5.0, 4.0]), np.array([1.0, 2.0])
    rng = np.random.default_rng(7)  # a's resamples first, then b's, from one generator
    ia, ib = rng.integers(0, 3, (500, 3)), rng.integers(0, 2, (500, 2))
    ref = a[ia].mean(1) - b[ib].mean(1)
    assert K.bootstrap_interval(a, b, n_boot=500, seed=7) == pytest.approx(tuple(np.quantile(ref, [0.025, 0.975])))
    low, high = K.bootstrap_interval(a, b, n_boot=5000, seed=0)
    assert low <= a.mean() - b.mean() <= high and K.bootstrap_interval(a, b, n_boot=5000, seed=0) == (low, high)


def test_lower_is_better_metrics_rank_the_lower_error_first():
    new = _rows("flow", "sintel-clean", "epe", {"mine/a": [2.0, 2.2, 2.1], "mine/b": [3.0, 3.1, 2.9]}, split="train")
    frozen = _rows("flow", "sintel-clean", "epe", {"hkt/default": [2.5, 2.6, 2.55]}, split="train")
    against, _ = K.compare(new, frozen, n_boot=1000)
    assert list(against.run) == ["mine/a", "mine/b"] and list(against.verdict) == ["better", "worse"]
    assert (against.gain > 0).tolist() == [True, False] and set(against.better) == {"min"}


def test_a_single_seed_says_it_needs_two_and_never_prints_nan():
    new = _rows("cifar10", "cifar10", "top1_acc", {"mine/x": [91.0]})
    frozen = _rows("cifar10", "cifar10", "top1_acc", {"alone/default": [90.0, 90.4]})
    against, _ = K.compare(new, frozen)
    assert against.verdict.iloc[0] == K.NEEDS_SEEDS
    text = K.to_markdown(against, pd.DataFrame(), "smoke") + K.terminal(against)
    assert "nan" not in text.lower() and K.NEEDS_SEEDS in text and "SMOKE SCALE" in text


def test_the_paper_number_is_set_beside_the_run_and_checked_against_its_interval():
    paper = pd.read_csv(REPO / "results" / "paper" / "results.csv")
    new = _rows("lits", "lits", "dice_mean", {"hkt/default": [93.8, 94.4, 94.0], "alone/default": [80.0, 81.0]})
    rows = {("lits", "hkt/default"): ("table3", "hkt3", "-"), ("lits", "alone/default"): ("table3", "child", "-")}
    _, vs_paper = K.compare(new, new, paper=paper, paper_rows=rows)
    hkt = vs_paper.set_index("run").loc["hkt/default"]
    assert hkt.paper == 94.1 and hkt["diff"] == pytest.approx(94.0667 - 94.1, abs=1e-3) and bool(hkt.paper_in_interval)
    assert not vs_paper.set_index("run").loc["alone/default"].paper_in_interval  # 93.0 is far from 80.5


def test_smoke_results_are_never_compared_with_paper_scale_ones():
    new = _rows("cifar10", "cifar10", "top1_acc", {"mine/x": [91.0, 92.0]})
    with pytest.raises(ValueError, match="scale"):
        K.compare(new, new.assign(scale="paper"))


BAD = [
    ("missing columns", lambda f: f.drop(columns=["seed"]), r"missing columns \['seed'\]"),
    (
        "unknown task",
        lambda f: f.assign(task=["imagenet"] + ["cifar10"] * (len(f) - 1)),
        r"line 2: unknown task 'imagenet'",
    ),
    (
        "unknown metric",
        lambda f: f.assign(metric=["top5"] + ["top1_acc"] * (len(f) - 1)),
        r"line 2: unknown metric 'top5'",
    ),
    ("duplicate rows", lambda f: pd.concat([f, f.iloc[[1]]]), r"lines \[3, 5\]: duplicate rows for mine/x seed 1"),
    ("non-numeric", lambda f: f.assign(value=["91.0", "n/a", "90.0"]), r"line 3: value 'n/a'"),
    ("mixed scales", lambda f: f.assign(scale=["smoke", "smoke", "paper"]), r"line 4: scale 'paper' after 'smoke'"),
]


@pytest.mark.parametrize("name,edit,message", BAD, ids=[b[0] for b in BAD])
def test_bad_results_files_are_refused_naming_the_file_and_line(tmp_path, name, edit, message):
    path = tmp_path / "new.csv"
    edit(_rows("cifar10", "cifar10", "top1_acc", {"mine/x": [91.0, 92.0, 90.0]})).to_csv(path, index=False)
    with pytest.raises(ValueError, match=f"{path}.*{message}" if "columns" in name else message):
        K.read_results(path)


def test_freeze_writes_a_manifest_and_a_changed_frozen_file_is_refused(tmp_path):
    path = tmp_path / "metrics.csv"
    _rows("cifar10", "cifar10", "top1_acc", {"alone/default": [90.0, 90.5]}).to_csv(path, index=False)
    manifest = K.freeze([path], tmp_path / "frozen")
    assert manifest["files"]["cifar10_metrics.csv"]["seeds"] == [0, 1]
    assert len(K.load_frozen(tmp_path / "frozen")) == 2
    frozen = tmp_path / "frozen" / "cifar10_metrics.csv"
    frozen.write_text(frozen.read_text().replace("90.5", "95.5"))
    with pytest.raises(ValueError, match=r"cifar10_metrics\.csv: sha256 .* does not match"):
        K.load_frozen(tmp_path / "frozen")
    dirty = tmp_path / "dirty.csv"
    pd.read_csv(path).assign(commit="abc-dirty").to_csv(dirty, index=False)
    with pytest.raises(ValueError, match="uncommitted"):
        K.freeze([dirty], tmp_path / "frozen2")


def test_the_frozen_smoke_reproduction_matches_its_manifest_and_covers_every_task():
    frozen = K.load_frozen(FROZEN)
    assert set(frozen.scale) == {"smoke"} and {"cifar10", "flow", "lits"} <= set(frozen.task)
    assert frozen["commit"].str.fullmatch(r"[0-9a-f]{40}").all()  # produced from a clean commit


def test_hkt_compare_runs_from_the_command_line_on_the_frozen_results(tmp_path):
    shutil.copy(FROZEN / "lits_metrics.csv", tmp_path / "new.csv")
    out = subprocess.run(
        [sys.executable, "-m", "hkt.compare", "compare", str(tmp_path / "new.csv"), "--frozen", str(FROZEN),
         "--out", str(tmp_path / "vs"), "--bootstrap", "500"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "within noise" in out.stdout
    md = (tmp_path / "vs.md").read_text()
    assert "dice_mean on lits-generated (test; higher is better)" in md and "Against the paper" in md
    assert "nan" not in md.lower()
