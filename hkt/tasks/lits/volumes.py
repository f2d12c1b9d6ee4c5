"""LiTS volumes on disk: reading a case with every check a real download needs, the LiTS layout
(`volume-N.nii[.gz]` beside `segmentation-N.nii[.gz]`) and its check, the Medical Segmentation
Decathlon's Task03_Liver mapped onto it, and a generator of small synthetic CT cases written in
that layout for the embedded default.

Labels follow LiTS: 0 background, 1 liver, 2 tumour (tumour lies inside the liver).

A synthetic case is an abdominal slice stack in Hounsfield units: air around an elliptic body,
a subcutaneous fat ring, a muscle wall, bowel loops in visceral fat, a spine, a liver (an
irregular blob on the patient's right) and 0-3 darker lesions in it. Its unlabelled neighbours
(spleen and kidneys 10 HU below the liver, bowel 20 HU) touch the same intensities under 15 HU
of noise, so the liver is found by its shape and position, not by intensity alone. Each case
is a pure function of (seed, index, shape, spacing), so tests rebuild any case and its organ
masks to compare with.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError
from scipy import ndimage

from hkt.io import atomic_path, atomic_write_json

LABELS = (0, 1, 2)  # background, liver, tumour
AFFINE_ATOL = 1e-3  # mm: volume and mask must share their voxel-to-world mapping up to rounding in headers

# The voxel sizes a LiTS scan can have, in mm. Bilic et al., "The Liver Tumor Segmentation Benchmark
# (LiTS)" (Medical Image Analysis 84, 2023), report 0.55-1.0 mm in-plane and 0.45-6.0 mm between
# slices; the bounds leave a margin on both sides, so that only a header that cannot describe an
# abdominal CT is refused, not a scan slightly off the published range.
IN_PLANE_MM = (0.4, 1.2)  # x and y (axes 0 and 1)
SLICE_MM = (0.4, 8.0)  # z (axis 2), the scan axis
SPACING_ADVICE = (
    "use the Medical Segmentation Decathlon's copy of the same scans (tasks.lits.data.source: download, "
    "Task03_Liver), whose headers carry the spacing, or write the scan's true spacing into the header of "
    "the volume and its segmentation"
)

# What nibabel, gzip and zlib raise on a damaged file: a short .nii (OSError), a .nii.gz cut short
# (EOFError), a broken deflate stream (zlib.error), a header too short to recognise (ImageFileError).
_UNREADABLE = (ImageFileError, HeaderDataError, OSError, EOFError, ValueError, zlib.error)


# ---------------------------------------------------------------------------------------------
# Reading a case
# ---------------------------------------------------------------------------------------------
def read_case(
    volume_path: str | Path, segmentation_path: str | Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(image float32 (X, Y, Z) in HU, labels uint8 (X, Y, Z), affine (4, 4), spacing (3,) in mm).

    Raises ValueError naming the file and the problem for anything a training run would
    otherwise trip over much later (or silently learn from): unreadable or truncated files,
    data that is not 3-D, a mask whose shape or affine differs from its volume's, labels
    outside {0, 1, 2} and non-finite voxels. Headers are compared before any voxel is read,
    so a mismatched pair fails fast even for full-size volumes.
    """
    volume_path, segmentation_path = Path(volume_path), Path(segmentation_path)
    volume, mask = _open(volume_path), _open(segmentation_path)
    for path, img in ((volume_path, volume), (segmentation_path, mask)):
        if len(img.shape) != 3:
            raise ValueError(f"{path}: expected 3-D data (X, Y, Z), got shape {tuple(img.shape)}")
    if volume.shape != mask.shape:
        raise ValueError(
            f"{segmentation_path}: shape {tuple(mask.shape)} differs from its volume {volume_path}'s "
            f"{tuple(volume.shape)}"
        )
    if not np.allclose(volume.affine, mask.affine, atol=AFFINE_ATOL):
        raise ValueError(
            f"{segmentation_path}: affine differs from its volume {volume_path}'s (atol {AFFINE_ATOL} mm):\n"
            f"{np.array2string(mask.affine, precision=4)}\nvs\n{np.array2string(volume.affine, precision=4)}"
        )
    spacing = np.asarray(volume.header.get_zooms()[:3], dtype=np.float64)
    if not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"{volume_path}: voxel spacing {spacing.tolist()} is not positive")
    _check_geometry(volume_path, np.asarray(volume.affine, dtype=np.float64), spacing)

    # float32 straight from the proxy: scaled int16 CT would otherwise pass through float64 (2x memory)
    image = _voxels(volume_path, volume, np.float32)
    finite = np.isfinite(image)
    if not finite.all():
        bad = np.argwhere(~finite)
        raise ValueError(
            f"{volume_path}: {len(bad)} voxels are NaN or inf (the first at index {tuple(int(i) for i in bad[0])})"
        )
    labels = _voxels(segmentation_path, mask, None)
    outside = np.logical_and.reduce([labels != v for v in LABELS])  # NaN compares unequal: caught too
    if outside.any():
        values = np.unique(labels[outside])
        shown = ", ".join(f"{v:g}" for v in values[:10].tolist()) + (", ..." if len(values) > 10 else "")
        raise ValueError(
            f"{segmentation_path}: {int(outside.sum())} voxels hold labels outside {{0, 1, 2}}: {shown} "
            "(LiTS: 0 background, 1 liver, 2 tumour)"
        )
    return image, labels.astype(np.uint8), np.asarray(volume.affine, dtype=np.float64), spacing


def states_no_spacing(volume_path: str | Path) -> bool:
    """Whether a volume's header has the placeholder affine (_check_geometry); reads the header only."""
    return _placeholder(np.asarray(_open(Path(volume_path)).affine, dtype=np.float64))


def _placeholder(affine: np.ndarray) -> bool:
    return bool(np.allclose(np.abs(affine), np.eye(4)))


def _check_geometry(path: Path, affine: np.ndarray, spacing: np.ndarray) -> None:
    """Refuse a header whose spacing preprocessing cannot trust: it resamples by that spacing, so
    a wrong one mis-scales the whole scan without any other symptom.

    An identity affine (up to axis flips, which an LPS-to-RAS conversion adds) with its origin at
    zero is a placeholder, not a scanner's geometry: LiTS's challenge release ships volumes 28-47
    so (github.com/PatrickChrist/LITS-CHALLENGE issue 14), and their 1 mm is not their spacing.
    Such a case is refused rather than guessed; a data block may instead leave such cases out
    (tasks.lits.data.unstated_spacing: exclude, applied before this is reached).
    """
    if _placeholder(affine):
        raise ValueError(
            f"{path}: its affine is the identity, a placeholder that states no voxel spacing (the 1 x 1 x 1 mm "
            f"it implies is not the scan's; LiTS's challenge release ships volumes 28-47 so): {SPACING_ADVICE}"
        )
    problems = _implausible(spacing)
    if problems:
        raise ValueError(
            f"{path}: voxel spacing {np.round(spacing, 4).tolist()} mm cannot be a LiTS CT's "
            f"({'; '.join(problems)}; LiTS reports 0.55-1.0 mm in-plane, 0.45-6.0 mm between slices), "
            f"so its header is wrong: {SPACING_ADVICE}"
        )


def _implausible(spacing) -> list[str]:
    """What lies outside IN_PLANE_MM / SLICE_MM, axis by axis ([] when nothing does)."""
    bounds = (("x", "in-plane", IN_PLANE_MM), ("y", "in-plane", IN_PLANE_MM), ("z", "slice", SLICE_MM))
    return [
        f"{axis} {value:g} mm is outside the {kind} bounds {low:g}-{high:g} mm"
        for (axis, kind, (low, high)), value in zip(bounds, np.asarray(spacing, np.float64).tolist(), strict=True)
        if not low <= value <= high
    ]


def _open(path: Path):
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        return nib.load(path)
    except _UNREADABLE as err:
        raise ValueError(f"{path}: not a readable NIfTI file (damaged or truncated?): {err}") from err


def _voxels(path: Path, img, dtype) -> np.ndarray:
    """The data array; nibabel only reads (and finds a truncated file) here, not in nib.load."""
    try:
        return np.asarray(img.dataobj, dtype=dtype)
    except _UNREADABLE as err:
        raise ValueError(f"{path}: cannot read its voxels (truncated or damaged file?): {err}") from err


# ---------------------------------------------------------------------------------------------
# The LiTS layout, and the Decathlon's mapped onto it
# ---------------------------------------------------------------------------------------------
CASE_FILE = re.compile(r"^(volume|segmentation)-(\d+)\.nii(\.gz)?$")
LAYOUT = (
    "volume-N.nii[.gz] and segmentation-N.nii[.gz] side by side (N = 0, 1, ...), as in LiTS's training "
    "batches (https://competitions.codalab.org/competitions/17094); the Medical Segmentation Decathlon's "
    "Task03_Liver (http://medicaldecathlon.com) holds the same 131 training cases and is mapped onto this "
    "layout by hkt.tasks.lits.volumes.decathlon_to_lits"
)


def case_files(root: str | Path) -> dict[int, tuple[Path, Path]]:
    """{case id: (volume, segmentation)} for every complete case under `root`.

    FileNotFoundError naming each missing file when a volume lacks its segmentation or the
    reverse, or when `root` holds no case at all; ValueError when a case is there twice
    (`.nii` and `.nii.gz`). macOS's `._*` resource forks (shipped inside the Decathlon's tar)
    and other hidden files are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; expected it to hold {LAYOUT}")
    found: dict[str, dict[int, Path]] = {"volume": {}, "segmentation": {}}
    for path in sorted(root.iterdir()):
        match = CASE_FILE.match(path.name)
        if path.name.startswith(".") or not match:
            continue
        kind, case = match.group(1), int(match.group(2))
        if case in found[kind]:
            raise ValueError(f"{root}: case {case} is there twice, as {found[kind][case].name} and {path.name}")
        found[kind][case] = path
    volumes, segmentations = found["volume"], found["segmentation"]
    if not volumes and not segmentations:
        raise FileNotFoundError(f"{root} holds no LiTS case: expected {LAYOUT}")
    problems = [
        f"{volumes[c].name} has no segmentation-{c}.nii[.gz]" for c in sorted(set(volumes) - set(segmentations))
    ] + [f"{segmentations[c].name} has no volume-{c}.nii[.gz]" for c in sorted(set(segmentations) - set(volumes))]
    if problems:
        raise FileNotFoundError(f"{root}: {'; '.join(problems)} (expected {LAYOUT})")
    return {case: (volumes[case], segmentations[case]) for case in sorted(volumes)}


def check_layout(root: str | Path) -> list[int]:
    """The sorted case ids under `root`, or FileNotFoundError saying exactly which files are missing."""
    return list(case_files(root))


DECATHLON_TASK = "Task03_Liver"
DECATHLON_FILE = re.compile(r"^liver_(\d+)\.nii\.gz$")


def decathlon_to_lits(src_root: str | Path, dest_root: str | Path, *, link: str = "symlink") -> list[int]:
    """Link the Decathlon's Task03_Liver training cases into `dest_root` under LiTS names.

    `src_root` is the Task03_Liver folder or the folder holding it; imagesTr/liver_N.nii.gz
    becomes volume-N.nii.gz and labelsTr/liver_N.nii.gz segmentation-N.nii.gz (the Decathlon's
    liver task redistributes LiTS's 131 training scans; imagesTs has no labels and is skipped).
    Links, not copies: the scans take tens of GB.
    `link` is "symlink" (absolute targets) or "hardlink" (same filesystem only, but survives
    the source being moved). Existing links are replaced; a real file of the same name is
    refused, as is a folder holding generated cases. Returns check_layout(dest_root).
    """
    if link not in ("symlink", "hardlink"):
        raise ValueError(f"link must be 'symlink' or 'hardlink', got {link!r}")
    src_root, dest_root = Path(src_root), Path(dest_root)
    task = src_root / DECATHLON_TASK if (src_root / DECATHLON_TASK).is_dir() else src_root
    images, labels = _decathlon_files(task, "imagesTr"), _decathlon_files(task, "labelsTr")
    problems = [f"{images[c]} has no labelsTr/liver_{c}.nii.gz" for c in sorted(set(images) - set(labels))] + [
        f"{labels[c]} has no imagesTr/liver_{c}.nii.gz" for c in sorted(set(labels) - set(images))
    ]
    if problems:
        raise FileNotFoundError(f"{task}: {'; '.join(problems)}")
    if not images:
        raise FileNotFoundError(
            f"{task}: no imagesTr/liver_N.nii.gz; download {DECATHLON_TASK}.tar from "
            "http://medicaldecathlon.com and extract it there"
        )
    if (dest_root / MARKER).exists():
        raise FileExistsError(f"{dest_root} holds generated cases ({MARKER}); map the Decathlon into another folder")
    dest_root.mkdir(parents=True, exist_ok=True)
    for case in sorted(images):
        _link(images[case], dest_root / f"volume-{case}.nii.gz", link)
        _link(labels[case], dest_root / f"segmentation-{case}.nii.gz", link)
    return check_layout(dest_root)


def _decathlon_files(task: Path, folder: str) -> dict[int, Path]:
    if not (task / folder).is_dir():
        raise FileNotFoundError(
            f"{task / folder}: no such folder; expected the Decathlon's layout {DECATHLON_TASK}/imagesTr/liver_N.nii.gz "
            f"and {DECATHLON_TASK}/labelsTr/liver_N.nii.gz (download {DECATHLON_TASK}.tar from http://medicaldecathlon.com)"
        )
    return {
        int(m.group(1)): path
        for path in sorted((task / folder).iterdir())
        if not path.name.startswith(".") and (m := DECATHLON_FILE.match(path.name))
    }


def _link(target: Path, dest: Path, kind: str) -> None:
    """Make `dest` a link to `target` by way of a temporary name, so it is never half there."""
    if dest.exists() and not dest.is_symlink() and not (kind == "hardlink" and dest.samefile(target)):
        raise FileExistsError(f"{dest} exists and is not a link made by decathlon_to_lits; refusing to replace it")
    tmp = dest.with_name(f".{dest.name}.link")
    tmp.unlink(missing_ok=True)
    if kind == "symlink":
        os.symlink(target.resolve(), tmp)
    else:
        os.link(target, tmp)
    os.replace(tmp, dest)


# ---------------------------------------------------------------------------------------------
# Synthetic cases
# ---------------------------------------------------------------------------------------------
DEFAULT_SHAPE = (96, 96, 24)  # X, Y, Z voxels: small, as the whole default pipeline runs on 2 CPU cores
DEFAULT_SPACING = (0.8, 0.8, 2.5)  # mm: in-plane finer than between slices, as abdominal CT
MIN_SHAPE = (32, 32, 8)
GENERATED_JITTER = 0.1  # make_case scales each case's spacing by a factor in [0.9, 1.1]
MARKER = "GENERATED.json"  # marks a folder the generator owns (and may overwrite)

# Hounsfield units of each tissue (unenhanced-CT ballpark); the neighbours are 10 HU from the liver
HU = {"air": -1000, "fat": -100, "soft": 40, "liver": 60, "lesion": 20, "spleen": 50, "kidney": 50, "bone": 400}
NOISE_HU = 15.0
TEXTURE_HU = 6.0  # smooth tissue inhomogeneity, so no organ is a flat plateau
BLUR_VOXELS = (0.6, 0.6, 0.3)  # partial-volume softening of every edge (X, Y, Z)


@dataclass
class SyntheticCase:
    image: np.ndarray  # int16 HU (X, Y, Z)
    labels: np.ndarray  # uint8 (X, Y, Z)
    affine: np.ndarray  # (4, 4)
    spacing: np.ndarray  # (3,) mm
    organs: dict[str, np.ndarray]  # name -> bool mask: body, liver, lesions, spleen, kidneys, spine


def make_case(seed: int, index: int, shape=DEFAULT_SHAPE, spacing=DEFAULT_SPACING) -> SyntheticCase:
    """Case `index` of the generated set: a pure function of its arguments.

    Anatomy is laid out in coordinates normalised to [-1, 1] over the field of view, so every
    organ fits whatever the shape. The affine's negative x and y make voxel axes 0 and 1 run
    towards the patient's right and back (world RAS), so the liver sits at high x, the spleen
    at low x and the spine at high y.
    """
    shape, spacing = _checked_shape(shape), _checked_spacing(spacing)
    rng = np.random.default_rng([seed, index])
    x, y, z = (np.linspace(-1, 1, n, dtype=np.float32) for n in shape)
    x, y, z = x[:, None, None], y[None, :, None], z[None, None, :]

    # body: an ellipse whose half-axes drift a little from slice to slice; fat under the skin
    a, b = rng.uniform(0.82, 0.92), rng.uniform(0.62, 0.74)
    drift = 1 + 0.04 * np.sin(np.pi * z + rng.uniform(0, 2 * np.pi))
    radial = (x / (a * drift)) ** 2 + (y / (b * drift)) ** 2
    body = radial <= 1
    inner_level = rng.uniform(0.72, 0.8)
    inner = radial <= inner_level  # inside the subcutaneous fat ring
    # the cavity inside the muscle wall: bowel loops (soft tissue) in visceral fat, which is what
    # makes the liver's outline visible on real CT
    cavity = radial <= 0.75 * inner_level
    bowel = cavity & (_smooth_field(rng, shape, sigma=2.5) > 0.5)
    spine = np.broadcast_to((x / 0.11) ** 2 + ((y - 0.78 * b) / 0.1) ** 2 <= 1, shape)  # every slice

    # liver: three lobes (right, left across the midline, posterior-inferior) whose union gets an
    # irregular surface from a smooth random field added to the ellipsoid level
    c = np.array([rng.uniform(0.22, 0.38), rng.uniform(-0.15, 0.0), rng.uniform(-0.2, 0.2)])
    lobes = [
        (c, [rng.uniform(0.28, 0.38), rng.uniform(0.3, 0.4), rng.uniform(0.7, 1.0)]),
        (c + [-rng.uniform(0.25, 0.35), -0.12, 0.15], [rng.uniform(0.15, 0.22), rng.uniform(0.15, 0.2), 0.55]),
        (c + [0.08, rng.uniform(0.12, 0.2), -0.35], [0.2, 0.2, rng.uniform(0.4, 0.6)]),
    ]
    level = np.minimum.reduce([_ellipsoid_level(x, y, z, centre, radii) for centre, radii in lobes])
    liver = (level <= 1 + 0.25 * _smooth_field(rng, shape, sigma=5.0)) & inner & ~spine

    # unlabelled neighbours of liver-like intensity; where they touch the liver, the liver wins
    spleen_centre = [-rng.uniform(0.45, 0.55), rng.uniform(0.1, 0.25), rng.uniform(-0.3, 0.3)]
    spleen_radii = [rng.uniform(0.13, 0.18), rng.uniform(0.2, 0.26), rng.uniform(0.45, 0.6)]
    spleen = _ellipsoid_level(x, y, z, spleen_centre, spleen_radii) <= 1
    kidneys = np.zeros(shape, bool)
    for side in (-1, 1):
        centre = [side * rng.uniform(0.32, 0.4), 0.55 * b, rng.uniform(-0.4, 0.0)]
        kidneys |= _ellipsoid_level(x, y, z, centre, [0.11, 0.15, rng.uniform(0.3, 0.4)]) <= 1
    spleen, kidneys = spleen & inner & ~liver & ~spine, kidneys & inner & ~liver & ~spine & ~spleen

    lesions = _lesions(rng, liver, int(rng.integers(0, 4)))

    clean = np.full(shape, HU["air"], np.float32)
    clean[body] = HU["fat"]
    clean[inner] = HU["soft"]  # the muscle wall
    clean[cavity] = HU["fat"]
    clean[bowel] = HU["soft"]
    for mask, tissue in ((spleen, "spleen"), (kidneys, "kidney"), (liver, "liver"), (lesions, "lesion")):
        clean[mask] = HU[tissue]
    clean[spine & body] = HU["bone"]
    clean[body] += TEXTURE_HU * _smooth_field(rng, shape, sigma=3.0)[body]
    image = ndimage.gaussian_filter(clean, BLUR_VOXELS) + rng.normal(0, NOISE_HU, shape).astype(np.float32)
    image = np.clip(np.rint(image), -1024, 3071).astype(np.int16)  # the 12-bit CT range

    labels = np.zeros(shape, np.uint8)
    labels[liver] = 1
    labels[lesions] = 2

    # per-case spacing, a few percent around the nominal one (scanners and protocols differ), and
    # a CT-like affine: x and y flipped (DICOM LPS stored as RAS) and an origin off the world's zero, where
    # the scanner's table put it
    case_spacing = np.round(spacing * [*(2 * [rng.uniform(0.9, 1.1)]), rng.uniform(0.9, 1.1)], 4)
    affine = np.diag([-case_spacing[0], -case_spacing[1], case_spacing[2], 1.0])
    affine[:3, 3] = [rng.uniform(150, 200), rng.uniform(150, 200), rng.uniform(-700, -400)]
    organs = {
        "body": body,
        "liver": liver,
        "lesions": lesions,
        "spleen": spleen,
        "kidneys": kidneys,
        "bowel": bowel & ~liver & ~spleen & ~kidneys & ~spine,
        "spine": spine & body,
    }
    return SyntheticCase(image, labels, affine, case_spacing, organs)


def _ellipsoid_level(x, y, z, centre, radii) -> np.ndarray:
    """<= 1 inside the ellipsoid, growing quadratically outside it."""
    return ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2


def _smooth_field(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian-smoothed white noise rescaled to unit standard deviation (float32)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), (sigma, sigma, sigma / 3))
    return field / max(float(field.std()), 1e-6)


def _lesions(rng: np.random.Generator, liver: np.ndarray, n: int) -> np.ndarray:
    """n small ellipsoids centred deep enough in the liver to lie mostly inside it (clipped to it)."""
    lesions = np.zeros(liver.shape, bool)
    deep = np.argwhere(ndimage.binary_erosion(liver, iterations=2))
    if not len(deep):
        return lesions
    grid = np.ogrid[tuple(slice(0, size) for size in liver.shape)]
    for _ in range(n):
        centre = deep[rng.integers(len(deep))]
        radii = (rng.uniform(2.0, 5.0), rng.uniform(2.0, 5.0), rng.uniform(1.0, 2.0))  # voxels
        lesions |= sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1
    return lesions & liver


def _checked_shape(shape) -> tuple[int, int, int]:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or any(s < m for s, m in zip(shape, MIN_SHAPE, strict=True)):
        raise ValueError(f"shape must be (X, Y, Z) of at least {MIN_SHAPE} voxels, got {shape}")
    return shape


def _checked_spacing(spacing) -> np.ndarray:
    spacing = np.asarray(spacing, dtype=np.float64)
    if spacing.shape != (3,) or not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise ValueError(f"spacing must be three positive millimetre values, got {spacing.tolist()}")
    return spacing


def write_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write a .nii.gz atomically and byte-for-byte reproducibly (gzip's timestamp set to 0), so
    a regenerated case has the same sha256. The header's zooms follow the affine's columns."""
    img = nib.Nifti1Image(data, affine)
    img.set_data_dtype(data.dtype)
    img.set_qform(affine, code=1)  # scanner coordinates, as CT exports
    img.set_sform(affine, code=1)
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(img.to_bytes(), compresslevel=6, mtime=0))


def generate_cases(
    root: str | Path, *, n_cases: int, shape=DEFAULT_SHAPE, spacing=DEFAULT_SPACING, seed: int
) -> list[Path]:
    """Write `n_cases` synthetic cases under `root` in LiTS naming; return their volume paths
    in case order (each segmentation-N.nii.gz lies beside its volume-N.nii.gz).

    The cases are written in a staging folder and moved into place after the marker that lets a
    later call replace them (cases of an earlier, larger call are removed); a folder holding
    LiTS files but no marker holds real data, and is refused rather than overwritten.
    """
    if int(n_cases) != n_cases or n_cases < 1:
        raise ValueError(f"n_cases must be a positive integer, got {n_cases}")
    shape, spacing = _checked_shape(shape), _checked_spacing(spacing)
    # make_case varies each case's spacing by up to GENERATED_JITTER: refuse here a nominal spacing
    # whose cases read_case would refuse later, naming the configuration rather than a case file
    upper = np.array([IN_PLANE_MM[1], IN_PLANE_MM[1], SLICE_MM[1]])
    widest = spacing * np.where(spacing * (1 + GENERATED_JITTER) > upper, 1 + GENERATED_JITTER, 1 - GENERATED_JITTER)
    problems = _implausible(widest)
    if problems:
        raise ValueError(
            f"spacing {spacing.tolist()} mm: generated cases (+-{GENERATED_JITTER:.0%} per case) would not be a "
            f"LiTS CT's, which read_case refuses ({'; '.join(problems)})"
        )
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    existing = [p for p in root.iterdir() if CASE_FILE.match(p.name)]
    if existing and not (root / MARKER).exists():
        raise FileExistsError(
            f"{root} holds {existing[0].name} (and maybe more) but no {MARKER}: real data? refusing to overwrite it"
        )
    staging = Path(tempfile.mkdtemp(dir=root, prefix=".generating-"))
    try:
        for index in range(int(n_cases)):
            case = make_case(seed, index, shape, spacing)
            write_nifti(staging / f"volume-{index}.nii.gz", case.image, case.affine)
            write_nifti(staging / f"segmentation-{index}.nii.gz", case.labels, case.affine)
        atomic_write_json(
            root / MARKER, {"seed": seed, "n_cases": int(n_cases), "shape": list(shape), "spacing": spacing.tolist()}
        )
        for path in existing:
            path.unlink()
        for path in sorted(staging.iterdir()):
            os.replace(path, root / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [root / f"volume-{index}.nii.gz" for index in range(int(n_cases))]
