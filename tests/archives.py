"""Stand-ins for the public dataset archives, laid out as the real ones are.

Each archive holds every member that data/MANIFEST.yaml lists for the real file (`members`: the
tools, readmes and folders a loader never reads, as well as the ones it does), with the generated
data in the folders the suite reads. Built from the manifest, so a member added there is met here.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

from hkt import config as C
from hkt.tasks.flow import scenes

MANIFEST = C.load_manifest()["datasets"]

# Which generated folder fills which member of each archive (the rest get a placeholder file or stay empty)
FLOW_PAYLOAD = {
    "flow_sintel": {"training/": "Sintel/training", "test/": "Sintel/test"},
    "flow_chairs": {"FlyingChairs_release/data/": "FlyingChairs/data"},
}


def members(name: str) -> list[str]:
    return list(MANIFEST[name]["members"])


def write_zip(dest: Path, name: str, payload: dict[str, Path]) -> Path:
    """A zip of manifest entry `name`: its listed members, `payload` folders copied into theirs."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w") as z:
        for member in members(name):
            if member in payload:
                for path in sorted(payload[member].rglob("*")):
                    if path.is_file():
                        z.write(path, member + str(path.relative_to(payload[member])))
            elif member.endswith("/"):
                z.writestr(member, b"")  # a folder entry, as zip tools write them
            else:
                z.writestr(member, f"stand-in for the real {member}\n")
    return dest


def write_tar(dest: Path, name: str, payload: dict[str, Path], extra: dict[str, bytes] | None = None) -> Path:
    """A tar of manifest entry `name` (gzip-compressed for .tar.gz), as write_zip; `extra`: more files."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = dest.with_name(dest.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    for member in members(name):
        target = staging / member
        if member in payload:
            shutil.copytree(payload[member], target, dirs_exist_ok=True)
        elif member.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f"stand-in for the real {member}\n")
    for member, data in (extra or {}).items():
        (staging / member).parent.mkdir(parents=True, exist_ok=True)
        (staging / member).write_bytes(data)
    with tarfile.open(dest, "w:gz" if dest.name.endswith(".gz") else "w") as tar:
        for path in sorted(staging.iterdir()):
            tar.add(path, path.name)
    shutil.rmtree(staging)
    return dest


def flow_site(generated: Path, out: Path) -> dict[str, Path]:
    """{url: stand-in file} for every file of the network the flow data jobs read, from a generated
    tree (scenes.generate_flow_datasets): Sintel's and FlyingChairs' zips and the split file."""
    files = {}
    for dataset in ("sintel", "chairs"):
        name = f"flow_{dataset}"
        payload = {member: generated / folder for member, folder in FLOW_PAYLOAD[name].items()}
        url = MANIFEST[name]["url"]
        files[url] = write_zip(out / Path(url).name, name, payload)
    split = MANIFEST["flow_chairs_split"]["url"]
    files[split] = out / Path(split).name
    shutil.copy(generated / "FlyingChairs" / "FlyingChairs_train_val.txt", files[split])
    return files


def place_by_hand(generated: Path, root: Path, datasets=("kitti", "things", "hd1k")) -> None:
    """Copy generated datasets under `root` as a site extracts them by hand (no generator marker)."""
    for dataset in datasets:
        folder = scenes.TOP_FOLDERS[dataset]
        shutil.copytree(generated / folder, root / folder, dirs_exist_ok=True)
