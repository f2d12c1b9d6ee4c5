"""`make bench`'s measurements and the paper-scale cost table derived from them (the numbers
themselves are figures in results/bench/, never asserted here)."""

import pandas as pd
import pytest
import yaml
from conftest import REPO, tiny_config

from hkt import bench, cost
from hkt import config as C


def test_each_measurement_times_the_runs_and_switches_named_by_the_config(cfg, tmp_path):
    cfg["tasks"]["cifar10"]["bench"] = {
        "runs": ["alone/default", "hkt/default"],
        "steps": 2,
        "warmup": 1,
        "switches": ["bf16"],
        "switch_runs": ["hkt/default"],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(C.validate(cfg)))
    table = bench.run([str(path)], "cifar10", threads=1, log=lambda _: None)
    steps = table[table.kind == "train_step"]
    assert list(steps.run) == ["alone/default", "hkt/default", "hkt/default"]
    assert list(steps.switch) == ["-", "-", "bf16"]
    assert list(steps.dtype) == ["float32", "float32", "bf16 autocast"]  # each row says what it timed
    switched = steps[steps.switch != "-"].iloc[0]
    plain = steps[(steps.run == "hkt/default") & (steps.switch == "-")].iloc[0]
    assert switched.reference == "hkt/default" and switched.ratio == pytest.approx(switched.median_ms / plain.median_ms)
    assert set(table[table.kind == "inference"].run) == {"parent", "child"}
    assert (table.median_ms > 0).all() and (table.peak_mb > 0).all() and table.commit.notna().all()
    bench.figure(table, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_a_switch_run_outside_the_bench_runs_is_refused(cfg):
    cfg["tasks"]["cifar10"]["bench"] = {"runs": ["alone/default"], "switches": ["bf16"], "switch_runs": ["kd/default"]}
    with pytest.raises(ValueError, match=r"tasks\.cifar10\.bench\.switch_runs\[0\]: 'kd/default' is not in"):
        C.validate(cfg)


def test_the_suites_batches_are_timed_against_a_dataloader_loop_and_copies_run_at_once(cfg, tmp_path):
    cfg["tasks"]["cifar10"]["bench"] = {
        "runs": ["alone/default"],
        "steps": 2,
        "warmup": 1,
        "pipelines": {"run": "alone/default", "workers": [1]},
        "concurrent": {"run": "alone/default", "copies": [2]},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(C.validate(cfg)))
    table = bench.run([str(path)], "cifar10", threads=1, log=lambda _: None)
    piped = table[table.kind == "pipeline"].set_index("pipeline")
    assert list(piped.index) == ["suite", "dataloader:1"]
    assert (piped.ratio == piped.mean_ms / piped.loc["suite", "mean_ms"]).all()  # the mean: stalls count
    alone = table[(table.kind == "train_step") & (table.run == "alone/default")].iloc[0]
    assert (piped.input_shape == alone.input_shape).all()  # both loops make the stage's batches
    copies = table[table.kind == "concurrent"].iloc[0]
    assert copies.copies == 2 and copies.ratio == pytest.approx(copies.median_ms / alone.median_ms)
    assert copies.throughput == pytest.approx(2 / copies.ratio)
    bench.figure(table, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_the_dataloader_loop_makes_batches_like_the_suites_from_the_same_files(tiny_data):
    """Same files, shapes, dtype and normalisation: the loops differ in where the work runs."""
    from hkt.tasks.cifar10 import TASK
    from hkt.tasks.cifar10.data import training

    cfg = C.validate(tiny_config(tiny_data))
    data = C.task_config(TASK, cfg["tasks"]["cifar10"]["data"], "data")
    suite = training(data, batch_size=128, seed=0, device="cpu").batches(0)
    plain = next(TASK.plain_loader(data, batch_size=128, seed=0, device="cpu", workers=0))
    (xs, ys), (xp, yp) = suite, plain
    assert xs.shape == xp.shape and xs.dtype == xp.dtype and ys.dtype == yp.dtype
    # per-channel means of 128 random crops of one dataset agree to well within a std
    assert (xs.mean((0, 2, 3)) - xp.mean((0, 2, 3))).abs().max() < 0.25


@pytest.mark.parametrize("what", ["pipelines", "concurrent"])
def test_a_pipeline_or_concurrency_run_outside_the_bench_runs_is_refused(cfg, what):
    extra = {"pipelines": {"workers": [0]}, "concurrent": {"copies": [2]}}[what]
    cfg["tasks"]["cifar10"]["bench"] = {"runs": ["alone/default"], what: {"run": "kd/default", **extra}}
    with pytest.raises(ValueError, match=rf"tasks\.cifar10\.bench\.{what}\.run: 'kd/default' is not in"):
        C.validate(cfg)


def test_genetic_attention_is_measured_with_its_memory_growth():
    row = bench.measure_ga(16, 8, threads=1)
    assert row["tokens"] == 256 and row["median_ms"] > 0 and row["peak_growth_mb"] >= 0


def test_the_cost_table_is_steps_times_measured_step_time_scaled_to_the_recipes_batch():
    cfg = C.validate(C.load(REPO / "config" / "paper.yaml"))
    t = cfg["tasks"]["cifar10"]
    rows = [
        {"kind": "train_step", "run": "alone/default", "median_ms": 100.0, "batch_size": 64},
        {"kind": "train_step", "run": "hkt/default", "median_ms": 300.0, "batch_size": 64},
        {"kind": "inference", "run": "parent", "median_ms": 6.0, "batch_size": 128},
        {"kind": "inference", "run": "child", "median_ms": 2.0, "batch_size": 128},
        # four copies at once, each at twice its time alone: the device does twice the work
        {
            "kind": "concurrent",
            "run": "alone/default",
            "median_ms": 200.0,
            "batch_size": 64,
            "copies": 4,
            "throughput": 2.0,
        },
        {
            "kind": "concurrent",
            "run": "alone/default",
            "median_ms": 180.0,
            "batch_size": 64,
            "copies": 2,
            "throughput": 1.1,
        },
    ]
    frame = pd.DataFrame(rows).assign(config="paper.yaml", task="cifar10", switch="-", device="test-device")
    table = cost.cost_table(str(REPO / "config" / "paper.yaml"), frame).set_index("run")
    seeds = len(cfg["seeds"])
    alone_steps, batch = t["child"]["train"]["steps"], t["child"]["train"]["batch_size"]
    assert table.loc["alone/default", "hours"] == pytest.approx(seeds * alone_steps * 100.0 * batch / 64 / 3.6e6)
    ft = t["child"]["finetune"]
    assert table.loc["hkt/no_ga", "timed_as"] == "hkt/default"  # an ablation costs what its method costs
    assert table.loc["hkt/no_ga", "hours"] == pytest.approx(seeds * ft["steps"] * 300.0 * ft["batch_size"] / 64 / 3.6e6)
    assert "parent" not in table.index  # the published ResNet-110 is not trained
    assert (table.packed_copies == 4).all() and (table.packed_hours == table.hours / 2.0).all()
    assert (table.device == "test-device").all()
    markdown = cost.to_markdown(table.reset_index(), "paper.yaml")
    assert "test-device" in markdown and f"| 4: {table.hours.sum() / 2:,.1f} |" in markdown


def test_a_measurement_rewriting_its_committed_outputs_does_not_call_its_commit_dirty(tmp_path, monkeypatch):
    import subprocess

    from hkt import runmeta

    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True)

    (tmp_path / "results" / "bench").mkdir(parents=True)
    (tmp_path / "results" / "bench" / "cifar10_train_step.csv").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "m")
    monkeypatch.setattr(runmeta, "ROOT", tmp_path)
    (tmp_path / "results" / "bench" / "cifar10_train_step.csv").write_text("new\n")
    assert not runmeta.git_commit().endswith("-dirty")  # the bench's own output
    (tmp_path / "code.py").write_text("x = 2\n")
    assert runmeta.git_commit().endswith("-dirty")  # code is
