"""CIFAR-10 and CIFAR-100 as training and evaluation read them: the configuration
(tasks.<block>.data and .evaluation), the prepared tensors (train.pt / test.pt, verified against
the manifest that preparation wrote), the fixed train/validation split, and augmented batches as a
pure function of (seed, step).

Training and evaluation jobs import neither torchvision nor pickle readers (those are
preparation's, hkt.tasks.cifar10.prepare): the tensors load with `weights_only=True`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from hkt.fields import dataclass_from
from hkt.io import verify_checksum
from hkt.tasks import BenchData, EvaluationData, TrainingData
from hkt.tasks.cifar10.metrics import accuracy
from hkt.tasks.cifar10.models import DATASET_CLASSES, classes_of, normalize

MANIFEST = "manifest.json"


# ---------------------------------------------------------------------------------------------
# Configuration (tasks.<block>.data and .evaluation)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Generated:
    n_train: int
    n_test: int
    seed: int
    noise: float = 0.1
    distractors: int = 2

    def __post_init__(self):
        if min(self.n_train, self.n_test) < 10 or self.seed < 0 or self.noise < 0 or self.distractors < 0:
            raise ValueError("n_train and n_test must be >= 10, seed, noise and distractors >= 0")


@dataclass(frozen=True)
class DataConfig:
    source: str  # generated | download
    root: str
    val_size: int  # held out of the training files for model selection
    split_seed: int
    resolution: int  # 32 = native CIFAR
    crop_padding: int
    mean: tuple
    std: tuple
    generated: Generated | None = None
    dataset: str = "cifar10"  # cifar10 | cifar100

    def __post_init__(self):
        if self.dataset not in DATASET_CLASSES:
            raise ValueError(f"dataset must be one of {sorted(DATASET_CLASSES)}, got {self.dataset!r}")
        if self.source not in ("generated", "download"):
            raise ValueError(f"source must be 'generated' or 'download', got {self.source!r}")
        if self.source == "generated":
            if self.generated is None:
                raise ValueError("generated: required when source is 'generated'")
            if isinstance(self.generated, dict):
                object.__setattr__(self, "generated", dataclass_from(Generated, self.generated, "generated"))
            if self.val_size >= self.generated.n_train:
                raise ValueError("val_size: must be smaller than generated.n_train")
        if not 8 <= self.resolution <= 32 or self.crop_padding < 0 or self.val_size < 1 or self.split_seed < 0:
            raise ValueError("resolution must lie in [8, 32], crop_padding >= 0, val_size >= 1, split_seed >= 0")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values each, std > 0")


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int
    timing: dict  # {batch_size, warmup, repeats}
    published: tuple = ()  # data/MANIFEST.yaml checkpoints scored as they are

    def __post_init__(self):
        if self.batch_size < 1 or self.timing.get("batch_size", 0) < 1:
            raise ValueError("batch_size and timing.batch_size must be >= 1")


def dataset_name(data: DataConfig) -> str:
    return data.dataset if data.source == "download" else f"{data.dataset}-generated"


def check_config(block: dict) -> None:
    """The models' outputs must match the dataset's classes (a mismatch would fail only at the
    first training step, with an index error)."""
    dataset = (block.get("data") or {}).get("dataset", "cifar10")
    for role in ("parent", "child"):
        arch = block[role]["arch"]
        if DATASET_CLASSES.get(dataset) != classes_of(arch):
            raise ValueError(
                f"{role}.arch: {arch!r} has {classes_of(arch)} outputs, but data.dataset {dataset!r} has "
                f"{DATASET_CLASSES.get(dataset)} classes (name it {dataset}_{arch.rpartition('_')[2]})"
            )


# ---------------------------------------------------------------------------------------------
# The prepared tensors
# ---------------------------------------------------------------------------------------------
def read_manifest(root: str | Path) -> dict:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the dataset at {root} was never prepared completely")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a readable manifest (damaged? rerun the data job prepare_data): {err}") from err
    # the tensor files are found (and checked) through these entries: a manifest without them is
    # named here rather than failing as a bare KeyError in load_split
    tensors = manifest.get("tensors") if isinstance(manifest, dict) else None
    if not isinstance(tensors, dict) or not all(
        isinstance(tensors.get(part), dict) and {"file", "sha256"} <= set(tensors[part]) for part in ("train", "test")
    ):
        raise ValueError(
            f"{path}: not a CIFAR manifest: expected tensors.train and tensors.test with file and sha256 "
            "(rerun the data job prepare_data)"
        )
    return manifest


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


def load_train_val(data: DataConfig):
    images, labels = load_split(data.root, train=True)
    train_idx, val_idx = split_train_val(len(images), data.val_size, data.split_seed)
    images = resize(images, data.resolution)
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]


def load_test(data: DataConfig):
    images, labels = load_split(data.root, train=False)
    return resize(images, data.resolution), labels


class Batches:
    """Augmented training batches as a pure function of (seed, step).

    Nothing here has state to checkpoint: the epoch permutation and the per-sample crop/flip
    draws come from generators seeded by (seed, epoch) and (seed, step), so a resumed run sees
    exactly the batches an uninterrupted one would. The draws are made on the CPU (a few hundred
    numbers, the same on every device) and the images never leave the device that holds them:
    with the images on a GPU, the gather, crop, flip and normalisation run there.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        seed: int,
        mean: Sequence[float],
        std: Sequence[float],
        crop_padding: int,
        flip: bool = True,
    ):
        if len(images) < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(images)} training images")
        self.images, self.labels = images, labels
        self.batch_size, self.seed = batch_size, seed
        self.pad, self.flip = crop_padding, flip
        self.mean = torch.tensor(mean).view(1, 3, 1, 1).to(images.device)
        self.std = torch.tensor(std).view(1, 3, 1, 1).to(images.device)
        self.per_epoch = len(images) // batch_size  # drop the last partial batch
        self._epoch, self._order = -1, None

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(len(self.images), generator=g)
            self._epoch, self._order = epoch, order.to(self.images.device)
        idx = self._order[k * self.batch_size : (k + 1) * self.batch_size]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 500_009 + step)
        x = self._augment(self.images[idx], g)
        return normalize(x, self.mean, self.std), self.labels[idx]

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        on = x.device
        if self.pad:  # random crop from a zero-padded image, as torchvision's RandomCrop(padding)
            padded = F.pad(x, (self.pad,) * 4)
            oy = torch.randint(0, 2 * self.pad + 1, (b,), generator=g).to(on)
            ox = torch.randint(0, 2 * self.pad + 1, (b,), generator=g).to(on)
            rows = (oy[:, None] + torch.arange(h, device=on))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(w, device=on))[:, None, None, :]
            batch, channel = torch.arange(b, device=on), torch.arange(3, device=on)
            x = padded[batch[:, None, None, None], channel[None, :, None, None], rows, cols]
        if self.flip:
            flipped = (torch.rand(b, generator=g) < 0.5).to(on)
            x = torch.where(flipped[:, None, None, None], x.flip(3), x)
        return x


def _stats(data: DataConfig) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(data.mean).view(1, 3, 1, 1), torch.tensor(data.std).view(1, 3, 1, 1)


def training(data: DataConfig, *, batch_size: int, seed: int, device) -> TrainingData:
    train_x, train_y, val_x, val_y = load_train_val(data)
    batches = Batches(
        train_x.to(device),
        train_y.to(device),
        batch_size=batch_size,
        seed=seed,
        mean=data.mean,
        std=data.std,
        crop_padding=data.crop_padding,
    )
    return TrainingData(
        batches=batches,
        validate=lambda child: accuracy(child, val_x, val_y, mean=data.mean, std=data.std),
        sample=normalize(train_x[:2], *_stats(data)),
    )


def benchmark(data: DataConfig, ev: EvalConfig, batch_size: int, generator) -> BenchData:
    """Random normalised images and labels at the task's resolution (step time ignores values)."""
    res = data.resolution
    x = torch.randn(batch_size, 3, res, res, generator=generator)
    y = torch.randint(0, DATASET_CLASSES[data.dataset], (batch_size,), generator=generator)
    example = torch.randn(ev.timing["batch_size"], 3, res, res, generator=generator)
    return BenchData(batch=(x, y), infer_input=example, infer=lambda model, inp: model(inp), infer_batch=len(example))


def evaluation(data: DataConfig, ev: EvalConfig, device) -> EvaluationData:
    test_x, test_y = load_test(data)
    name = dataset_name(data)

    def score(model):
        scores = accuracy(model, test_x, test_y, mean=data.mean, std=data.std, batch_size=ev.batch_size)
        return [{"dataset": name, "split": "test", "metric": m, "value": scores[m]} for m in ("top1_acc", "top1_err")]

    example = normalize(test_x[: ev.timing["batch_size"]].to(device), *_stats(data))
    return EvaluationData(score=score, infer=lambda model: model(example), batch_size=len(example))
