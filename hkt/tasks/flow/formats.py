"""The optical-flow file formats, read strictly and written exactly.

    .flo   Middlebury (FlyingChairs, Sintel): b"PIEH", int32 width, height, float32 (u, v) rows
    .pfm   FlyingThings3D: "PF" (3 channels, the third zero), width height, scale (< 0: little
           endian), float32 rows from the bottom of the image up
    .png   KITTI-2015 / HD1K flow: 16-bit, channels (u, v, valid), value = flow * 64 + 2**15

torchvision's readers trust their input (a truncated .flo ends in a reshape error, a PNG
without the valid channel in an index error); the suite reads with these first, so a broken
file fails with its name and the problem. Flows are (2, H, W) float32 arrays, channel first,
as torchvision returns them.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

FLO_MAGIC = 202021.25  # b"PIEH" read as a little-endian float32


def write_flo(path: str | Path, flow: np.ndarray) -> None:
    _, h, w = flow.shape
    with open(path, "wb") as f:
        f.write(b"PIEH")
        np.array([w, h], "<i4").tofile(f)
        np.ascontiguousarray(flow.transpose(1, 2, 0), "<f4").tofile(f)


def read_flo(path: str | Path) -> np.ndarray:
    raw = Path(path).read_bytes()
    if len(raw) < 12:
        raise ValueError(f"{path}: truncated: {len(raw)} bytes, not even a .flo header")
    magic = np.frombuffer(raw[:4], "<f4")[0]
    if magic != np.float32(FLO_MAGIC):
        raise ValueError(f"{path}: magic number {magic} is not {FLO_MAGIC} (not a .flo file?)")
    w, h = (int(v) for v in np.frombuffer(raw[4:12], "<i4"))
    expected = 8 * w * h
    if len(raw) - 12 != expected:
        raise ValueError(
            f"{path}: truncated or padded: expected {expected} bytes of flow for {h}x{w}, found {len(raw) - 12}"
        )
    return np.frombuffer(raw[12:], "<f4").reshape(h, w, 2).transpose(2, 0, 1).copy()


def write_pfm(path: str | Path, flow: np.ndarray) -> None:
    _, h, w = flow.shape
    rgb = np.concatenate([flow, np.zeros((1, h, w), np.float32)]).transpose(1, 2, 0)[::-1]
    with open(path, "wb") as f:
        f.write(f"PF\n{w} {h}\n-1.0\n".encode())
        np.ascontiguousarray(rgb, "<f4").tofile(f)


def read_pfm(path: str | Path) -> np.ndarray:
    raw = Path(path).read_bytes()
    match = re.match(rb"(PF|Pf)\n(\d+) (\d+)\n(-?[0-9.eE+-]+)\n", raw)
    if not match:
        raise ValueError(f"{path}: not a PFM file (bad header)")
    channels = 3 if match.group(1) == b"PF" else 1
    w, h, scale = int(match.group(2)), int(match.group(3)), float(match.group(4))
    body = raw[match.end() :]
    expected = 4 * w * h * channels
    if len(body) != expected:
        raise ValueError(
            f"{path}: truncated or padded: expected {expected} bytes for {h}x{w}x{channels}, found {len(body)}"
        )
    data = np.frombuffer(body, "<f4" if scale < 0 else ">f4").reshape(h, w, channels)[::-1]
    if channels < 2:
        raise ValueError(f"{path}: a single-channel PFM holds no flow")
    return np.ascontiguousarray(data[..., :2].transpose(2, 0, 1), np.float32)


def write_kitti_flow(path: str | Path, flow: np.ndarray, valid: np.ndarray) -> None:
    """KITTI's 16-bit flow PNG; also the format of KITTI test-set predictions for the benchmark."""
    u, v = (np.clip(flow[i] * 64 + 2**15, 0, 2**16 - 1).round().astype(np.uint16) for i in (0, 1))
    bgr = np.stack([valid.astype(np.uint16), v, u], axis=-1)  # OpenCV writes B, G, R order
    if not cv2.imwrite(str(path), bgr):
        raise OSError(f"{path}: could not be written")


def read_kitti_flow(path: str | Path, expected_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable PNG")
    if image.dtype != np.uint16:
        raise ValueError(f"{path}: a flow PNG must be 16-bit, this one is {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{path}: has no valid channel (a flow PNG has 3 channels: u, v, valid)")
    if expected_hw is not None and image.shape[:2] != tuple(expected_hw):
        raise ValueError(
            f"{path}: flow of size {image.shape[0]}x{image.shape[1]} does not match its images "
            f"({expected_hw[0]}x{expected_hw[1]})"
        )
    b, g, r = (image[..., i].astype(np.float32) for i in range(3))
    return np.stack([(r - 2**15) / 64, (g - 2**15) / 64]), b > 0


def image_size(path: str | Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path}: not a readable image")
    return image.shape[:2]


def check_pair(path1: str | Path, path2: str | Path) -> tuple[int, int]:
    """The size both images of a pair share; ValueError naming both if they differ."""
    a, b = image_size(path1), image_size(path2)
    if a != b:
        raise ValueError(f"image pair of different sizes: {path1} is {a[0]}x{a[1]}, {path2} is {b[0]}x{b[1]}")
    return a


def read_flow(path: str | Path, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """Any of the three formats by suffix, checked against the image size when given."""
    suffix = Path(path).suffix
    if suffix == ".png":
        return read_kitti_flow(path, expected_hw)[0]
    flow = read_flo(path) if suffix == ".flo" else read_pfm(path)
    if expected_hw is not None and flow.shape[1:] != tuple(expected_hw):
        raise ValueError(
            f"{path}: flow of size {flow.shape[1]}x{flow.shape[2]} does not match its images "
            f"({expected_hw[0]}x{expected_hw[1]})"
        )
    return flow
