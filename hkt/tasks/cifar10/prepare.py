"""CIFAR-10 and CIFAR-100 on disk: the real archives, generated stand-ins in the same layouts, and
loading.

Both sources end in the python-pickle layout of the official archive,

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}     (CIFAR-10)
    <root>/cifar-100-python/{train, test, meta}                                 (CIFAR-100)

which torchvision's CIFAR10 / CIFAR100 readers decode after checking every file's md5 (for the
real data, torchvision's published sums). Preprocessing then stores the decoded images once as
uint8 tensors (train.pt, test.pt) so that training jobs neither unpickle nor import torchvision,
and writes `manifest.json` last (its presence means complete) with the md5 of every source file
and the sha256 of every tensor file, which loading verifies.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision  # only data preparation imports this module: loading lives in hkt.tasks.cifar10.data

from hkt.io import atomic_path, atomic_torch_save, atomic_write_json, download, file_digest, safe_extract
from hkt.tasks import Download
from hkt.tasks.cifar10.data import MANIFEST, DataConfig, read_manifest


@dataclass(frozen=True)
class Layout:
    """One official release, as torchvision's reader class describes it (`layout_of`)."""

    reader: type  # torchvision.datasets.CIFAR10 or CIFAR100
    classes: int
    label_key: str  # the label list in each pickled batch
    name: str
    url: str
    archive: str
    archive_md5: str
    folder: str  # the archive's top folder
    train_files: list
    test_files: list
    meta: dict  # {filename, key, md5} of the class-name file
    official_md5: dict  # every file of the folder -> its published md5


def layout_of(reader: type, classes: int, label_key: str, name: str) -> Layout:
    """The release that torchvision's `reader` downloads and checks: its names and md5 sums."""
    return Layout(
        reader,
        classes,
        label_key,
        name,
        url=reader.url,
        archive=reader.filename,
        archive_md5=reader.tgz_md5,
        folder=reader.base_folder,
        train_files=[file for file, _ in reader.train_list],
        test_files=[file for file, _ in reader.test_list],
        meta=reader.meta,
        official_md5=dict(reader.train_list + reader.test_list) | {reader.meta["filename"]: reader.meta["md5"]},
    )


LAYOUTS = {
    "cifar10": layout_of(torchvision.datasets.CIFAR10, 10, "labels", "CIFAR-10"),  # archive md5 c58f3010...
    "cifar100": layout_of(torchvision.datasets.CIFAR100, 100, "fine_labels", "CIFAR-100"),  # eb9058c3...
}
CIFAR10 = LAYOUTS["cifar10"]
URL, ARCHIVE, ARCHIVE_MD5, FOLDER = CIFAR10.url, CIFAR10.archive, CIFAR10.archive_md5, CIFAR10.folder
TRAIN_FILES, TEST_FILES, META_FILE = CIFAR10.train_files, CIFAR10.test_files, CIFAR10.meta["filename"]
OFFICIAL_MD5 = CIFAR10.official_md5
TENSORS = {"train": "train.pt", "test": "test.pt"}
CLASSES = ["disk", "square", "triangle", "ring", "plus", "cross", "two-bars", "two-pillars", "diamond", "frame"]


# ---------------------------------------------------------------------------------------------
# What the data job runs
# ---------------------------------------------------------------------------------------------
def downloads(data: DataConfig, part: str = "all") -> list[Download]:
    """The official archive (torchvision's URL and md5), where the data job extracts it from."""
    if data.source != "download":
        return []
    layout = LAYOUTS[data.dataset]
    return [Download(layout.url, str(Path(data.root) / layout.archive), {"md5": layout.archive_md5})]


def stand_in(data: dict, root: str) -> dict:
    """The paper's images (32x32, the real pickled layout) for a rehearsal: as many training images
    as the 45k/5k split's validation part needs plus 1,000 to train on, and 1,000 test images."""
    n_train = data["val_size"] + 1000
    return {**data, "source": "generated", "root": root, "generated": {"n_train": n_train, "n_test": 1000, "seed": 0}}


def prepare_data(data: DataConfig, *, part: str = "all", allow_network: bool = True) -> dict:
    if data.source == "generated":
        g = data.generated
        prepare_generated(
            data.root,
            n_train=g.n_train,
            n_test=g.n_test,
            seed=g.seed,
            noise=g.noise,
            distractors=g.distractors,
            dataset=data.dataset,
        )
    else:
        prepare_download(data.root, dataset=data.dataset, allow_network=allow_network)
    return read_manifest(data.root)


# ---------------------------------------------------------------------------------------------
# The real dataset
# ---------------------------------------------------------------------------------------------
def prepare_download(
    root: str | Path,
    *,
    dataset: str = "cifar10",
    url: str | None = None,
    archive_md5: str | None = None,
    file_md5: dict | None = None,
    allow_network: bool = True,
) -> Path:
    """Fetch (or reuse) the official archive, verify it, extract it safely, write the manifest.

    `url`, `archive_md5` and `file_md5` default to the official release of `dataset`; tests
    point them at a local archive.
    """
    root, layout = Path(root), LAYOUTS[dataset]
    url = layout.url if url is None else url
    archive_md5 = layout.archive_md5 if archive_md5 is None else archive_md5
    file_md5 = layout.official_md5 if file_md5 is None else file_md5
    archive = root / layout.archive
    if not archive.exists() and not allow_network:
        raise FileNotFoundError(_missing_message(root, layout))
    try:
        download(url, archive, md5=archive_md5)
    except OSError as err:
        raise FileNotFoundError(f"{err}\n{_missing_message(root, layout)}") from err
    extracted = safe_extract(archive, root / "extracted")
    for name, md5 in file_md5.items():
        path = extracted / layout.folder / name
        if not path.is_file() or file_digest(path, "md5") != md5:
            raise ValueError(f"{path} is missing or does not match its published md5 {md5}")
    return _link_and_record(root, extracted / layout.folder, layout, source="download", md5=file_md5)


def _missing_message(root: Path, layout: Layout) -> str:
    return (
        f"{layout.name} is not available. Download {layout.url} (md5 {layout.archive_md5}) and place it at "
        f"{root / layout.archive}; the workflow verifies and extracts it."
    )


# ---------------------------------------------------------------------------------------------
# The generated stand-in used by the embedded default (no network)
# ---------------------------------------------------------------------------------------------
def generate_images(
    n: int, seed: int, *, size: int = 32, noise: float = 0.1, distractors: int = 2, classes: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Class-conditional images: one of ten shapes in a random colour, position, scale and
    rotation, on a colour-gradient background with small distractor squares and pixel noise.
    Colour carries no class information, so the networks must learn shape. With 100 classes
    (the CIFAR-100 stand-in) class c is shape c % 10 on a background whose gradient points in
    direction c // 10 of ten."""
    if classes not in (10, 100):
        raise ValueError(f"generated CIFAR data has 10 or 100 classes, not {classes}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    labels = rng.integers(0, classes, n)
    images = np.empty((n, size, size, 3), np.float32)
    for i, label in enumerate(labels):
        radius = rng.uniform(0.17, 0.33) * size
        cx, cy = rng.uniform(radius, size - radius, 2)
        angle = rng.uniform(-0.35, 0.35)
        dx, dy = xx - cx, yy - cy
        u = (np.cos(angle) * dx + np.sin(angle) * dy) / radius
        v = (-np.sin(angle) * dx + np.cos(angle) * dy) / radius
        mask = _shape_mask(int(label) % 10, u, v)
        background = rng.uniform(0, 1, 3)
        colour = rng.uniform(0, 1, 3)
        while np.abs(colour - background).sum() < 0.6:  # keep the shape visible
            colour = rng.uniform(0, 1, 3)
        tilt = rng.normal(0, 0.3, 2)
        if classes == 100:  # the gradient's direction carries the tens of the label
            direction = 2 * np.pi * (int(label) // 10) / 10 + rng.uniform(-0.15, 0.15)
            tilt = 0.8 * np.array([np.cos(direction), np.sin(direction)])
        image = background + (tilt[0] * (xx / size - 0.5) + tilt[1] * (yy / size - 0.5))[..., None]
        image = np.where(mask[..., None], colour, image)
        for _ in range(distractors):
            side = rng.integers(2, 5)
            px, py = rng.integers(0, size - side, 2)
            image[py : py + side, px : px + side] = rng.uniform(0, 1, 3)
        images[i] = image + rng.normal(0, noise, image.shape)
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8), labels.astype(np.int64)


def _shape_mask(label: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    w, r2 = 0.28, u**2 + v**2
    inside = (abs(u) <= 1) & (abs(v) <= 1)
    return [
        r2 <= 1,  # disk
        (abs(u) <= 0.8) & (abs(v) <= 0.8),  # square
        (v <= 0.7) & (v >= -0.9 + 1.6 * abs(u)),  # triangle
        (r2 <= 1) & (r2 >= 0.45),  # ring
        ((abs(u) <= w) | (abs(v) <= w)) & inside,  # plus
        ((abs(u - v) <= 1.4 * w) | (abs(u + v) <= 1.4 * w)) & (abs(u) <= 0.85) & (abs(v) <= 0.85),  # cross
        ((abs(v - 0.45) <= w) | (abs(v + 0.45) <= w)) & (abs(u) <= 1),  # two bars
        ((abs(u - 0.45) <= w) | (abs(u + 0.45) <= w)) & (abs(v) <= 1),  # two pillars
        abs(u) + abs(v) <= 1,  # diamond
        inside & ~((abs(u) <= 0.55) & (abs(v) <= 0.55)),  # frame
    ][label]


def prepare_generated(
    root: str | Path,
    *,
    n_train: int,
    n_test: int,
    seed: int,
    noise: float = 0.1,
    distractors: int = 2,
    dataset: str = "cifar10",
) -> Path:
    """Write a generated dataset in the official python-pickle layout of `dataset`."""
    root, layout = Path(root), LAYOUTS[dataset]
    folder = root / layout.folder
    folder.mkdir(parents=True, exist_ok=True)
    kw = {"noise": noise, "distractors": distractors, "classes": layout.classes}
    train_x, train_y = generate_images(n_train, seed, **kw)
    test_x, test_y = generate_images(n_test, seed + 1, **kw)
    chunks = np.array_split(np.arange(n_train), len(layout.train_files))
    for k, (name, idx) in enumerate(zip(layout.train_files, chunks, strict=True)):
        _write_batch(folder / name, train_x[idx], train_y[idx], f"training batch {k + 1} of {len(chunks)}", layout)
    _write_batch(folder / layout.test_files[0], test_x, test_y, "testing batch 1 of 1", layout)
    names = [f"{CLASSES[c % 10]}-{c // 10}" for c in range(layout.classes)] if layout.classes == 100 else CLASSES
    meta = {layout.meta["key"]: names, "num_cases_per_batch": len(chunks[0]), "num_vis": 3072}
    if layout.classes == 100:
        meta["coarse_label_names"] = [f"direction-{k}" for k in range(10)]
    with atomic_path(folder / layout.meta["filename"]) as tmp:
        tmp.write_bytes(pickle.dumps(meta, protocol=2))
    md5 = {name: file_digest(folder / name, "md5") for name in layout.official_md5}
    return _link_and_record(
        root,
        folder,
        layout,
        source="generated",
        md5=md5,
        generator={"n_train": n_train, "n_test": n_test, "seed": seed, "noise": noise, "distractors": distractors},
    )


def _write_batch(path: Path, images: np.ndarray, labels: np.ndarray, label: str, layout: Layout) -> None:
    # The official layout: uint8 rows of 3072 = 1024 red, then green, then blue values.
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = {
        "batch_label": label,
        layout.label_key: [int(y) for y in labels],
        "data": rows,
        "filenames": [f"generated_{i:06d}.png" for i in range(len(images))],
    }
    if layout.classes == 100:
        batch["coarse_labels"] = [int(y) // 10 for y in labels]
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(batch, protocol=2))


def _link_and_record(root: Path, folder: Path, layout: Layout, **record) -> Path:
    """Decode the verified pickles once into tensor files, then write the manifest last."""
    record["folder"] = str(folder.relative_to(root))
    record["classes"] = layout.classes
    record["tensors"] = {}
    for split, train in (("train", True), ("test", False)):
        images, labels = _decode(folder, train, record["md5"], layout)
        atomic_torch_save({"images": images, "labels": labels}, root / TENSORS[split])
        record["tensors"][split] = {
            "file": TENSORS[split],
            "sha256": file_digest(root / TENSORS[split]),
            "n": len(labels),
        }
    atomic_write_json(root / MANIFEST, record)  # written last: its presence means complete
    return root / MANIFEST


# ---------------------------------------------------------------------------------------------
# Decoding (once, at preparation)
# ---------------------------------------------------------------------------------------------
def _verified_reader(layout: Layout, root: Path, train: bool, md5: dict):
    """torchvision's reader for `layout`, checking the md5s recorded in our manifest instead of its own."""

    class Verified(layout.reader):
        base_folder = "."
        train_list = [[n, md5[n]] for n in layout.train_files]
        test_list = [[n, md5[n]] for n in layout.test_files]
        meta = {**layout.meta, "md5": md5[layout.meta["filename"]]}

    return Verified(str(root), train=train, download=False)


def _decode(folder: Path, train: bool, md5: dict, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        data = _verified_reader(layout, folder, train, md5)
    except RuntimeError as err:  # torchvision's "not found or corrupted"
        raise ValueError(f"{layout.name} files under {folder} fail their md5 check: {err}") from err
    images = torch.from_numpy(np.ascontiguousarray(data.data)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(data.targets, dtype=torch.int64)


# ---------------------------------------------------------------------------------------------
# The plain DataLoader loop, for `make bench` only
# ---------------------------------------------------------------------------------------------
def plain_loader(data, *, batch_size: int, seed: int, device, workers: int):
    """Batches as a typical CIFAR training script makes them, endlessly: torchvision's reader
    class over the prepared files (with the manifest's md5s), per-image PIL transforms in
    `workers` DataLoader processes (a resize when the configured resolution is not 32, RandomCrop
    with the configured padding, horizontal flip, ToTensor, Normalize), shuffled, pinned on
    CUDA and copied to the device. `make bench` times it against the suite's batches, which keep
    the uint8 images on the training device and augment them there (`hkt.tasks.cifar10.data.Batches`:
    the same crop and flip, tested)."""
    from torchvision import transforms as T

    root = Path(data.root)
    record = read_manifest(root)
    steps = [T.Resize(data.resolution)] if data.resolution != 32 else []  # the suite resizes at load
    steps += [T.RandomCrop(data.resolution, padding=data.crop_padding), T.RandomHorizontalFlip()]
    steps += [T.ToTensor(), T.Normalize(data.mean, data.std)]
    dataset = _verified_reader(LAYOUTS[data.dataset], root / record["folder"], True, record["md5"])
    dataset.transform = T.Compose(steps)
    device = torch.device(device)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,  # no worker start-up at every epoch: the loop at its best
        generator=torch.Generator().manual_seed(seed),
    )
    while True:
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)
