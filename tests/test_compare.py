"""`hkt compare` and `hkt freeze`: your runs against the baselines on one screen, devices, the paper
check, directions of better, frozen checksums, and bad input named by file and line (the statistics
themselves: tests/test_stats.py)."""

import shutil
import subprocess
import sys

import pandas as pd
import pytest
from conftest import REPO

from hkt import compare as K
from hkt import stats as S

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


def test_lower_is_better_metrics_rank_the_lower_error_first():
    new = _rows("flow", "sintel-clean", "epe", {"mine/a": [2.0, 2.2, 2.1], "mine/b": [3.0, 3.1, 2.9]}, split="train")
    frozen = _rows("flow", "sintel-clean", "epe", {"hkt/default": [2.5, 2.6, 2.55]}, split="train")
    against, _ = K.compare(new, frozen)
    assert list(against.run) == ["mine/a", "mine/b"] and list(against.verdict) == ["better", "worse"]
    assert (against.gain > 0).tolist() == [True, False] and set(against.better) == {"min"}


def test_a_single_seed_says_too_few_seeds_and_never_prints_nan():
    new = _rows("cifar10", "cifar10", "top1_acc", {"mine/x": [91.0]})
    frozen = _rows("cifar10", "cifar10", "top1_acc", {"alone/default": [90.0, 90.4]})
    against, _ = K.compare(new, frozen)
    assert against.verdict.iloc[0] == S.TOO_FEW
    text = K.to_markdown(against, pd.DataFrame(), "smoke") + K.terminal(against)
    assert "nan" not in text.lower() and S.TOO_FEW in text and "SMOKE SCALE" in text


def _baselines(task="cifar10", dataset="cifar10", metric="top1_acc", split="test", **extra):
    runs = {
        "alone/default": [70.0, 71.0, 70.4],
        "alone/finetune": [70.2, 71.1, 70.6],
        "kd/default": [71.5, 72.0, 71.1],
        "hkt/default": [70.9, 71.8, 70.7],
        "feature_mse/default": [69.0, 69.5, 69.2],
        "parent/default": [80.0],
    }
    return _rows(task, dataset, metric, {**runs, **extra}, split=split)  # fmt: skip


def test_by_default_only_your_runs_are_compared_with_the_controls_and_the_best_baselines_on_one_screen():
    frozen = _baselines()
    mine = _baselines(**{"mine/default": [73.0, 73.6, 72.9]})  # the DAG reran the baselines beside it
    against, ranking, notes = K.focused(mine, frozen, controls={"cifar10": ["alone/default", "alone/finetune"]})
    assert set(against.run) == {"mine/default"} and not notes
    assert list(against.reference) == ["alone/default", "alone/finetune", "kd/default", "hkt/default"]
    assert set(against.source) == {"this file"}  # the baselines of your own run, same machine
    assert list(ranking.run)[:2] == ["mine/default", "kd/default"] and ranking["rank"].iloc[0] == 1
    assert "parent/default" not in set(ranking.run) and "feature_mse/default" not in set(ranking.run)
    text = K.screen(against, ranking, notes, "smoke")
    assert text.count("\n") < 40 and "SMOKE SCALE" in text and "Holm" in text and "nan" not in text.lower()
    # named runs instead of the new ones; a metric off the headline is left for --all
    extra = _rows("cifar10", "cifar10", "top1_err", {"mine/default": [27.0, 26.4, 27.1]})
    against, ranking, _ = K.focused(pd.concat([mine, extra]), frozen, runs=["kd/default"])
    assert set(against.run) == {"kd/default"} and set(ranking.metric) == {"top1_acc"}


def _on(frame, device):
    return frame.assign(device=device)


def test_smoke_results_of_another_kind_of_device_are_refused_unless_asked_and_then_said():
    frozen = _on(_baselines(), "cpu:AMD EPYC 7B13 x1 threads")
    mine = _on(
        _rows("cifar10", "cifar10", "top1_acc", {"mine/default": [73.0, 73.6, 72.9]}), "cpu:Intel(R) Xeon(R) x2 threads"
    )
    with pytest.raises(ValueError, match=r"AMD EPYC 7B13; yours on cpu:Intel.*not bit-reproducible.*--across-devices"):
        K.focused(mine, frozen)
    with pytest.raises(ValueError, match="across-devices"):
        K.compare(mine, frozen)
    against, _, notes = K.focused(mine, frozen, across_devices=True)
    assert set(against.source) == {"frozen"} and "AMD EPYC" in notes[0]
    assert "note: the frozen cifar10 results ran on" in K.screen(against, _, notes, "smoke")
    # the same kind of device with another thread count is the same kind
    K.focused(_on(mine, "cpu:AMD EPYC 7B13 x2 threads"), frozen)


def test_the_paper_number_is_set_beside_the_run_and_checked_against_its_interval():
    paper = pd.read_csv(REPO / "results" / "paper" / "results.csv")
    new = _rows("lits", "lits", "dice_mean", {"hkt/default": [93.8, 94.4, 94.0], "alone/default": [80.0, 81.0]})
    rows = {("lits", "hkt/default"): ("table3", "hkt3", "-"), ("lits", "alone/default"): ("table3", "child", "-")}
    _, vs_paper = K.compare(new, new, paper=paper, paper_rows=rows)
    assert vs_paper.set_index("run").loc["hkt/default", "ci_low"] == pytest.approx(
        S.mean_interval([93.8, 94.4, 94.0])[0]
    )  # a t-interval of the mean
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
        r"line 2: task 'imagenet': cannot import",
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
        [sys.executable, "-m", "hkt.cli", "compare", str(tmp_path / "new.csv"), "--frozen", str(FROZEN),
         "--out", str(tmp_path / "vs"), "--all"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "no significant difference" in out.stdout and "better" not in out.stdout.replace("is better", "")
    md = (tmp_path / "vs.md").read_text()
    assert "dice_mean on lits-generated (test; higher is better)" in md and "Against the paper" in md
    assert "nan" not in md.lower()
    # the default question: nothing of the file is new
    out = subprocess.run(
        [sys.executable, "-m", "hkt.cli", "compare", str(tmp_path / "new.csv"), "--frozen", str(FROZEN)],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "nothing to compare: name your runs with --runs" in out.stdout
