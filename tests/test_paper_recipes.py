"""config/paper.yaml against its anchors: each test names the file and value of the reference code
(princeton-vl/RAFT, torchvision's references, the public DRAFT and PocketNet code) or the published
dataset size it checks. The smoke configuration cannot show these: its datasets are all tiny."""

import pandas as pd
import pytest
from conftest import REPO

from hkt import config as C
from hkt.tasks.flow.data import mixture_shares

PAPER = C.load(REPO / "config" / "paper.yaml")
FLOW_BLOCKS = ["flow", "flow-ctsk", "flow-ctskh"]

# Published pair counts (one pass where a set has two): Sintel training 1,041 pairs in 23 scenes
# (1,064 frames); FlyingThings3D TRAIN, left camera, both directions, 2,239 sequences x 9 pairs x 2;
# KITTI-2015 training 200; HD1K 1,047.
PUBLISHED = {"sintel_clean": 1041, "sintel_final": 1041, "kitti": 200, "hd1k": 1047, "things_clean": 40302}
HELD_OUT_SINTEL = 3 * 49  # alley_2, market_5, temple_3: 50 frames each, the suite's validation scenes


def stages(block: str, role: str, schedule: str = "train") -> list[dict]:
    return C.stages(PAPER["tasks"][block][role][schedule])


def all_stages(block: str):
    for role, schedule in (("parent", "train"), ("child", "train"), ("child", "finetune")):
        for stage in stages(block, role, schedule):
            data = C.merge(PAPER["tasks"][block]["data"], stage.get("data"))
            yield f"{block}.{role}.{schedule}.{stage['name']}", stage, data


def shares(mixture: dict, lengths: dict) -> dict:
    """Per dataset: RAFT's multiplier applies to each of its passes."""
    per_source = mixture_shares({k: mixture[k.split("_")[0]] for k in lengths}, lengths)
    out = {}
    for source, share in per_source.items():
        out[source.split("_")[0]] = out.get(source.split("_")[0], 0) + share
    return out


def test_rafts_mixture_with_the_published_sizes_gives_torchvisions_stated_shares():
    """RAFT core/datasets.py (TRAIN_DS 'C+T+K+S+H'): 100*sintel_clean + 100*sintel_final + 200*kitti +
    5*hd1k + things (clean pass); torchvision references/optical_flow/train.py: 'The distribution is
    S(.71), T(.135), K(.135), H(.02)'."""
    mixture = C.merge(PAPER["tasks"]["flow-ctskh"]["data"], stages("flow-ctskh", "child")[-1]["data"])
    assert mixture["mixture"] == {"sintel": 100, "kitti": 200, "hd1k": 5, "things": 1}
    assert mixture["things_pass"] == "clean" and mixture.get("sintel_pass", "both") == "both"
    got = shares(mixture["mixture"], PUBLISHED)
    for name, stated in {"sintel": 0.71, "things": 0.135, "kitti": 0.135, "hd1k": 0.02}.items():
        assert got[name] == pytest.approx(stated, abs=0.005), (name, got)
    # the suite holds three Sintel scenes out for selection: Sintel's share falls, the others rise
    held = {**PUBLISHED, "sintel_clean": 1041 - HELD_OUT_SINTEL, "sintel_final": 1041 - HELD_OUT_SINTEL}
    assert shares(mixture["mixture"], held) == pytest.approx(
        {"sintel": 0.676, "things": 0.152, "kitti": 0.151, "hd1k": 0.020}, abs=0.001
    )


def test_c_t_s_k_is_rafts_sintel_stage_without_kitti():
    """RAFT core/datasets.py, TRAIN_DS 'C+T+K/S': train_dataset = 100*sintel_clean + 100*sintel_final + things."""
    for schedule in ("train", "finetune"):
        data = C.merge(PAPER["tasks"]["flow-ctsk"]["data"], stages("flow-ctsk", "child", schedule)[-1]["data"])
        assert data["mixture"] == {"sintel": 100, "things": 1} and data["things_pass"] == "clean"
        assert shares(data["mixture"], {k: v for k, v in PUBLISHED.items() if k.split("_")[0] in ("sintel", "things")})[
            "sintel"
        ] == pytest.approx(208200 / 248502)


def test_batchnorm_is_frozen_in_every_flow_stage_but_chairs():
    """RAFT train.py: `if args.stage != 'chairs': model.module.freeze_bn()`."""
    for block in FLOW_BLOCKS:
        for where, stage, data in all_stages(block):
            assert stage.get("freeze_bn", False) == (data["dataset"] != "chairs"), where


def test_flow_stages_follow_rafts_train_standard_sh():
    """princeton-vl/RAFT train_standard.sh: chairs 100k steps, batch 10, lr 4e-4, 368x496, wdecay 1e-4;
    things 100k, batch 6, lr 1.25e-4, 400x720 (clean + final, train.py); sintel 100k, batch 6,
    lr 1.25e-4, 368x768, wdecay 1e-5, gamma 0.85. train.py: AdamW, OneCycleLR pct_start 0.05, clip 1."""
    expected = {
        "chairs": dict(steps=100000, batch_size=10, lr=0.0004, weight_decay=0.0001, crop=[368, 496], gamma=0.8),
        "things": dict(steps=100000, batch_size=6, lr=0.000125, weight_decay=0.0001, crop=[400, 720], gamma=0.8),
        "mixture": dict(steps=100000, batch_size=6, lr=0.000125, weight_decay=0.00001, crop=[368, 768], gamma=0.85),
    }
    for block in FLOW_BLOCKS:
        for role in ("parent", "child"):
            for stage in stages(block, role):
                data = C.merge(PAPER["tasks"][block]["data"], stage.get("data"))
                want = expected[data["dataset"]]
                got = {k: stage[k] for k in ("steps", "batch_size", "lr", "weight_decay")}
                got.update(crop=list(data["crop"]), gamma=data["gamma"])
                assert got == want, (block, role, stage["name"])
                assert (stage["optimizer"], stage["lr_schedule"], stage["pct_start"], stage["grad_clip"]) == (
                    "adamw",
                    "onecycle",
                    0.05,
                    1.0,
                )
                if data["dataset"] == "things":
                    assert data["things_pass"] == "both"


def test_every_distillation_term_decays_along_the_updates_as_its_stage_loss_does():
    """train_standard.sh trains the sintel stage with --gamma 0.85: flow_kd's and DRAFT's per-update
    weights follow the stage's sequence-loss gamma in every block."""
    for block in FLOW_BLOCKS:
        for run in PAPER["tasks"][block]["runs"]:
            method, variant = run.split("/")
            if method not in ("flow_kd", "draft"):
                continue
            spec = C.run_specs(PAPER, block, method, variant, 0)[-1]
            assert spec["params"]["gamma"] == spec["data"]["gamma"], (block, run)


def test_the_flow_parent_is_the_release_whose_numbers_the_paper_prints():
    """The paper's RAFT (P) C+T row is the original RAFT's; torchvision's V1 weights are its port
    (torchvision raft.py Raft_Large_Weights.C_T_V1 metadata), V2 a retraining 0.5 px off on KITTI."""
    manifest = C.load_manifest()
    paper = pd.read_csv(REPO / "results" / "paper" / "results.csv")
    row = paper[(paper.table == "table1") & (paper.method == "raft_parent") & (paper.training == "C+T")]
    printed = {(r.dataset, r.metric): r.value for r in row.itertuples()}
    keys = {
        "sintel_clean_epe": ("sintel-clean", "epe"),
        "sintel_final_epe": ("sintel-final", "epe"),
        "kitti_epe": ("kitti-2015", "epe"),
        "kitti_fl_all": ("kitti-2015", "fl_all"),
    }

    def gap(name):
        reported = manifest["checkpoints"][name]["reported"]
        return max(abs(reported[k] - printed[v]) for k, v in keys.items())

    used = PAPER["tasks"]["flow"]["parent"]["published"]
    assert used == "torchvision_raft_large_c_t_v1" and gap(used) < 0.1
    assert gap("torchvision_raft_large_c_t_v2") > 0.5
    assert PAPER["tasks"]["flow-ctskh"]["parent"]["published"] == "torchvision_raft_large_c_t_skht_v1"


def test_the_lits_child_trains_at_pocketnets_public_learning_rate():
    """aecelaya/pocketnet train_pocketnet.ipynb: model.compile(optimizer='adam', ...), Keras' default lr 1e-3."""
    train = PAPER["tasks"]["lits"]["child"]["train"]
    assert (train["optimizer"], train["lr"]) == ("adam", 0.001)


@pytest.mark.parametrize(
    "task,table", [("cifar10", "table2"), ("lits", "table3"), *[(b, "table1") for b in FLOW_BLOCKS]]
)
def test_each_paper_table_sets_the_matched_budget_control_beside_the_child(task, table):
    rows = PAPER["tasks"][task]["report"]["tables"][table]["rows"]
    runs = [r["run"] for r in rows]
    assert runs[runs.index("alone/default") + 1] == "alone/finetune"


def test_no_paper_stage_waits_on_the_host_every_step_and_flow_and_lits_batches_are_built_ahead():
    """A synchronisation per step and batches decoded on the training thread leave a GPU idle."""
    for block, t in PAPER["tasks"].items():
        for role, schedule in (("parent", "train"), ("child", "train"), ("child", "finetune")):
            for stage in C.stages(t[role][schedule]):
                assert stage.get("sync_every", 1) > 1, (block, role, stage["name"])
                if not block.startswith("cifar"):
                    assert stage.get("loader_workers", 0) >= 1, (block, role, stage["name"])


@pytest.mark.parametrize("block", FLOW_BLOCKS)
def test_figure_4_shows_draft_2hkt_and_3hkt_in_every_flow_regime(block):
    """Found by the rehearsal: the regime blocks have no ablation table, and Figure 4 showed the
    parent and the child only."""
    from hkt.tasks.flow.tables import figure4_roles

    roles = figure4_roles(PAPER["tasks"][block]["report"])
    assert {roles[r] for r in ("draft", "hkt2", "hkt3")} == {"draft/default", "hkt/two_stage", "hkt/default"}


def test_every_flow_stage_trains_in_mixed_precision_as_rafts_train_standard_sh_and_cifar_and_lits_in_float32():
    # princeton-vl/RAFT train_standard.sh: --mixed_precision on the chairs, things, sintel and kitti stages
    for block in FLOW_BLOCKS:
        for name, stage, _ in all_stages(block):
            assert stage.get("bf16") is True, name
    # christian-tchenko/HKT-ResNet run.sh calls trainer.py without --half; H-DenseUNet and PocketNet: Keras float32
    for block in ("cifar10", "lits"):
        for role, schedule in (("parent", "train"), ("child", "train"), ("child", "finetune")):
            assert not any(s.get("bf16") for s in stages(block, role, schedule)), (block, role, schedule)


def test_the_cifar_transfer_stage_keeps_the_authors_constant_rate_and_a_run_uses_their_batch_statistics_parent():
    import torch

    from hkt.schedule import Schedule

    # HKT-ResNet trainer.py: SGD lr 0.01 with MultiStepLR([100, 150], last_epoch=41150), which never fires
    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for group in optimizer.param_groups:
        group["initial_lr"] = 0.01
    authors = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[100, 150], last_epoch=41150 - 1)
    rates = []
    for _ in range(200):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        authors.step()
    assert set(rates) == {0.01}
    finetune = PAPER["tasks"]["cifar10"]["child"]["finetune"]
    suite = Schedule(**{k: v for k, v in finetune.items() if k in Schedule.__dataclass_fields__})
    assert {suite.lr * suite.lr_factor(step) for step in range(0, suite.steps, 351)} == {0.01}
    assert "hkt/authors_wiring" in PAPER["tasks"]["cifar10"]["runs"]
    assert PAPER["methods"]["hkt"]["variants"]["authors_wiring"]["params"] == {
        "head_query": "child",
        "parent_bn": "train",
    }


def test_the_sintel_columns_score_every_training_pair_as_rafts_validate_sintel(tmp_path):
    """RAFT evaluate.py validate_sintel: every pair of MpiSintel(split='training'), 1,041 per pass."""
    from hkt.tasks.flow import scenes
    from hkt.tasks.flow.data import DataConfig, EvalConfig, evaluation

    for block in FLOW_BLOCKS:
        assert PAPER["tasks"][block]["evaluation"]["sintel_pairs"] == "all", block
    names = ("alley_2", "market_5", "temple_3", "alley_1")  # the held-out scenes and one training scene
    scenes.generate_flow_datasets(tmp_path, seed=1, size=(64, 80), counts={"sintel": 4}, sintel_scenes=names)
    data = DataConfig(
        root=str(tmp_path), source="manual", val_scenes=tuple(PAPER["tasks"]["flow"]["data"]["val_scenes"])
    )
    timing = {"warmup": 0, "repeats": 1, "size": [64, 80]}
    counted = {}
    for pairs in ("all", "unseen"):
        ev = evaluation(data, EvalConfig(timing=timing, sintel_pairs=pairs), "cpu")
        model = CountingModel()
        ev.score(model)
        counted[pairs] = model.pairs
    per_pass = sum(scenes_frames - 1 for scenes_frames in _frames(tmp_path))
    assert counted["all"] == 2 * per_pass + _kitti(tmp_path)  # both passes, every scene
    assert counted["unseen"] == 2 * (per_pass - sum(n - 1 for n in _frames(tmp_path, names[:3]))) + _kitti(tmp_path)


def _frames(root, only=None):
    folder = root / "Sintel" / "training" / "clean"
    return [len(list(d.glob("*.png"))) for d in sorted(folder.iterdir()) if only is None or d.name in only]


def _kitti(root):
    return len(list((root / "KittiFlow" / "training" / "flow_occ").glob("*_10.png")))


class CountingModel:
    """A stand-in flow model that predicts zero flow and counts the pairs it is shown."""

    def __init__(self):
        self.pairs, self.training = 0, False

    def eval(self):
        return self

    def train(self, mode=True):
        return self

    def __call__(self, a, b, num_flow_updates):
        import torch

        self.pairs += a.shape[0]
        return [torch.zeros(a.shape[0], 2, *a.shape[2:])]


def test_no_block_exports_kitti_test_predictions_without_rafts_kitti_stage():
    """RAFT train_standard.sh: the KITTI submission comes from the kitti stage (288x960, 50k steps)."""
    for block in FLOW_BLOCKS:
        if PAPER["tasks"][block]["report"].get("exports", {}).get("kitti_test"):
            trained = [data.get("dataset") for _, _, data in all_stages(block)]
            assert "kitti" in trained, f"{block} exports KITTI-test PNGs but trains no kitti stage"
