"""File plumbing that must never leave half-written results: atomic writes, checksums,
downloads that verify before they publish, and archive extraction that cannot escape its folder."""

from __future__ import annotations

import csv
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
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
    path: str | Path,
    *,
    md5: str | None = None,
    sha256: str | None = None,
    sha256_prefix: str | None = None,
    name: str | Path | None = None,
) -> None:
    """Raise ValueError naming the file unless every given checksum matches.

    `sha256_prefix` is torch.hub's convention: a release whose file name carries the first
    hex digits of its sha256 (e.g. resnet110-1d1ed7c2.th) when the full digest is unpublished.
    `name` is what the messages call the file (default: `path`), so that a download being
    checked under its partial name is reported as the archive the user knows.
    """
    name = path if name is None else name
    if not (md5 or sha256 or sha256_prefix):
        raise ValueError(f"no checksum given for {name}: refusing to trust it")
    if md5 and (got := file_digest(path, "md5")) != md5:
        raise ValueError(f"{name}: md5 {got} does not match the expected {md5} (corrupted or truncated?)")
    if sha256 or sha256_prefix:
        got = file_digest(path, "sha256")
        if sha256 and got != sha256:
            raise ValueError(f"{name}: sha256 {got} does not match the expected {sha256} (corrupted or truncated?)")
        if sha256_prefix and not got.startswith(sha256_prefix):
            raise ValueError(f"{name}: sha256 {got} does not start with {sha256_prefix} (corrupted or truncated?)")


def recorded_digest_path(path: str | Path) -> Path:
    """Where trust_first_digest keeps the sha256 of a file whose source publishes none."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def trust_first_digest(path: str | Path, log: Callable = print) -> str:
    """Trust on first use, for an archive whose source publishes no checksum: the first time,
    record its sha256 in `<path>.sha256`; every later time, refuse the file if it changed.

    Returns the sha256. Call it only once the file has proved whole (a length-checked download,
    or an archive that extracted), since whatever is recorded first is what later runs trust.
    """
    return _trust_first(Path(path), Path(path), log)


def _trust_first(file: Path, archive: Path, log: Callable) -> str:
    """trust_first_digest of `file` under the name (and sidecar) of `archive`: a download checks
    its partial file before publishing it."""
    recorded = recorded_digest_path(archive)
    current = file_digest(file)
    if recorded.exists():
        first = recorded.read_text().strip()
        if current != first:
            # "does not match" as in verify_checksum, so one pattern catches either refusal
            raise ValueError(
                f"{archive}: sha256 {current} does not match the sha256 {first} recorded in {recorded}: "
                "the file changed since its digest was first recorded (corrupted, truncated or replaced?); "
                f"if the new file is intended, delete {recorded}"
            )
        return current
    atomic_write_text(recorded, current + "\n")
    log(
        f"{archive}: no published checksum; its sha256 {current} was recorded on first use in {recorded} "
        "and will be checked on every later run"
    )
    return current


# Resumable downloads with the standard library. Considered: requests with urllib3's Retry (retries
# whole requests, never resumes a body that ended early), pooch (retries from byte 0) and
# torchvision's download_url (no resume, no length check); none resumes a partial body with Range
# while checking its length against Content-Length / Content-Range, which is what a 31 GB archive needs.
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_RETRIED_HTTP = {408, 429}  # client errors that mean "later", unlike 403/404
_NETWORK_SCHEMES = {"http", "https", "ftp"}  # a missing file: URL will not appear by retrying


class _Incomplete(Exception):
    """A transfer attempt worth retrying: it ended early or stalled (`total`: the size the server
    announced, where known), or it discarded a partial file that did not fit (`restart`: retry
    at once, since there is nothing to wait for)."""

    def __init__(self, message: str, total: int | None = None, *, restart: bool = False):
        super().__init__(message)
        self.total, self.restart = total, restart


def download(
    url: str,
    dest: str | Path,
    *,
    unpublished_checksum: bool = False,
    attempts: int = 5,
    timeout: float = 60.0,
    backoff: float = 2.0,
    log: Callable = print,
    **checksums,
) -> Path:
    """Fetch `url` to `dest`, publishing the file only once it is whole and verified.

    The transfer goes to `<dest>.part` and is renamed to `dest` at the end. Whole means as many
    bytes as the server announced (Content-Length, or the total of a Content-Range answer): HTTP
    clients end a dropped connection without an error, so nothing else would notice a half file.
    A transfer that ends early, stalls for `timeout` seconds or fails to connect is resumed from
    the `.part` with a `Range: bytes=N-` request, up to `attempts` tries with `backoff`, 2x`backoff`,
    ... seconds between them (a server that ignores Range sends it all again, which restarts the
    file); client errors such as 404 fail at once. A failure keeps the `.part` so that the next
    call resumes it; a checksum mismatch deletes it, since resuming a corrupt file cannot help.

    An existing `dest` that passes its checksum is kept. (torchvision's download_url writes to
    the final name directly, so an interrupted transfer would leave a corrupt file in place.)
    Where the source publishes no checksum (Sintel, FlyingChairs), `unpublished_checksum=True`
    accepts a length-checked file and records its sha256 beside it (`<dest>.sha256`, see
    trust_first_digest), which later runs check. A file that cannot be told whole, because the
    server sent no length (chunked) and there is no checksum, or because it was placed at `dest`
    by hand, is published but no digest is recorded (it is logged as unverified): the caller
    should call trust_first_digest(dest) only after the archive extracted, so that a half file
    never becomes the trusted digest.
    """
    dest = Path(dest)
    recorded = recorded_digest_path(dest)
    if unpublished_checksum and not checksums and recorded.exists():
        checksums = {"sha256": recorded.read_text().strip()}
    if dest.exists():
        if checksums or not unpublished_checksum:
            verify_checksum(dest, **checksums)
        else:
            log(f"{dest}: present, with no published or recorded checksum: used unverified")
        return dest
    if not (checksums or unpublished_checksum):
        verify_checksum(dest, **checksums)  # refuses before any transfer: nothing could vouch for the file
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    whole = _transfer(url, dest, part, attempts=attempts, timeout=timeout, backoff=backoff, log=log)
    try:
        if checksums:
            verify_checksum(part, name=dest, **checksums)
        elif whole:
            _trust_first(part, dest, log)
        else:
            log(
                f"{dest}: the server sent no length and no checksum is published, so the file cannot be told "
                "whole: published unverified, no digest recorded"
            )
    except ValueError as err:
        part.unlink(missing_ok=True)
        raise ValueError(
            f"{err}\n(downloaded from {url}; the partial file was deleted: rerun to download afresh)"
        ) from None
    os.replace(part, dest)
    return dest


def _transfer(
    url: str, dest: Path, part: Path, *, attempts: int, timeout: float, backoff: float, log: Callable
) -> bool:
    """Bring `part` to the whole body of `url`; True if its length was checked against the
    server's, False if the server gave none. Raises OSError naming `url` and `dest`."""
    network = urllib.parse.urlsplit(url).scheme.lower() in _NETWORK_SCHEMES
    total: int | None = None
    problem = ""
    attempts = max(1, attempts)
    for attempt in range(1, attempts + 1):
        wait = backoff * 2 ** (attempt - 1)
        try:
            whole, total = _attempt(url, dest, part, timeout=timeout, log=log)
            return whole
        except urllib.error.HTTPError as err:
            err.close()
            if err.code < 500 and err.code not in _RETRIED_HTTP:
                raise OSError(_failure(url, dest, part, total, f"HTTP {err.code} {err.reason} (not retried)")) from err
            problem = f"HTTP {err.code} {err.reason}"
        except _Incomplete as err:
            problem, total = str(err), err.total if err.total is not None else total
            wait = 0 if err.restart else wait
        except (OSError, http.client.HTTPException) as err:
            if not network:
                raise OSError(_failure(url, dest, part, total, str(err))) from err
            if isinstance(err, urllib.error.URLError) and attempt == 1 and not part.exists():
                # no connection at all on the first try (a name that does not resolve, a refused port):
                # an offline node, which waiting does not mend; a transfer under way is retried instead
                raise OSError(
                    _failure(url, dest, part, total, f"cannot reach the host ({err.reason}); not retried")
                ) from err
            problem = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        if attempt < attempts:
            log(f"{dest}: attempt {attempt} of {attempts} failed ({problem}); retrying in {wait:g} s")
            time.sleep(wait)
    if part.exists() and not part.stat().st_size:
        part.unlink()  # an empty part resumes nothing; the message says so
    raise OSError(_failure(url, dest, part, total, f"{problem}; gave up after {attempts} attempts"))


def _failure(url: str, dest: Path, part: Path, total: int | None, problem: str) -> str:
    have = part.stat().st_size if part.exists() else 0
    got = f"{have} of {total if total is not None else 'an unknown number of'} bytes received"
    kept = f"; the {have} bytes are kept in {part}: rerun to resume from them" if have else "; rerun to try again"
    return (
        f"downloading {url} to {dest} failed: {problem}; {got}{kept}, or download {url} by hand and place it at {dest}"
    )


def _attempt(url: str, dest: Path, part: Path, *, timeout: float, log: Callable) -> tuple[bool, int | None]:
    """One request, appending to `part`: (length checked, total) when the body is whole; raises
    _Incomplete (message, total) when it ended early, and lets connection errors through."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "hkt-suite"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code != 416 or not have:
            raise
        # Range not satisfiable: the part is as long as the file (a run that stopped before
        # publishing it) or longer (the file changed); only the total the server names can tell.
        match = re.fullmatch(r"bytes\s+\*/(\d+)", (err.headers.get("Content-Range") or "").strip())
        err.close()
        if match and int(match[1]) == have:
            return True, have
        log(f"{dest}: the server refused to resume from byte {have} (HTTP 416); discarding the partial file")
        part.unlink()
        raise _Incomplete("HTTP 416: the partial file did not fit the file on the server", restart=True) from None
    with response:
        status = response.status or 200  # file: URLs have no status
        length = _int_or_none(response.headers.get("Content-Length"))
        if status == 206 and have:
            match = _CONTENT_RANGE.fullmatch((response.headers.get("Content-Range") or "").strip())
            if not match or int(match[1]) != have:
                part.unlink()
                raise _Incomplete(f"the server answered bytes={have}- with another range; restarting", restart=True)
            total = int(match[3]) if match[3] != "*" else (have + length if length is not None else None)
            log(f"{dest}: resuming from byte {have}" + (f" of {total}" if total is not None else ""))
            mode = "ab"
        else:
            if have:
                log(f"{dest}: the server ignored the request to resume from byte {have}; restarting from byte 0")
            have, total, mode = 0, length, "wb"
        if total is not None and have > total:  # a Content-Range at odds with itself: the part cannot be placed
            part.unlink()
            raise _Incomplete(f"the partial file is longer than the {total} bytes announced", total, restart=True)
        try:
            with open(part, mode) as out:
                # read1, not read: a read that times out loses what it had buffered, and a resume must not
                for chunk in iter(lambda: response.read1(1 << 20), b""):
                    out.write(chunk)
                    have += len(chunk)
                out.flush()
                os.fsync(out.fileno())  # published by rename: the bytes must be on disk before the name is
        except (OSError, http.client.HTTPException) as err:
            raise _Incomplete(f"{type(err).__name__} after {have} bytes: {err}".rstrip(": "), total) from err
    if total is None:
        return False, None
    if have < total:
        raise _Incomplete(f"the connection ended after {have} of {total} bytes", total)
    if have > total:
        part.unlink()
        raise _Incomplete(f"received {have} bytes, more than the {total} announced; discarding", total, restart=True)
    return True, total


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a tar or zip archive into `dest` and mark it complete, or leave nothing behind.

    Tar members are vetted by the 'data' filter (no absolute paths, no '..', no links leaving
    the folder, no device files); zip members must stay inside `dest` and may not be symbolic
    links. Extraction happens in a sibling temporary folder that is renamed into place only when
    every member has been written, and `dest/.complete` records the archive's sha256. A `dest`
    without `.complete` was therefore not made here (a folder extracted or arranged by hand, say)
    and is refused rather than deleted.
    """
    archive, dest = Path(archive), Path(dest)
    if (dest / COMPLETE).exists():
        return dest
    if dest.exists():
        raise ValueError(
            f"{dest} exists but was not made by a complete extraction of {archive} (it has no {COMPLETE} "
            "marker); move it away or delete it, and rerun to extract the archive there"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part"))
    try:
        try:
            if zipfile.is_zipfile(archive):
                _extract_zip(archive, staging)
            else:
                with tarfile.open(archive) as tar:
                    tar.extractall(staging, filter=_tar_data_filter())
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            raise ValueError(f"archive {archive} cannot be extracted safely: {err}") from err
        (staging / COMPLETE).write_text(file_digest(archive) + "\n")
        os.replace(staging, dest)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return dest


def _tar_data_filter() -> str:
    # Python 3.11.0-3.11.3 lack PEP 706's filters and would fail with a bare TypeError on filter=
    if not hasattr(tarfile, "data_filter"):
        raise RuntimeError(
            f"extracting tar archives safely needs Python >= 3.11.4 (tarfile's 'data' filter); this is {sys.version.split()[0]}"
        )
    return "data"


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
