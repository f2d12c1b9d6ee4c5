"""Optical-flow training and evaluation data through torchvision's own dataset classes.

A training stage names its dataset (`chairs`, `things`, `sintel`, `kitti`, `hd1k`, or a
`mixture` of them in RAFT's own terms, repeat counts, as RAFT's C+T+S+K+H stage); batches are
a pure function of (seed, step): the step's generator picks the pairs, the crop offsets and the flips, so a
resumed run sees exactly the batches of an uninterrupted one. Images become float tensors in
[-1, 1] (what torchvision's RAFT weights expect); `valid` marks pixels with ground truth
(sparse for KITTI and HD1K; dense elsewhere, minus flows of 1000 px or more as RAFT does).

Sintel's training scenes named in `val_scenes` are held out of training and of the reported
Sintel-train numbers: model selection reads only them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch

from hkt.conventions import dataset_label
from hkt.tasks import BenchData, EvaluationData, Task, TrainingData
from hkt.tasks.flow import formats, models
from hkt.tasks.flow.augment import SCALES, raft_augment
from hkt.tasks.flow.metrics import FlowMeter, epe_on, infer_pair, sequence_loss

DATASETS = ("chairs", "things", "sintel", "kitti", "hd1k")
SOURCES = ("generated", "download", "manual")
AUGMENTS = ("crop_flip", "raft")
MAX_FLOW = 1000.0  # RAFT's datasets mark larger ground-truth flows invalid


@dataclass(frozen=True)
class Generated:
    seed: int = 0
    size: tuple = (128, 160)  # H, W of every generated image (at least 64)
    counts: dict = field(default_factory=dict)  # per dataset, how many pairs (see scenes.generate_flow_datasets)
    sizes: dict = field(default_factory=dict)  # per dataset, its own [[H, W], ...] (in turn), e.g. scenes.REAL_SIZES
    sintel_scenes: tuple = ()  # names of the Sintel training scenes (default scene_0, scene_1, ...)


@dataclass(frozen=True)
class DataConfig:
    root: str
    # generated | download (FlyingChairs and Sintel from their archives, fetched by the DAG's
    # download rules or placed by hand; the others placed by hand) | manual (every dataset
    # extracted by hand under the root: no archive is read)
    source: str = "generated"
    dataset: str = "chairs"  # the training set of a stage: one of DATASETS, or "mixture"
    # {dataset: multiplier} for dataset "mixture", RAFT's repeat counts: train.py's sintel stage is
    # `100*sintel_clean + 100*sintel_final + 200*kitti + 5*hd1k + things`, i.e. {sintel: 100,
    # kitti: 200, hd1k: 5, things: 1} with sintel_pass both and things_pass clean. A pair is drawn
    # with probability multiplier x its dataset's length / total (`mixture_shares`).
    mixture: dict | None = None
    things_pass: str = "clean"  # clean | final | both
    sintel_pass: str = "both"  # clean | final | both (training)
    crop: tuple = (368, 496)  # H, W of training crops (RAFT: chairs 368x496, things 400x720, ...)
    flip: bool = True  # allow flips (crop_flip: horizontal, p 0.5; raft: as RAFT's augmentor, where its stage flips)
    # crop_flip: a random crop and horizontal flip | raft: RAFT's augmentation (hkt.tasks.flow.augment:
    # photometric jitter, eraser, per-dataset scale and stretch, flips, crop; sparse for KITTI and HD1K)
    augment: str = "crop_flip"
    train_updates: int = 12  # flow updates in training (RAFT: 12)
    gamma: float = 0.8  # weight decay along the prediction sequence in the loss (RAFT: 0.8; 0.85 on S/K)
    val_scenes: tuple = ()  # Sintel training scenes held out for model selection
    val_updates: int = 12
    val_max_pairs: int | None = None  # at most this many of the held-out scenes' pairs per validation (None: all)
    cache_pairs: int = 256  # decoded training pairs kept in memory per process
    generated: Generated | None = None
    # A small stand-in of the real data (hkt.rehearse) may say how many pairs each dataset stands
    # for (per pass; Sintel without the held-out scenes): sampling weights then use these lengths,
    # and a drawn pair wraps onto the pairs on disk
    stand_in_lengths: dict | None = None

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment must be one of {AUGMENTS}, got {self.augment!r}")
        if self.dataset not in (*DATASETS, "mixture"):
            raise ValueError(f"dataset must be one of {[*DATASETS, 'mixture']}, got {self.dataset!r}")
        if self.augment == "raft":
            stage_sets = set(self.mixture or {}) if self.dataset == "mixture" else {self.dataset}
            unknown = sorted(name for name in stage_sets if (self.dataset, name) not in SCALES)
            if unknown:
                raise ValueError(
                    f"augment: raft has no RAFT scale range for {unknown} in a {self.dataset} stage "
                    f"(hkt.tasks.flow.augment.SCALES: {sorted(SCALES)})"
                )
        if self.dataset == "mixture" and not self.mixture:
            raise ValueError("mixture: required (a {dataset: multiplier} mapping) when dataset is 'mixture'")
        if self.mixture and not set(self.mixture) <= set(DATASETS):
            raise ValueError(f"mixture: unknown datasets {sorted(set(self.mixture) - set(DATASETS))}")
        if self.mixture and not all(isinstance(m, int | float) and m > 0 for m in self.mixture.values()):
            raise ValueError(
                f"mixture: multipliers (RAFT's repeat counts) must be positive numbers, got {self.mixture}"
            )
        # RAFT's 4-level correlation pyramid needs 128 px; the smoke models' 3-level one 64 px
        if len(self.crop) != 2 or min(self.crop) < 64 or any(c % 8 for c in self.crop):
            raise ValueError(f"crop must be two multiples of 8 of at least 64, got {self.crop}")
        for name in ("things_pass", "sintel_pass"):
            if getattr(self, name) not in ("clean", "final", "both"):
                raise ValueError(f"{name} must be clean, final or both, got {getattr(self, name)!r}")
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must lie in (0, 1], got {self.gamma}")
        if self.train_updates < 1 or self.val_updates < 1:
            raise ValueError("train_updates and val_updates must be >= 1")
        if not self.val_scenes:
            raise ValueError("val_scenes: name at least one Sintel training scene to select models on")
        if isinstance(self.generated, dict):
            from hkt.fields import dataclass_from

            object.__setattr__(self, "generated", dataclass_from(Generated, self.generated, "generated"))
        if self.source == "generated" and self.generated is None:
            raise ValueError("generated: required when source is 'generated'")
        if self.stand_in_lengths and not set(self.stand_in_lengths) <= set(DATASETS):
            raise ValueError(f"stand_in_lengths: unknown datasets {sorted(set(self.stand_in_lengths) - set(DATASETS))}")


# ---------------------------------------------------------------------------------------------
# Reading pairs through torchvision
# ---------------------------------------------------------------------------------------------
def open_dataset(root: str | Path, name: str, *, split: str = "train", pass_name: str = "clean"):
    """torchvision's dataset class for `name` on `root` (the layout each class expects)."""
    from torchvision import datasets

    root = str(root)
    if name == "chairs":
        return datasets.FlyingChairs(root, split="train" if split == "train" else "val")
    if name == "things":
        return datasets.FlyingThings3D(root, split=split, pass_name=pass_name)
    if name == "sintel":
        # torchvision lists Sintel's scenes with an unsorted os.listdir: sort the pairs, so that
        # item k (and so every (seed, step) batch) is the same on every machine
        ds = datasets.Sintel(root, split=split, pass_name=pass_name)
        if ds._flow_list:
            pairs = sorted(zip(ds._image_list, ds._flow_list, strict=True))
            ds._image_list, ds._flow_list = [p[0] for p in pairs], [p[1] for p in pairs]
        else:
            ds._image_list = sorted(ds._image_list)
        return ds
    if name == "kitti":
        return datasets.KittiFlow(root, split=split)
    if name == "hd1k":
        return datasets.HD1K(root, split=split)
    raise ValueError(f"unknown flow dataset {name!r}")


def sintel_scene(dataset, index: int) -> str:
    """The scene of a torchvision Sintel item (its frames live in <pass>/<scene>/frame_XXXX.png)."""
    return Path(dataset._image_list[index][0]).parent.name


def load_item(dataset, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Item `index` of a torchvision flow dataset as tensors; a broken file fails with its name.

    torchvision's readers trust their files (a truncated .flo ends in a reshape error); on any
    failure, and for pairs of different sizes, the suite's strict readers say which file is
    wrong and how. A flow file's header is vetted first: torchvision would allocate whatever
    size a corrupt one declares (tens of GB) before failing.
    """
    images = dataset._image_list[index]
    flow_file = dataset._flow_list[index] if dataset._flow_list else None
    if flow_file:
        formats.check_flow_header(flow_file)
    try:
        item = to_tensors(dataset[index])
    except Exception as err:
        size = formats.check_pair(*images)
        if flow_file:
            formats.read_flow(flow_file, size)
        raise ValueError(f"{images[0]}, {images[1]}, {flow_file}: {err}") from err
    if item[0].shape != item[1].shape:
        formats.check_pair(*images)
    if flow_file and item[2].shape[1:] != item[0].shape[1:]:
        formats.read_flow(flow_file, tuple(item[0].shape[1:]))
    return item


def image_tensor(image) -> torch.Tensor:
    """A PIL image as RAFT's weights expect it: (3, H, W) float in [-1, 1]."""
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1) / 127.5 - 1


def to_tensors(item) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(image1, image2 in [-1, 1] (3, H, W), flow (2, H, W), valid (H, W) bool) from a dataset item."""
    img1, img2, flow, valid = (item + (None,))[:4] if len(item) == 3 else item
    a, b = image_tensor(img1), image_tensor(img2)
    if a.shape != b.shape:
        raise ValueError(f"an image pair of different sizes: {tuple(a.shape)} and {tuple(b.shape)}")
    f = torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32))
    v = torch.from_numpy(np.asarray(valid, dtype=bool)) if valid is not None else torch.ones(f.shape[1:], dtype=bool)
    return a, b, f, v & (f.abs() < MAX_FLOW).all(0)


def mixture_shares(multipliers: dict[str, float], lengths: dict[str, int]) -> dict[str, float]:
    """The share of drawn pairs each source takes when source k (a dataset, or one pass of it) is
    repeated `multipliers[k]` times, as RAFT's concatenated datasets are: multiplier x length,
    normalised. With the published lengths RAFT's mixture gives torchvision's stated shares."""
    weights = {k: multipliers[k] * lengths[k] for k in lengths}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


class Pairs:
    """The training pairs of one stage: every source dataset, their weights, a decoded-item cache."""

    def __init__(self, data: DataConfig):
        multipliers = data.mixture if data.dataset == "mixture" else {data.dataset: 1}
        self.sources, names = [], []
        for name in multipliers:
            for dataset in self._open(data, name):
                self.sources.append(dataset)
                names.append(name)
        if not self.sources or not all(len(s) for s in self.sources):
            raise ValueError(f"no training pairs found for {data.dataset} under {data.root}")
        stand_in = data.stand_in_lengths or {}
        self.names = names  # the dataset of each source: RAFT's augmentation depends on it
        self.lengths = [stand_in.get(names[k], len(s)) for k, s in enumerate(self.sources)]
        lengths = dict(enumerate(self.lengths))
        shares = mixture_shares({k: multipliers[names[k]] for k in lengths}, lengths)
        self.weights = [shares[k] for k in lengths]  # the probability of drawing from each source
        # decoded pairs are kept for reuse up to `cache_pairs` (small datasets fit whole; at
        # paper scale a decoded FlyingThings3D pair is ~17 MB, so keep the cache small there)
        self._get = lru_cache(maxsize=data.cache_pairs)(self._decode)

    @staticmethod
    def _open(data: DataConfig, name: str) -> list:
        if name in ("things", "sintel"):
            chosen = data.things_pass if name == "things" else data.sintel_pass
            passes = ("clean", "final") if chosen == "both" else (chosen,)
            out = [open_dataset(data.root, name, pass_name=p) for p in passes]
            if name == "sintel":  # validation scenes never enter training
                for ds in out:
                    keep = [i for i in range(len(ds)) if sintel_scene(ds, i) not in data.val_scenes]
                    ds._image_list = [ds._image_list[i] for i in keep]
                    ds._flow_list = [ds._flow_list[i] for i in keep]
            return out
        return [open_dataset(data.root, name)]

    def _decode(self, source: int, index: int):
        return load_item(self.sources[source], index)

    def pick(self, g: torch.Generator, n: int) -> list[tuple[str, tuple]]:
        """n drawn pairs, each as (its dataset, the decoded item)."""
        probs = torch.tensor(self.weights, dtype=torch.float64)
        sources = torch.multinomial(probs / probs.sum(), n, replacement=True, generator=g)
        return [
            (
                self.names[s],
                self._get(int(s), int(torch.randint(self.lengths[s], (1,), generator=g)) % len(self.sources[s])),
            )
            for s in sources
        ]


def crop_and_flip(a, b, flow, valid, crop: tuple, g: torch.Generator, flip: bool):
    h, w = a.shape[-2:]
    ch, cw = crop
    if h < ch or w < cw:
        raise ValueError(f"training crop {ch}x{cw} is larger than an image of {h}x{w}")
    y0 = int(torch.randint(h - ch + 1, (1,), generator=g))
    x0 = int(torch.randint(w - cw + 1, (1,), generator=g))
    box = (..., slice(y0, y0 + ch), slice(x0, x0 + cw))
    a, b, flow, valid = a[box], b[box], flow[box], valid[box]
    if flip and bool(torch.rand(1, generator=g) < 0.5):
        a, b, valid = a.flip(-1), b.flip(-1), valid.flip(-1)
        flow = flow.flip(-1) * torch.tensor([-1.0, 1.0]).view(2, 1, 1)
    return a, b, flow, valid


class Batches:
    """((image1, image2), (flow, valid)) for a step: a pure function of (seed, step)."""

    def __init__(self, data: DataConfig, *, batch_size: int, seed: int):
        self.pairs, self.data, self.batch_size, self.seed = Pairs(data), data, batch_size, seed

    def __call__(self, step: int):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        d = self.data
        if d.augment == "raft":
            augment = lambda name, item: raft_augment(*item, d.crop, g, stage=d.dataset, dataset=name, flip=d.flip)
        else:
            augment = lambda name, item: crop_and_flip(*item, d.crop, g, d.flip)
        items = [augment(name, item) for name, item in self.pairs.pick(g, self.batch_size)]
        a, b, flow, valid = (torch.stack(t) for t in zip(*items, strict=True))
        return (a, b), (flow, valid)


class LazyPairs:
    """Pairs of a dataset decoded one at a time, on access: a full evaluation set at paper scale
    (about 900 Sintel pairs per pass) would not fit in memory decoded."""

    def __init__(self, dataset, indices: list[int]):
        self.dataset, self.indices = dataset, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return LazyPairs(self.dataset, self.indices[k])
        return load_item(self.dataset, self.indices[k])

    def __iter__(self):
        return (load_item(self.dataset, i) for i in self.indices)


def sintel_pairs(root, *, pass_name: str, scenes: tuple, keep: bool) -> LazyPairs:
    """Sintel training pairs of a pass whose scene is (keep=True) or is not in `scenes`."""
    ds = open_dataset(root, "sintel", pass_name=pass_name)
    return LazyPairs(ds, [i for i in range(len(ds)) if (sintel_scene(ds, i) in scenes) == keep])


def all_pairs(root, name: str) -> LazyPairs:
    ds = open_dataset(root, name)
    return LazyPairs(ds, range(len(ds)))


# ---------------------------------------------------------------------------------------------
# Evaluation's configuration, dataset names, and what a training stage and `make bench` read
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConfig:
    timing: dict  # {warmup, repeats, size: [H, W]}: the timed pair (Sintel: 436x1024, padded as RAFT pads)
    sintel_updates: int = 32  # RAFT's evaluation: 32 updates on Sintel, 24 on KITTI
    kitti_updates: int = 24
    max_pairs: int | None = None  # at most this many pairs per evaluation set (None: all)
    published: tuple = ()
    # The Sintel-train columns: all (every training pair, RAFT's validate_sintel and torchvision's
    # published metrics; the held-out scenes are then in the table as well as in selection) |
    # unseen (without data.val_scenes: no pair the checkpoint was selected on)
    sintel_pairs: str = "unseen"

    def __post_init__(self):
        if self.sintel_pairs not in ("all", "unseen"):
            raise ValueError(f"sintel_pairs must be 'all' or 'unseen', got {self.sintel_pairs!r}")
        size = self.timing.get("size")
        if not size or len(size) != 2 or min(size) < 64:
            raise ValueError(f"timing.size must be [H, W] of at least 64 px, got {size}")


def dataset_name(data: DataConfig, name: str) -> str:
    """How results name an evaluation set (`sintel-clean`, or `sintel-clean-generated` on generated data)."""
    return dataset_label(name, data.source)


def stage_task(task: Task, data: DataConfig) -> Task:
    """The task as a training stage runs it: the stage's update count and loss decay."""
    loss = partial(sequence_loss, gamma=data.gamma)
    return dataclasses.replace(
        task,
        forward=lambda model, x: models.run(model, x, data.train_updates),
        blocks=lambda model: models.blocks(model, data.train_updates),
        task_loss=loss,
        inherit_losses={"sequence": loss},
    )


def training(data: DataConfig, *, batch_size: int, seed: int, device) -> TrainingData:
    batches = Batches(data, batch_size=batch_size, seed=seed)
    val = sintel_pairs(data.root, pass_name="clean", scenes=data.val_scenes, keep=True)[: data.val_max_pairs]
    (a, b), _ = batches(0)
    return TrainingData(
        batches=batches,
        validate=lambda child: epe_on(child, val, data.val_updates, device),
        sample=(a[:2], b[:2]),
        adapt=partial(stage_task, data=data),
    )


def _random_pair(batch: int, h: int, w: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.rand(batch, 3, h, w, generator=generator) * 2 - 1 for _ in range(2))


def _timing_infer(model, pair, *, updates: int):
    """What evaluation times: one pair, padded as RAFT pads, at the Sintel update count."""
    a, b = pair
    return infer_pair(model, a, b, updates, a.device)


def benchmark(data: DataConfig, ev: EvalConfig, batch_size: int, generator) -> BenchData:
    """A training batch at the stage's crop (random images, flow and a dense valid mask) and the
    timed evaluation pair at `timing.size`: step time does not depend on the pixel values."""
    h, w = data.crop
    flow = torch.randn(batch_size, 2, h, w, generator=generator) * 4
    valid = torch.ones(batch_size, h, w, dtype=torch.bool)
    th, tw = ev.timing["size"]
    a, b = _random_pair(1, th, tw, generator)
    return BenchData(
        batch=(_random_pair(batch_size, h, w, generator), (flow, valid)),
        adapt=partial(stage_task, data=data),
        infer_input=(a[0], b[0]),
        infer=partial(_timing_infer, updates=ev.sintel_updates),
        infer_batch=1,
    )


def evaluation(data: DataConfig, ev: EvalConfig, device) -> EvaluationData:
    """Sintel-train clean and final (every pair, or without the validation scenes: `sintel_pairs`)
    and KITTI-2015 train, as the paper's columns; the timed inference is one pair at `timing.size`."""
    held_out = () if ev.sintel_pairs == "all" else data.val_scenes
    sets = {
        dataset_name(data, "sintel-clean"): sintel_pairs(data.root, pass_name="clean", scenes=held_out, keep=False),
        dataset_name(data, "sintel-final"): sintel_pairs(data.root, pass_name="final", scenes=held_out, keep=False),
        dataset_name(data, "kitti-2015"): all_pairs(data.root, "kitti"),
    }
    if ev.max_pairs:
        sets = {k: v[: ev.max_pairs] for k, v in sets.items()}

    def score(model) -> list[dict]:
        rows = []
        for name, pairs in sets.items():
            updates = ev.kitti_updates if name.startswith("kitti") else ev.sintel_updates
            meter = FlowMeter()
            was = model.training
            model.eval()
            with torch.no_grad():
                for a, b, flow, valid in pairs:
                    mode = "kitti" if name.startswith("kitti") else "sintel"
                    meter.update(infer_pair(model, a, b, updates, device, mode)[None], flow[None], valid[None])
            model.train(was)
            result = meter.result(kitti=name.startswith("kitti"))
            rows.append({"dataset": name, "split": "train", "metric": "epe", "value": result["epe"]})
            if name.startswith("kitti"):
                rows.append({"dataset": name, "split": "train", "metric": "fl_all", "value": result["fl_all"]})
        return rows

    h, w = ev.timing["size"]
    g = torch.Generator().manual_seed(0)
    example = (torch.rand(1, 3, h, w, generator=g) * 2 - 1, torch.rand(1, 3, h, w, generator=g) * 2 - 1)

    def infer(model):
        return infer_pair(model, example[0][0], example[1][0], ev.sintel_updates, device)

    return EvaluationData(score=score, infer=infer, batch_size=1)


def kitti_test(model, data: DataConfig, ev: EvalConfig, out_dir, device) -> dict:
    """KITTI-2015 test-set predictions as the benchmark takes them: `flow/NNNNNN_10.png`, 16-bit
    PNGs of every pixel (formats.write_kitti_flow), at RAFT's KITTI padding and update count.
    Zip the `flow` folder to submit it to the KITTI server; the test set has no public ground truth."""
    dataset = open_dataset(data.root, "kitti", split="test")
    if not len(dataset):
        raise ValueError(f"{data.root}: KittiFlow/testing/image_2 holds no frame pairs to predict")
    out = Path(out_dir) / "flow"
    names = []
    for k in range(len(dataset)):
        first, second = dataset._image_list[k]
        a, b = (image_tensor(image) for image in dataset[k][:2])  # test items carry no flow
        if a.shape != b.shape:
            formats.check_pair(first, second)
        flow = infer_pair(model, a, b, ev.kitti_updates, device, mode="kitti")
        name = Path(first).name  # NNNNNN_10.png, the benchmark's naming
        formats.write_kitti_flow(out / name, flow.numpy())
        names.append(name)
    return {"dataset": "kitti-2015", "split": "test", "files": names, "updates": ev.kitti_updates}
