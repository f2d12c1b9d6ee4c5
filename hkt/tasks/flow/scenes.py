"""The embedded default's flow data: generated scenes with exact ground truth, written in the real
on-disk layouts of FlyingChairs, FlyingThings3D, Sintel, KITTI-2015 and HD1K, so torchvision's
own dataset classes read them unchanged; plus each real dataset's source and layout check.

A scene is a textured background under a global translation and two to four textured discs and
rectangles, each under its own translation, drawn in depth order (they occlude the background
and each other). Translations are whole pixels, so every surface renders exactly in every frame,
and the flow at a frame-1 pixel is the translation of the surface visible there. Sequences move at constant velocity, so every consecutive pair has the
same flow field structure. KITTI and HD1K get sparse ground truth (about half the pixels, none
where the surface is hidden in frame 2), as the real data have.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from hkt.tasks.flow import formats

# Per dataset: where it comes from and what torchvision needs under the root. No checksums are
# published for these archives; prepare records the sha256 of the file list it finds.
DATASETS = {
    "chairs": {
        "manual": False,
        "files": [
            ("https://lmb.informatik.uni-freiburg.de/data/FlyingChairs/FlyingChairs.zip", "extract"),
            (
                "https://lmb.informatik.uni-freiburg.de/resources/datasets/FlyingChairs/FlyingChairs_train_val.txt",
                "FlyingChairs/FlyingChairs_train_val.txt",
            ),
        ],
        "extract_to": "FlyingChairs.extracted",  # holds FlyingChairs_release/data: moved to FlyingChairs/data
        "layout": "FlyingChairs/data/*_img1.ppm, *_img2.ppm, *_flow.flo and FlyingChairs/FlyingChairs_train_val.txt",
        "required": ["FlyingChairs/data", "FlyingChairs/FlyingChairs_train_val.txt"],
    },
    "things": {
        "manual": True,
        "source": "https://lmb.informatik.uni-freiburg.de/resources/datasets/SceneFlowDatasets.en.html "
        "(FlyingThings3D: RGB images (cleanpass, finalpass) and optical flow; large tar/torrent files)",
        "layout": "FlyingThings3D/{frames_cleanpass,frames_finalpass}/TRAIN/{A,B,C}/<seq>/left/*.png and "
        "FlyingThings3D/optical_flow/TRAIN/{A,B,C}/<seq>/{into_future,into_past}/left/*.pfm",
        "required": [
            "FlyingThings3D/frames_cleanpass/TRAIN",
            "FlyingThings3D/frames_finalpass/TRAIN",
            "FlyingThings3D/optical_flow/TRAIN",
        ],
    },
    "sintel": {
        "manual": False,
        "files": [("http://files.is.tue.mpg.de/sintel/MPI-Sintel-complete.zip", "extract")],
        "extract_to": "Sintel",
        "layout": "Sintel/training/{clean,final}/<scene>/frame_XXXX.png and Sintel/training/flow/<scene>/frame_XXXX.flo",
        "required": ["Sintel/training/clean", "Sintel/training/final", "Sintel/training/flow"],
    },
    "kitti": {
        "manual": True,
        "source": "https://www.cvlibs.net/datasets/kitti/eval_scene_flow.php?benchmark=flow "
        "(data_scene_flow.zip; registration required)",
        "layout": "KittiFlow/training/image_2/XXXXXX_10.png, XXXXXX_11.png and KittiFlow/training/flow_occ/XXXXXX_10.png "
        "(and KittiFlow/testing/image_2 for benchmark predictions)",
        "required": ["KittiFlow/training/image_2", "KittiFlow/training/flow_occ"],
    },
    "hd1k": {
        "manual": True,
        "source": "http://hci-benchmark.iwr.uni-heidelberg.de (HD1K benchmark suite; registration required)",
        "layout": "hd1k/hd1k_input/image_2/XXXXXX_XXXX.png and hd1k/hd1k_flow_gt/flow_occ/XXXXXX_XXXX.png",
        "required": ["hd1k/hd1k_input/image_2", "hd1k/hd1k_flow_gt/flow_occ"],
    },
}


def check_layout(root: str | Path, dataset: str) -> None:
    """FileNotFoundError saying what is missing, where it belongs and where to get it."""
    entry, root = DATASETS[dataset], Path(root)
    missing = [p for p in entry["required"] if not (root / p).exists()]
    if missing:
        where = entry.get("source") or ", ".join(url for url, _ in entry["files"])
        raise FileNotFoundError(
            f"{dataset}: {', '.join(str(root / m) for m in missing)} missing. Expected layout "
            f"under {root}: {entry['layout']}. Source: {where}"
        )


# ---------------------------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------------------------
class _Texture:
    """A random colour texture on an unbounded integer grid: blurred noise over a base colour,
    high in contrast so that matching is well posed. Surfaces move by whole pixels, so a moved
    texture is sampled exactly and the ground truth has no interpolation error."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], margin: int):
        h, w = size[0] + 2 * margin, size[1] + 2 * margin
        noise = rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
        detail = cv2.GaussianBlur(noise, (0, 0), float(rng.uniform(0.7, 1.5)))
        coarse = cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 6.0)
        self.image = np.clip(0.5 * rng.uniform(0.2, 0.8, 3) + 1.4 * (detail - 0.5) + 1.5 * (coarse - 0.5) + 0.25, 0, 1)
        self.margin = margin

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Colours at integer pixel positions (x, y), which may lie up to `margin` outside the frame."""
        return self.image[y + self.margin, x + self.margin]


class Scene:
    """A background and shapes, each with a texture, a frame-0 placement and an integer velocity."""

    def __init__(
        self, rng: np.random.Generator, size: tuple[int, int], frames: int, background: int = 6, shapes: int = 12
    ):
        self.h, self.w = size
        margin = (frames + 1) * max(background, shapes) + 1
        velocity = lambda top: rng.integers(-top, top + 1, 2)  # noqa: E731
        self.surfaces = [
            {"kind": "background", "texture": _Texture(rng, size, margin), "velocity": velocity(background)}
        ]
        for _ in range(int(rng.integers(1, 4))):
            r = rng.uniform(0.12, 0.25) * min(size)
            self.surfaces.append(
                {
                    "kind": str(rng.choice(["disc", "rect"])),
                    "texture": _Texture(rng, size, margin),
                    "centre": rng.uniform([r, r], [self.w - r, self.h - r]),
                    "radius": r,
                    "aspect": rng.uniform(0.6, 1.6),
                    "velocity": velocity(shapes),
                }
            )

    def render(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """The image at `frame` (H, W, 3 in [0, 1]) and the index of the surface seen at each pixel."""
        y, x = np.mgrid[0 : self.h, 0 : self.w]
        top = np.zeros((self.h, self.w), np.int64)
        for i, s in enumerate(self.surfaces[1:], start=1):
            cx, cy = s["centre"] + frame * s["velocity"]
            dx, dy = (x + 0.5 - cx) / s["radius"], (y + 0.5 - cy) / (s["radius"] * s["aspect"])
            inside = dx**2 + dy**2 <= 1 if s["kind"] == "disc" else (np.abs(dx) <= 1) & (np.abs(dy) <= 1)
            top[inside] = i
        image = np.zeros((self.h, self.w, 3), np.float32)
        for i, s in enumerate(self.surfaces):
            vx, vy = frame * s["velocity"]
            seen = top == i
            image[seen] = s["texture"](x[seen] - vx, y[seen] - vy)
        return image, top

    def flow(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """Flow from `frame` to `frame + 1` (2, H, W) and where it is visible in both frames."""
        _, top = self.render(frame)
        _, top_next = self.render(frame + 1)
        velocity = np.stack([s["velocity"] for s in self.surfaces])
        flow = velocity[top].transpose(2, 0, 1).astype(np.float32)
        y, x = np.mgrid[0 : self.h, 0 : self.w]
        tx, ty = x + flow[0].astype(int), y + flow[1].astype(int)
        inside = (tx >= 0) & (tx < self.w) & (ty >= 0) & (ty < self.h)
        visible = inside & (top_next[np.clip(ty, 0, self.h - 1), np.clip(tx, 0, self.w - 1)] == top)
        return flow, visible


def _u8(image: np.ndarray) -> np.ndarray:
    return (image * 255).round().astype(np.uint8)


def _final(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sintel's final pass stand-in: blur, a brightness change and noise over the clean frame."""
    blurred = cv2.GaussianBlur(image, (5, 5), 1.0)
    return np.clip(blurred * rng.uniform(0.8, 1.1) + rng.normal(0, 0.03, image.shape), 0, 1)


def _write_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(_u8(image), cv2.COLOR_RGB2BGR))


def _sequence(rng, size, frames: int):
    scene = Scene(rng, size, frames)
    images = [scene.render(k)[0] for k in range(frames)]
    flows = [scene.flow(k) for k in range(frames - 1)]
    return images, flows


def generate_flow_datasets(
    root: str | Path, *, seed: int, size: tuple[int, int] = (128, 160), counts: dict | None = None
) -> None:
    """Write all five datasets under `root`. counts: pairs of chairs, sequences of things (3
    frames), scenes of sintel (4 frames), pairs of kitti, sequences of hd1k (3 frames)."""
    counts = {"chairs": 48, "things": 24, "sintel": 6, "kitti": 8, "hd1k": 4, **(counts or {})}
    if size[0] < 64 or size[1] < 64 or size[0] % 8 or size[1] % 8:
        raise ValueError(f"size must be multiples of 8 of at least 64 px, got {size}")
    root = Path(root)
    rng = np.random.default_rng(seed)

    chairs = root / "FlyingChairs" / "data"
    chairs.mkdir(parents=True, exist_ok=True)
    n_val = max(1, counts["chairs"] // 10)
    for i in range(counts["chairs"]):
        (a, b), ((flow, _),) = _sequence(rng, size, 2)
        for name, image in (("img1", a), ("img2", b)):
            cv2.imwrite(str(chairs / f"{i:05d}_{name}.ppm"), cv2.cvtColor(_u8(image), cv2.COLOR_RGB2BGR))
        formats.write_flo(chairs / f"{i:05d}_flow.flo", flow)
    splits = ["1"] * (counts["chairs"] - n_val) + ["2"] * n_val
    (root / "FlyingChairs" / "FlyingChairs_train_val.txt").write_text("\n".join(splits) + "\n")

    things = root / "FlyingThings3D"
    for k in range(counts["things"]):
        images, flows = _sequence(rng, size, 3)
        seq = f"{'ABC'[k % 3]}/{k:04d}"
        for j, image in enumerate(images):
            _write_png(things / "frames_cleanpass" / "TRAIN" / seq / "left" / f"{j + 6:04d}.png", image)
            _write_png(things / "frames_finalpass" / "TRAIN" / seq / "left" / f"{j + 6:04d}.png", _final(image, rng))
        for direction, sign in (("into_future", 1), ("into_past", -1)):
            folder = things / "optical_flow" / "TRAIN" / seq / direction / "left"
            folder.mkdir(parents=True, exist_ok=True)
            # into_future: flow j is j -> j+1; into_past: flow j is j -> j-1 (torchvision reads j+1 -> j)
            for j in range(len(images)):
                flow = flows[min(j, len(flows) - 1)][0] if direction == "into_future" else flows[max(j - 1, 0)][0]
                name = "Future" if sign > 0 else "Past"
                formats.write_pfm(folder / f"OpticalFlowInto{name}_{j + 6:04d}_L.pfm", sign * flow)

    sintel = root / "Sintel" / "training"
    for k in range(counts["sintel"]):
        images, flows = _sequence(rng, size, 4)
        for j, image in enumerate(images, start=1):
            _write_png(sintel / "clean" / f"scene_{k}" / f"frame_{j:04d}.png", image)
            _write_png(sintel / "final" / f"scene_{k}" / f"frame_{j:04d}.png", _final(image, rng))
        (sintel / "flow" / f"scene_{k}").mkdir(parents=True, exist_ok=True)
        for j, (flow, _) in enumerate(flows, start=1):
            formats.write_flo(sintel / "flow" / f"scene_{k}" / f"frame_{j:04d}.flo", flow)

    kitti = root / "KittiFlow"
    for split, n in (("training", counts["kitti"]), ("testing", max(1, counts["kitti"] // 4))):
        for i in range(n):
            (a, b), ((flow, visible),) = _sequence(rng, size, 2)
            _write_png(kitti / split / "image_2" / f"{i:06d}_10.png", a)
            _write_png(kitti / split / "image_2" / f"{i:06d}_11.png", b)
            if split == "training":
                (kitti / split / "flow_occ").mkdir(parents=True, exist_ok=True)
                sparse = visible & (rng.random(visible.shape) < 0.5)
                formats.write_kitti_flow(kitti / split / "flow_occ" / f"{i:06d}_10.png", flow, sparse)

    hd1k = root / "hd1k"
    for k in range(counts["hd1k"]):
        images, flows = _sequence(rng, size, 3)
        flows = flows + [flows[-1]]  # HD1K ships a flow per frame; torchvision ignores the last
        for j, (image, (flow, visible)) in enumerate(zip(images, flows, strict=True)):
            _write_png(hd1k / "hd1k_input" / "image_2" / f"{k:06d}_{j:04d}.png", image)
            (hd1k / "hd1k_flow_gt" / "flow_occ").mkdir(parents=True, exist_ok=True)
            sparse = visible & (rng.random(visible.shape) < 0.5)
            formats.write_kitti_flow(hd1k / "hd1k_flow_gt" / "flow_occ" / f"{k:06d}_{j:04d}.png", flow, sparse)
