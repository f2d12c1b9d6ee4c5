"""File plumbing that must never leave half-written results: atomic writes, checksums,
downloads that verify before they publish, and archive extraction that cannot escape its folder."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

import torch

COMPLETE = ".complete"


@contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path next to `path`; move it into place only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; published files follow the umask
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_torch_save(obj, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_write_csv(path: str | Path, rows: list[dict], *, columns_if_empty: tuple[str, ...]) -> None:
    """Dict rows as CSV, columns in order of first appearance ('' where a row lacks one); no rows
    give the header alone, so readers get an empty table. The csv module, not pandas: importing
    pandas would cost every training job 0.4 s for one small file."""
    columns = list(dict.fromkeys(key for row in rows for key in row)) or list(columns_if_empty)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_checksum(
    path: str | Path, *, md5: str | None = None, sha256: str | None = None, sha256_prefix: str | None = None
) -> None:
    """Raise ValueError naming the file unless every given checksum matches.

    `sha256_prefix` is torch.hub's convention: a release whose file name carries the first
    hex digits of its sha256 (e.g. resnet110-1d1ed7c2.th) when the full digest is unpublished.
    """
    if not (md5 or sha256 or sha256_prefix):
        raise ValueError(f"no checksum given for {path}: refusing to trust it")
    if md5 and (got := file_digest(path, "md5")) != md5:
        raise ValueError(f"{path}: md5 {got} does not match the expected {md5} (corrupted or truncated?)")
    if sha256 or sha256_prefix:
        got = file_digest(path, "sha256")
        if sha256 and got != sha256:
            raise ValueError(f"{path}: sha256 {got} does not match the expected {sha256} (corrupted or truncated?)")
        if sha256_prefix and not got.startswith(sha256_prefix):
            raise ValueError(f"{path}: sha256 {got} does not start with {sha256_prefix} (corrupted or truncated?)")


def download(url: str, dest: str | Path, *, unpublished_checksum: bool = False, **checksums) -> Path:
    """Fetch `url` to `dest`, publishing the file only after its checksum has been verified.

    An existing `dest` that passes its checksum is kept. (torchvision's download_url writes to
    the final name directly, so an interrupted transfer would leave a corrupt file in place.)
    Where the source publishes no checksum (Sintel, FlyingChairs), `unpublished_checksum=True`
    accepts the file and records its sha256 beside it (`<dest>.sha256`), which later runs check.
    """
    dest = Path(dest)
    recorded = dest.with_name(dest.name + ".sha256")
    if unpublished_checksum and not checksums and recorded.exists():
        checksums = {"sha256": recorded.read_text().strip()}
    if dest.exists():
        verify_checksum(dest, **checksums)
        return dest
    with atomic_path(dest) as tmp:
        request = urllib.request.Request(url, headers={"User-Agent": "hkt-suite"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as err:
            raise OSError(f"downloading {url} to {dest} failed: {err}") from err
        if checksums or not unpublished_checksum:
            verify_checksum(tmp, **checksums)
        else:
            atomic_write_text(recorded, file_digest(tmp) + "\n")
    return dest


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a tar or zip archive into `dest` and mark it complete, or leave nothing behind.

    Tar members are vetted by the 'data' filter (no absolute paths, no '..', no links leaving
    the folder, no device files); zip members must stay inside `dest` and may not be symbolic
    links. Extraction happens in a sibling temporary folder that is renamed into place only when
    every member has been written, and `dest/.complete` records the archive's sha256.
    """
    archive, dest = Path(archive), Path(dest)
    if (dest / COMPLETE).exists():
        return dest
    if dest.exists():
        shutil.rmtree(dest)  # a previous extraction that never completed
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, staging)
            else:
                with tarfile.open(archive) as tar:
                    tar.extractall(staging, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            raise ValueError(f"archive {archive} cannot be extracted safely: {err}") from err
        (staging / COMPLETE).write_text(file_digest(archive) + "\n")
        os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest


def _extract_zip(archive: Path, staging: Path) -> None:
    root = staging.resolve()
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            target = (staging / info.filename).resolve()
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            if info.filename.startswith(("/", "\\")) or not target.is_relative_to(root) or is_link:
                raise ValueError(
                    f"archive {archive}: member {info.filename!r} would leave the destination "
                    "or is a link; refusing to extract"
                )
        z.extractall(staging)
