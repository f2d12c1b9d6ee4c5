"""The toy task's data, generated: textured image pairs and their (gain, offset) targets."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from hkt.io import atomic_torch_save, atomic_write_text, file_digest
from toytask.data import DataConfig


def _pairs(n: int, size: int, max_shift: int, noise: float, g: torch.Generator):
    gain, offset = torch.rand(n, generator=g) + 0.5, 2 * torch.rand(n, generator=g) - 1
    base = F.avg_pool2d(torch.rand(n, 1, size + 2, size + 2, generator=g), 3, 1) * gain.view(n, 1, 1, 1)
    shift = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=g)
    moved = torch.stack([torch.roll(b, (int(dy), int(dx)), (1, 2)) for b, (dx, dy) in zip(base, shift, strict=True)])
    moved = moved + offset.view(n, 1, 1, 1) + noise * torch.randn(moved.shape, generator=g)
    return base, moved, torch.stack([gain, offset], dim=1)


def prepare_data(data: DataConfig, *, part: str = "all", allow_network: bool = True) -> dict:
    root = Path(data.root)
    g = torch.Generator().manual_seed(data.seed)
    splits = {
        name: _pairs(n, data.size, data.max_shift, data.noise, g)
        for name, n in (("train", data.n_train), ("val", data.n_val), ("test", data.n_test))
    }
    atomic_torch_save(splits, root / "pairs.pt")
    record = {"file": "pairs.pt", "sha256": file_digest(root / "pairs.pt")}
    atomic_write_text(root / "manifest.json", json.dumps(record))
    return record
