"""RAFT's training augmentation, written from its parameters (princeton-vl/RAFT at 2888e15:
core/utils/augmentor.py `FlowAugmentor`, `SparseFlowAugmentor`; core/datasets.py
`fetch_dataloader` for the per-dataset scales).

In RAFT's order: photometric jitter of the pair, an eraser that occludes boxes of the second image,
then the spatial part: a random scale 2^U(min, max) (stretched per axis for dense flow), flips, a
crop. Dense flow (FlyingChairs, FlyingThings3D, Sintel) is resized with the images and multiplied
by the scales; sparse flow (KITTI, HD1K) is resampled point by point, so that no pixel without
ground truth becomes valid. Every draw comes from the step's torch.Generator, so a batch stays a
pure function of (seed, step). The images are jittered as RAFT jitters them, as uint8 PIL images
through torchvision's colour functions (its tensor kernels compute the same, 4x slower on a CPU).

The one difference from RAFT's code is below the level of the distributions: the random draws come
in another order, from the step's generator instead of numpy's and torch's global ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

# (the stage's training set, the pair's dataset) -> (min, max) of log2 of the scale, flips allowed.
# core/datasets.py: the chairs stage -0.1/1.0, things -0.4/0.8; the sintel stage (a `mixture` here)
# -0.2/0.6 for things and Sintel, KITTI -0.3/0.5, HD1K -0.5/0.2; the kitti stage -0.2/0.4 without flips.
SCALES = {
    ("chairs", "chairs"): (-0.1, 1.0, True),
    ("things", "things"): (-0.4, 0.8, True),
    ("mixture", "things"): (-0.2, 0.6, True),
    ("mixture", "sintel"): (-0.2, 0.6, True),
    ("mixture", "kitti"): (-0.3, 0.5, True),
    ("mixture", "hd1k"): (-0.5, 0.2, True),
    ("sintel", "sintel"): (-0.2, 0.6, True),  # no such RAFT stage: its sintel-stage values
    ("kitti", "kitti"): (-0.2, 0.4, False),
}
SPARSE = ("kitti", "hd1k")  # ground truth at some pixels only (frame_utils.readFlowKITTI)


@dataclass(frozen=True)
class Jitter:
    """torchvision ColorJitter's ranges: factors in [1 - x, 1 + x], hue shift in [-hue, hue]."""

    brightness: float
    contrast: float
    saturation: float
    hue: float
    asymmetric_prob: float  # each image jittered on its own, else the pair alike (as one stacked image)


DENSE_JITTER = Jitter(0.4, 0.4, 0.4, 0.5 / 3.14, 0.2)
SPARSE_JITTER = Jitter(0.3, 0.3, 0.3, 0.3 / 3.14, 0.0)  # always the pair alike
SPATIAL_PROB = 0.8  # the scale is applied with this probability (else the crop is taken at scale 1)
STRETCH_PROB, MAX_STRETCH = 0.8, 0.2  # dense only: each axis scaled again by 2^U(-0.2, 0.2)
H_FLIP, V_FLIP = 0.5, 0.1  # dense flips both ways, sparse horizontally only
ERASER_PROB, ERASER_BOXES, ERASER_SIDE = 0.5, (1, 3), (50, 100)  # [low, high) as numpy's randint
DENSE_MARGIN, SPARSE_MIN_MARGIN = 8, 1  # the scale never shrinks an image below crop + margin
SPARSE_CROP_MARGIN = (20, 50)  # (y, x): KITTI crops may start past the image's edges, then clipped
MAX_FLOW = 1000.0  # dense validity after augmentation, as RAFT recomputes it


def scales_for(stage: str, dataset: str) -> tuple[float, float, bool]:
    try:
        return SCALES[(stage, dataset)]
    except KeyError:
        raise ValueError(
            f"RAFT's augmentation has no scale range for {dataset} pairs in a {stage} stage; known: {sorted(SCALES)}"
        ) from None


def _rand(g: torch.Generator) -> float:
    return float(torch.rand((), generator=g))


def _uniform(g: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * _rand(g)


def _randint(g: torch.Generator, low: int, high: int) -> int:
    """An integer in [low, high), as numpy's randint (RAFT's draws)."""
    return int(torch.randint(low, high, (), generator=g))


# ---------------------------------------------------------------------------------------------
# Photometric: jitter and the eraser (images only: the flow is untouched)
# ---------------------------------------------------------------------------------------------
def jitter_image(image: np.ndarray, g: torch.Generator, jitter: Jitter) -> np.ndarray:
    """ColorJitter on an (H, W, 3) uint8 image: four factors, applied in a random order."""
    factors = (
        _uniform(g, 1 - jitter.brightness, 1 + jitter.brightness),
        _uniform(g, 1 - jitter.contrast, 1 + jitter.contrast),
        _uniform(g, 1 - jitter.saturation, 1 + jitter.saturation),
        _uniform(g, -jitter.hue, jitter.hue),
    )
    ops = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    out = Image.fromarray(image)
    for k in torch.randperm(4, generator=g).tolist():
        out = ops[k](out, factors[k])
    return np.asarray(out, dtype=np.uint8)


def jitter_pair(a: np.ndarray, b: np.ndarray, g: torch.Generator, jitter: Jitter):
    if jitter.asymmetric_prob and _rand(g) < jitter.asymmetric_prob:
        return jitter_image(a, g, jitter), jitter_image(b, g, jitter)
    # alike: RAFT stacks the pair into one image, so contrast uses the pair's common mean
    both = jitter_image(np.concatenate([a, b], axis=0), g, jitter)
    return both[: a.shape[0]], both[a.shape[0] :]


def erase(b: np.ndarray, g: torch.Generator) -> np.ndarray:
    """With ERASER_PROB, paint 1 or 2 boxes of 50-99 px of the (H, W, 3) second image in its mean
    colour: occlusions that the flow of the first image does not see."""
    if _rand(g) >= ERASER_PROB:
        return b
    b = b.copy()
    mean = b.reshape(-1, 3).mean(0).astype(np.uint8)  # truncated, as numpy assigns floats to uint8
    h, w = b.shape[:2]
    for _ in range(_randint(g, *ERASER_BOXES)):
        x0, y0 = _randint(g, 0, w), _randint(g, 0, h)
        dx, dy = _randint(g, *ERASER_SIDE), _randint(g, *ERASER_SIDE)
        b[y0 : y0 + dy, x0 : x0 + dx] = mean
    return b


# ---------------------------------------------------------------------------------------------
# Spatial: scale, flips, crop
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Spatial:
    """One draw of the spatial part: what it does to a pair of `size`."""

    scale_x: float  # 1.0 where the scale is not applied
    scale_y: float
    h_flip: bool
    v_flip: bool
    y0: int  # the crop's corner in the scaled (and flipped) pair
    x0: int


def draw_spatial(size, crop, g, *, low: float, high: float, flip: bool, sparse: bool) -> Spatial:
    """RAFT's spatial draw for a pair of `size` (H, W) and a `crop` (H, W)."""
    (h, w), (ch, cw) = size, crop
    margin = SPARSE_MIN_MARGIN if sparse else DENSE_MARGIN
    floor = max((ch + margin) / h, (cw + margin) / w)
    scale = 2 ** _uniform(g, low, high)
    sx = sy = scale
    if not sparse and _rand(g) < STRETCH_PROB:
        sx *= 2 ** _uniform(g, -MAX_STRETCH, MAX_STRETCH)
        sy *= 2 ** _uniform(g, -MAX_STRETCH, MAX_STRETCH)
    sx, sy = max(sx, floor), max(sy, floor)
    if _rand(g) >= SPATIAL_PROB:
        sx = sy = 1.0
    h_flip = flip and _rand(g) < H_FLIP
    v_flip = flip and not sparse and _rand(g) < V_FLIP
    h1, w1 = scaled_size((h, w), sx, sy)
    if h1 < ch or w1 < cw:
        raise ValueError(f"training crop {ch}x{cw} is larger than an image of {h1}x{w1} (scaled from {h}x{w})")
    if sparse:
        my, mx = SPARSE_CROP_MARGIN
        y0 = min(max(_randint(g, 0, h1 - ch + my), 0), h1 - ch)
        x0 = min(max(_randint(g, -mx, w1 - cw + mx), 0), w1 - cw)
    else:  # numpy's randint(0, n) never draws n: nor does this (and needs n >= 1)
        y0, x0 = _randint(g, 0, max(h1 - ch, 1)), _randint(g, 0, max(w1 - cw, 1))
    return Spatial(sx, sy, h_flip, v_flip, y0, x0)


def scaled_size(size, sx: float, sy: float) -> tuple[int, int]:
    """The (H, W) cv2.resize gives for scale factors fx = sx, fy = sy."""
    h, w = size
    return (h, w) if sx == sy == 1.0 else (int(round(h * sy)), int(round(w * sx)))


def resample_sparse(flow: np.ndarray, valid: np.ndarray, sx: float, sy: float, size) -> tuple:
    """Sparse ground truth on a grid scaled by (sx, sy) into `size` (H, W): each valid point moves to
    its rounded scaled position with its flow scaled; every other pixel stays invalid. As RAFT's
    resize_sparse_flow_map, points landing on row or column 0 are dropped (its test is `> 0`)."""
    ys, xs = np.nonzero(valid)
    h1, w1 = size
    xx, yy = np.round(xs * sx).astype(np.int64), np.round(ys * sy).astype(np.int64)
    keep = (xx > 0) & (xx < w1) & (yy > 0) & (yy < h1)
    out_flow, out_valid = np.zeros((h1, w1, 2), np.float32), np.zeros((h1, w1), bool)
    out_flow[yy[keep], xx[keep]] = flow[ys[keep], xs[keep]] * np.float32([sx, sy])  # a later point wins a shared pixel
    out_valid[yy[keep], xx[keep]] = True
    return out_flow, out_valid


def apply_spatial(img1, img2, flow, valid, spatial: Spatial, crop, *, sparse: bool):
    """The drawn transform on HWC numpy arrays (uint8 images, float32 flow, bool valid)."""
    import cv2  # here: a training job that never scales (crop_flip) needs no OpenCV

    sx, sy = spatial.scale_x, spatial.scale_y
    if (sx, sy) != (1.0, 1.0):
        img1 = cv2.resize(img1, None, fx=sx, fy=sy, interpolation=cv2.INTER_LINEAR)
        img2 = cv2.resize(img2, None, fx=sx, fy=sy, interpolation=cv2.INTER_LINEAR)
        if sparse:
            flow, valid = resample_sparse(flow, valid, sx, sy, img1.shape[:2])
        else:
            flow = cv2.resize(flow, None, fx=sx, fy=sy, interpolation=cv2.INTER_LINEAR) * np.float32([sx, sy])
    if spatial.h_flip:
        img1, img2, flow, valid = img1[:, ::-1], img2[:, ::-1], flow[:, ::-1] * np.float32([-1, 1]), valid[:, ::-1]
    if spatial.v_flip:
        img1, img2, flow, valid = img1[::-1], img2[::-1], flow[::-1] * np.float32([1, -1]), valid[::-1]
    box = (slice(spatial.y0, spatial.y0 + crop[0]), slice(spatial.x0, spatial.x0 + crop[1]))
    return img1[box], img2[box], flow[box], valid[box]


# ---------------------------------------------------------------------------------------------
# A training pair
# ---------------------------------------------------------------------------------------------
def raft_augment(a, b, flow, valid, crop, g: torch.Generator, *, stage: str, dataset: str, flip: bool = True):
    """RAFT's augmentation of one decoded pair (images (3, H, W) in [-1, 1], flow (2, H, W), valid
    (H, W) bool), for a pair of `dataset` in a stage that trains on `stage` (a dataset, or
    "mixture"); `flip: False` forbids flips where RAFT would allow them. Same shapes out, cropped."""
    low, high, allowed = scales_for(stage, dataset)
    sparse = dataset in SPARSE
    u1, u2 = (((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy() for x in (a, b))
    u1, u2 = jitter_pair(u1, u2, g, SPARSE_JITTER if sparse else DENSE_JITTER)
    u2 = erase(u2, g)
    spatial = draw_spatial(tuple(a.shape[1:]), crop, g, low=low, high=high, flip=flip and allowed, sparse=sparse)
    img1, img2, f, v = apply_spatial(u1, u2, flow.permute(1, 2, 0).numpy(), valid.numpy(), spatial, crop, sparse=sparse)
    to_image = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float() / 127.5 - 1
    f = torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32)).permute(2, 0, 1)
    # dense: valid wherever the resized flow is below RAFT's bound (RAFT recomputes it so); sparse: resampled
    v = torch.from_numpy(np.ascontiguousarray(v)) if sparse else torch.ones(f.shape[1:], dtype=torch.bool)
    return to_image(img1), to_image(img2), f, v & (f.abs() < MAX_FLOW).all(0)
