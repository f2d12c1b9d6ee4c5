"""The paper DAG's data jobs across invocations, as a cluster runs them: fetched from a site (a local
HTTP server standing in for the publishers, through `mirrors`), or placed by hand by an offline
site as the error message says. After a complete run, a second invocation plans nothing; an
archive that changes after its first digest was recorded is refused."""

from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from archives import flow_site, place_by_hand
from conftest import REPO, planned_jobs, workflow_copy

from hkt import config as C
from hkt.io import recorded_digest_path
from hkt.tasks.flow import scenes
from hkt.tasks.lits import volumes

FLOW_PARTS = ["chairs", "things", "sintel", "kitti", "hd1k"]


def snakemake(work: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", "data-dag.yaml"],  # it takes several
        cwd=work,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A few pairs of each flow dataset, with the paper config's held-out Sintel scenes."""
    root = tmp_path_factory.mktemp("generated")
    names = ("alley_2", "market_5", "temple_3", "alley_1")
    counts = {"chairs": 4, "things": 1, "sintel": len(names), "kitti": 2, "hd1k": 1}
    scenes.generate_flow_datasets(root / "flow", seed=5, size=(64, 80), counts=counts, sintel_scenes=names)
    volumes.generate_cases(root / "lits", n_cases=6, shape=(48, 48, 12), spacing=(0.8, 0.8, 2.5), seed=1)
    return root


def site_config(work: Path, mirrors: dict | None) -> tuple[dict, list[str]]:
    """config/paper.yaml with LiTS's scans placed by hand (its Decathlon archive's md5 is the real
    file's, which no stand-in can match, as is CIFAR's: those blocks' data jobs are not targeted),
    written to data-dag.yaml; and the records of the flow and LiTS data jobs."""
    cfg = C.load(REPO / "config" / "paper.yaml")
    cfg["tasks"]["lits"]["data"].update(source="manual", root="data/lits-placed", cache="data/lits-placed-cache")
    if mirrors:
        cfg["mirrors"] = mirrors
    (work / "data-dag.yaml").write_text(yaml.safe_dump(cfg))
    flow, lits = C.data_root_key(cfg, "flow"), C.data_root_key(cfg, "lits")
    assert sorted(C.data_parts(cfg, "flow-ctskh")) == sorted(FLOW_PARTS)
    return cfg, [f"results/data/{flow}/{part}.json" for part in FLOW_PARTS] + [f"results/data/{lits}/all.json"]


def place_lits(generated: Path, work: Path) -> None:
    target = work / "data" / "lits-placed"
    target.mkdir(parents=True)
    for path in (generated / "lits").glob("*.nii.gz"):  # the cases alone, without the generator's marker
        (target / path.name).write_bytes(path.read_bytes())


@pytest.fixture
def site(generated, tmp_path):
    """A local HTTP server serving the stand-in archives under the publishers' paths: {prefix: mirror}."""
    served = tmp_path / "site"
    files = flow_site(generated / "flow", tmp_path / "built")
    for url, path in files.items():
        target = served / re.sub(r"^https?://", "", url)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    hosts = {re.match(r"^(https?://[^/]+/)", url).group(1) for url in files}
    yield {host: base + re.sub(r"^https?://", "", host) for host in hosts}, files
    server.shutdown()


def test_the_paper_data_jobs_downloaded_from_a_site_run_once_and_a_second_invocation_plans_nothing(
    generated, site, tmp_path
):
    mirrors, files = site
    work = workflow_copy(tmp_path / "work")
    place_by_hand(generated / "flow", work / "data" / "flow")
    place_lits(generated, work)
    _, targets = site_config(work, mirrors)
    first = snakemake(work, *targets)
    assert first.returncode == 0, first.stderr[-4000:]
    for url in files:  # fetched through the mirror, whole, and their first digest recorded
        archive = work / "data" / "flow" / "archives" / Path(url).name
        assert archive.read_bytes() == files[url].read_bytes()
        assert recorded_digest_path(archive).exists()
    again = snakemake(work, "-n", *targets)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    # the whole paper DAG plans no data job and no download of what is prepared: before, a dataset
    # once extracted dropped its archives from its data job's inputs, and Snakemake reran the job and
    # every training job downstream of it
    whole = snakemake(work, "-n", timeout=900)
    assert whole.returncode == 0, whole.stderr[-4000:]
    planned = planned_jobs(whole.stdout)
    flow_key = targets[0].split("/")[2]
    assert not [j for j in planned if j.rule == "prepare_data" and f"dataroot={flow_key}," in j.wildcards + ","]
    assert not [j for j in planned if j.rule.startswith(("download_MPI", "download_FlyingChairs"))]
    assert "train_run" in {j.rule for j in planned}  # the rest of the DAG is still there to run


def test_archives_placed_by_hand_as_the_error_says_are_trusted_once_then_checked(generated, site, tmp_path):
    _, files = site
    work = workflow_copy(tmp_path / "work")
    place_by_hand(generated / "flow", work / "data" / "flow")
    place_lits(generated, work)
    # an offline site: every publisher unreachable (a closed local port, refused at once)
    unreachable = {re.match(r"^(https?://[^/]+/)", url).group(1): "http://127.0.0.1:9/" for url in files}
    _, targets = site_config(work, unreachable)
    offline = snakemake(work, *targets, "--keep-going")
    assert offline.returncode != 0
    logs = "".join(p.read_text() for p in (work / "logs" / "download").glob("*.log"))
    told = {Path(m) for m in re.findall(r"place (?:the file|it) (?:by hand )?at (\S+?)[,;:.]?(?:\s|$)", logs)}
    wanted = {(work / "data" / "flow" / "archives" / Path(url).name) for url in files}
    assert {p if p.is_absolute() else work / p for p in told} == wanted, logs[-3000:]
    for url, path in files.items():  # the README's offline steps: put each file where the message says
        told_path = work / "data" / "flow" / "archives" / Path(url).name
        told_path.parent.mkdir(parents=True, exist_ok=True)
        told_path.write_bytes(path.read_bytes())
    placed = snakemake(work, *targets)
    assert placed.returncode == 0, placed.stderr[-4000:]
    logs = "".join(p.read_text() for p in (work / "logs" / "data").rglob("*.log"))
    assert re.search(r"MPI-Sintel-complete\.zip.*first", logs), logs[-3000:]
    again = snakemake(work, "-n", *targets)
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    # the archive changes afterwards (another copy, a partial overwrite): its data job reruns (newer
    # input) and refuses it, naming the digest recorded first and the one it has now
    sintel = work / "data" / "flow" / "archives" / "MPI-Sintel-complete.zip"
    recorded = recorded_digest_path(sintel).read_text().split()[0]
    sintel.write_bytes(sintel.read_bytes() + b"\0")
    changed = snakemake(work, *targets)
    assert changed.returncode != 0
    log = (work / "logs" / "data" / C.data_root_key(C.load(work / "data-dag.yaml"), "flow") / "sintel.log").read_text()
    assert recorded in log and re.search(r"changed", log), log[-3000:]
    assert not (work / targets[FLOW_PARTS.index("sintel")]).exists()  # nothing a later run would take as done
