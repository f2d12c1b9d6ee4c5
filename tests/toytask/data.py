"""The toy task's configuration, its prepared pairs, and batches as a pure function of (seed, step)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from hkt.io import verify_checksum
from hkt.tasks import EvaluationData, TrainingData
from toytask.metrics import mse


@dataclass(frozen=True)
class DataConfig:
    root: str
    n_train: int
    n_val: int
    n_test: int
    size: int = 16
    seed: int = 0
    max_shift: int = 2
    noise: float = 0.05

    def __post_init__(self):
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}")


@dataclass(frozen=True)
class EvalConfig:
    timing: dict
    batch_size: int = 64


def load(data: DataConfig, split: str):
    root = Path(data.root)
    verify_checksum(root / "pairs.pt", sha256=json.loads((root / "manifest.json").read_text())["sha256"])
    return torch.load(root / "pairs.pt", weights_only=True)[split]


def training(data: DataConfig, *, batch_size: int, seed: int, device) -> TrainingData:
    a, b, y = load(data, "train")
    va, vb, vy = load(data, "val")

    def batches(step):
        idx = torch.randint(0, len(a), (batch_size,), generator=torch.Generator().manual_seed(seed * 100_003 + step))
        return (a[idx], b[idx]), y[idx]

    return TrainingData(batches=batches, validate=lambda child: mse(child, va, vb, vy), sample=(a[:2], b[:2]))


def evaluation(data: DataConfig, ev: EvalConfig, device) -> EvaluationData:
    a, b, y = load(data, "test")

    def score(model):
        return [{"dataset": "toy", "split": "test", "metric": k, "value": v} for k, v in mse(model, a, b, y).items()]

    example = (a[: ev.batch_size].to(device), b[: ev.batch_size].to(device))
    return EvaluationData(score=score, infer=lambda model: model(example), batch_size=len(example[0]))
