"""CIFAR-10 classification (the paper's Table 2): ResNet-110 parent, ResNet-20 child, 2HKT; and
CIFAR-100, a configuration of the same task (`data.dataset: cifar100`, `cifar100_resnetN` models).

The task contract (hkt.tasks.Task) for CIFAR: ResNets with two aligned blocks, the data in
the official python-pickle layout (downloaded, or generated for the embedded default),
augmented batches as a pure function of (seed, step), top-1 accuracy for selection and
scoring, and Table 2 with its figures (hkt.tasks.cifar10.tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from hkt.fields import dataclass_from
from hkt.models import build_cifar_resnet, evaluating
from hkt.models.cifar_resnet import DATASET_CLASSES, classes_of
from hkt.tasks import BenchData, Download, EvaluationData, Task, TrainingData
from hkt.tasks.cifar10 import stored as S


# ---------------------------------------------------------------------------------------------
# Configuration (tasks.cifar10.data and .evaluation)
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
# Data
# ---------------------------------------------------------------------------------------------
def downloads(data: DataConfig, part: str = "all") -> list[Download]:
    """The official archive (torchvision's URL and md5), where the data job extracts it from."""
    if data.source != "download":
        return []
    from hkt.tasks.cifar10 import data as D  # torchvision is needed here only

    layout = D.LAYOUTS[data.dataset]
    return [Download(layout.url, str(Path(data.root) / layout.archive), {"md5": layout.archive_md5})]


def stand_in(data: dict, root: str) -> dict:
    """The paper's images (32x32, the real pickled layout) for a rehearsal: as many training images
    as the 45k/5k split's validation part needs plus 1,000 to train on, and 1,000 test images."""
    n_train = data["val_size"] + 1000
    return {**data, "source": "generated", "root": root, "generated": {"n_train": n_train, "n_test": 1000, "seed": 0}}


def prepare_data(data: DataConfig, *, part: str = "all", allow_network: bool = True) -> dict:
    from hkt.tasks.cifar10 import data as D  # torchvision is needed here only

    if data.source == "generated":
        g = data.generated
        D.prepare_generated(
            data.root,
            n_train=g.n_train,
            n_test=g.n_test,
            seed=g.seed,
            noise=g.noise,
            distractors=g.distractors,
            dataset=data.dataset,
        )
    else:
        D.prepare_download(data.root, dataset=data.dataset, allow_network=allow_network)
    return S.read_manifest(data.root)


def load_train_val(data: DataConfig):
    images, labels = S.load_split(data.root, train=True)
    train_idx, val_idx = S.split_train_val(len(images), data.val_size, data.split_seed)
    images = S.resize(images, data.resolution)
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]


def load_test(data: DataConfig):
    images, labels = S.load_split(data.root, train=False)
    return S.resize(images, data.resolution), labels


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


def normalize(images_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (images_u8.float() / 255 - mean.to(images_u8.device)) / std.to(images_u8.device)


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


# ---------------------------------------------------------------------------------------------
# Metrics and evaluation
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def accuracy(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 500,
) -> dict[str, float]:
    """Top-1 accuracy and error (percent) of `model` in eval mode."""
    device = next(model.parameters()).device
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    correct = 0
    with evaluating(model):
        for start in range(0, len(images), batch_size):
            x = normalize(images[start : start + batch_size].to(device), mean_t, std_t)
            correct += (model(x).argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    acc = 100.0 * correct / len(images)
    return {"top1_acc": acc, "top1_err": 100.0 - acc}


def evaluation(data: DataConfig, ev: EvalConfig, device) -> EvaluationData:
    test_x, test_y = load_test(data)
    name = dataset_name(data)

    def score(model):
        scores = accuracy(model, test_x, test_y, mean=data.mean, std=data.std, batch_size=ev.batch_size)
        return [{"dataset": name, "split": "test", "metric": m, "value": scores[m]} for m in ("top1_acc", "top1_err")]

    example = normalize(test_x[: ev.timing["batch_size"]].to(device), *_stats(data))
    return EvaluationData(score=score, infer=lambda model: model(example), batch_size=len(example))


def benchmark(data: DataConfig, ev: EvalConfig, batch_size: int, generator) -> BenchData:
    """Random normalised images and labels at the task's resolution (step time ignores values)."""
    res = data.resolution
    x = torch.randn(batch_size, 3, res, res, generator=generator)
    y = torch.randint(0, DATASET_CLASSES[data.dataset], (batch_size,), generator=generator)
    example = torch.randn(ev.timing["batch_size"], 3, res, res, generator=generator)
    return BenchData(
        batch=(x, y), task=None, infer_input=example, infer=lambda model, inp: model(inp), infer_batch=len(example)
    )


def mae_to_onehot(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A literal reading of the paper's MAE(z, G_T) for labels: |softmax(z) - onehot(y)|, averaged."""
    onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return (logits.softmax(dim=1) - onehot).abs().mean()


def plain_loader(data: DataConfig, *, batch_size: int, seed: int, device, workers: int):
    from hkt.tasks.cifar10 import data as D  # torchvision: bench jobs only

    return D.plain_loader(data, batch_size=batch_size, seed=seed, device=device, workers=workers)


def _tables():
    from hkt.tasks.cifar10 import tables  # matplotlib: imported by report jobs only

    return tables


# the outputs of the ResNets' three groups of residual blocks (every CIFAR ResNet has them, and every
# network built on one), as feature-map distillers read them
FEATURE_POINTS = {"stage1": "layer1", "stage2": "layer2", "stage3": "layer3"}

TASK = Task(
    name="cifar10",
    build_model=build_cifar_resnet,
    blocks=lambda model: model.blocks(),
    task_loss=F.cross_entropy,
    # The authors' code uses cross-entropy on all three paths; "mae" is the paper's wording.
    inherit_losses={"ce": F.cross_entropy, "mae": mae_to_onehot},
    max_stages=2,
    feature_points=lambda model: FEATURE_POINTS,
    data_config=DataConfig,
    eval_config=EvalConfig,
    prepare_data=prepare_data,
    downloads=downloads,
    stand_in=stand_in,
    training=training,
    evaluation=evaluation,
    check_config=check_config,
    select=("top1_acc", "max"),
    metrics={"top1_acc": "max", "top1_err": "min"},
    headline=("top1_acc",),
    benchmark=benchmark,
    plain_loader=plain_loader,
    tables={
        "table2": lambda inp, outs: _tables().table2(inp, outs),
        "comparisons": lambda inp, outs: _tables().comparisons(inp, outs),
    },
    figures={
        "learning_curves": lambda inp, path: _tables().learning_curves(inp, path),
        "accuracy_vs_params": lambda inp, path: _tables().accuracy_vs_params(inp, path),
    },
)
