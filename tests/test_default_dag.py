"""The README's main job: `snakemake --cores all` at the embedded default, end to end."""
import json
import subprocess
import sys

import pandas as pd
import pytest

from conftest import REPO

pytestmark = pytest.mark.slow
def test_every_table_and_figure_is_produced(dag):
    for name in ("table2.csv", "table2.md", "table2.tex", "comparisons.csv"):
        assert (dag / "results" / "tables" / "cifar10" / name).stat().st_size > 0
    for name in ("cifar10_learning_curves.png", "cifar10_accuracy_vs_params.png"):
        assert (dag / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_are_long_format_with_every_run_and_seed_and_labelled_smoke(dag):
    cfg_runs = ["parent/default"] + __import__("yaml").safe_load((dag / "config" / "config.yaml").read_text())[
        "tasks"]["cifar10"]["runs"]
    metrics = pd.read_csv(dag / "results" / "cifar10" / "metrics.csv")
    runs = set(metrics["method"] + "/" + metrics["variant"])
    assert runs == set(cfg_runs)
    assert (metrics.groupby(["method", "variant"])["seed"].nunique().drop(("parent", "default")) == 2).all()
    assert set(metrics.scale) == {"smoke"} and metrics["commit"].notna().all() and metrics["config_hash"].notna().all()
    assert "SMOKE SCALE" in (dag / "results" / "tables" / "cifar10" / "table2.md").read_text()
    assert "SMOKE SCALE" in (dag / "results" / "tables" / "cifar10" / "table2.tex").read_text()


def test_parent_and_child_learn_well_above_chance(dag):
    m = pd.read_csv(dag / "results" / "cifar10" / "metrics.csv")
    acc = m[(m.metric == "top1_acc") & (m.split == "test")].groupby(["method", "variant"])["value"].mean()
    assert acc[("parent", "default")] > 50 and acc[("alone", "default")] > 40   # chance is 10 %
    table = pd.read_csv(dag / "results" / "tables" / "cifar10" / "table2.csv")
    assert table.query("run == 'hkt/default' and metric == 'top1_acc'")["paper"].iloc[0] == 92.4


def test_every_run_records_its_metadata(dag):
    for meta in (dag / "results" / "runs").glob("cifar10/**/meta.json"):
        record = json.loads(meta.read_text())
        for key in ("commit", "config_hash", "seed", "torch", "torchvision", "python", "device", "selected"):
            assert key in record, f"{meta}: {key}"


def test_a_second_invocation_has_nothing_to_do(dag):
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "all"], cwd=dag,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "Nothing to be done" in out.stdout + out.stderr
