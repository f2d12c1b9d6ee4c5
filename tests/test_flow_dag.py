"""The optical-flow branch through the DAG: config/flow-smoke.yaml shrunk to seconds (one seed,
a few steps, the Table 1 runs), writing Table 1, the ablation table and Figures 3 and 4."""

import json
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import REPO, workflow_copy

pytestmark = pytest.mark.slow
RUNS = [
    "alone/default",
    "alone/finetune",
    "flow_kd/default",
    "draft/default",
    "hkt/default",
    "hkt/two_stage",
    "hkt/no_ga",
    "hkt/no_mixture",
]


def shrunk() -> dict:
    cfg = yaml.safe_load((REPO / "config" / "flow-smoke.yaml").read_text())
    cfg["seeds"] = [0]
    flow = cfg["tasks"]["flow"]
    flow["data"]["generated"]["counts"] = {"chairs": 8, "things": 2, "sintel": 2, "kitti": 2, "hd1k": 1}
    flow["runs"] = RUNS
    for schedule in [*flow["parent"]["train"], *flow["child"]["train"], flow["child"]["finetune"]]:
        schedule.update(steps=4, eval_every=2, checkpoint_every=2, batch_size=2)
    flow["evaluation"].update(max_pairs=2)
    return cfg


@pytest.fixture(scope="module")
def flow_dag(tmp_path_factory):
    work = workflow_copy(tmp_path_factory.mktemp("flowdag"))
    (work / "config" / "flow-small.yaml").write_text(yaml.safe_dump(shrunk(), sort_keys=False))
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/flow-small.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-5000:]
    return work


def test_table1_ablation_and_figures_are_written_with_the_papers_rows(flow_dag):
    tables = flow_dag / "results" / "tables" / "flow"
    for name in ("table1", "ablation", "comparisons"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0
    for name in ("figure3_mu", "figure4_qualitative"):
        assert (flow_dag / "figures" / f"flow_{name}.png").read_bytes()[:4] == b"\x89PNG"
    table = pd.read_csv(tables / "table1.csv")
    hkt3 = table[(table.run == "hkt/default") & (table.column == "Sintel clean EPE")].iloc[0]
    assert hkt3["paper"] == 1.90 and hkt3["row"].startswith("3HKT-RAFT (Ours) [C+T]") and hkt3["n_seeds"] == 1
    literature = table[table.run.isna()]
    assert literature.row.str.startswith("PWC-Net").any() and (literature.n_seeds == 0).all()
    md = (tables / "ablation.md").read_text()
    assert "SMOKE SCALE" in md and "third_stage_mu" in md and "no_ga_mu" in md


def test_every_model_is_scored_on_sintel_clean_final_and_kitti(flow_dag):
    metrics = pd.read_csv(flow_dag / "results" / "flow" / "metrics.csv")
    scored = metrics[metrics.split == "train"]
    assert set(scored.dataset) == {"sintel-clean-generated", "sintel-final-generated", "kitti-2015-generated"}
    assert set(scored.metric) == {"epe", "fl_all"}
    assert set(metrics.method + "/" + metrics.variant) == {"parent/default", *RUNS}


def test_the_child_trains_in_two_stages_and_the_deployed_child_is_a_plain_raft(flow_dag):
    from hkt.models import load_checkpoint
    from hkt.tasks.flow import models

    run = flow_dag / "results" / "runs" / "flow" / "alone" / "default" / "seed0"
    assert json.loads((run / "meta.json").read_text())["spec"]["stages"] == ["chairs", "things"]
    assert (run / "stage-chairs" / "method.pt").exists()
    bare = models.build("raft_smoke_small")
    load_checkpoint(bare, flow_dag / "results" / "runs" / "flow" / "hkt" / "default" / "seed0" / "child.pt")
