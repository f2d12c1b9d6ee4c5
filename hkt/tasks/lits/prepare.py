"""Preparing LiTS: LiTS-named NIfTI cases under `root` (generated; the Medical Segmentation
Decathlon's Task03_Liver archive, md5-checked and extracted safely; or the LiTS challenge files
placed by hand), split by patient, every case cached preprocessed (HU window, resampled to
`target_spacing`) under `cache`, with `split.json` written last: its presence marks the cache
complete.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from hkt.conventions import MANIFEST
from hkt.io import atomic_write_json, download, safe_extract
from hkt.tasks import Download
from hkt.tasks.lits import preprocess, volumes
from hkt.tasks.lits.data import SPLIT_FILE, DataConfig

MANUAL = (
    "LiTS challenge files: register at https://competitions.codalab.org/competitions/17094, download the "
    "training batches and put volume-N.nii and segmentation-N.nii (N = 0..130) in {root}; or set "
    "source: download to fetch the Medical Segmentation Decathlon's Task03_Liver (the same 131 scans)."
)


def prepare_data(data: DataConfig, *, part: str = "all", allow_network: bool = True, log=print) -> dict:
    root, cache = Path(data.root), Path(data.cache)
    if data.source == "generated":
        g = data.generated
        volumes.generate_cases(root, n_cases=g.n_cases, shape=tuple(g.shape), spacing=tuple(g.spacing), seed=g.seed)
    elif data.source == "download":
        # The archive is this job's input whether or not its cases are in place (hkt.tasks.Task.downloads
        # must not depend on the disk), so it is verified on every run; extracted once (safe_extract's
        # marker), linked every run (cheap, and a run killed while linking left a partial set of cases).
        entry = archive_entry(data.archive)
        archive = Path(entry["place_at"])
        if not archive.exists() and not allow_network:
            raise FileNotFoundError(
                f"{archive}: the {data.archive} archive is missing (the DAG's download rule fetches it; this job "
                f"runs offline): download {entry['url']} (md5 {entry['md5']}) and place it there by hand, or set "
                f"source: manual with the LiTS files in {root}"
            )
        download(entry["url"], archive, md5=entry["md5"])  # a present file: its md5 checked, nothing fetched
        volumes.decathlon_to_lits(safe_extract(archive, archive.with_suffix("")), root)
    try:
        files = volumes.case_files(root)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{err}\n{MANUAL.format(root=root)}") from err
    unstated = [case for case, (volume, _) in files.items() if volumes.states_no_spacing(volume)]
    if unstated and data.unstated_spacing == "refuse":
        raise ValueError(
            f"{root}: cases {unstated} have an identity affine, which states no voxel spacing (LiTS's challenge "
            f"release ships volumes 28-47 so); resampling them as 1 mm voxels would mis-scale them. Use a copy whose "
            "headers carry the spacing, or set tasks.<block>.data.unstated_spacing: exclude to leave them out of "
            f"the split ({len(files) - len(unstated)} of {len(files)} cases would remain)"
        )
    if unstated:
        log(f"{root}: left out {len(unstated)} cases whose header states no spacing: {unstated}")
    ids = [case for case in files if case not in unstated]
    split = preprocess.split_patients(
        ids, val_fraction=data.val_fraction, test_fraction=data.test_fraction, seed=data.split_seed
    )
    manifest = preprocess.cache_cases(
        root, cache, ids, target_spacing=tuple(data.target_spacing), hu_window=tuple(data.hu_window)
    )
    record = {"split": split, "cases": {str(k): v for k, v in sorted(manifest.items())}}
    atomic_write_json(cache / SPLIT_FILE, record)  # last: its presence marks the cache complete
    return {"cases": len(ids), "excluded": unstated, **{part: len(v) for part, v in split.items()}, "split": split}


def archive_entry(name: str) -> dict:
    """The data/MANIFEST.yaml `datasets` entry of an archive, with url, md5 and place_at (a part of
    the data job's specification: hkt.config.manifest_datasets)."""
    entry = yaml.safe_load(MANIFEST.read_text())["datasets"].get(name)
    if not entry or not {"url", "md5", "place_at"} <= set(entry):
        raise ValueError(f"data/MANIFEST.yaml: datasets.{name} must give url, md5 and place_at")
    return entry


def downloads(data: DataConfig, part: str = "all") -> list[Download]:
    """The Decathlon archive of `source: download` (data/MANIFEST.yaml), whatever is on disk: the
    data job's inputs must be the same in every invocation, or Snakemake reruns it and all of LiTS."""
    if data.source != "download":
        return []
    entry = archive_entry(data.archive)
    return [Download(entry["url"], entry["place_at"], {"md5": entry["md5"]})]


def stand_in(data: dict, root: str) -> dict:
    """Five generated CT scans at a real LiTS in-plane size (512x512 at 0.8 mm; 24 slices of 1 mm
    where real scans hold 74 to 987, so that a CPU slides H-DenseUNet over a whole scan in about a
    minute), in the LiTS naming, preprocessed as the real ones are."""
    return {
        **data,
        "source": "generated",
        "root": root,
        "cache": f"{root}-cache",
        "generated": {"seed": 0, "n_cases": 5, "shape": [512, 512, 24], "spacing": [0.8, 0.8, 1.0]},
    }
