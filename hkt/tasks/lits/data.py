"""LiTS data for training and evaluation: preparation, the patient split, patches, sliding windows.

Preparation (`prepare`) puts LiTS-named NIfTI cases under `root` (generated; the Medical
Segmentation Decathlon's Task03_Liver archive, md5-checked and extracted safely; or the LiTS
challenge files placed by hand), splits them by patient, and caches every case preprocessed
(HU window, resampled to `target_spacing`) under `cache`, with `split.json` written last.

Arrays in the cache are nibabel's (X, Y, Z); models see (D, H, W) = (Z, X, Y): slices along
the scan axis, as both networks' in-plane-only pooling expects. Training patches are a pure
function of (seed, step): the step's generator picks each patch's case and centre (a liver
voxel with probability `liver_fraction`), so a resumed run sees the batches of an
uninterrupted one. Whole volumes are predicted with an overlapping sliding window whose logits
are averaged (no MONAI needed for this; the window size is the training patch).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hkt.io import atomic_write_json, download, safe_extract
from hkt.tasks.lits import preprocess, volumes

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
    generated: Generated | None = None

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
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


# ---------------------------------------------------------------------------------------------
# Preparation
# ---------------------------------------------------------------------------------------------
MANUAL = (
    "LiTS challenge files: register at https://competitions.codalab.org/competitions/17094, download the "
    "training batches and put volume-N.nii and segmentation-N.nii (N = 0..130) in {root}; or set "
    "source: download to fetch the Medical Segmentation Decathlon's Task03_Liver (the same 131 scans)."
)


def prepare(data: DataConfig, *, allow_network: bool = True) -> dict:
    root, cache = Path(data.root), Path(data.cache)
    if data.source == "generated":
        g = data.generated
        volumes.generate_cases(root, n_cases=g.n_cases, shape=tuple(g.shape), spacing=tuple(g.spacing), seed=g.seed)
    elif data.source == "download" and not has_cases(root):
        entry = archive_entry(data.archive)
        if not allow_network and not Path(entry["place_at"]).exists():
            raise FileNotFoundError(f"{entry['place_at']}: the {data.archive} archive is missing (offline)")
        archive = download(entry["url"], entry["place_at"], md5=entry["md5"])
        extracted = safe_extract(archive, Path(entry["place_at"]).with_suffix(""))
        volumes.decathlon_to_lits(extracted, root)
    try:
        ids = volumes.check_layout(root)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}\n{MANUAL.format(root=root)}") from err
    split = preprocess.split_patients(
        ids, val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=data.split_seed
    )
    manifest = preprocess.cache_cases(
        root, cache, ids, target_spacing=tuple(data.target_spacing), hu_window=tuple(data.hu_window)
    )
    record = {"split": split, "cases": {str(k): v for k, v in sorted(manifest.items())}}
    atomic_write_json(cache / SPLIT_FILE, record)  # last: its presence marks the cache complete
    return {"cases": len(ids), **{part: len(v) for part, v in split.items()}, "split": split}


def archive_entry(name: str) -> dict:
    """The data/MANIFEST.yaml `datasets` entry of an archive, with url, md5 and place_at."""
    from hkt.config import load_manifest

    entry = load_manifest()["datasets"].get(name)
    if not entry or not {"url", "md5", "place_at"} <= set(entry):
        raise ValueError(f"data/MANIFEST.yaml: datasets.{name} must give url, md5 and place_at")
    return entry


def has_cases(root: str | Path) -> bool:
    try:
        return bool(volumes.check_layout(Path(root)))
    except FileNotFoundError:
        return False


def split_of(data: DataConfig) -> dict:
    path = Path(data.cache) / SPLIT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no prepared LiTS cache (run the data job: prepare_data)")
    return json.loads(path.read_text())["split"]


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
def _padded(array: np.ndarray, patch) -> np.ndarray:
    """Zero-pad (the window's floor, air) at the far end so that every axis holds a patch."""
    pads = [(0, max(0, p - s)) for s, p in zip(array.shape, patch, strict=True)]
    return np.pad(array, pads) if any(p for _, p in pads) else array


class Batches:
    """step -> (patches (B, 1, D, H, W) float32, labels (B, D, H, W) int64)."""

    def __init__(self, cases, *, patch, batch_size: int, seed: int, liver_fraction: float):
        self.images = [_padded(image, patch) for _, image, _ in cases]
        self.labels = [_padded(labels, patch) for _, _, labels in cases]
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
# Whole volumes
# ---------------------------------------------------------------------------------------------
def _starts(size: int, window: int, step: int) -> list[int]:
    starts = list(range(0, max(size - window, 0) + 1, step))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


@torch.no_grad()
def sliding_window(
    model, image: np.ndarray | torch.Tensor, patch, *, overlap: float = 0.5, device=None
) -> torch.Tensor:
    """Logits (C, D, H, W) of a whole volume (D, H, W): windows of `patch` overlapping by
    `overlap`, their logits averaged where they overlap; volumes smaller than a window are
    zero-padded and cropped back."""
    vol = torch.as_tensor(image, dtype=torch.float32)
    size = tuple(vol.shape)
    vol = torch.from_numpy(_padded(vol.numpy(), patch))
    device = device or torch.device("cpu")
    steps = [max(1, int(p * (1 - overlap))) for p in patch]
    grid = [_starts(s, p, st) for s, p, st in zip(vol.shape, patch, steps, strict=True)]
    total = count = None
    for z in grid[0]:
        for y in grid[1]:
            for x in grid[2]:
                window = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
                logits = model(vol[window][None, None].to(device))[0].float().cpu()
                if total is None:
                    total = torch.zeros((logits.shape[0], *vol.shape))
                    count = torch.zeros(vol.shape)
                total[(slice(None), *window)] += logits
                count[window] += 1
    return (total / count)[:, : size[0], : size[1], : size[2]]


def predict_labels(model, image, patch, *, overlap: float = 0.5, device=None) -> np.ndarray:
    """Label map (D, H, W) uint8: the arg-max class of the averaged window logits."""
    return sliding_window(model, image, patch, overlap=overlap, device=device).argmax(0).numpy().astype(np.uint8)
