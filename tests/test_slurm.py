"""The DAG through `--profile slurm` on a real SLURM cluster (CI starts one: .ci/slurm/up.sh).

Runs only where HKT_SLURM_TESTS=1 (set by .ci/run after the cluster is up); elsewhere the
tests are skipped with that reason. HKT_SLURM_PARTITION names the partition (default `cpu`).
"""

import os
import re
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, workflow_copy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("HKT_SLURM_TESTS") != "1",
        reason="needs a SLURM cluster: run .ci/slurm/up.sh and set HKT_SLURM_TESTS=1",
    ),
]
PARTITION = os.environ.get("HKT_SLURM_PARTITION", "cpu")
PARENT = "results/runs/cifar10/parent"
# The CIFAR branch goes through SLURM; the flow branch's jobs are the same rules with other
# parameters, and would add some 45 sbatch round trips to CI.
CIFAR = [
    "results/cifar10/metrics.csv",
    *(f"results/tables/cifar10/{t}.{e}" for t in ("table2", "comparisons") for e in ("csv", "md", "tex")),
    "figures/cifar10_learning_curves.png",
    "figures/cifar10_accuracy_vs_params.png",
]


def snakemake(*extra, partition=PARTITION):
    """The README's cluster command, at the embedded default scale (overridden on the command line)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        "all",
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--configfile",
        "config/config.yaml",
        "--default-resources",
        f"slurm_partition={partition}",
        "--jobs",
        "2",
        "--slurm-init-seconds-before-status-checks",
        "2",
        *extra,
    ]


def slurm_jobs():
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i|%k|%T"], capture_output=True, text=True, check=True)
    return [line.split("|") for line in out.stdout.split()]


def wait_for(predicate, timeout, what, process):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise RuntimeError(
                f"snakemake exited ({process.returncode}) before {what}:\n{process.stdout.read()[-4000:]}"
            )
        time.sleep(1)
    raise TimeoutError(f"waited {timeout} s for {what}")


@pytest.fixture(scope="session")
def slurm_dag(tmp_path_factory):
    work = workflow_copy(tmp_path_factory.mktemp("slurm"))
    first = subprocess.Popen(
        snakemake(*CIFAR, "--retries", "0"), cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        # cancel the parent's training once it has written a checkpoint
        wait_for(lambda: (work / PARENT / "checkpoint.pt").exists(), 900, "the parent's first checkpoint", first)
        running = [j for j, comment, state in slurm_jobs() if "rule_train_parent" in comment and state == "RUNNING"]
        assert running, slurm_jobs()
        subprocess.run(["scancel", running[0]], check=True)
        first_log, _ = first.communicate(timeout=900)
    finally:
        if first.poll() is None:
            first.kill()
    after_cancel = {name: (work / PARENT / name).exists() for name in ("checkpoint.pt", "parent.pt", "meta.json")}
    second = subprocess.run(snakemake(*CIFAR), cwd=work, capture_output=True, text=True, timeout=2400)
    return {
        "work": work,
        "first_rc": first.returncode,
        "first_log": first_log,
        "after_cancel": after_cancel,
        "second": second,
    }


def test_a_cancelled_training_job_leaves_nothing_complete_and_its_rerun_resumes(slurm_dag):
    assert slurm_dag["first_rc"] != 0
    assert "CANCELLED" in slurm_dag["first_log"]
    assert slurm_dag["after_cancel"] == {"checkpoint.pt": True, "parent.pt": False, "meta.json": False}
    assert slurm_dag["second"].returncode == 0, slurm_dag["second"].stdout[-4000:] + slurm_dag["second"].stderr[-4000:]
    log = (slurm_dag["work"] / "logs" / "cifar10" / "parent.log").read_text()
    assert re.search(r"resumed at step [1-9]\d*/\d+ from ", log)


def test_every_output_of_the_local_run_exists_and_the_results_match(slurm_dag, dag):
    work = slurm_dag["work"]
    expected = sorted(
        p.relative_to(dag)
        for p in (dag / "results").rglob("*")
        # the CIFAR targets the cluster ran (the other tasks are tested locally)
        if p.is_file() and "checkpoint" not in p.name and ("cifar10" in p.parts or p.name == "cifar10.json")
    )
    expected += sorted(p.relative_to(dag) for p in (dag / "figures").glob("cifar10_*.png"))
    missing = [str(p) for p in expected if not (work / p).exists()]
    assert not missing
    keys = ["method", "variant", "seed", "split", "metric"]
    local = pd.read_csv(dag / "results" / "cifar10" / "metrics.csv")
    cluster = pd.read_csv(work / "results" / "cifar10" / "metrics.csv")
    # inference time is a measurement of the moment; everything else must agree exactly
    local, cluster = (f[f.metric != "inference_ms"].set_index(keys)["value"].sort_index() for f in (local, cluster))
    pd.testing.assert_series_equal(local, cluster)


def test_a_missing_partition_fails_fast_with_slurms_message(tmp_path):
    work = workflow_copy(tmp_path / "w")
    started = time.monotonic()
    out = subprocess.run(
        snakemake("--retries", "0", "results/data/data-cifar10-generated/all.json", partition="no_such_partition"),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0 and time.monotonic() - started < 120
    assert "invalid partition specified: no_such_partition" in out.stdout + out.stderr


def test_asking_for_gpus_the_partition_lacks_fails_fast_with_slurms_message(tmp_path):
    work = workflow_copy(tmp_path / "w")
    # the target comes first: --set-resources takes several values
    out = subprocess.run(
        snakemake(
            "results/data/data-cifar10-generated/all.json", "--retries", "0", "--set-resources", "prepare_data:gpu=1"
        ),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode != 0
    assert "Invalid generic resource (gres) specification" in out.stdout + out.stderr


def parent_steps_per_second(threads: int = 1) -> float:
    """This machine's speed at the smoke parent's training step (ResNet-20, batch 64, 16x16)."""
    import torch
    import torch.nn.functional as F

    from hkt.tasks.cifar10.models import build as build_cifar_resnet

    before = torch.get_num_threads()
    torch.set_num_threads(threads)  # the training job's threads
    try:
        model = build_cifar_resnet("resnet20")
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, y = torch.randn(64, 3, 16, 16), torch.randint(0, 10, (64,))
        for k in range(45):
            if k == 5:
                start = time.perf_counter()
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return 40 / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(before)


def test_a_time_limit_stops_training_and_slurm_requeues_the_job_without_spending_a_retry(tmp_path):
    # A 3-minute limit with the SIGURG warning 60 s ahead stops each attempt; the trainer
    # checkpoints and asks SLURM to requeue the job (hkt.signals.requeue_planned_stop), which
    # starts again under the same job id and resumes: with --retries 0, a planned resumption
    # spends no retry. SLURM may send the warning up to 60 s early, so an attempt trains for 60 to
    # 120 s. The parent is given about 150 s of training at this machine's measured speed (never
    # fewer than 1800 steps): the first attempt is always stopped mid-training, and a few attempts
    # finish it, whatever the processor.
    steps = max(1800, 100 * round(1.5 * parent_steps_per_second()))
    longer = {"tasks": {"cifar10": {"parent": {"train": {"steps": steps}}}}}
    target, configs = f"{PARENT}/parent.pt", ["--configfile", "config/config.yaml", "longer.yaml"]
    work, local = workflow_copy(tmp_path / "w"), workflow_copy(tmp_path / "local")
    for folder in (work, local):
        (folder / "longer.yaml").write_text(yaml.safe_dump(longer))
    out = subprocess.run(
        snakemake(
            target,
            "--config",
            "preempt_signal_seconds=60",
            "--set-resources",
            "train_parent:runtime=3",
            "--retries",
            "0",
            *configs,
        ),
        cwd=work,
        capture_output=True,
        text=True,
        timeout=2400,
    )
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "--signal=URG@60" in out.stdout + out.stderr
    # the job restarted under its own id (SLURM counts the restarts) and resumed from its checkpoint
    (job,) = set(re.findall(r"SLURM jobid (\d+) \(log: \S*rule_train_parent", out.stdout + out.stderr))
    shown = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True).stdout
    assert int(re.search(r"Restarts=(\d+)", shown).group(1)) >= 1, shown
    assert re.search(r"resumed at step [1-9]\d*/", (work / "logs" / "cifar10" / "parent.log").read_text())
    whole = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", target, *configs],  # --configfile takes several values
        cwd=local,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert whole.returncode == 0, whole.stderr[-3000:]
    import torch

    resumed = torch.load(work / PARENT / "parent.pt", weights_only=True)["state_dict"]
    whole = torch.load(local / PARENT / "parent.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)  # as if never interrupted
