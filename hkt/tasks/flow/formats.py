"""The optical-flow file formats, read strictly and written exactly as the datasets ship them.

    .flo  Middlebury (FlyingChairs, Sintel): b"PIEH" (202021.25 as a little-endian float32),
          int32 width, int32 height, then float32 (u, v) interleaved, row by row from the top
    .pfm  FlyingThings3D: "PF" (3 channels: u, v and a zero), "width height", a scale whose
          sign gives the byte order (< 0: little endian), float32 rows from the BOTTOM up
    .png  KITTI-2015 and HD1K flow: 16-bit, 3 channels in file order (R, G, B) = (u, v, valid),
          value = flow * 64 + 2**15; the benchmark takes KITTI test-set predictions in it too

torchvision's readers trust their input: a truncated .flo ends in a reshape error, a flow PNG
without a third channel in an index error, neither naming the file. These readers say which
file is broken and how; check_flow_header lets a caller vet a file's header before torchvision
allocates what it declares. Flows are (2, H, W) float32 arrays, channel first, as torchvision
returns them; sizes in messages are height x width.

Every writer publishes its file atomically (hkt.io.atomic_path), so an interrupted run never
leaves a half-written flow or prediction behind.
"""

from __future__ import annotations

import io
import zlib
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
    h, w = _flo_size(path, raw[:FLO_HEADER_BYTES], len(raw))
    return np.frombuffer(raw[FLO_HEADER_BYTES:], "<f4").reshape(h, w, 2).transpose(2, 0, 1).copy()


def _flo_size(path, header: bytes, length: int) -> tuple[int, int]:
    """(height, width) of a .flo from its 12-byte header, checked against the file's length: the
    sizes are compared as Python integers before anything is allocated, so a corrupt header that
    declares 10^9 columns costs nothing."""
    if len(header) < FLO_HEADER_BYTES:
        raise ValueError(f"{path}: truncated: {length} bytes, shorter than the {FLO_HEADER_BYTES}-byte .flo header")
    magic = float(np.frombuffer(header[:4], "<f4")[0])
    if magic != FLO_MAGIC:
        raise ValueError(f"{path}: magic number {magic} is not {FLO_MAGIC} (not a .flo file?)")
    w, h = (int(v) for v in np.frombuffer(header[4:12], "<i4"))
    if w <= 0 or h <= 0:
        raise ValueError(f"{path}: header gives an impossible size {h}x{w}")
    return _checked_body(path, h, w, 8, length - FLO_HEADER_BYTES)  # two float32 per pixel


def _checked_body(path, h: int, w: int, pixel_bytes: int, found: int) -> tuple[int, int]:
    expected = pixel_bytes * h * w
    if found < expected:
        # a file cut short keeps some of its body; one that holds a tiny part of what its header
        # declares more likely has a corrupt header (a width of 10^9, say)
        hint = " (or a corrupt header)" if expected > 64 * max(found, 1) else ""
        raise ValueError(f"{path}: truncated: expected {expected} bytes of flow for {h}x{w}, found {found}{hint}")
    if found > expected:
        raise ValueError(
            f"{path}: {found - expected} bytes after the flow of {h}x{w} (corrupt header or trailing data)"
        )
    return h, w


# ---------------------------------------------------------------------------------------------
# PFM (FlyingThings3D)
# ---------------------------------------------------------------------------------------------
def write_pfm(path: str | Path, flow: np.ndarray) -> None:
    """FlyingThings3D's flow PFM: 3 channels (u, v, 0), little endian, rows from the bottom up."""
    flow = _check_flow(flow, path)
    _, h, w = flow.shape
    rgb = np.concatenate([flow, np.zeros((1, h, w), np.float32)]).transpose(1, 2, 0)[::-1]
    _write_bytes(path, f"PF\n{w} {h}\n-1.0\n".encode() + np.ascontiguousarray(rgb, "<f4").tobytes())


PFM_LINE_BYTES = 256  # longer than any PFM header line: bounds what a file without newlines makes a header read


def _pfm_header(path, stream) -> tuple[int, int, int, float]:
    """(channels, width, height, scale), accepting what torchvision's _read_pfm accepts."""
    kind = stream.readline(PFM_LINE_BYTES).rstrip()
    if kind not in (b"PF", b"Pf"):
        raise ValueError(f"{path}: bad header: starts with {kind[:16]!r}, not PF or Pf (not a PFM file?)")
    dims = stream.readline(PFM_LINE_BYTES).split()
    if len(dims) != 2 or not all(d.isdigit() for d in dims):
        raise ValueError(f"{path}: bad header: size line {b' '.join(dims)[:32]!r} is not 'width height'")
    try:
        scale = float(stream.readline(PFM_LINE_BYTES))
    except ValueError:
        scale = 0.0
    if scale == 0.0:
        raise ValueError(f"{path}: bad header: no non-zero scale (its sign gives the byte order)")
    return 3 if kind == b"PF" else 1, int(dims[0]), int(dims[1]), scale


def _pfm_size(path, stream, length: int) -> tuple[int, int, float]:
    """(height, width, scale) of a flow PFM from its header, checked against the file's length."""
    channels, w, h, scale = _pfm_header(path, stream)
    if channels != 3:
        raise ValueError(f"{path}: a single-channel PFM (Pf) holds no flow; flow PFMs are PF (u, v, 0)")
    if w == 0 or h == 0:
        raise ValueError(f"{path}: header gives an impossible size {h}x{w}")
    return (*_checked_body(path, h, w, 4 * channels, length - stream.tell()), scale)


def read_pfm(path: str | Path) -> np.ndarray:
    """A flow PFM as (2, H, W) float32: the first two of its three channels, rows top down."""
    raw = Path(path).read_bytes()
    stream = io.BytesIO(raw)
    h, w, scale = _pfm_size(path, stream, len(raw))
    data = np.frombuffer(raw, "<f4" if scale < 0 else ">f4", offset=stream.tell()).reshape(h, w, 3)[::-1]
    return np.ascontiguousarray(data[..., :2].transpose(2, 0, 1), np.float32)


def check_flow_header(path: str | Path) -> tuple[int, int] | None:
    """(height, width) that a .flo or .pfm header declares, checked against the file's length by
    reading the header alone; None for any other file (a PNG's decoder checks its own header).

    torchvision's readers allocate whatever a header declares before reading: a corrupt .flo
    claiming 50000x50000 pixels asks for 20 GB. Call this first, and the file is named instead.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".flo", ".pfm"):
        return None
    length = Path(path).stat().st_size
    with open(path, "rb") as stream:
        if suffix == ".flo":
            return _flo_size(path, stream.read(FLO_HEADER_BYTES), length)
        return _pfm_size(path, stream, length)[:2]


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
    if bgr is None:  # OpenCV only logs why (libpng: "input buffer is incomplete", a CRC error, ...)
        raise ValueError(f"{path}: a truncated or corrupt PNG ({len(raw)} bytes; OpenCV cannot decode it)")
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


# What PIL raises on a damaged image: OSError for a truncated file or a broken deflate stream,
# SyntaxError on some malformed headers and PNG chunk CRCs, ValueError on some bad header fields
_BROKEN_IMAGE = (OSError, SyntaxError, ValueError, EOFError, zlib.error)


def image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image, from its header."""
    try:
        with Image.open(path) as image:
            w, h = image.size
    except FileNotFoundError:
        raise
    except _BROKEN_IMAGE as err:
        raise ValueError(f"{path}: not a readable image ({err})") from err
    return h, w


def check_image(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image that decodes whole: a header can be intact in a file cut
    short (image_size reads only the header), and PIL then fails mid-decode without the name."""
    h, w = image_size(path)
    try:
        with Image.open(path) as image:
            image.load()
    except _BROKEN_IMAGE as err:
        raise ValueError(f"{path}: a truncated or corrupt image ({h}x{w} in its header): {err}") from err
    return h, w


def check_pair(path1: str | Path, path2: str | Path) -> tuple[int, int]:
    """The size both images of a pair share, each decoded whole; ValueError naming the file that
    does not decode, or both files if their sizes differ."""
    a, b = check_image(path1), check_image(path2)
    if a != b:
        raise ValueError(f"image pair of different sizes: {path1} is {a[0]}x{a[1]}, {path2} is {b[0]}x{b[1]}")
    return a
