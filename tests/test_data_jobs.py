"""Data jobs at paper scale: downloads in local rules (compute nodes often have no internet), one
job per dataset of a data root shared by the blocks that read it (the three flow regimes fetch
and extract FlyingChairs once), and only what a block reads (C+T never needs HD1K)."""

import copy
import shutil
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from hkt import config as C
from hkt import pipeline
from hkt.tasks import Download
from hkt.tasks.flow import prepare, scenes
from hkt.tasks.flow.data import DataConfig, open_dataset

PAPER = C.load(REPO / "config" / "paper.yaml")


def test_the_flow_regimes_share_one_job_per_dataset_and_c_t_reads_no_hd1k():
    assert C.data_parts(PAPER, "flow") == ["chairs", "things", "sintel", "kitti"]
    assert C.data_parts(PAPER, "flow-ctsk") == ["chairs", "things", "sintel", "kitti"]
    assert C.data_parts(PAPER, "flow-ctskh") == ["chairs", "things", "sintel", "kitti", "hd1k"]
    jobs = C.data_jobs(PAPER)
    flow = sorted(part for root, part in jobs if root == "data-flow")
    assert flow == sorted(["chairs", "things", "sintel", "kitti", "hd1k"])  # one job each, for three blocks
    assert {C.data_root_key(PAPER, b) for b in ("flow", "flow-ctsk", "flow-ctskh")} == {"data-flow"}
    alone = copy.deepcopy(PAPER)
    alone["tasks"] = {"flow": alone["tasks"]["flow"]}
    assert "hd1k" not in {part for _, part in C.data_jobs(alone)}


def test_blocks_that_share_a_root_but_prepare_it_differently_are_refused():
    cfg = copy.deepcopy(PAPER)
    cfg["tasks"]["flow-ctsk"]["data"]["val_scenes"] = ["alley_1"]
    with pytest.raises(
        C.ConfigError, match=r"tasks\.flow-ctsk\.data: shares the data root 'data/flow' with tasks\.flow"
    ):
        C.data_jobs(cfg)


def _rules(configfile: Path) -> tuple[set, set]:
    """(every rule name, the local ones) of the workflow under a configuration."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings

    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(),
            config_settings=ConfigSettings(configfiles=[configfile]),
            storage_settings=StorageSettings(),
            snakefile=REPO / "Snakefile",
            workdir=REPO,
        )._workflow
        # `localrule: True` (or a localrules directive): what a cluster executor runs on the submit host
        return {r.name for r in workflow.rules}, set(workflow._localrules)


def test_every_download_is_a_local_rule_and_every_data_job_runs_on_a_compute_node():
    names, local = _rules(REPO / "config" / "paper.yaml")
    downloads = {n for n in names if n.startswith("download_")}
    assert downloads == {
        "download_cifar_10_python_tar_gz",
        "download_cifar_100_python_tar_gz",
        "download_MPI_Sintel_complete_zip",
        "download_FlyingChairs_zip",
        "download_FlyingChairs_train_val_txt",
        "download_Task03_Liver_tar",
    }
    assert downloads | {"fetch_checkpoint"} <= local
    assert "prepare_data" not in local and "train_run" not in local


def test_a_data_job_prepares_its_dataset_offline_from_the_archive_the_download_rule_fetched_and_keeps_its_inputs(
    tmp_path,
):
    generated = tmp_path / "generated"
    scenes.generate_flow_datasets(generated, seed=3, size=(64, 80), counts={"sintel": 2})
    source = tmp_path / "MPI-Sintel-complete.zip"
    with zipfile.ZipFile(source, "w") as z:
        for path in sorted((generated / "Sintel").rglob("*")):
            if path.is_file():
                z.write(path, str(path.relative_to(generated / "Sintel")))
    data = DataConfig(root=str(tmp_path / "flow"), source="download", val_scenes=("scene_0",))
    with pytest.raises(FileNotFoundError, match=r"archives/MPI-Sintel-complete\.zip: missing .*this job runs offline"):
        prepare.prepare_data(data, part="sintel", allow_network=False)
    (wanted,) = prepare.downloads(data, "sintel")
    assert Path(wanted.path) == tmp_path / "flow" / "archives" / "MPI-Sintel-complete.zip" and not wanted.checksums
    pipeline.fetch(Download(source.as_uri(), wanted.path, {}), log=lambda m: None)  # the local rule's work
    record = prepare.prepare_data(data, part="sintel", allow_network=False)
    assert list(record) == ["sintel"] and record["sintel"]["pairs"] == len(open_dataset(generated, "sintel"))
    # extracted now, and still the same input: a data job whose inputs changed with the disk was rerun by
    # Snakemake's next invocation, with every training job downstream of it
    assert prepare.downloads(data, "sintel") == [wanted]
    shutil.rmtree(generated)


def test_every_flow_source_the_code_fetches_or_names_is_in_the_manifest():
    manifest = C.load_manifest()["datasets"]
    for name, entry in scenes.DATASETS.items():
        listed = manifest[f"flow_{name}"]
        assert listed["manual"] == entry["manual"], name
        for url, _ in entry.get("files", []):
            assert url in {e.get("url") for e in manifest.values()}, url
    from hkt.tasks.cifar10.prepare import LAYOUTS

    for name, layout in LAYOUTS.items():  # the manifest states what torchvision's readers check
        assert (manifest[name]["url"], manifest[name]["md5"]) == (layout.url, layout.archive_md5)
    assert "lits_decathlon" in manifest
