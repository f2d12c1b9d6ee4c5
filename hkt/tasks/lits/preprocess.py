"""From LiTS volumes to training arrays: HU windowing, resampling to a common spacing, a cache of
one compressed .npz per case, and the split by patient.

H-DenseUNet (Li et al., IEEE TMI 2018; the parent of the paper's LiTS experiment) truncates
intensities to [-200, 250] HU before training, which keeps liver, lesions and their neighbours
and drops the contrast of air and bone the task does not need; we clip to that window and
scale it to [0, 1]. Cases differ in voxel size (LiTS's scans vary in-plane, and several-fold
between slices), so each is resampled to one target spacing: linear for the image, nearest for
labels.

The split is by patient: LiTS has one volume per patient, so a case id is a patient id, and no
patient's slices can reach both training and evaluation.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from scipy import ndimage

from hkt.io import atomic_path, file_digest
from hkt.tasks.lits.volumes import case_files, read_case

HU_WINDOW = (-200.0, 250.0)  # H-DenseUNet's intensity truncation, in HU


def preprocess_case(
    image: np.ndarray,
    labels: np.ndarray,
    spacing,
    *,
    target_spacing,
    hu_window=HU_WINDOW,
) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 in [0, 1], labels uint8), both resampled from `spacing` to `target_spacing`.

    The image is clipped to `hu_window` and scaled before it is resampled: linear interpolation
    of values already in [0, 1] stays in [0, 1], and air at -1000 HU cannot bleed into the
    liver's boundary voxels. Labels are resampled by nearest neighbour, so they stay in {0, 1, 2}.
    The new shape is round(shape * spacing / target_spacing) per axis, and the voxel grid keeps
    the volume's extent (scipy's grid_mode), so the voxels are target_spacing up to that rounding
    (`resampled_spacing` gives the exact value).
    """
    image, labels = np.asarray(image), np.asarray(labels)
    if image.ndim != 3 or image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} must be 3-D arrays of one shape")
    low, high = _checked_window(hu_window)
    factors = _positive(spacing, "spacing") / _positive(target_spacing, "target_spacing")
    scaled = (np.clip(image.astype(np.float32), low, high) - np.float32(low)) / np.float32(high - low)
    if np.allclose(factors, 1.0):
        return scaled, labels.astype(np.uint8)
    # grid_mode: voxels are boxes whose outer edges stay put, the physically right model for
    # CT slices; 'nearest' is the boundary mode scipy pairs with it (no zeros pulled in at the edges)
    resampled = ndimage.zoom(scaled, factors, order=1, mode="nearest", grid_mode=True)
    resampled_labels = ndimage.zoom(labels.astype(np.uint8), factors, order=0, mode="nearest", grid_mode=True)
    return np.clip(resampled, 0.0, 1.0, out=resampled), resampled_labels


def resampled_spacing(shape, spacing, new_shape) -> np.ndarray:
    """The voxel size after resampling `shape` to `new_shape`: the extent is kept (grid_mode)."""
    return np.asarray(spacing, np.float64) * np.asarray(shape, np.float64) / np.asarray(new_shape, np.float64)


def _positive(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (3,) or not (np.isfinite(values).all() and (values > 0).all()):
        raise ValueError(f"{name} must be three positive millimetre values, got {np.atleast_1d(values).tolist()}")
    return values


def _checked_window(hu_window) -> tuple[float, float]:
    low, high = (float(v) for v in hu_window)
    if not low < high:
        raise ValueError(f"hu_window must be (low, high) with low < high, got {list(hu_window)}")
    return low, high


# ---------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------
def cached_path(dest_root: str | Path, case_id: int) -> Path:
    return Path(dest_root) / f"case-{case_id}.npz"


def cache_cases(
    src_root: str | Path,
    dest_root: str | Path,
    case_ids,
    *,
    target_spacing,
    hu_window=HU_WINDOW,
) -> dict:
    """Preprocess each case of `src_root` (LiTS layout) into `dest_root/case-N.npz`.

    Returns the manifest {case id: {"file", "sha256", "shape", "original_shape"}}. Each .npz
    holds image, labels, spacing (of the cached arrays), source_spacing, original_shape and
    affine (the source's: with the original shape they map predictions back onto the scan)
    and hu_window. Files are written atomically and reproducibly (the same inputs give the same
    bytes, so the manifest's sha256 identifies the content). A case that fails (read_case's
    ValueError naming the file) raises after its own .npz, including one from an earlier run,
    has been removed; cases cached before it stay, as they are complete and correct.
    """
    target_spacing = _positive(target_spacing, "target_spacing")
    hu_window = _checked_window(hu_window)
    files = case_files(src_root)
    missing = [c for c in case_ids if c not in files]
    if missing:
        raise FileNotFoundError(f"{src_root}: no case {missing} (it holds {sorted(files)})")
    manifest = {}
    for case in case_ids:
        dest = cached_path(dest_root, case)
        try:
            image, labels, affine, spacing = read_case(*files[case])
            original_shape = np.array(image.shape, np.int64)
            image, labels = preprocess_case(image, labels, spacing, target_spacing=target_spacing, hu_window=hu_window)
            arrays = {
                "image": image,
                "labels": labels,
                "spacing": resampled_spacing(original_shape, spacing, image.shape),
                "source_spacing": spacing,
                "original_shape": original_shape,
                "affine": affine,
                "hu_window": np.array(hu_window, np.float64),
            }
            with atomic_path(dest) as tmp:
                _write_npz(tmp, arrays)
        except BaseException:
            dest.unlink(missing_ok=True)  # never leave an earlier run's cache of a case that now fails
            raise
        manifest[case] = {
            "file": dest.name,
            "sha256": file_digest(dest),
            "shape": list(image.shape),
            "original_shape": original_shape.tolist(),
        }
    return manifest


# A fixed timestamp for every member: numpy's savez stamps the current time into the zip, so the
# same arrays would give a different sha256 on every run.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A compressed .npz (np.load reads it) with reproducible bytes."""
    with zipfile.ZipFile(path, "w") as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)


def load_cached(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(image float32 in [0, 1], labels uint8) of a case cached by cache_cases; ValueError naming
    the file when it is damaged or is not such a cache, FileNotFoundError when it is not there."""
    path = Path(path)
    if not path.is_file():
        # split.json is written last, so a case it names without its .npz means the cache was
        # altered (or copied in part) after preparation, not an interrupted run
        raise FileNotFoundError(
            f"{path}: no such cached case, although the split names it: the cache under {path.parent} is "
            "incomplete; delete it and rerun the data job (prepare_data)"
        )
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = {"image", "labels"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: not a cached LiTS case (no {sorted(missing)}; holds {sorted(data.files)})")
            image, labels = data["image"], data["labels"]
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read the cached case (damaged or truncated?): {err}") from err
    if image.dtype != np.float32 or labels.dtype != np.uint8 or image.shape != labels.shape:
        raise ValueError(
            f"{path}: expected a float32 image and uint8 labels of one shape, got {image.dtype} {image.shape} "
            f"and {labels.dtype} {labels.shape}"
        )
    return image, labels


# ---------------------------------------------------------------------------------------------
# The split
# ---------------------------------------------------------------------------------------------
def split_patients(case_ids, *, val_fraction: float, test_fraction: float, seed: int) -> dict[str, list]:
    """{"train", "val", "test"}: disjoint sorted lists of case ids covering all of them.

    Deterministic in (the set of ids, the fractions, seed): ids are sorted before a seeded
    permutation, so their order in the call does not matter. Validation and test take
    round(fraction * n) cases, at least one each; the rest is training, which must keep at
    least one. ValueError naming the fractions when they cannot give three non-empty parts.
    """
    ids = sorted(case_ids)
    if len(set(ids)) != len(ids):
        raise ValueError(f"split_patients: case ids repeat: {sorted({c for c in ids if ids.count(c) > 1})}")
    n = len(ids)
    n_val, n_test = max(1, round(val_fraction * n)), max(1, round(test_fraction * n))
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1) or n - n_val - n_test < 1:
        raise ValueError(
            f"split_patients: val_fraction={val_fraction} and test_fraction={test_fraction} of {n} cases cannot give "
            "non-empty train, val and test parts (each fraction must lie in (0, 1) and leave at least one case "
            "for training; each part holds at least one case)"
        )
    order = np.random.default_rng(seed).permutation(n)
    shuffled = [ids[i] for i in order]
    return {
        "train": sorted(shuffled[n_val + n_test :]),
        "val": sorted(shuffled[:n_val]),
        "test": sorted(shuffled[n_val : n_val + n_test]),
    }
