"""CIFAR-10 on disk: the real archive, a generated stand-in in the same layout, and loading.

Both sources end in the python-pickle layout of the official archive,

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}

which torchvision's CIFAR10 reader decodes after checking every file's md5 (for the real data,
torchvision's published sums). Preprocessing then stores the decoded images once as uint8
tensors (train.pt, test.pt) so that training jobs neither unpickle nor import torchvision, and
writes `manifest.json` last (its presence means complete) with the md5 of every source file and
the sha256 of every tensor file, which loading verifies.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torchvision  # only data preparation imports this module: loading lives in hkt.tasks.cifar10.stored

from hkt.io import atomic_path, atomic_torch_save, atomic_write_json, download, file_digest, safe_extract

URL = torchvision.datasets.CIFAR10.url
ARCHIVE = torchvision.datasets.CIFAR10.filename
ARCHIVE_MD5 = torchvision.datasets.CIFAR10.tgz_md5  # c58f30108f718f92721af3b95e74349a
FOLDER = torchvision.datasets.CIFAR10.base_folder  # cifar-10-batches-py
TRAIN_FILES = [name for name, _ in torchvision.datasets.CIFAR10.train_list]
TEST_FILES = [name for name, _ in torchvision.datasets.CIFAR10.test_list]
META_FILE = torchvision.datasets.CIFAR10.meta["filename"]
OFFICIAL_MD5 = {
    name: md5 for name, md5 in torchvision.datasets.CIFAR10.train_list + torchvision.datasets.CIFAR10.test_list
}
OFFICIAL_MD5[META_FILE] = torchvision.datasets.CIFAR10.meta["md5"]
MANIFEST = "manifest.json"
TENSORS = {"train": "train.pt", "test": "test.pt"}
CLASSES = ["disk", "square", "triangle", "ring", "plus", "cross", "two-bars", "two-pillars", "diamond", "frame"]


# ---------------------------------------------------------------------------------------------
# The real dataset
# ---------------------------------------------------------------------------------------------
def prepare_download(
    root: str | Path,
    *,
    url: str = URL,
    archive_md5: str = ARCHIVE_MD5,
    file_md5: dict | None = None,
    allow_network: bool = True,
) -> Path:
    """Fetch (or reuse) the official archive, verify it, extract it safely, write the manifest.

    `url`, `archive_md5` and `file_md5` default to the official release; tests point them at
    a local archive.
    """
    root = Path(root)
    file_md5 = OFFICIAL_MD5 if file_md5 is None else file_md5
    archive = root / ARCHIVE
    if not archive.exists() and not allow_network:
        raise FileNotFoundError(_missing_message(root))
    try:
        download(url, archive, md5=archive_md5)
    except OSError as err:
        raise FileNotFoundError(f"{err}\n{_missing_message(root)}") from err
    extracted = safe_extract(archive, root / "extracted")
    for name, md5 in file_md5.items():
        path = extracted / FOLDER / name
        if not path.is_file() or file_digest(path, "md5") != md5:
            raise ValueError(f"{path} is missing or does not match its published md5 {md5}")
    return _link_and_record(root, extracted / FOLDER, source="download", md5=file_md5)


def _missing_message(root: Path) -> str:
    return (
        f"CIFAR-10 is not available. Download {URL} (md5 {ARCHIVE_MD5}) and place it at "
        f"{root / ARCHIVE}; the workflow verifies and extracts it."
    )


# ---------------------------------------------------------------------------------------------
# The generated stand-in used by the embedded default (no network)
# ---------------------------------------------------------------------------------------------
def generate_images(
    n: int, seed: int, *, size: int = 32, noise: float = 0.1, distractors: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Class-conditional images: one of ten shapes in a random colour, position, scale and
    rotation, on a colour-gradient background with small distractor squares and pixel noise.
    Colour carries no class information, so the networks must learn shape."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    labels = rng.integers(0, len(CLASSES), n)
    images = np.empty((n, size, size, 3), np.float32)
    for i, label in enumerate(labels):
        radius = rng.uniform(0.17, 0.33) * size
        cx, cy = rng.uniform(radius, size - radius, 2)
        angle = rng.uniform(-0.35, 0.35)
        dx, dy = xx - cx, yy - cy
        u = (np.cos(angle) * dx + np.sin(angle) * dy) / radius
        v = (-np.sin(angle) * dx + np.cos(angle) * dy) / radius
        mask = _shape_mask(int(label), u, v)
        background = rng.uniform(0, 1, 3)
        colour = rng.uniform(0, 1, 3)
        while np.abs(colour - background).sum() < 0.6:  # keep the shape visible
            colour = rng.uniform(0, 1, 3)
        tilt = rng.normal(0, 0.3, 2)
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
    root: str | Path, *, n_train: int, n_test: int, seed: int, noise: float = 0.1, distractors: int = 2
) -> Path:
    """Write a generated dataset in the official python-pickle layout (five train batches)."""
    root = Path(root)
    folder = root / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    train_x, train_y = generate_images(n_train, seed, noise=noise, distractors=distractors)
    test_x, test_y = generate_images(n_test, seed + 1, noise=noise, distractors=distractors)
    chunks = np.array_split(np.arange(n_train), len(TRAIN_FILES))
    for name, idx in zip(TRAIN_FILES, chunks, strict=True):
        _write_batch(folder / name, train_x[idx], train_y[idx], f"training batch {name[-1]} of 5")
    _write_batch(folder / TEST_FILES[0], test_x, test_y, "testing batch 1 of 1")
    with atomic_path(folder / META_FILE) as tmp:
        tmp.write_bytes(
            pickle.dumps({"label_names": CLASSES, "num_cases_per_batch": len(chunks[0]), "num_vis": 3072}, protocol=2)
        )
    md5 = {name: file_digest(folder / name, "md5") for name in [*TRAIN_FILES, *TEST_FILES, META_FILE]}
    return _link_and_record(
        root,
        folder,
        source="generated",
        md5=md5,
        generator={"n_train": n_train, "n_test": n_test, "seed": seed, "noise": noise, "distractors": distractors},
    )


def _write_batch(path: Path, images: np.ndarray, labels: np.ndarray, label: str) -> None:
    # The official layout: uint8 rows of 3072 = 1024 red, then green, then blue values.
    rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    batch = {
        "batch_label": label,
        "labels": [int(y) for y in labels],
        "data": rows,
        "filenames": [f"generated_{i:06d}.png" for i in range(len(images))],
    }
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(batch, protocol=2))


def _link_and_record(root: Path, folder: Path, **record) -> Path:
    """Decode the verified pickles once into tensor files, then write the manifest last."""
    record["folder"] = str(folder.relative_to(root))
    record["tensors"] = {}
    for split, train in (("train", True), ("test", False)):
        images, labels = _decode(folder, train, record["md5"])
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
class _Verified(torchvision.datasets.CIFAR10):
    """torchvision's reader, checking the md5s recorded in our manifest instead of its own."""

    def __init__(self, root: Path, train: bool, md5: dict):
        self.base_folder = "."
        self.train_list = [[n, md5[n]] for n in TRAIN_FILES]
        self.test_list = [[n, md5[n]] for n in TEST_FILES]
        self.meta = {"filename": META_FILE, "key": "label_names", "md5": md5[META_FILE]}
        super().__init__(str(root), train=train, download=False)


def _decode(folder: Path, train: bool, md5: dict) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        data = _Verified(folder, train, md5)
    except RuntimeError as err:  # torchvision's "not found or corrupted"
        raise ValueError(f"CIFAR-10 files under {folder} fail their md5 check: {err}") from err
    images = torch.from_numpy(np.ascontiguousarray(data.data)).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(data.targets, dtype=torch.int64)
