"""LiTS liver segmentation (the paper's Table 3 and its overlays): H-DenseUNet -> PocketNet.

The task contract (hkt.tasks.Task) for LiTS: the two 3-D networks and their three aligned
blocks (hkt.tasks.lits.models), NIfTI cases read with nibabel, checked, split by patient and
cached preprocessed (hkt.tasks.lits.volumes, .preprocess, .data), a segmentation loss
(cross-entropy plus soft Dice), selection on the validation cases' per-case liver Dice (LiTS's
D-Mean; higher is better), scoring on the test cases with a sliding window over each whole
volume (hkt.tasks.lits.metrics), and Table 3 with the overlay figure (hkt.tasks.lits.tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F

from hkt.models import evaluating
from hkt.tasks import BenchData, Download, EvaluationData, Task, TrainingData
from hkt.tasks.lits import data as D
from hkt.tasks.lits import metrics as M
from hkt.tasks.lits import models
from hkt.tasks.lits.data import DataConfig


@dataclass(frozen=True)
class EvalConfig:
    timing: dict  # {warmup, repeats}: seconds per CT volume (the first test case, whole)
    overlap: float = 0.5  # sliding-window overlap of neighbouring windows
    published: tuple = ()

    def __post_init__(self):
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must lie in [0, 1), got {self.overlap}")


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus (1 - soft Dice) averaged over liver and tumour. H-DenseUNet trains with
    weighted cross-entropy, PocketNet with Dice; the sum serves both (results/discrepancies.csv)."""
    ce = F.cross_entropy(logits.float(), target)
    probs = logits.float().softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(probs.dtype)
    dims = tuple(range(2, logits.dim()))
    inter = (probs * onehot).sum(dims)[:, 1:]
    denom = (probs + onehot).sum(dims)[:, 1:]
    soft_dice = (2 * inter + 1) / (denom + 1)  # +1: an absent class predicted absent scores 1
    return ce + (1 - soft_dice).mean()


def _dataset_name(data: DataConfig) -> str:
    return "lits-generated" if data.source == "generated" else "lits"


def _dice(model, cases, patch, overlap, device) -> dict:
    meter = M.DiceMeter()
    with evaluating(model):
        for _, image, labels in cases:
            meter.update(D.predict_labels(model, image, patch, overlap=overlap, device=device), labels)
    return meter.result()


def training(data: DataConfig, *, batch_size: int, seed: int, device) -> TrainingData:
    batches = D.Batches(
        D.load_cases(data, "train"),
        patch=data.patch,
        batch_size=batch_size,
        seed=seed,
        liver_fraction=data.liver_fraction,
    )
    val = D.load_cases(data, "val")
    x, _ = batches(0)
    return TrainingData(
        batches=batches,
        validate=lambda child: {"dice_mean": _dice(child, val, data.patch, data.val_overlap, device)["dice_mean"]},
        sample=x[:2],
    )


def evaluation(data: DataConfig, ev: EvalConfig, device) -> EvaluationData:
    """Per-case and global liver Dice and tumour Dice on the test cases; the timed inference is
    the sliding window over the first test case's whole volume."""
    test = D.load_cases(data, "test")
    name = _dataset_name(data)

    def score(model) -> list[dict]:
        result = _dice(model, test, data.patch, ev.overlap, device)
        keys = ("dice_mean", "dice_global", "tumour_dice_mean")
        return [{"dataset": name, "split": "test", "metric": k, "value": result[k]} for k in keys if k in result]

    volume = test[0][1]
    return EvaluationData(
        score=score,
        infer=lambda model: D.sliding_window(model, volume, data.patch, overlap=ev.overlap, device=device),
        batch_size=1,
    )


def _window_infer(model, volume, *, patch, overlap):
    return D.sliding_window(model, volume.cpu(), patch, overlap=overlap, device=volume.device)


def benchmark(data: DataConfig, ev: EvalConfig, batch_size: int, generator) -> BenchData:
    """Training patches of the configured size; inference over one volume of 4 windows' depth."""
    d, h, w = data.patch
    x = torch.rand(batch_size, 1, d, h, w, generator=generator)
    y = torch.randint(0, 3, (batch_size, d, h, w), generator=generator)
    volume = torch.rand(2 * d, h, w, generator=generator)

    return BenchData(
        batch=(x, y),
        task=None,
        infer_input=volume,
        infer=partial(_window_infer, patch=data.patch, overlap=ev.overlap),
        infer_batch=1,
    )


def prepare_data(data: DataConfig, *, part: str = "all", allow_network: bool = True) -> dict:
    return D.prepare(data, allow_network=allow_network)


def stand_in(data: dict, root: str) -> dict:
    """Five generated CT scans at a real LiTS in-plane size (512x512 at 0.8 mm; 24 slices of 1 mm
    where real scans hold 74 to 987, so that a CPU slides H-DenseUNet over a whole scan in about a
    minute), in the LiTS naming, preprocessed as the real ones are."""
    return {
        **data,
        "source": "generated",
        "root": root,
        "cache": f"{root}-cache",
        "generated": {"seed": 0, "n_cases": 5, "shape": [512, 512, 24], "spacing": [0.8, 0.8, 1.0]},
    }


def downloads(data: DataConfig, part: str = "all") -> list[Download]:
    """The Decathlon archive (data/MANIFEST.yaml), unless the LiTS files are in place already."""
    if data.source != "download" or D.has_cases(data.root):
        return []
    entry = D.archive_entry(data.archive)
    return [Download(entry["url"], entry["place_at"], {"md5": entry["md5"]})]


def _tables():
    from hkt.tasks.lits import tables  # matplotlib: imported by report jobs only

    return tables


TASK = Task(
    name="lits",
    build_model=models.build,
    blocks=models.blocks,
    task_loss=segmentation_loss,
    # The paper's L1/L3 "MAE against G_T": the same segmentation loss against the ground truth.
    inherit_losses={"segmentation": segmentation_loss},
    max_stages=3,
    mixed_leaves=models.mixed_leaves,
    feature_points=models.feature_points,
    data_config=DataConfig,
    eval_config=EvalConfig,
    prepare_data=prepare_data,
    downloads=downloads,
    stand_in=stand_in,
    training=training,
    evaluation=evaluation,
    select=("dice_mean", "max"),
    metrics={"dice_mean": "max", "dice_global": "max", "tumour_dice_mean": "max"},
    headline=("dice_mean",),
    benchmark=benchmark,
    tables={
        "table3": lambda inp, outs: _tables().table3(inp, outs),
        "comparisons": lambda inp, outs: _tables().comparisons(inp, outs),
    },
    figures={"overlays": lambda inp, path: _tables().overlays(inp, path)},
)
