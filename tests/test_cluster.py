"""Where a SLURM site runs each job: CPU-only jobs off the GPU partition, and every GPU job on a
GPU class that holds the memory it needs, sized from the memory its training step traces."""

import copy

import pytest
from conftest import REPO

from hkt import config as C
from hkt.memory import request_mb, training_peak_bytes

PAPER = C.load(REPO / "config" / "paper.yaml")
SITE = {
    "gpu_partition": "gpu",
    "cpu_partition": "cpu",
    "gpu_constraints": {16: "v100", 24: "a10g", 40: "a100", 80: "h100"},
}


def test_cpu_jobs_go_to_the_cpu_partition_and_gpu_jobs_to_the_gpu_one():
    cfg = {**PAPER, "cluster": SITE}
    assert C.slurm_partition(cfg, "flow", "data", 0) == "cpu"
    assert C.slurm_partition(cfg, "flow", "train", 1) == "gpu"
    assert C.slurm_partition({**PAPER, "cluster": None}, "flow", "train", 1) is None  # the profile's default


def test_a_gpu_job_asks_for_the_smallest_gpu_class_that_holds_its_memory():
    cfg = {**PAPER, "cluster": SITE}
    assert C.gpu_constraint(cfg, 25600, 1) == "a100"  # 25.6 GB: more than a 24 GB card
    assert C.gpu_constraint(cfg, 9216, 1) == "v100"
    assert C.gpu_constraint(cfg, 9216, 0) is None and C.gpu_constraint(cfg, None, 1) is None
    too_big = copy.deepcopy(cfg)
    too_big["cluster"]["gpu_constraints"] = {16: "v100"}
    with pytest.raises(C.ConfigError, match=r"tasks\.flow\.resources\.parent\.gpu_mem_mb: a job needs 19456 MB"):
        C.validate(too_big)


@pytest.mark.parametrize(
    "task,kind,run",
    [
        ("flow", "train", "hkt/default"),
        ("flow-ctsk", "parent", None),
        ("lits", "parent", None),
        ("lits", "train", "hkt/default"),
    ],
)
def test_the_paper_config_asks_each_job_kind_for_at_least_the_memory_its_largest_step_traces(task, kind, run):
    """At the paper's crops and batches, traced with fake tensors (hkt.memory): RAFT 3HKT at 400x720,
    batch 6, about 19 GiB; raft_large trained at 368x496, batch 10; H-DenseUNet at 12x224x224, batch 2."""
    if run is None:
        spec = C.parent_specs(PAPER, task)[0]  # the first stage: the largest batch
    else:
        spec = C.run_specs(PAPER, task, *run.split("/"), 0)[-1]
    peak = training_peak_bytes(PAPER, task, spec)
    assert request_mb(peak) <= PAPER["tasks"][task]["resources"][kind]["gpu_mem_mb"], peak / 2**30
