"""Preparing the flow datasets: generated in their real layouts, downloaded, or placed by hand.

`source: generated` writes the embedded default's scenes (hkt.tasks.flow.scenes) under the
root. `source: download` prepares one dataset per data job (`data_parts`: only those a block
reads): FlyingChairs and Sintel from their archives, which the DAG's local download rules fetch
(or a site places by hand) at `<root>/archives/`, verified and extracted safely; KITTI-2015, HD1K
and FlyingThings3D (registration or very large tar files) checked in place, saying what is missing
and where it belongs. `source: manual`: every dataset extracted by hand under the root; no archive
is read. What a data job reads (`downloads`) depends on the configuration alone, never on what is
on disk, so a second invocation of the DAG plans the same jobs as the first. The record lists, per
dataset, its pairs and the sha256 of the file list it found, so a changed dataset shows in the run
metadata.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hkt.io import atomic_path, recorded_digest_path, safe_extract, trust_first_digest
from hkt.tasks import Download
from hkt.tasks.flow import scenes
from hkt.tasks.flow.data import DATASETS, DataConfig, open_dataset

# Published pair counts (one pass): FlyingChairs' training split; FlyingThings3D's TRAIN, left
# camera, both directions (2,239 sequences x 9 pairs x 2); Sintel's training set (23 scenes, 1,064
# frames); KITTI-2015's training set; HD1K (36 sequences).
PUBLISHED_PAIRS = {"chairs": 22232, "things": 40302, "sintel": 1041, "kitti": 200, "hd1k": 1047}
SINTEL_FRAMES = {  # frames per training scene, as MPI-Sintel-complete.zip holds them
    "alley_1": 50, "alley_2": 50, "ambush_2": 21, "ambush_4": 33, "ambush_5": 50, "ambush_6": 20,
    "ambush_7": 50, "bamboo_1": 50, "bamboo_2": 50, "bandage_1": 50, "bandage_2": 50, "cave_2": 50,
    "cave_4": 50, "market_2": 50, "market_5": 50, "market_6": 40, "mountain_1": 50, "shaman_2": 50,
    "shaman_3": 50, "sleeping_1": 50, "sleeping_2": 50, "temple_2": 50, "temple_3": 50,
}  # fmt: skip


def stand_in(data: dict, root: str) -> dict:
    """A few pairs of each dataset at its real frame sizes (scenes.REAL_SIZES, KITTI's varying),
    with Sintel's held-out validation scenes and one training scene under their real names, and
    the published lengths for sampling (`stand_in_lengths`: Sintel without the held-out scenes)."""
    held_out = sum(SINTEL_FRAMES[s] - 1 for s in data["val_scenes"])
    train_scene = next(s for s in SINTEL_FRAMES if s not in data["val_scenes"])
    return {
        **data,
        "source": "generated",
        "root": root,
        "generated": {
            "seed": 0,
            "counts": {"chairs": 4, "things": 2, "sintel": len(data["val_scenes"]) + 1, "kitti": 4, "hd1k": 2},
            "sizes": {k: [list(s) for s in v] for k, v in scenes.REAL_SIZES.items()},
            "sintel_scenes": [*data["val_scenes"], train_scene],
        },
        "stand_in_lengths": {**PUBLISHED_PAIRS, "sintel": PUBLISHED_PAIRS["sintel"] - held_out},
    }


def data_parts(stages: list[DataConfig]) -> list[str]:
    """The datasets a block reads: its stages' training sets and the evaluation sets (Sintel,
    for selection and its columns; KITTI-2015): C+T never needs HD1K. A generated root is one
    part, written whole (the embedded default generates all five, in seconds)."""
    if stages[0].source == "generated":
        return ["all"]
    needed = {"sintel", "kitti"}
    for stage in stages:
        needed |= set(stage.mixture) if stage.dataset == "mixture" else {stage.dataset}
    return [name for name in DATASETS if name in needed]


def downloads(data: DataConfig, part: str) -> list[Download]:
    """The public archives a `download` data job reads (FlyingChairs' zip and split file, Sintel's
    zip), whatever is on disk: listing them only while a dataset was not yet extracted made the
    data job's inputs change between invocations, and Snakemake then reran it and every training
    job downstream. None publishes a checksum: the first whole copy's sha256 is kept."""
    if data.source != "download" or scenes.DATASETS[part]["manual"]:
        return []
    return [Download(url, str(_archive(Path(data.root), url)), {}) for url, _ in scenes.DATASETS[part]["files"]]


def prepare_data(data: DataConfig, *, part: str = "all", allow_network: bool = True, log=print) -> dict:
    root = Path(data.root)
    if data.source == "generated":
        g = data.generated
        scenes.generate_flow_datasets(
            root,
            seed=g.seed,
            size=tuple(g.size),
            counts=dict(g.counts),
            sizes={k: [tuple(s) for s in v] for k, v in g.sizes.items()},
            sintel_scenes=tuple(g.sintel_scenes),
        )
    names = list(DATASETS) if part == "all" else [part]
    archives = {}
    if data.source == "download":
        for name in names:
            archives[name] = _fetch(root, name, log=log)  # offline: the download rules fetched the archives
    record = {}
    for name in names:
        scenes.check_layout(root, name)
        dataset = open_dataset(root, name)
        files = sorted(str(Path(p).relative_to(root)) for pair in dataset._image_list for p in pair)
        record[name] = {"pairs": len(dataset), "files_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest()}
        if archives.get(name):
            record[name]["archives_sha256"] = archives[name]
    return record


def _in_place(root: Path, name: str) -> bool:
    try:
        scenes.check_layout(root, name)
        return True
    except FileNotFoundError:
        return False


def _archive(root: Path, url: str) -> Path:
    return root / "archives" / Path(url).name


def _fetch(root: Path, name: str, *, log) -> dict[str, str]:
    """Verify a downloadable dataset's archives and extract them, unless its layout is in place; a
    dataset that must be placed by hand, or an archive that is missing, is an error that says
    what to do. No source publishes a checksum: an archive's first digest is recorded (after the
    download rule checked its length, or when a site placed it by hand) and checked on every
    later run, so a file that changes afterwards is refused."""
    entry = scenes.DATASETS[name]
    if entry["manual"]:
        scenes.check_layout(root, name)  # raises, saying where to get it and where it belongs
        return {}
    in_place, digests = _in_place(root, name), {}
    for url, target in entry["files"]:
        archive = _archive(root, url)
        if not archive.exists():
            how = entry["how"].format(root=root)
            raise FileNotFoundError(
                f"{archive}: missing (the DAG's download rule fetches it; this job runs offline); {how}; "
                f"or place {Path(url).name} at {archive} by hand. A dataset already extracted by hand "
                "needs no archive: set the data block's source to manual"
            )
        # A hand-placed archive has no recorded digest: it must extract whole before it is trusted.
        recorded = recorded_digest_path(archive).exists()
        if recorded:
            digests[archive.name] = trust_first_digest(archive, log=log)
        if in_place:
            continue
        if target == "extract":
            extracted = safe_extract(archive, root / entry["extract_to"])
            for inside, final in entry.get("arrange", {}).items():  # the archive's folder -> torchvision's
                if not (root / final).exists():
                    (root / final).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(extracted / inside, root / final)
        else:
            with atomic_path(root / target) as tmp:
                tmp.write_bytes(archive.read_bytes())
        if not recorded:
            digests[archive.name] = trust_first_digest(archive, log=log)
    scenes.check_layout(root, name)
    return digests
