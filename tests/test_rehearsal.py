"""`make rehearse`: the paper DAG at its real shapes on this machine (hkt.rehearse). The overlay is
derived from config/paper.yaml by code; these tests hold it to that, and run a slice of it (one
job of every rule, at the real frame sizes, crops, update counts and architectures)."""

import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, workflow_copy

from hkt import config as C
from hkt import rehearse

PAPER = C.load(REPO / "config" / "paper.yaml")
# what the overlay may change in a job's specification, and nothing else
CHANGED = {
    "scale",
    "device",
    "data",  # the generated stand-in (checked below: the shapes stay the paper's)
    "upstream",  # hashes of the upstream jobs, which changed the same way
    "checkpoint",  # a stand-in file in place of a published one
    "schedule.steps",
    "schedule.eval_every",
    "schedule.checkpoint_every",
    "schedule.log_every",
    "schedule.pct_start",
    "schedule.batch_size",
    "schedule.loader_workers",
}
SHAPES = ("crop", "train_updates", "val_updates", "resolution", "val_scenes", "target_spacing", "gamma")


@pytest.fixture(scope="module")
def overlay(tmp_path_factory):
    return rehearse.overlay(PAPER, tmp_path_factory.mktemp("rehearsal"), cpus=1, mem_mb=10000)


def _jobs(cfg):
    for task, block in cfg["tasks"].items():
        yield from ((task, "parent", s) for s in C.parent_specs(cfg, task))
        for run in block["runs"]:
            yield from ((task, run, s) for s in C.run_specs(cfg, task, *run.split("/"), cfg["seeds"][0]))


def test_the_overlay_runs_every_block_method_variant_and_stage_of_the_paper_config(overlay):
    ours = {(t, r, s["stage"]) for t, r, s in _jobs(overlay)}
    theirs = {(t, r, s["stage"]) for t, r, s in _jobs(PAPER)}
    assert ours == theirs and len(ours) >= 80  # 82 training jobs at one seed
    assert overlay["scale"] == "rehearsal" and overlay["seeds"] == PAPER["seeds"][:1]


def test_the_overlay_changes_nothing_of_a_job_but_its_length_batch_data_and_stand_ins(overlay):
    """No drift: a key of the paper's job specifications that the overlay may not change is equal,
    and the data keeps the paper's shapes (crops, patches, update counts, held-out scenes)."""
    paper_jobs = {(t, r, s["stage"]): s for t, r, s in _jobs(PAPER)}
    for task, run, spec in _jobs(overlay):
        theirs = paper_jobs[(task, run, spec["stage"])]
        changed = {
            k for k in C.differing_keys(theirs, spec) if not any(k == c or k.startswith(c + ".") for c in CHANGED)
        }
        assert not changed, (task, run, spec["stage"], changed)
        for key in SHAPES:
            if key in theirs["data"]:
                assert spec["data"][key] == theirs["data"][key], (task, run, key)
        if "patch" in theirs["data"]:  # LiTS: the in-plane size is the paper's, the depth at most (hkt.rehearse)
            assert spec["data"]["patch"][1:] == theirs["data"]["patch"][1:]
            assert spec["data"]["patch"][0] <= theirs["data"]["patch"][0]
        if "schedule" in spec:  # a published parent has none
            assert spec["schedule"]["batch_size"] <= theirs["schedule"]["batch_size"]
        if spec.get("checkpoint"):
            assert spec["checkpoint"]["stand_in"] and spec["checkpoint"]["arch"] == theirs["checkpoint"]["arch"]


def test_the_stand_in_data_has_the_real_frame_and_volume_sizes_and_the_published_lengths(overlay):
    from hkt.tasks.flow.prepare import PUBLISHED_PAIRS
    from hkt.tasks.flow.scenes import REAL_SIZES

    flow = overlay["tasks"]["flow"]["data"]
    assert flow["generated"]["sizes"]["sintel"] == [[436, 1024]] and [375, 1242] in flow["generated"]["sizes"]["kitti"]
    assert flow["stand_in_lengths"]["things"] == PUBLISHED_PAIRS["things"] == 40302
    assert flow["stand_in_lengths"]["sintel"] == 1041 - 3 * 49  # the held-out scenes excluded
    assert set(flow["generated"]["sintel_scenes"]) > set(PAPER["tasks"]["flow"]["data"]["val_scenes"])
    assert REAL_SIZES["things"] == [(540, 960)]
    lits = overlay["tasks"]["lits"]["data"]["generated"]
    assert lits["shape"][:2] == [512, 512]
    assert overlay["tasks"]["cifar10"]["data"]["resolution"] == 32


def test_every_published_checkpoint_has_a_stand_in_of_its_architecture_marked_as_such(overlay):
    manifest = C.load_manifest()["checkpoints"]
    for name, entry in overlay["stand_ins"].items():
        assert entry["arch"] == manifest[name]["arch"] and entry["url"].startswith("stand-in://")
    assert set(overlay["stand_ins"]) >= {"torchvision_raft_large_c_t_v1", "akamaster_resnet110"}


@pytest.mark.slow
def test_a_slice_of_the_rehearsal_runs_every_rule_at_the_real_shapes(overlay, tmp_path):
    """flow-ctsk (its parent trained in three stages) with the child and 3HKT: a job of every rule, RAFT and RAFT-S at the paper's crops, update counts and frame
    sizes (Sintel 436x1024, KITTI 375x1242 and its other sizes), through the padding paths; one
    stage stopped once after its first step and resumed."""
    cfg = {**overlay, "tasks": {"flow-ctsk": overlay["tasks"]["flow-ctsk"]}}
    block = cfg["tasks"]["flow-ctsk"]
    block["runs"] = ["alone/default", "hkt/default"]
    table = block["report"]["tables"]["table1"]
    table["rows"] = [r for r in table["rows"] if r["run"] in (None, "parent", *block["runs"])]
    block["report"]["tables"]["comparisons"]["controls"] = ["alone/default"]
    block["report"]["exports"] = {"kitti_test": ["hkt/default"]}
    work = workflow_copy(tmp_path / "work")
    (work / "slice.yaml").write_text(yaml.safe_dump(C.validate(cfg)))
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "all", "--retries", "1", "--configfile", "slice.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=2400,
        env={**__import__("os").environ, "HKT_STOP_ONCE": "flow-ctsk parent stage 'chairs'"},
    )
    print(f"rehearsal slice: {time.monotonic() - started:.0f} s")
    assert out.returncode == 0, out.stderr[-5000:]
    rules = set(pd.Series([p.parent.name for p in (work / "benchmarks").rglob("*.tsv")]))
    assert rules == {
        "prepare_data", "train_parent_stage", "train_parent", "train_run_stage", "train_run",
        "evaluate", "export", "table", "figure", "report_html",
    }  # fmt: skip
    assert "resumed at step 1/3" in (work / "logs" / "flow-ctsk" / "parent.stage-chairs.log").read_text()
    metrics = pd.read_csv(work / "results" / "flow-ctsk" / "metrics.csv")
    assert set(metrics.scale) == {"rehearsal"} and (metrics.metric == "fl_all").any()
    assert "REHEARSAL" in (work / "results" / "tables" / "flow-ctsk" / "table1.md").read_text()


def test_the_summary_says_where_the_wall_time_went_and_whether_it_kept_the_bound():
    row = {"block": "lits", "run": "-", "status": "ok", "peak_rss_mb": 900.0, "declared_mem_mb": 2000.0}
    row |= {"batch": None, "paper_batch": None, "gpu_needed_mb": None, "gpu_requested_mb": None}
    frame = pd.DataFrame([row | {"rule": "evaluate", "seconds": 3000.0}, row | {"rule": "table", "seconds": 600.0}])
    frame["gpu_peak_gib_at_paper_batch"] = None
    over = rehearse.summary(frame, seconds=(rehearse.BOUND_MIN + 1) * 60, machine="cpu", cores=2)
    assert "job time: 60 min, one thread each (benchmark seconds); by rule: evaluate 50, table 10" in over
    assert f"over the {rehearse.BOUND_MIN}-minute bound: the jobs alone fill 30 min of 2 core(s)" in over
    within = rehearse.summary(frame, seconds=rehearse.BOUND_MIN * 60, machine="cpu", cores=2)
    assert f"within the {rehearse.BOUND_MIN}-minute bound" in within


def test_the_summary_counts_the_dags_jobs_and_names_those_that_failed_from_snakemakes_log():
    """jobs.csv has a row per job that ran: a figure that failed before writing its benchmark must
    still show (the first full rehearsal's summary read 'status ok: 115' of 122 jobs)."""
    log = (
        "3 of 122 steps (2%) done\n"
        "Error in rule figure:\n    message: failed\n    jobid: 28\n    input: a.csv\n"
        "    output: figures/cifar10_learning_curves.png\n    log: x.log\n"
        "115 of 122 steps (94%) done\n"
    )
    assert rehearse.dag_progress(log) == (115, 122, ["figures/cifar10_learning_curves.png"])
    row = {"rule": "table", "block": "lits", "run": "-", "status": "ok", "seconds": 60.0, "peak_rss_mb": 1.0}
    row |= {"declared_mem_mb": 2.0, "batch": None, "paper_batch": None, "gpu_needed_mb": None}
    frame = pd.DataFrame([row | {"gpu_requested_mb": None, "gpu_peak_gib_at_paper_batch": None}])
    text = rehearse.summary(frame, None, "cpu", dag=rehearse.dag_progress(log))
    assert "- Snakemake (this invocation): 115 of 122 jobs done" in text
    assert "failed attempt (snakemake.log): figures/cifar10_learning_curves.png" in text
