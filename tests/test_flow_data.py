"""The flow data layer: broken files inside a dataset fail with their names, the download path
fetches, verifies, extracts and arranges, and datasets that need registration say where to go."""

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from archives import flow_site, place_by_hand

from hkt import pipeline
from hkt.tasks import Download
from hkt.tasks.flow import prepare, scenes
from hkt.tasks.flow.data import DataConfig, load_item, open_dataset


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    scenes.generate_flow_datasets(
        root, seed=3, size=(64, 80), counts={"chairs": 6, "things": 3, "sintel": 2, "kitti": 3, "hd1k": 2}
    )
    return root


def test_a_broken_flow_file_in_a_dataset_names_the_file(generated, tmp_path):
    root = shutil.copytree(generated, tmp_path / "copy")
    flo = open_dataset(root, "sintel")._flow_list[0]
    with open(flo, "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match=r"frame_0001\.flo: truncated"):
        load_item(open_dataset(root, "sintel"), 0)


@pytest.mark.parametrize("name", ["chairs", "things"])
def test_a_flow_header_declaring_absurd_sizes_in_a_dataset_is_named_before_torchvision_allocates(
    generated, tmp_path, name
):
    import tracemalloc

    root = shutil.copytree(generated, tmp_path / "copy")
    flow_file = Path(open_dataset(root, name)._flow_list[0])
    raw = flow_file.read_bytes()
    if flow_file.suffix == ".flo":  # width 50000, height 50000: torchvision's _read_flo would ask for 20 GB
        flow_file.write_bytes(raw[:4] + np.array([50_000, 50_000], "<i4").tobytes() + raw[12:])
    else:
        flow_file.write_bytes(b"PF\n50000 50000\n-1.0\n" + raw[-1000:])
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=rf"{flow_file.name}: truncated: .* for 50000x50000, .*corrupt header"):
            load_item(open_dataset(root, name), 0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100_000_000  # bytes: a few decoded frames, not the declared flow


def test_a_truncated_image_of_a_pair_in_a_dataset_names_that_image(generated, tmp_path):
    root = shutil.copytree(generated, tmp_path / "copy")
    first, second = open_dataset(root, "sintel")._image_list[0]
    Path(second).write_bytes(Path(second).read_bytes()[:500])
    with pytest.raises(
        ValueError, match=rf"^{re.escape(second)}: a truncated or corrupt image \(64x80 in its header\)"
    ):
        load_item(open_dataset(root, "sintel"), 0)


def test_an_image_pair_of_different_sizes_names_both_files(generated, tmp_path):
    import cv2

    root = shutil.copytree(generated, tmp_path / "copy")
    first, second = open_dataset(root, "chairs")._image_list[0]
    cv2.imwrite(second, np.zeros((72, 80, 3), np.uint8))
    with pytest.raises(ValueError, match=r"_img1\.ppm.*64x80.*_img2\.ppm.*72x80"):
        load_item(open_dataset(root, "chairs"), 0)


def test_sintel_items_come_in_a_fixed_order(generated):
    ds = open_dataset(generated, "sintel")
    assert ds._image_list == sorted(ds._image_list) and len(ds._flow_list) == len(ds._image_list)


def test_a_mixture_draws_each_pass_of_each_dataset_by_multiplier_times_length(generated):
    """RAFT's `100*sintel_clean + 100*sintel_final + 200*kitti + things` (core/datasets.py): repeat
    counts, so a source's share is its multiplier times its length over the total."""
    import torch

    from hkt.tasks.flow.data import Pairs

    data = DataConfig(
        root=str(generated),
        source="download",
        dataset="mixture",
        mixture={"sintel": 100, "kitti": 200, "things": 1},
        val_scenes=("scene_0",),
    )
    pairs = Pairs(data)
    sizes = [len(s) for s in pairs.sources]  # sintel clean, sintel final (scene_1 only), kitti, things clean
    weights = torch.tensor([100 * sizes[0], 100 * sizes[1], 200 * sizes[2], sizes[3]], dtype=torch.float64)
    torch.testing.assert_close(torch.tensor(pairs.weights, dtype=torch.float64), weights / weights.sum())
    with pytest.raises(ValueError, match="multipliers"):
        DataConfig(root="x", dataset="mixture", mixture={"sintel": 0}, val_scenes=("a",), source="download")


def test_a_download_data_job_extracts_archives_laid_out_as_the_real_ones_and_checks_the_rest(generated, tmp_path):
    root = tmp_path / "flow"
    data = DataConfig(root=str(root), source="download", val_scenes=("scene_0",))
    site = {Path(url).name: path for url, path in flow_site(generated, tmp_path / "site").items()}
    wanted = [d for part in ("chairs", "sintel") for d in prepare.downloads(data, part)]
    assert sorted(Path(d.path).name for d in wanted) == sorted(site)  # the files of the network it reads
    for d in wanted:  # the download rules' work, from local copies of the real layouts
        pipeline.fetch(Download(site[Path(d.path).name].as_uri(), d.path, {}), log=lambda m: None)
    place_by_hand(generated, root)  # KITTI, FlyingThings3D, HD1K: by hand, as the error message asks
    record = prepare.prepare_data(data, allow_network=False, log=lambda m: None)
    assert record["sintel"]["pairs"] == len(open_dataset(generated, "sintel"))
    assert record["chairs"]["pairs"] == len(open_dataset(generated, "chairs"))
    assert set(record["sintel"]["archives_sha256"]) == {"MPI-Sintel-complete.zip"}
    # the real archives' other members are extracted beside what torchvision reads, and change nothing
    assert (root / "Sintel" / "bundler").is_dir() and (root / "Sintel" / "README.txt").is_file()
    assert (root / "Sintel" / "training" / "occlusions").is_dir() and (root / "FlyingChairs" / "data").is_dir()
    shutil.rmtree(root / "Sintel")
    archive = root / "archives" / "MPI-Sintel-complete.zip"
    with open(archive, "ab") as f:  # the archive changes after its first digest was recorded
        f.write(b"tampered")
    with pytest.raises(ValueError, match=r"MPI-Sintel-complete\.zip: .*changed since its digest was first recorded"):
        prepare.prepare_data(data, log=lambda m: None)
    assert not (root / "Sintel").exists()


def test_a_dataset_that_needs_registration_is_never_fetched_and_a_missing_archive_says_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"FlyingThings3D"):
        prepare._fetch(tmp_path, "things", log=lambda m: None)
    with pytest.raises(FileNotFoundError, match=r"archives/FlyingChairs\.zip: missing .* place FlyingChairs\.zip at"):
        prepare.prepare_data(DataConfig(root=str(tmp_path), source="download", val_scenes=("x",)), allow_network=False)
    assert not (tmp_path / "archives").exists()


def test_a_manual_block_reads_no_archive_and_checks_every_layout(generated, tmp_path):
    data = DataConfig(root=str(tmp_path / "flow"), source="manual", val_scenes=("scene_0",))
    assert all(prepare.downloads(data, part) == [] for part in ("chairs", "sintel", "kitti"))
    with pytest.raises(FileNotFoundError, match=r"FlyingChairs"):
        prepare.prepare_data(data, part="chairs")
    place_by_hand(generated, tmp_path / "flow", datasets=("chairs", "sintel", "kitti", "things", "hd1k"))
    record = prepare.prepare_data(data, part="sintel")
    assert (
        record["sintel"]["pairs"] == len(open_dataset(generated, "sintel"))
        and not (tmp_path / "flow" / "archives").exists()
    )
