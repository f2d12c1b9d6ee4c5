"""Preparing the flow datasets: generated in their real layouts, or downloaded / placed by hand.

`source: generated` writes the embedded default's scenes (hkt.tasks.flow.scenes) under the
root. `source: download` fetches what can be fetched (Sintel, FlyingChairs) with the hkt.io
downloader, extracts archives safely, and checks every dataset's layout, saying for each one
that needs registration or a manual download (KITTI-2015, HD1K, FlyingThings3D) what is missing
and where it belongs. The record lists, per dataset, its pairs and the sha256 of the file
list it found, so a changed dataset shows in the run metadata.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from hkt.io import atomic_path, download, safe_extract
from hkt.tasks.flow import scenes
from hkt.tasks.flow.data import DATASETS, DataConfig, open_dataset


def prepare(data: DataConfig, *, allow_network: bool = True) -> dict:
    root = Path(data.root)
    if data.source == "generated":
        g = data.generated
        scenes.generate_flow_datasets(root, seed=g.seed, size=tuple(g.size), counts=dict(g.counts))
    else:
        for name in DATASETS:
            _fetch(root, name, allow_network=allow_network)
    record = {}
    for name in DATASETS:
        scenes.check_layout(root, name)
        dataset = open_dataset(root, name)
        files = sorted(str(Path(p).relative_to(root)) for pair in dataset._image_list for p in pair)
        record[name] = {"pairs": len(dataset), "files_sha256": hashlib.sha256("\n".join(files).encode()).hexdigest()}
    return record


def _fetch(root: Path, name: str, *, allow_network: bool) -> None:
    """Download and extract a dataset that has a public URL, unless its layout is there already."""
    try:
        scenes.check_layout(root, name)
        return
    except FileNotFoundError:
        entry = scenes.DATASETS[name]
        if entry["manual"] or not allow_network:
            raise
    for url, target in entry["files"]:
        # no checksums are published for these archives: the first download's sha256 is kept
        path = download(url, root / "archives" / Path(url).name, unpublished_checksum=True)
        if target == "extract":
            extracted = safe_extract(path, root / entry["extract_to"])
            for inside, final in entry.get("arrange", {}).items():  # the archive's folder -> torchvision's
                if not (root / final).exists():
                    (root / final).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(extracted / inside, root / final)
        else:
            with atomic_path(root / target) as tmp:
                tmp.write_bytes(path.read_bytes())
    scenes.check_layout(root, name)
