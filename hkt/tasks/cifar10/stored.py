"""Loading prepared CIFAR-10 (train.pt / test.pt, verified against the manifest) and splitting it.

Kept apart from `data` so that training and evaluation jobs import neither torchvision nor
pickle readers: the tensors load with `weights_only=True`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from hkt.io import verify_checksum

MANIFEST = "manifest.json"


def read_manifest(root: str | Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the dataset at {root} was never prepared completely")
    return json.loads(path.read_text())


def load_split(root: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """All images of the train or test files as uint8 (N, 3, 32, 32) and int64 labels."""
    root = Path(root)
    entry = read_manifest(root)["tensors"]["train" if train else "test"]
    path = root / entry["file"]
    verify_checksum(path, sha256=entry["sha256"])
    stored = torch.load(path, map_location="cpu", weights_only=True)
    return stored["images"], stored["labels"]


def split_train_val(n: int, val_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed train/validation partition of the training files (45k/5k at paper scale)."""
    if not 0 < val_size < n:
        raise ValueError(f"val_size must lie in (0, {n}), got {val_size}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[val_size:].sort().values, order[:val_size].sort().values


def resize(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Area-downsample uint8 images once at load (the embedded default trains at 16x16)."""
    if images.shape[-1] == resolution:
        return images
    out = F.interpolate(images.float(), size=(resolution, resolution), mode="area")
    return out.round().clamp(0, 255).to(torch.uint8)
