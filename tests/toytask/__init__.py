"""A test-only task that proves the task contract: two-image inputs, regression, lower is better.

Each input is a pair of single-channel images: a textured image of random gain, and the same
image shifted by a random (nuisance) number of pixels, brightened by a random offset, with
noise. The target is (gain, offset). It is registered from the tests only, through its
config block (`tasks.toy.module: toytask`), exactly as a user's task package would be: nothing
in hkt/ or workflow/ names it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from hkt import report
from hkt.io import atomic_torch_save, atomic_write_text, file_digest, verify_checksum
from hkt.tasks import EvaluationData, Task, TrainingData

WIDTHS = {"small": 8, "large": 16}


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


class PairNet(nn.Module):
    """Two aligned blocks: features of the stacked pair (a map), then pooling and a linear head."""

    def __init__(self, width: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2)
        )

    def blocks(self):
        return [lambda pair: self.features(torch.cat(pair, dim=1)), self.head]

    def forward(self, pair):
        return self.head(self.features(torch.cat(pair, dim=1)))


def build_model(arch: str) -> PairNet:
    if arch not in WIDTHS:
        raise ValueError(f"unknown toy architecture {arch!r}; known: {sorted(WIDTHS)}")
    return PairNet(WIDTHS[arch])


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


def _load(data: DataConfig, split: str):
    root = Path(data.root)
    verify_checksum(root / "pairs.pt", sha256=json.loads((root / "manifest.json").read_text())["sha256"])
    return torch.load(root / "pairs.pt", weights_only=True)[split]


@torch.no_grad()
def _mse(model, a, b, y) -> dict:
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    pred = model((a.to(device), b.to(device))).cpu()
    model.train(was)
    return {
        "mse": F.mse_loss(pred, y).item(),
        "within_0.1": 100.0 * ((pred - y).abs() < 0.1).all(1).float().mean().item(),
    }


def training(data: DataConfig, *, batch_size: int, seed: int, device) -> TrainingData:
    a, b, y = _load(data, "train")
    va, vb, vy = _load(data, "val")

    def batches(step):
        idx = torch.randint(0, len(a), (batch_size,), generator=torch.Generator().manual_seed(seed * 100_003 + step))
        return (a[idx], b[idx]), y[idx]

    return TrainingData(batches=batches, validate=lambda child: _mse(child, va, vb, vy), sample=(a[:2], b[:2]))


def evaluation(data: DataConfig, ev: EvalConfig, device) -> EvaluationData:
    a, b, y = _load(data, "test")

    def score(model):
        return [{"dataset": "toy", "split": "test", "metric": k, "value": v} for k, v in _mse(model, a, b, y).items()]

    example = (a[: ev.batch_size].to(device), b[: ev.batch_size].to(device))
    return EvaluationData(score=score, infer=lambda model: model(example), batch_size=len(example[0]))


def summary(inp, outs):
    table = report.summarise(inp.results)
    table = table[table.metric == "mse"]
    table.to_csv(outs["csv"], index=False)
    body = [[f"{r.method}/{r.variant}", r.split, f"{r.mean:.4f} ± {r.std:.4f} (n={r.n})"] for r in table.itertuples()]
    cols = ["Run", "Split", "MSE"]
    atomic_write_text(outs["md"], report.to_markdown("Toy task", inp.spec["scale"], cols, body))
    atomic_write_text(outs["tex"], report.to_latex("Toy task.", inp.spec["scale"], cols, body))


def mse_figure(inp, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = inp.results[(inp.results.metric == "mse") & (inp.results.split == "test")]
    means = test.groupby(test.method + "/" + test.variant)["value"].mean()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(means.index, means.values)
    ax.set(ylabel="test MSE", title=f"toy ({inp.spec['scale']}), {len(inp.curves)} curves")
    fig.savefig(path, format="png")
    plt.close(fig)


TASK = Task(
    name="toy",
    build_model=build_model,
    blocks=lambda model: model.blocks(),
    task_loss=F.mse_loss,
    inherit_losses={"mse": F.mse_loss},
    max_stages=2,
    data_config=DataConfig,
    eval_config=EvalConfig,
    prepare_data=prepare_data,
    training=training,
    evaluation=evaluation,
    select=("mse", "min"),
    metrics={"mse": "min"},
    tables={"summary": summary, "comparisons": lambda inp, outs: report.comparisons_table(inp, outs)},
    figures={"mse": mse_figure},
)
