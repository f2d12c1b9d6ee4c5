"""Downloads are whole or refused: a local HTTP server that truncates, stalls, ignores Range,
sends no length or answers 404, against hkt.io.download; trust on first use for archives with
no published checksum; extraction that never deletes a folder it did not make."""

import hashlib
import random
import re
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hkt.io import download, recorded_digest_path, safe_extract, trust_first_digest

PAYLOAD = random.Random(0).randbytes(300_000)
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
FAST = {"attempts": 3, "timeout": 0.3, "backoff": 0.0}  # every retry loop in this file ends within a second


class _Handler(BaseHTTPRequestHandler):
    """Answers each GET by the next plan in server.script (or server.default):
    cut: send only this many body bytes, then close (the full length is still announced);
    stall: with cut, sleep this long before closing; status: an error status instead;
    ranges: False to answer a Range request with the whole body (200); length: False for no
    Content-Length (the body ends when the connection closes)."""

    def do_GET(self):
        server = self.server
        server.seen.append(self.headers.get("Range"))
        plan = server.script.pop(0) if server.script else server.default
        if "status" in plan:
            self.send_error(plan["status"])
            return
        start, wanted = 0, self.headers.get("Range")
        if wanted and plan.get("ranges", True):
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted)[1])
            if start >= len(PAYLOAD):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        if plan.get("length", True):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body[: plan.get("cut", len(body))])
            self.wfile.flush()
            time.sleep(plan.get("stall", 0))
        except (BrokenPipeError, ConnectionResetError):  # the client gave up on a stalled answer
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    """An HTTP/1.0 server on 127.0.0.1 (each answer closes its connection); tests set
    server.script / server.default and read server.seen (the Range header of each request)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.script, httpd.default, httpd.seen = [], {}, []
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}/archive.zip"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def _part(dest):
    return dest.with_name(dest.name + ".part")


def test_a_whole_transfer_is_published_and_its_sha256_recorded_when_no_checksum_is_published(server, tmp_path):
    logged = []
    dest = download(server.url, tmp_path / "archive.zip", unpublished_checksum=True, log=logged.append, **FAST)
    assert dest.read_bytes() == PAYLOAD and not _part(dest).exists()
    assert recorded_digest_path(dest).read_text().strip() == SHA256
    assert any("recorded on first use" in line for line in logged)
    assert server.seen == [None]


def test_a_transfer_that_ends_early_is_resumed_with_a_range_request_and_ends_whole(server, tmp_path):
    server.script = [{"cut": 100_000}]
    dest = download(server.url, tmp_path / "archive.zip", unpublished_checksum=True, log=lambda m: None, **FAST)
    assert server.seen == [None, "bytes=100000-"]
    assert dest.read_bytes() == PAYLOAD and recorded_digest_path(dest).read_text().strip() == SHA256


def test_a_transfer_that_ends_early_from_a_server_that_ignores_range_restarts_from_byte_0_and_ends_whole(
    server, tmp_path
):
    server.script = [{"cut": 100_000}, {"ranges": False}]
    logged = []
    dest = download(server.url, tmp_path / "archive.zip", sha256=SHA256, log=logged.append, **FAST)
    assert server.seen == [None, "bytes=100000-"]
    assert dest.read_bytes() == PAYLOAD
    assert any("ignored the request to resume" in line for line in logged)


def test_a_stalled_transfer_is_resumed_after_the_timeout(server, tmp_path):
    server.script = [{"cut": 100_000, "stall": 1.0}]
    began = time.monotonic()
    dest = download(server.url, tmp_path / "archive.zip", sha256=SHA256, log=lambda m: None, **FAST)
    assert time.monotonic() - began < 1.0  # the timeout (0.3 s) ended the stall, not the server
    assert server.seen == [None, "bytes=100000-"] and dest.read_bytes() == PAYLOAD


def test_a_server_error_is_retried(server, tmp_path):
    server.script = [{"status": 503}]
    dest = download(server.url, tmp_path / "archive.zip", sha256=SHA256, log=lambda m: None, **FAST)
    assert len(server.seen) == 2 and dest.read_bytes() == PAYLOAD


def test_a_server_that_always_ends_early_fails_after_the_bounded_attempts_and_a_later_run_resumes_the_kept_part(
    server, tmp_path
):
    server.default = {"cut": 50_000}
    dest = tmp_path / "archive.zip"
    with pytest.raises(OSError) as err:
        download(server.url, dest, unpublished_checksum=True, log=lambda m: None, **FAST)
    message = str(err.value)
    assert server.url in message and str(dest) in message and "150000 of 300000 bytes" in message
    assert "rerun to resume" in message and "by hand and place it at" in message
    assert len(server.seen) == FAST["attempts"]
    assert not dest.exists() and not recorded_digest_path(dest).exists()
    assert _part(dest).read_bytes() == PAYLOAD[:150_000]

    server.default = {}
    download(server.url, dest, unpublished_checksum=True, log=lambda m: None, **FAST)
    assert server.seen[-1] == "bytes=150000-"
    assert dest.read_bytes() == PAYLOAD and recorded_digest_path(dest).read_text().strip() == SHA256


def test_a_missing_file_fails_at_once_naming_the_url_and_the_archive(server, tmp_path):
    server.default = {"status": 404}
    dest = tmp_path / "archive.zip"
    with pytest.raises(OSError, match="HTTP 404") as err:
        download(server.url, dest, sha256=SHA256, log=lambda m: None, attempts=5, timeout=0.3, backoff=10.0)
    assert server.url in str(err.value) and str(dest) in str(err.value)
    assert len(server.seen) == 1 and not dest.exists()


def test_an_unreachable_host_fails_at_once_with_where_to_place_the_file_by_hand(tmp_path):
    import socket

    with socket.socket() as probe:  # a local port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url, dest = f"http://127.0.0.1:{port}/FlyingChairs.zip", tmp_path / "archives" / "FlyingChairs.zip"
    logged = []
    with pytest.raises(OSError, match=r"cannot reach the host .*not retried") as err:
        download(url, dest, unpublished_checksum=True, log=logged.append, attempts=5, timeout=0.3, backoff=10.0)
    assert f"place it at {dest}" in str(err.value) and url in str(err.value)
    assert not logged and not dest.exists() and not _part(dest).exists()  # no retry was waited for


def test_a_checksum_mismatch_names_the_archive_deletes_the_part_and_publishes_nothing(server, tmp_path):
    dest = tmp_path / "archive.zip"
    with pytest.raises(ValueError) as err:
        download(server.url, dest, sha256="0" * 64, log=lambda m: None, **FAST)
    assert str(err.value).startswith(f"{dest}: sha256 {SHA256} does not match")
    assert str(_part(dest)) not in str(err.value)
    assert not dest.exists() and not _part(dest).exists() and not recorded_digest_path(dest).exists()


def test_a_body_without_length_or_checksum_is_published_unverified_and_no_digest_is_recorded(server, tmp_path):
    server.default = {"length": False}
    logged = []
    dest = download(server.url, tmp_path / "archive.zip", unpublished_checksum=True, log=logged.append, **FAST)
    assert dest.read_bytes() == PAYLOAD and not recorded_digest_path(dest).exists()
    assert any("unverified" in line for line in logged)
    # a later run (the data job) accepts the file as it is, still unverified, and records nothing
    assert download(server.url, dest, unpublished_checksum=True, log=logged.append, **FAST) == dest
    assert len(server.seen) == 1 and not recorded_digest_path(dest).exists()


def test_a_body_without_length_is_judged_by_its_published_checksum(server, tmp_path):
    server.default = {"length": False}
    dest = download(server.url, tmp_path / "archive.zip", sha256=SHA256, log=lambda m: None, **FAST)
    assert dest.read_bytes() == PAYLOAD
    with pytest.raises(ValueError, match="does not match"):
        download(server.url, tmp_path / "other.zip", sha256="0" * 64, log=lambda m: None, **FAST)


def test_a_whole_part_left_before_publishing_is_published_from_the_416_answer_without_a_new_body(server, tmp_path):
    dest = tmp_path / "archive.zip"
    _part(dest).write_bytes(PAYLOAD)
    download(server.url, dest, unpublished_checksum=True, log=lambda m: None, **FAST)
    assert server.seen == [f"bytes={len(PAYLOAD)}-"]
    assert dest.read_bytes() == PAYLOAD and recorded_digest_path(dest).read_text().strip() == SHA256


def test_a_part_longer_than_the_file_on_the_server_is_discarded_and_the_file_fetched_afresh(server, tmp_path):
    dest = tmp_path / "archive.zip"
    _part(dest).write_bytes(PAYLOAD + b"stale tail")
    download(server.url, dest, sha256=SHA256, log=lambda m: None, **FAST)
    assert server.seen == [f"bytes={len(PAYLOAD) + 10}-", None] and dest.read_bytes() == PAYLOAD


def test_a_download_with_a_recorded_digest_refuses_a_different_file(server, tmp_path):
    dest = tmp_path / "archive.zip"
    recorded_digest_path(dest).write_text("0" * 64 + "\n")
    with pytest.raises(ValueError, match=f"{re.escape(str(dest))}: sha256 {SHA256} does not match"):
        download(server.url, dest, unpublished_checksum=True, log=lambda m: None, **FAST)
    assert not dest.exists() and not _part(dest).exists()


def test_trust_first_digest_records_on_first_use_accepts_the_same_file_and_refuses_a_changed_one_naming_both_digests(
    tmp_path,
):
    path = tmp_path / "FlyingChairs.zip"
    path.write_bytes(PAYLOAD)
    logged = []
    assert trust_first_digest(path, log=logged.append) == SHA256
    assert recorded_digest_path(path).read_text().strip() == SHA256
    assert len(logged) == 1 and "recorded on first use" in logged[0] and "every later run" in logged[0]
    assert trust_first_digest(path, log=logged.append) == SHA256 and len(logged) == 1
    path.write_bytes(PAYLOAD + b"!")
    changed = hashlib.sha256(PAYLOAD + b"!").hexdigest()
    with pytest.raises(ValueError, match="changed since its digest was first recorded") as err:
        trust_first_digest(path, log=logged.append)
    assert str(path) in str(err.value) and SHA256 in str(err.value) and changed in str(err.value)
    assert f"delete {recorded_digest_path(path)}" in str(err.value)


def _tar(path):
    with tarfile.open(path, "w") as tar:
        tar.add(__file__, arcname="member.py")
    return path


def test_extraction_refuses_a_folder_not_made_by_a_complete_extraction_and_leaves_it_untouched(tmp_path):
    dest = tmp_path / "Sintel"
    (dest / "training").mkdir(parents=True)
    (dest / "training" / "frame.png").write_bytes(b"extracted by hand")
    with pytest.raises(ValueError, match="not made by a complete extraction") as err:
        safe_extract(_tar(tmp_path / "a.tar"), dest)
    assert str(dest) in str(err.value) and "move it away or delete it" in str(err.value)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == ["training", "training/frame.png"]
    assert (dest / "training" / "frame.png").read_bytes() == b"extracted by hand"


def test_tar_extraction_without_the_data_filter_fails_naming_the_python_it_needs(tmp_path, monkeypatch):
    monkeypatch.delattr(tarfile, "data_filter")
    with pytest.raises(RuntimeError, match=r"Python >= 3\.11\.4"):
        safe_extract(_tar(tmp_path / "a.tar"), tmp_path / "out")
    assert not (tmp_path / "out").exists()
