"""The README's main job: `snakemake --cores all` at the embedded default, end to end."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import planned_jobs

from hkt import config as C

pytestmark = pytest.mark.slow


def test_every_table_and_figure_is_produced(dag):
    for name in ("table2.csv", "table2.md", "table2.tex", "comparisons.csv", "comparisons.md", "comparisons.tex"):
        assert (dag / "results" / "tables" / "cifar10" / name).stat().st_size > 0
    for name in ("cifar10_learning_curves.png", "cifar10_accuracy_vs_params.png"):
        assert (dag / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_are_long_format_with_every_run_and_seed_and_labelled_smoke(dag):
    cfg_runs = ["parent/default"] + __import__("yaml").safe_load((dag / "config" / "config.yaml").read_text())["tasks"][
        "cifar10"
    ]["runs"]
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
    assert acc[("parent", "default")] > 50 and acc[("alone", "default")] > 40  # chance is 10 %
    table = pd.read_csv(dag / "results" / "tables" / "cifar10" / "table2.csv")
    assert table.query("run == 'hkt/default' and metric == 'top1_acc'")["paper"].iloc[0] == 92.4
    assert table.query("run == 'hkt/default'")["row"].iloc[0] == "Ours"  # the paper's own row label


def test_inhernet_added_through_the_registry_learns_within_the_childs_budget(dag):
    m = pd.read_csv(dag / "results" / "cifar10" / "metrics.csv")
    mean = m.groupby(["method", "variant", "metric", "split"])["value"].mean()
    assert mean[("inhernet", "default", "top1_acc", "test")] > 40  # chance is 10 %
    assert mean[("inhernet", "default", "params_m", "-")] <= mean[("alone", "default", "params_m", "-")]
    table = pd.read_csv(dag / "results" / "tables" / "cifar10" / "table2.csv")
    assert "inhernet/default" in set(table.run.dropna())  # Table 2's extended rows
    compared = pd.read_csv(dag / "results" / "tables" / "cifar10" / "comparisons.csv")
    assert "inhernet/default" in set(compared.run)


def test_a_feature_map_method_learns_and_hkt_compare_ranks_it_against_the_baselines_rerun_beside_it(dag):
    """Attention transfer (one module in baselines/, one config entry) reads CIFAR's named feature
    points; the README's command answers "is mine better?" on one screen, against the controls
    and the best baselines of the same results file (same machine), with corrected verdicts. The
    frozen set holds attention transfer since the refreeze of bd50b4a, so `--runs` names it."""
    m = pd.read_csv(dag / "results" / "cifar10" / "metrics.csv")
    acc = m[(m.metric == "top1_acc") & (m.split == "test") & (m.method == "attention_transfer")]["value"]
    assert len(acc) == 2 and acc.min() > 40  # chance is 10 %
    out = subprocess.run(
        [sys.executable, "-m", "hkt.cli", "compare", "results/cifar10/metrics.csv", "--frozen",
         str(C.ROOT / "results" / "frozen" / "smoke"), "--runs", "attention_transfer/default",
         "--out", "results/compare/mine"],
        cwd=dag, capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    ranking = pd.read_csv(dag / "results" / "compare" / "mine_ranking.csv")
    assert set(ranking.loc[ranking.role == "yours", "run"]) == {"attention_transfer/default"}
    assert {"alone/default", "alone/finetune"} <= set(ranking.run) and set(ranking.source) == {"this file"}
    pairs = pd.read_csv(dag / "results" / "compare" / "mine.csv")
    assert len(pairs) == 4 and pairs.verdict.isin(["better", "worse", "no significant difference"]).all()
    assert len(out.stdout.splitlines()) < 25 and "Holm" in out.stdout


def test_every_run_records_its_metadata(dag):
    metas = list((dag / "results" / "runs").glob("**/meta.json"))
    assert len(metas) == (1 + 2 * 11) + (2 + 2 * (2 + 10)) + (1 + 2 * 6)  # CIFAR; flow with its chairs stages; LiTS
    for meta in metas:
        record = json.loads(meta.read_text())
        for key in ("commit", "config_hash", "seed", "torch", "torchvision", "python", "device", "selected", "spec"):
            assert key in record, f"{meta}: {key}"
        assert record["config_hash"] == C.config_hash(record["spec"])


def test_a_second_invocation_has_nothing_to_do(dag):
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "all"],
        cwd=dag,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "Nothing to be done" in out.stdout + out.stderr


def trained_runs(dag, edit) -> list[str]:
    """Training jobs a dry run starts after `edit(config)`: 'task:method/variant/seed' or 'task:parent'."""
    cfg = yaml.safe_load((dag / "config" / "config.yaml").read_text())
    edit(cfg)
    (dag / "edited.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "all", "--configfile", "edited.yaml"],
        cwd=dag,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return sorted(
        re.search(r"task=(\w+)", j.wildcards).group(1)
        + ":"
        + (
            "parent"
            if j.rule.startswith("train_parent")
            else "/".join(re.search(r"method=(\w+), variant=([\w.]+), seed=(\d+)", j.wildcards).groups())
        )
        for j in planned_jobs(out.stdout)
        if j.rule.startswith("train_")
    )


def test_a_changed_finetune_rate_reruns_the_finetuned_runs_and_not_the_parent_or_the_child(dag):
    def edit(cfg):
        cfg["tasks"]["cifar10"]["child"]["finetune"]["lr"] = 0.02

    cfg = yaml.safe_load((dag / "config" / "config.yaml").read_text())
    finetuned = [r for r in cfg["tasks"]["cifar10"]["runs"] if C.run_schedule(cfg, *r.split("/")) == "finetune"]
    assert "inhernet/default" in finetuned  # init: scratch, but its own `schedule: finetune`
    assert trained_runs(dag, edit) == sorted(f"cifar10:{r}/{s}" for r in finetuned for s in (0, 1))


def test_a_changed_lambda_reruns_exactly_that_variants_seeds(dag):
    def edit(cfg):
        cfg["methods"]["hkt"]["variants"]["no_transfer"]["params"]["lambda"] = 0.3

    # the variant runs on flow only in the default: its two seeds, nothing else
    assert trained_runs(dag, edit) == [f"flow:hkt/no_transfer/{s}" for s in (0, 1)]


def test_reordered_data_keys_rerun_nothing(dag):
    def edit(cfg):
        data = cfg["tasks"]["cifar10"]["data"]
        cfg["tasks"]["cifar10"]["data"] = dict(reversed(list(data.items())))

    assert trained_runs(dag, edit) == []


# ---------------------------------------------------------------------------------------------
# Optical flow in the same run
# ---------------------------------------------------------------------------------------------
def test_flow_table1_ablation_and_figures_are_written_with_the_papers_rows(dag):
    tables = dag / "results" / "tables" / "flow"
    for name in ("table1", "ablation", "comparisons"):
        for ext in ("csv", "md", "tex"):
            assert (tables / f"{name}.{ext}").stat().st_size > 0
    for name in ("figure3_mu", "figure4_qualitative"):
        assert (dag / "figures" / f"flow_{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = pd.read_csv(tables / "table1.csv")
    hkt3 = table[(table.run == "hkt/default") & (table.column == "Sintel clean EPE")].iloc[0]
    assert hkt3["paper"] == 1.90 and hkt3["row"] == "3HKT-RAFT (Ours) [C+T]" and hkt3["n_seeds"] == 2
    literature = table[table.run.isna()]
    assert literature.row.str.startswith("PWC-Net").any() and (literature.n_seeds == 0).all()
    md = (tables / "ablation.md").read_text()
    assert "SMOKE SCALE" in md and "third_stage_mu" in md and "no_mixture_epe" in md
    assert "in effect the fine-tuning control" in (tables / "table1.md").read_text()  # what the DRAFT row is


@pytest.mark.parametrize("task,table", [("cifar10", "table2"), ("flow", "table1"), ("lits", "table3")])
def test_each_paper_table_sets_the_matched_budget_control_beside_the_child_and_the_train_only_parameters(
    dag, task, table
):
    rows = pd.read_csv(dag / "results" / "tables" / task / f"{table}.csv")
    runs = list(dict.fromkeys(rows.run.dropna()))
    assert runs[runs.index("alone/default") + 1] == "alone/finetune"
    extra = rows[rows.metric == "extra_params_m"].set_index("run")["suite_mean"]
    assert extra["alone/default"] == extra["alone/finetune"] == 0
    if task != "cifar10":  # ETM transfers between different widths: trained, never deployed
        assert extra["hkt/default"] > extra["hkt/two_stage"] > 0


def test_every_flow_model_is_scored_on_sintel_clean_final_and_kitti(dag):
    cfg_runs = yaml.safe_load((dag / "config" / "config.yaml").read_text())["tasks"]["flow"]["runs"]
    metrics = pd.read_csv(dag / "results" / "flow" / "metrics.csv")
    scored = metrics[metrics.split == "train"]
    assert set(scored.dataset) == {"sintel-clean-generated", "sintel-final-generated", "kitti-2015-generated"}
    assert set(scored.metric) == {"epe", "fl_all"}
    assert set(metrics.method + "/" + metrics.variant) == {"parent/default", *cfg_runs}
    assert (metrics.groupby(["method", "variant"])["seed"].nunique().drop(("parent", "default")) == 2).all()


def test_every_flow_model_learns_well_below_the_zero_flow_error(dag):
    from hkt.tasks.flow.data import sintel_pairs

    root = dag / "data" / "flow-generated"
    val = sintel_pairs(root, pass_name="clean", scenes=("scene_0",), keep=True)
    zero = sum(float(f.norm(dim=0)[v].sum()) for _, _, f, v in val) / sum(int(v.sum()) for *_, v in val)
    metrics = pd.read_csv(dag / "results" / "flow" / "metrics.csv")
    val_epe = metrics[metrics.split == "val"].set_index(["method", "variant", "seed"])["value"]
    assert (val_epe < 0.6 * zero).all(), (zero, val_epe.max())


def test_the_deployed_flow_child_trained_in_two_stages_is_a_plain_raft(dag):
    from hkt.models import load_checkpoint
    from hkt.tasks.flow import models

    run = dag / "results" / "runs" / "flow" / "alone" / "default" / "seed0"
    assert json.loads((run / "meta.json").read_text())["spec"]["stages"] == ["chairs", "things"]
    assert (run / "stage-chairs" / "method.pt").exists()
    load_checkpoint(
        models.build("raft_smoke_small"), dag / "results" / "runs" / "flow" / "hkt" / "default" / "seed0" / "child.pt"
    )


def test_kitti_test_predictions_are_written_as_the_benchmarks_full_valid_16_bit_pngs(dag):
    from PIL import Image

    from hkt.tasks.flow import formats

    out = dag / "results" / "exports" / "flow" / "kitti_test" / "hkt" / "default" / "seed0"
    record = json.loads((out / "export.json").read_text())
    testing = sorted((dag / "data" / "flow-generated" / "KittiFlow" / "testing" / "image_2").glob("*_10.png"))
    assert record["files"] == [p.name for p in testing] and testing
    for image in testing:
        flow, valid = formats.read_kitti_flow(out / "flow" / image.name, Image.open(image).size[::-1])
        assert valid.all() and flow.std() > 0  # a prediction for every pixel, not a constant
    assert record["meta"]["config_hash"] and not (out.parent / "seed0.partial").exists()


# ---------------------------------------------------------------------------------------------
# LiTS in the same run
# ---------------------------------------------------------------------------------------------
def test_lits_table3_and_the_overlays_are_written_beside_the_papers_numbers(dag):
    table = pd.read_csv(dag / "results" / "tables" / "lits" / "table3.csv")
    ours = table.query("run == 'hkt/default' and metric == 'dice_mean'")
    assert ours["paper"].iloc[0] == 94.1 and ours["row"].iloc[0] == "Ours" and ours["n_seeds"].iloc[0] == 2
    # the paper's "global mean Dice" beside both of LiTS's conventions (per case, global)
    assert table.query("run == 'hkt/default' and metric == 'dice_global'")["paper"].iloc[0] == 94.1
    assert "SMOKE SCALE" in (dag / "results" / "tables" / "lits" / "table3.md").read_text()
    assert (dag / "figures" / "lits_overlays.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_lits_model_segments_the_liver_far_better_than_an_empty_or_all_liver_prediction(dag):
    import numpy as np

    from hkt.fields import dataclass_from
    from hkt.tasks.lits import data as D
    from hkt.tasks.lits import metrics as M

    block = yaml.safe_load((dag / "config" / "config.yaml").read_text())["tasks"]["lits"]["data"]
    data = dataclass_from(
        D.DataConfig, {**block, "root": str(dag / block["root"]), "cache": str(dag / block["cache"])}, "data"
    )
    trivial = []
    for fill in (0, 1):  # nothing, or everything, labelled liver
        meter = M.DiceMeter()
        for _, _, labels in D.load_cases(data, "test"):
            meter.update(np.full_like(labels, fill), labels)
        trivial.append(meter.result()["dice_mean"])
    m = pd.read_csv(dag / "results" / "lits" / "metrics.csv")
    dice = m[(m.metric == "dice_mean") & (m.split == "test")]
    runs = yaml.safe_load((dag / "config" / "config.yaml").read_text())["tasks"]["lits"]["runs"]
    assert len(dice) == 1 + 2 * len(runs) and max(trivial) < 40
    assert (dice["value"] > max(trivial) + 30).all(), dice[["method", "variant", "seed", "value"]]
