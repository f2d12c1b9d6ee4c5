"""The optical-flow file formats, read strictly and written exactly as the datasets ship them.

    .flo  Middlebury (FlyingChairs, Sintel): b"PIEH" (202021.25 as a little-endian float32),
          int32 width, int32 height, then float32 (u, v) interleaved, row by row from the top
    .pfm  FlyingThings3D: "PF" (3 channels: u, v and a zero), "width height", a scale whose
          sign gives the byte order (< 0: little endian), float32 rows from the BOTTOM up
    .png  KITTI-2015 and HD1K flow: 16-bit, 3 channels in file order (R, G, B) = (u, v, valid),
          value = flow * 64 + 2**15; the benchmark takes KITTI test-set predictions in it too

torchvision's readers trust their input: a truncated .flo ends in a reshape error, a flow PNG
without a third channel in an index error, neither naming the file. These readers say which
file is broken and how. Flows are (2, H, W) float32 arrays, channel first, as torchvision
returns them; sizes in messages are height x width.

Every writer publishes its file atomically (hkt.io.atomic_path), so an interrupted run never
leaves a half-written flow or prediction behind.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from hkt.io import atomic_path

FLO_MAGIC = 202021.25  # b"PIEH" read as a little-endian float32
FLO_HEADER_BYTES = 12  # magic, width, height
KITTI_SCALE = 64.0  # a KITTI flow PNG stores flow * 64 + 2**15 (1/64 px steps, +-512 px range)
KITTI_OFFSET = 2.0**15
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_flow(flow: np.ndarray, path) -> np.ndarray:
    flow = np.asarray(flow)
    if flow.ndim != 3 or flow.shape[0] != 2:
        raise ValueError(f"{path}: a flow is a (2, H, W) array (u, v first), got shape {flow.shape}")
    return flow.astype(np.float32, copy=False)


def _write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# ---------------------------------------------------------------------------------------------
# Middlebury .flo
# ---------------------------------------------------------------------------------------------
def write_flo(path: str | Path, flow: np.ndarray) -> None:
    flow = _check_flow(flow, path)
    _, h, w = flow.shape
    header = np.array([FLO_MAGIC], "<f4").tobytes() + np.array([w, h], "<i4").tobytes()
    _write_bytes(path, header + np.ascontiguousarray(flow.transpose(1, 2, 0), "<f4").tobytes())


def read_flo(path: str | Path) -> np.ndarray:
    raw = Path(path).read_bytes()
    if len(raw) < FLO_HEADER_BYTES:
        raise ValueError(f"{path}: truncated: {len(raw)} bytes, shorter than the {FLO_HEADER_BYTES}-byte .flo header")
    magic = float(np.frombuffer(raw[:4], "<f4")[0])
    if magic != FLO_MAGIC:
        raise ValueError(f"{path}: magic number {magic} is not {FLO_MAGIC} (not a .flo file?)")
    w, h = (int(v) for v in np.frombuffer(raw[4:12], "<i4"))
    if w <= 0 or h <= 0:
        raise ValueError(f"{path}: header gives an impossible size {h}x{w}")
    expected, found = 8 * w * h, len(raw) - FLO_HEADER_BYTES  # two float32 per pixel
    if found < expected:
        raise ValueError(f"{path}: truncated: expected {expected} bytes of flow for {h}x{w}, found {found}")
    if found > expected:
        raise ValueError(
            f"{path}: {found - expected} bytes after the flow of {h}x{w} (corrupt header or trailing data)"
        )
    return np.frombuffer(raw[FLO_HEADER_BYTES:], "<f4").reshape(h, w, 2).transpose(2, 0, 1).copy()


# ---------------------------------------------------------------------------------------------
# PFM (FlyingThings3D)
# ---------------------------------------------------------------------------------------------
def write_pfm(path: str | Path, flow: np.ndarray) -> None:
    """FlyingThings3D's flow PFM: 3 channels (u, v, 0), little endian, rows from the bottom up."""
    flow = _check_flow(flow, path)
    _, h, w = flow.shape
    rgb = np.concatenate([flow, np.zeros((1, h, w), np.float32)]).transpose(1, 2, 0)[::-1]
    _write_bytes(path, f"PF\n{w} {h}\n-1.0\n".encode() + np.ascontiguousarray(rgb, "<f4").tobytes())


def _pfm_header(path, stream: io.BytesIO) -> tuple[int, int, int, float]:
    """(channels, width, height, scale), accepting what torchvision's _read_pfm accepts."""
    kind = stream.readline().rstrip()
    if kind not in (b"PF", b"Pf"):
        raise ValueError(f"{path}: bad header: starts with {kind[:16]!r}, not PF or Pf (not a PFM file?)")
    dims = stream.readline().split()
    if len(dims) != 2 or not all(d.isdigit() for d in dims):
        raise ValueError(f"{path}: bad header: size line {b' '.join(dims)[:32]!r} is not 'width height'")
    try:
        scale = float(stream.readline())
    except ValueError:
        scale = 0.0
    if scale == 0.0:
        raise ValueError(f"{path}: bad header: no non-zero scale (its sign gives the byte order)")
    return 3 if kind == b"PF" else 1, int(dims[0]), int(dims[1]), scale


def read_pfm(path: str | Path) -> np.ndarray:
    """A flow PFM as (2, H, W) float32: the first two of its three channels, rows top down."""
    stream = io.BytesIO(Path(path).read_bytes())
    channels, w, h, scale = _pfm_header(path, stream)
    if channels != 3:
        raise ValueError(f"{path}: a single-channel PFM (Pf) holds no flow; flow PFMs are PF (u, v, 0)")
    body = stream.read()
    expected = 4 * w * h * channels
    if len(body) < expected:
        raise ValueError(f"{path}: truncated: expected {expected} bytes of flow for {h}x{w}, found {len(body)}")
    if len(body) > expected:
        raise ValueError(f"{path}: {len(body) - expected} bytes after the flow of {h}x{w} (corrupt header?)")
    data = np.frombuffer(body, "<f4" if scale < 0 else ">f4").reshape(h, w, channels)[::-1]
    return np.ascontiguousarray(data[..., :2].transpose(2, 0, 1), np.float32)


# ---------------------------------------------------------------------------------------------
# KITTI / HD1K 16-bit flow PNG
# ---------------------------------------------------------------------------------------------
def write_kitti_flow(path: str | Path, flow: np.ndarray, valid: np.ndarray | None = None) -> None:
    """KITTI's flow PNG, as the KITTI devkit writes it: invalid pixels are all zero, values
    clamped to [0, 65535]. `valid=None` marks every pixel (a benchmark submission).

    Deviation from the devkit: values are rounded, not truncated, to the 1/64 px grid, which
    halves the quantisation error; flows already on the grid are stored identically.
    """
    flow = _check_flow(flow, path)
    valid = np.ones(flow.shape[1:], bool) if valid is None else np.asarray(valid, bool)
    if valid.shape != flow.shape[1:]:
        raise ValueError(f"{path}: valid mask of shape {valid.shape} for a flow of {flow.shape[1:]}")
    u, v = (np.clip(np.round(c * KITTI_SCALE + KITTI_OFFSET), 0, 2**16 - 1).astype(np.uint16) for c in flow)
    rgb = np.stack([u, v, np.ones_like(u)], axis=-1) * valid[..., None]
    # OpenCV takes B, G, R arrays: reversed, the file holds (R, G, B) = (u, v, valid)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the flow PNG")
    _write_bytes(path, png.tobytes())


def read_kitti_flow(path: str | Path, expected_hw: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flow (2, H, W) float32, valid (H, W) bool) of a KITTI/HD1K flow PNG, as torchvision
    reads it; `expected_hw`: the size of the pair it belongs to, checked."""
    raw = Path(path).read_bytes()
    if not raw.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file (flow ground truth of KITTI/HD1K is a 16-bit PNG)")
    bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_UNCHANGED)
    if bgr is None:
        raise ValueError(f"{path}: a corrupt PNG (OpenCV cannot decode it)")
    if bgr.dtype != np.uint16:
        raise ValueError(f"{path}: a flow PNG must be 16-bit, this one is {bgr.dtype} (an image, not flow?)")
    channels = 1 if bgr.ndim == 2 else bgr.shape[2]
    if channels < 3:
        raise ValueError(f"{path}: has no valid channel: {channels} channel(s), a flow PNG has 3 (u, v, valid)")
    if channels > 3:
        raise ValueError(f"{path}: has {channels} channels, a flow PNG has 3 (u, v, valid)")
    if expected_hw is not None and bgr.shape[:2] != tuple(expected_hw):
        raise ValueError(
            f"{path}: flow of size {bgr.shape[0]}x{bgr.shape[1]} does not match its images "
            f"({expected_hw[0]}x{expected_hw[1]})"
        )
    valid, v, u = (bgr[..., i].astype(np.float32) for i in range(3))
    return (np.stack([u, v]) - KITTI_OFFSET) / KITTI_SCALE, valid > 0


def read_flow(path: str | Path, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """The flow of a .flo, .pfm or KITTI .png file, checked against its images' size when given."""
    suffix = Path(path).suffix.lower()
    if suffix == ".png":
        return read_kitti_flow(path, expected_hw)[0]
    if suffix not in (".flo", ".pfm"):
        raise ValueError(f"{path}: unknown flow format {suffix!r} (expected .flo, .pfm or .png)")
    flow = read_flo(path) if suffix == ".flo" else read_pfm(path)
    if expected_hw is not None and flow.shape[1:] != tuple(expected_hw):
        raise ValueError(
            f"{path}: flow of size {flow.shape[1]}x{flow.shape[2]} does not match its images "
            f"({expected_hw[0]}x{expected_hw[1]})"
        )
    return flow


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------
def write_image(path: str | Path, image: np.ndarray) -> None:
    """An 8-bit RGB (H, W, 3) or grey (H, W) image in the format its suffix names (.ppm, .png)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"{path}: an image is (H, W, 3) RGB or (H, W) grey uint8, got {image.dtype} {image.shape}")
    bgr = image if image.ndim == 2 else image[..., ::-1]  # OpenCV takes colour channels as B, G, R
    ok, encoded = cv2.imencode(Path(path).suffix, np.ascontiguousarray(bgr))
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode an image of this type")
    _write_bytes(path, encoded.tobytes())


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image, from its header."""
    try:
        with Image.open(path) as image:
            w, h = image.size
    except (OSError, SyntaxError) as err:  # PIL raises SyntaxError on some malformed headers
        raise ValueError(f"{path}: not a readable image ({err})") from err
    return h, w


def check_pair(path1: str | Path, path2: str | Path) -> tuple[int, int]:
    """The size both images of a pair share; ValueError naming both files if they differ."""
    a, b = image_size(path1), image_size(path2)
    if a != b:
        raise ValueError(f"image pair of different sizes: {path1} is {a[0]}x{a[1]}, {path2} is {b[0]}x{b[1]}")
    return a
