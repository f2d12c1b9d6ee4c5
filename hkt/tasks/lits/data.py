"""LiTS data as training and evaluation read it: the configuration (tasks.<block>.data and
.evaluation), the prepared cases and their patient split, and training patches.

Preparation (hkt.tasks.lits.prepare) put LiTS-named NIfTI cases under `root`, split them by
patient, and cached every case preprocessed (HU window, resampled to `target_spacing`) under
`cache`, with `split.json` written last.

Arrays in the cache are nibabel's (X, Y, Z); models see (D, H, W) = (Z, X, Y): slices along
the scan axis, as both networks' in-plane-only pooling expects. Training patches are a pure
function of (seed, step): the step's generator picks each patch's case and centre (a liver
voxel with probability `liver_fraction`), so a resumed run sees the batches of an
uninterrupted one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch

from hkt.conventions import dataset_label
from hkt.tasks import BenchData, EvaluationData, TrainingData
from hkt.tasks.lits import preprocess, volumes
from hkt.tasks.lits.metrics import dice_of, padded, sliding_window

SOURCES = ("generated", "download", "manual")
SPLIT_FILE = "split.json"


@dataclass(frozen=True)
class Generated:
    seed: int = 0
    n_cases: int = 10
    shape: tuple = volumes.DEFAULT_SHAPE  # X, Y, Z voxels of each generated scan
    spacing: tuple = volumes.DEFAULT_SPACING  # mm


@dataclass(frozen=True)
class DataConfig:
    root: str  # LiTS layout: volume-N.nii[.gz] beside segmentation-N.nii[.gz]
    cache: str  # preprocessed cases (case-N.npz) and split.json
    source: str = "generated"  # generated | download (Decathlon Task03_Liver) | manual (LiTS files at root)
    archive: str = "lits_decathlon"  # download: the data/MANIFEST.yaml `datasets` entry (url, md5, place_at)
    target_spacing: tuple = (0.8, 0.8, 2.5)  # mm (X, Y, Z) every case is resampled to
    hu_window: tuple = preprocess.HU_WINDOW
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    split_seed: int = 0
    patch: tuple = (8, 64, 64)  # D, H, W voxels of training patches and of the sliding window
    liver_fraction: float = 0.7  # share of patches centred on a liver voxel
    val_overlap: float = 0.5  # sliding-window overlap of the validation that selects the checkpoint
    # A case whose header has an identity affine states no spacing (LiTS's challenge release: volumes
    # 28-47): refuse (the data job fails, naming every such case) | exclude (left out of the split,
    # named in the data record and the log). Never resampled as if its voxels were 1 mm.
    unstated_spacing: str = "refuse"
    generated: Generated | None = None

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.unstated_spacing not in ("refuse", "exclude"):
            raise ValueError(f"unstated_spacing must be 'refuse' or 'exclude', got {self.unstated_spacing!r}")
        if len(self.patch) != 3 or self.patch[0] < 3 or any(s % 32 for s in self.patch[1:]):
            raise ValueError(f"patch must be [D, H, W] with D >= 3 and H, W multiples of 32, got {self.patch}")
        if len(self.target_spacing) != 3 or min(self.target_spacing) <= 0:
            raise ValueError(f"target_spacing must be three positive mm values, got {self.target_spacing}")
        if not 0 <= self.liver_fraction <= 1:
            raise ValueError(f"liver_fraction must lie in [0, 1], got {self.liver_fraction}")
        if not 0 <= self.val_overlap < 1:
            raise ValueError(f"val_overlap must lie in [0, 1), got {self.val_overlap}")
        if isinstance(self.generated, dict):
            from hkt.fields import dataclass_from

            object.__setattr__(self, "generated", dataclass_from(Generated, self.generated, "generated"))
        if self.source == "generated" and self.generated is None:
            raise ValueError("generated: required when source is 'generated'")


def split_of(data: DataConfig) -> dict:
    path = Path(data.cache) / SPLIT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no prepared LiTS cache (run the data job: prepare_data)")
    try:
        return json.loads(path.read_text())["split"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a split record ({type(err).__name__}: {err}); rerun its data job") from err


def load_cases(data: DataConfig, part: str, limit: int | None = None) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(case id, image (D, H, W) float32, labels (D, H, W) uint8) of every case in a split part
    (the first `limit` only, if given: a whole test split of CT volumes is gigabytes)."""
    out = []
    for case in split_of(data)[part][:limit]:
        image, labels = preprocess.load_cached(preprocess.cached_path(data.cache, case))
        out.append(
            (case, np.ascontiguousarray(image.transpose(2, 0, 1)), np.ascontiguousarray(labels.transpose(2, 0, 1)))
        )
    return out


# ---------------------------------------------------------------------------------------------
# Training patches
# ---------------------------------------------------------------------------------------------
class Batches:
    """step -> (patches (B, 1, D, H, W) float32, labels (B, D, H, W) int64)."""

    def __init__(self, cases, *, patch, batch_size: int, seed: int, liver_fraction: float):
        self.images = [padded(image, patch) for _, image, _ in cases]
        self.labels = [padded(labels, patch) for _, _, labels in cases]
        self.liver = [np.argwhere(labels > 0) for labels in self.labels]
        self.patch, self.batch_size, self.seed, self.liver_fraction = tuple(patch), batch_size, seed, liver_fraction
        if not self.images:
            raise ValueError("no training cases in the split")

    def __call__(self, step: int):
        rng = np.random.default_rng([self.seed, step])
        xs, ys = [], []
        for _ in range(self.batch_size):
            k = int(rng.integers(len(self.images)))
            shape = self.images[k].shape
            if len(self.liver[k]) and rng.random() < self.liver_fraction:
                centre = self.liver[k][rng.integers(len(self.liver[k]))]
                start = [int(np.clip(c - p // 2, 0, s - p)) for c, p, s in zip(centre, self.patch, shape, strict=True)]
            else:
                start = [int(rng.integers(s - p + 1)) for p, s in zip(self.patch, shape, strict=True)]
            window = tuple(slice(a, a + p) for a, p in zip(start, self.patch, strict=True))
            xs.append(self.images[k][window])
            ys.append(self.labels[k][window])
        x = torch.from_numpy(np.stack(xs))[:, None]
        return x, torch.from_numpy(np.stack(ys).astype(np.int64))


# ---------------------------------------------------------------------------------------------
# Evaluation's configuration, the dataset's name, and what a training stage and `make bench` read
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConfig:
    timing: dict  # {warmup, repeats}: seconds per CT volume (the first test case, whole)
    overlap: float = 0.5  # sliding-window overlap of neighbouring windows
    published: tuple = ()

    def __post_init__(self):
        if not 0 <= self.overlap < 1:
            raise ValueError(f"overlap must lie in [0, 1), got {self.overlap}")


def dataset_name(data: DataConfig) -> str:
    return dataset_label("lits", data.source)


def training(data: DataConfig, *, batch_size: int, seed: int, device) -> TrainingData:
    batches = Batches(
        load_cases(data, "train"),
        patch=data.patch,
        batch_size=batch_size,
        seed=seed,
        liver_fraction=data.liver_fraction,
    )
    val = load_cases(data, "val")
    x, _ = batches(0)
    return TrainingData(
        batches=batches,
        validate=lambda child: {"dice_mean": dice_of(child, val, data.patch, data.val_overlap, device)["dice_mean"]},
        sample=x[:2],
    )


def _window_infer(model, volume, *, patch, overlap):
    return sliding_window(model, volume.cpu(), patch, overlap=overlap, device=volume.device)


def benchmark(data: DataConfig, ev: EvalConfig, batch_size: int, generator) -> BenchData:
    """Training patches of the configured size; inference over one volume of 4 windows' depth."""
    d, h, w = data.patch
    x = torch.rand(batch_size, 1, d, h, w, generator=generator)
    y = torch.randint(0, 3, (batch_size, d, h, w), generator=generator)
    volume = torch.rand(2 * d, h, w, generator=generator)

    return BenchData(
        batch=(x, y),
        infer_input=volume,
        infer=partial(_window_infer, patch=data.patch, overlap=ev.overlap),
        infer_batch=1,
    )


def evaluation(data: DataConfig, ev: EvalConfig, device) -> EvaluationData:
    """Per-case and global liver Dice and tumour Dice on the test cases; the timed inference is
    the sliding window over the first test case's whole volume."""
    test = load_cases(data, "test")
    name = dataset_name(data)

    def score(model) -> list[dict]:
        result = dice_of(model, test, data.patch, ev.overlap, device)
        keys = ("dice_mean", "dice_global", "tumour_dice_mean")
        return [{"dataset": name, "split": "test", "metric": k, "value": result[k]} for k in keys if k in result]

    volume = test[0][1]
    return EvaluationData(
        score=score,
        infer=lambda model: sliding_window(model, volume, data.patch, overlap=ev.overlap, device=device),
        batch_size=1,
    )
