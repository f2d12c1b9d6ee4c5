"""The embedded default's flow data: generated scenes with exact ground truth, written in the real
on-disk layouts of FlyingChairs, FlyingThings3D, Sintel, KITTI-2015 and HD1K, so torchvision's
own dataset classes read them unchanged; and, for the real datasets, where each comes from and
a layout check that says what is missing.

A scene is a smooth textured background under a global translation and two to four textured
discs and rectangles, each under its own translation, drawn in depth order (they occlude the
background and each other). Translations are whole pixels, so every surface is sampled exactly
in every frame and the flow at a pixel is the translation of the surface visible there: exact
by construction. Pixels that leave the image keep their flow, as in Sintel. FlyingThings3D's
right camera sees the same scene shifted by a disparity that grows towards the front.
KITTI and HD1K get sparse ground truth, as the real data have: `flow_occ` marks about half of
all pixels, `flow_noc` (KITTI) the same ones minus those hidden or outside the image in frame 2.

Each scene is a pure function of (seed, dataset, split, index), so the data of one dataset do
not change when the counts of another do, and tests rebuild any scene to compare with.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from hkt.io import atomic_write_json
from hkt.tasks.flow import formats

# ---------------------------------------------------------------------------------------------
# The real datasets: sources and layouts
# ---------------------------------------------------------------------------------------------
CHAIRS_ZIP = "https://lmb.informatik.uni-freiburg.de/data/FlyingChairs/FlyingChairs.zip"
CHAIRS_SPLIT = "https://lmb.informatik.uni-freiburg.de/resources/datasets/FlyingChairs/FlyingChairs_train_val.txt"
SINTEL_ZIP = "http://files.is.tue.mpg.de/sintel/MPI-Sintel-complete.zip"
KITTI_ZIP = "https://s3.eu-central-1.amazonaws.com/avg-kitti/data_scene_flow.zip"
THINGS_PAGE = "https://lmb.informatik.uni-freiburg.de/resources/datasets/SceneFlowDatasets.en.html"

# Per dataset (the names hkt.tasks.flow.data uses): its official source, whether it must be
# fetched by hand, what torchvision needs under the root (`required`: a path and a pattern that
# must match at least one file under it) and the sentences check_layout says. None of the five
# sources publishes a checksum (`checksum: None`): hkt.io.download records the sha256 of the
# archive it fetched, and prepare the sha256 of the file list it finds, so a changed dataset
# shows in the run metadata.
DATASETS = {
    "chairs": {
        "title": "FlyingChairs",
        "url": CHAIRS_ZIP,
        "manual": False,
        "checksum": None,
        "files": [(CHAIRS_ZIP, "extract"), (CHAIRS_SPLIT, "FlyingChairs/FlyingChairs_train_val.txt")],
        "extract_to": "FlyingChairs.extracted",
        "arrange": {"FlyingChairs_release/data": "FlyingChairs/data"},  # the zip's folder -> torchvision's
        "required": [("FlyingChairs/data", "*_flow.flo"), ("FlyingChairs/FlyingChairs_train_val.txt", None)],
        "how": f"download {CHAIRS_ZIP}, extract it and move its FlyingChairs_release/data to {{root}}/FlyingChairs/data, "
        f"and download the split file {CHAIRS_SPLIT} into {{root}}/FlyingChairs",
        "layout": "{root}/FlyingChairs/data/*_img1.ppm, *_img2.ppm, *_flow.flo and "
        "{root}/FlyingChairs/FlyingChairs_train_val.txt exist",
    },
    "things": {
        "title": "FlyingThings3D",
        "url": None,
        "manual": True,
        "checksum": None,
        "required": [
            ("FlyingThings3D/frames_cleanpass/TRAIN", "*/*/left/*.png"),
            ("FlyingThings3D/frames_finalpass/TRAIN", "*/*/left/*.png"),
            ("FlyingThings3D/optical_flow/TRAIN", "*/*/into_future/left/*.pfm"),
        ],
        "how": f"download FlyingThings3D's RGB images (cleanpass and finalpass) and optical flow by hand from "
        f"{THINGS_PAGE} (very large tar files, or torrents) and extract them into {{root}}/FlyingThings3D",
        "layout": "{root}/FlyingThings3D/{{frames_cleanpass,frames_finalpass}}/{{TRAIN,TEST}}/{{A,B,C}}/<seq>/left/*.png "
        "and {root}/FlyingThings3D/optical_flow/{{TRAIN,TEST}}/{{A,B,C}}/<seq>/{{into_future,into_past}}/left/*.pfm exist",
    },
    "sintel": {
        "title": "Sintel",
        "url": SINTEL_ZIP,
        "manual": False,
        "checksum": None,
        "files": [(SINTEL_ZIP, "extract")],
        "extract_to": "Sintel",  # the zip holds training/ and test/ at its top
        "required": [
            ("Sintel/training/clean", "*/*.png"),
            ("Sintel/training/final", "*/*.png"),
            ("Sintel/training/flow", "*/*.flo"),
        ],
        "how": f"download MPI-Sintel-complete.zip from http://sintel.is.tue.mpg.de ({SINTEL_ZIP}) and extract it "
        f"into {{root}}/Sintel",
        "layout": "{root}/Sintel/training/{{clean,final,flow}} exist",
    },
    "kitti": {
        "title": "KITTI-2015",
        "url": KITTI_ZIP,
        "manual": True,  # the archive is public, but KITTI asks users to register and accept its licence first
        "checksum": None,
        "required": [("KittiFlow/training/image_2", "*_10.png"), ("KittiFlow/training/flow_occ", "*_10.png")],
        "how": "register at https://www.cvlibs.net/datasets/kitti/eval_scene_flow.php?benchmark=flow, download "
        f"data_scene_flow.zip ({KITTI_ZIP}) and extract it into {{root}}/KittiFlow",
        "layout": "{root}/KittiFlow/training/{{image_2,flow_occ}} (and testing/image_2, for benchmark predictions) exist",
    },
    "hd1k": {
        "title": "HD1K",
        "url": None,
        "manual": True,
        "checksum": None,
        "required": [("hd1k/hd1k_input/image_2", "*.png"), ("hd1k/hd1k_flow_gt/flow_occ", "*.png")],
        "how": "download the HD1K benchmark suite (input images and flow ground truth) by hand from "
        "http://hci-benchmark.iwr.uni-heidelberg.de and extract it into {root}/hd1k",
        "layout": "{root}/hd1k/hd1k_input/image_2 and {root}/hd1k/hd1k_flow_gt/flow_occ exist",
    },
}


def check_layout(root: str | Path, dataset: str) -> None:
    """FileNotFoundError saying what is missing, where it belongs and how to get it there."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown flow dataset {dataset!r}; known: {sorted(DATASETS)}")
    entry, root = DATASETS[dataset], Path(root)
    problems = []
    for relative, pattern in entry["required"]:
        path = root / relative
        if not path.exists():
            problems.append(f"{path} is missing")
        elif pattern and next(path.glob(pattern), None) is None:  # stops at the first match: cheap on the real data
            problems.append(f"{path} holds no {pattern}")
    if problems:
        how, layout = entry["how"].format(root=root), entry["layout"].format(root=root)
        raise FileNotFoundError(f"{entry['title']}: {'; '.join(problems)}: {how}, so that {layout}")
    if dataset == "chairs":
        _check_chairs_split(root / "FlyingChairs")


def _check_chairs_split(folder: Path) -> None:
    """torchvision indexes the split file by flow; a short one fails there with a bare IndexError."""
    flows = sum(1 for _ in (folder / "data").glob("*_flow.flo"))
    entries = len((folder / "FlyingChairs_train_val.txt").read_text().split())
    if entries != flows:
        raise ValueError(
            f"{folder / 'FlyingChairs_train_val.txt'}: {entries} split entries for {flows} flows in "
            f"{folder / 'data'} (one entry per pair: 1 = train, 2 = val)"
        )


# ---------------------------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------------------------
BACKGROUND_SPEED = 6  # px per frame, per axis, at most: the global motion
SHAPE_SPEED = 12  # px per frame, per axis, at most: each shape's own motion
MAX_DISPARITY = 10  # px: FlyingThings3D's right camera sees the front shape this far to the left


class Texture:
    """A colour texture on an integer grid that extends `margin` px beyond the frame on every
    side: coarse smooth colour variation plus fine detail, high in contrast so that matching
    is well posed. Surfaces move by whole pixels, so a moved texture is sampled exactly."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], margin: int):
        h, w = size[0] + 2 * margin, size[1] + 2 * margin
        coarse = cv2.resize(rng.uniform(0, 1, (h // 16 + 2, w // 16 + 2, 3)).astype(np.float32), (w, h))
        detail = cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), (0, 0), rng.uniform(0.7, 1.5))
        base = rng.uniform(0.25, 0.75, 3).astype(np.float32)
        self.image = np.clip(base + 1.2 * (coarse - 0.5) + 1.4 * (detail - 0.5), 0, 1)
        self.margin = margin

    def sample(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.image[y + self.margin, x + self.margin]


class Scene:
    """A background and 2-4 shapes in depth order, each with a texture, an integer velocity and a
    stereo disparity; frame t shows each surface moved by t * velocity. Any integer frame from
    -1 to `frames` renders (the flows into the past of frame 0 and into the future of the last)."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], frames: int):
        self.h, self.w = size
        margin = (frames + 1) * SHAPE_SPEED + MAX_DISPARITY + 1
        n_shapes = int(rng.integers(2, 5))
        # disparity grows front-wards, so the right view is consistent with the drawing order
        disparities = np.sort(rng.integers(0, MAX_DISPARITY + 1, n_shapes + 1))
        self.velocities = np.stack(
            [_velocity(rng, BACKGROUND_SPEED)] + [_velocity(rng, SHAPE_SPEED) for _ in range(n_shapes)]
        )
        self.disparities = disparities
        self.textures = [Texture(rng, size, margin) for _ in range(n_shapes + 1)]
        self.shapes = []  # (kind, centre x, centre y, half width, half height) at frame 0
        for _ in range(n_shapes):
            radius = rng.uniform(0.12, 0.25) * min(size)
            half = radius * np.sqrt(rng.uniform(0.6, 1.6)) ** np.array([1, -1])
            centre = rng.uniform(0, 1, 2) * [self.w, self.h]
            self.shapes.append((str(rng.choice(["disc", "rect"])), *centre, *half))
        self._surface_cache: dict = {}

    def _shift(self, i: int, frame: int, camera: str) -> tuple[int, int]:
        """Where surface i's frame-0 texture has moved, as an integer (dx, dy)."""
        dx, dy = frame * self.velocities[i]
        return int(dx - (self.disparities[i] if camera == "right" else 0)), int(dy)

    def surface(self, frame: int, camera: str = "left") -> np.ndarray:
        """(H, W) index of the surface seen at each pixel: 0 is the background, later ones in front."""
        key = (frame, camera)
        if key not in self._surface_cache:
            y, x = np.mgrid[0 : self.h, 0 : self.w] + 0.5
            top = np.zeros((self.h, self.w), np.int64)
            for i, (kind, cx, cy, hw, hh) in enumerate(self.shapes, start=1):
                dx, dy = self._shift(i, frame, camera)
                u, v = (x - cx - dx) / hw, (y - cy - dy) / hh
                inside = u**2 + v**2 <= 1 if kind == "disc" else (np.abs(u) <= 1) & (np.abs(v) <= 1)
                top[inside] = i
            self._surface_cache[key] = top
        return self._surface_cache[key]

    def render(self, frame: int, camera: str = "left") -> np.ndarray:
        """The clean image at `frame`: (H, W, 3) uint8 RGB."""
        top = self.surface(frame, camera)
        y, x = np.mgrid[0 : self.h, 0 : self.w]
        image = np.zeros((self.h, self.w, 3), np.float32)
        for i, texture in enumerate(self.textures):
            dx, dy = self._shift(i, frame, camera)
            seen = top == i
            image[seen] = texture.sample(x[seen] - dx, y[seen] - dy)
        return (image * 255).round().astype(np.uint8)

    def flow(self, frame: int, step: int = 1, camera: str = "left") -> tuple[np.ndarray, np.ndarray]:
        """The flow from `frame` to `frame + step` (2, H, W) float32, and where it is matched:
        the pixel it lands on lies inside the image and shows the same surface."""
        top = self.surface(frame, camera)
        flow = (step * self.velocities[top]).transpose(2, 0, 1).astype(np.float32)
        y, x = np.mgrid[0 : self.h, 0 : self.w]
        tx, ty = x + flow[0].astype(np.int64), y + flow[1].astype(np.int64)
        inside = (tx >= 0) & (tx < self.w) & (ty >= 0) & (ty < self.h)
        landed = self.surface(frame + step, camera)[ty.clip(0, self.h - 1), tx.clip(0, self.w - 1)]
        return flow, inside & (landed == top)


def _velocity(rng: np.random.Generator, top: int) -> np.ndarray:
    """A non-zero integer velocity, each component in [-top, top]: every surface moves."""
    while not (v := rng.integers(-top, top + 1, 2)).any():
        pass
    return v


# Frames per sequence, as the real datasets are sequences (KITTI and FlyingChairs are pairs).
FRAMES = {"chairs": 2, "things": 3, "sintel": 4, "kitti": 2, "hd1k": 3}
SPLITS = ("train", "test")


def make_scene(seed: int, dataset: str, index: int, size: tuple[int, int], *, split: str = "train") -> Scene:
    """Scene `index` of a dataset's split: a pure function of its arguments."""
    return Scene(_rng(seed, dataset, split, index), size, FRAMES[dataset])


def _rng(seed: int, dataset: str, split: str, index: int, stream: int = 0) -> np.random.Generator:
    """Independent streams: the scene itself (0), its final pass (1), its sparse ground truth (2)."""
    return np.random.default_rng([seed, list(DATASETS).index(dataset), SPLITS.index(split), index, stream])


def final_pass(images: list[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """A final pass over clean frames, as Sintel's and FlyingThings3D's: blur, a brightness change
    per sequence and a small one per frame (brightness constancy no longer holds), and noise."""
    gain = rng.uniform(0.75, 1.15)
    out = []
    for image in images:
        blurred = cv2.GaussianBlur(image.astype(np.float32), (5, 5), 1.0)
        noisy = blurred * gain * rng.uniform(0.97, 1.03) + rng.normal(0, 6.0, image.shape)
        out.append(np.clip(noisy, 0, 255).round().astype(np.uint8))
    return out


def sparse_mask(rng: np.random.Generator, shape: tuple[int, int], fraction: float = 0.5) -> np.ndarray:
    """About `fraction` of the pixels, at random: where KITTI's lidar or HD1K's ground truth lands."""
    return rng.random(shape) < fraction


# ---------------------------------------------------------------------------------------------
# Writing the five layouts
# ---------------------------------------------------------------------------------------------
DEFAULT_SIZE = (128, 160)  # H, W; 128 px is the least RAFT's 4-level pyramid takes
MIN_SIDE = 64  # the smoke models' 3-level pyramid (config/config.yaml generates 64x80)
# The real frame sizes (H, W), for a stand-in at the paper's shapes (hkt.rehearse): any size
# goes (models pad to multiples of 8 as RAFT's InputPadder does); KITTI's vary from pair to pair
REAL_SIZES = {
    "chairs": [(384, 512)],
    "things": [(540, 960)],
    "sintel": [(436, 1024)],
    "kitti": [(375, 1242), (370, 1224), (376, 1241), (374, 1238)],
    "hd1k": [(1080, 2560)],
}
# chairs: pairs; things: sequences of 3 frames (TEST: a quarter as many); sintel: training scenes
# of 4 frames (test: a third as many); kitti: training pairs (testing: a quarter); hd1k: sequences
# of 3 frames (at most 36: torchvision reads sequences 000000-000035 only) plus as many challenge pairs
DEFAULT_COUNTS = {"chairs": 48, "things": 24, "sintel": 6, "kitti": 8, "hd1k": 4}
MINIMUM_COUNTS = {"chairs": 2, "things": 1, "sintel": 2, "kitti": 1, "hd1k": 1}  # chairs: a train and a val pair
HD1K_SEQUENCES = 36
MARKER = "GENERATED.json"  # marks a root the generator owns (and may overwrite)


def generate_flow_datasets(
    root: str | Path,
    *,
    seed: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    counts: dict | None = None,
    sizes: dict | None = None,
    sintel_scenes: tuple = (),
) -> dict:
    """Write the five datasets under `root`, each in its real layout; return what was written.

    Every frame is `size`, unless `sizes` gives a dataset its own sizes ([H, W] pairs, used in turn
    from pair to pair, as KITTI's frames vary); `sintel_scenes` names the Sintel training scenes
    (by default scene_0, scene_1, ...), e.g. the real scenes that a configuration holds out.

    Each dataset is written in a staging folder and moved into place whole, after the marker
    that lets a later call replace it; a root that holds any of these folders without the
    marker holds real data, and is refused rather than overwritten.
    """
    size, counts = _checked_size(size), _checked_counts(counts)
    sizes = {name: [_checked_size(s) for s in (sizes or {}).get(name, [size])] for name in DATASETS}
    if sintel_scenes and len(sintel_scenes) != counts["sintel"]:
        raise ValueError(f"sintel_scenes names {len(sintel_scenes)} scenes for counts.sintel = {counts['sintel']}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folders = {name: TOP_FOLDERS[name] for name in DATASETS}
    foreign = [f for f in folders.values() if (root / f).exists()]
    if foreign and not (root / MARKER).exists():
        raise FileExistsError(f"{root} holds {', '.join(foreign)} but no {MARKER}: real data? refusing to overwrite it")
    record = {
        "seed": seed,
        "size": list(size),
        "counts": counts,
        "sizes": {k: [list(s) for s in v] for k, v in sizes.items()},
    }
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".generating-"))
    try:
        for name, writer in WRITERS.items():
            writer(
                staging,
                seed,
                Sizes(sizes[name]),
                counts[name],
                **({"names": sintel_scenes} if name == "sintel" else {}),
            )
        atomic_write_json(root / MARKER, record)
        for folder in folders.values():
            shutil.rmtree(root / folder, ignore_errors=True)
            os.replace(staging / folder, root / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return record


def _checked_size(size) -> tuple[int, int]:
    h, w = (int(s) for s in size)
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"size must be [H, W] of at least {MIN_SIDE} px, got {list(size)}")
    return h, w


class Sizes:
    """The frame size of pair or sequence k: the dataset's sizes in turn."""

    def __init__(self, sizes: list):
        self.sizes = sizes

    def __getitem__(self, k: int) -> tuple[int, int]:
        return self.sizes[k % len(self.sizes)]


def _checked_counts(counts: dict | None) -> dict:
    unknown = set(counts or {}) - set(DEFAULT_COUNTS)
    if unknown:
        raise ValueError(f"counts: unknown datasets {sorted(unknown)}; known: {sorted(DEFAULT_COUNTS)}")
    counts = {**DEFAULT_COUNTS, **(counts or {})}
    for name, n in counts.items():
        if int(n) != n or n < MINIMUM_COUNTS[name]:
            raise ValueError(f"counts.{name} must be an integer >= {MINIMUM_COUNTS[name]}, got {n}")
    if counts["hd1k"] > HD1K_SEQUENCES:
        raise ValueError(
            f"counts.hd1k: torchvision's HD1K reads {HD1K_SEQUENCES} sequences at most, got {counts['hd1k']}"
        )
    return {name: int(n) for name, n in counts.items()}


def _write_chairs(root: Path, seed: int, sizes: Sizes, n: int) -> None:
    """FlyingChairs/data/NNNNN_{img1,img2}.ppm, NNNNN_flow.flo (from 00001) and the split file."""
    data = root / "FlyingChairs" / "data"
    for i in range(n):
        scene = make_scene(seed, "chairs", i, sizes[i])
        formats.write_image(data / f"{i + 1:05d}_img1.ppm", scene.render(0))
        formats.write_image(data / f"{i + 1:05d}_img2.ppm", scene.render(1))
        formats.write_flo(data / f"{i + 1:05d}_flow.flo", scene.flow(0)[0])
    # one entry per pair, in file order: 1 = train, 2 = val; every tenth pair is validation
    splits = ["2" if i % 10 == 9 or (i == n - 1 and n < 10) else "1" for i in range(n)]
    (root / "FlyingChairs" / "FlyingChairs_train_val.txt").write_text("\n".join(splits) + "\n")


def _write_things(root: Path, seed: int, sizes: Sizes, n: int) -> None:
    """FlyingThings3D/frames_{clean,final}pass/{TRAIN,TEST}/{A,B,C}/NNNN/{left,right}/FFFF.png and
    optical_flow/.../{into_future,into_past}/{left,right}/OpticalFlowInto{Future,Past}_FFFF_{L,R}.pfm,
    frames numbered from 0006 as in the real data."""
    top = root / "FlyingThings3D"
    for split, count in (("TRAIN", n), ("TEST", max(1, n // 4))):
        for k in range(count):
            scene = make_scene(seed, "things", k, sizes[k], split=split.lower())
            final_rng = _rng(seed, "things", split.lower(), k, stream=1)
            sequence = f"{'ABC'[k % 3]}/{k // 3:04d}"
            for camera in ("left", "right"):
                clean = [scene.render(t, camera) for t in range(FRAMES["things"])]
                for pass_name, images in (
                    ("frames_cleanpass", clean),
                    ("frames_finalpass", final_pass(clean, final_rng)),
                ):
                    for t, image in enumerate(images):
                        formats.write_image(top / pass_name / split / sequence / camera / f"{t + 6:04d}.png", image)
                for direction, step in (("into_future", 1), ("into_past", -1)):
                    folder = top / "optical_flow" / split / sequence / direction / camera
                    name = f"OpticalFlowInto{'Future' if step > 0 else 'Past'}"
                    for t in range(FRAMES["things"]):
                        flow = scene.flow(t, step, camera)[0]
                        formats.write_pfm(folder / f"{name}_{t + 6:04d}_{camera[0].upper()}.pfm", flow)


def _write_sintel(root: Path, seed: int, sizes: Sizes, n: int, names: tuple = ()) -> None:
    """Sintel/training/{clean,final}/scene_K/frame_FFFF.png (from 0001), training/flow/.../frame_FFFF.flo
    (every frame but the last), training/occlusions/.../frame_FFFF.png (255 = not visible in the
    next frame, as Sintel's); Sintel/test/{clean,final}/scene_K (torchvision reads `test`, not the
    `testing` of its docstring; the real archive has `test` too), numbered after the training scenes."""
    top = root / "Sintel"
    for split, folder, indices in (("train", "training", range(n)), ("test", "test", range(n, n + max(1, n // 3)))):
        for k in indices:
            scene = make_scene(seed, "sintel", k, sizes[k], split=split)
            clean = [scene.render(t) for t in range(FRAMES["sintel"])]
            folder_name = names[k] if split == "train" and names else f"scene_{k}"
            final = final_pass(clean, _rng(seed, "sintel", split, k, stream=1))
            for pass_name, images in (("clean", clean), ("final", final)):
                for t, image in enumerate(images):
                    formats.write_image(top / folder / pass_name / folder_name / f"frame_{t + 1:04d}.png", image)
            if split == "train":
                for t in range(FRAMES["sintel"] - 1):
                    flow, matched = scene.flow(t)
                    formats.write_flo(top / folder / "flow" / folder_name / f"frame_{t + 1:04d}.flo", flow)
                    occluded = (~matched).astype(np.uint8) * 255
                    formats.write_image(top / folder / "occlusions" / folder_name / f"frame_{t + 1:04d}.png", occluded)


def _write_kitti(root: Path, seed: int, sizes: Sizes, n: int) -> None:
    """KittiFlow/{training,testing}/image_2/NNNNNN_{10,11}.png, training/flow_occ/NNNNNN_10.png
    (sparse, occluded pixels included) and training/flow_noc/NNNNNN_10.png (the matched ones)."""
    for split, folder, count in (("train", "training", n), ("test", "testing", max(1, n // 4))):
        for i in range(count):
            scene = make_scene(seed, "kitti", i, sizes[i], split=split)
            out = root / "KittiFlow" / folder
            formats.write_image(out / "image_2" / f"{i:06d}_10.png", scene.render(0))
            formats.write_image(out / "image_2" / f"{i:06d}_11.png", scene.render(1))
            if split == "train":
                flow, matched = scene.flow(0)
                sparse = sparse_mask(_rng(seed, "kitti", split, i, stream=2), flow.shape[1:])
                formats.write_kitti_flow(out / "flow_occ" / f"{i:06d}_10.png", flow, sparse)
                formats.write_kitti_flow(out / "flow_noc" / f"{i:06d}_10.png", flow, sparse & matched)


def _write_hd1k(root: Path, seed: int, sizes: Sizes, n: int) -> None:
    """hd1k/hd1k_input/image_2/SSSSSS_FFFF.png with a flow per frame in hd1k_flow_gt/flow_occ
    (the last frame's, to the frame after, is exact too; torchvision pairs only the first F - 1),
    and hd1k_challenge/image_2/SSSSSS_{10,11}.png, the test split torchvision reads."""
    top = root / "hd1k"
    for k in range(n):
        scene = make_scene(seed, "hd1k", k, sizes[k])
        sparse_rng = _rng(seed, "hd1k", "train", k, stream=2)
        for t in range(FRAMES["hd1k"]):
            formats.write_image(top / "hd1k_input" / "image_2" / f"{k:06d}_{t:04d}.png", scene.render(t))
            flow, _ = scene.flow(t)
            sparse = sparse_mask(sparse_rng, flow.shape[1:])
            formats.write_kitti_flow(top / "hd1k_flow_gt" / "flow_occ" / f"{k:06d}_{t:04d}.png", flow, sparse)
        challenge = make_scene(seed, "hd1k", k, sizes[k], split="test")
        for t in range(2):
            formats.write_image(top / "hd1k_challenge" / "image_2" / f"{k:06d}_{10 + t}.png", challenge.render(t))


WRITERS = {
    "chairs": _write_chairs,
    "things": _write_things,
    "sintel": _write_sintel,
    "kitti": _write_kitti,
    "hd1k": _write_hd1k,
}
TOP_FOLDERS = {
    "chairs": "FlyingChairs",
    "things": "FlyingThings3D",
    "sintel": "Sintel",
    "kitti": "KittiFlow",
    "hd1k": "hd1k",
}
