"""The flow data layer: broken files inside a dataset fail with their names, the download path
fetches, verifies, extracts and arranges, and datasets that need registration say where to go."""

import shutil
import zipfile

import numpy as np
import pytest

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


def _zip(folder, archive, prefix=""):
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                z.write(path, prefix + str(path.relative_to(folder)))
    return archive


def test_download_fetches_extracts_and_arranges_sintel_and_chairs_and_checks_the_rest(generated, tmp_path, monkeypatch):
    sintel = _zip(generated / "Sintel", tmp_path / "MPI-Sintel-complete.zip")
    chairs = _zip(generated / "FlyingChairs" / "data", tmp_path / "FlyingChairs.zip", "FlyingChairs_release/data/")
    split = shutil.copy(generated / "FlyingChairs" / "FlyingChairs_train_val.txt", tmp_path / "split.txt")
    monkeypatch.setitem(scenes.DATASETS["sintel"], "files", [(sintel.as_uri(), "extract")])
    monkeypatch.setitem(
        scenes.DATASETS["chairs"],
        "files",
        [(chairs.as_uri(), "extract"), (split.as_uri(), "FlyingChairs/FlyingChairs_train_val.txt")],
    )
    root = tmp_path / "flow"
    for manual in ("FlyingThings3D", "KittiFlow", "hd1k"):  # placed by hand, as the error message asks
        shutil.copytree(generated / manual, root / manual)
    data = DataConfig(root=str(root), source="download", val_scenes=("scene_0",))
    record = prepare.prepare_data(data)
    assert record["sintel"]["pairs"] == len(open_dataset(generated, "sintel"))
    assert record["chairs"]["pairs"] == len(open_dataset(generated, "chairs"))
    assert (root / "archives" / "MPI-Sintel-complete.zip.sha256").exists()  # no published sum: recorded
    shutil.rmtree(root / "Sintel")
    with open(sintel, "ab") as f:  # the archive changes after its first download
        f.write(b"tampered")
    shutil.copy(sintel, root / "archives" / "MPI-Sintel-complete.zip")
    with pytest.raises(ValueError, match=r"MPI-Sintel-complete\.zip: sha256 .* does not match"):
        prepare.prepare_data(data)


def test_a_dataset_that_needs_registration_is_never_fetched_and_offline_nothing_is(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"FlyingThings3D"):
        prepare._fetch(tmp_path, "things", allow_network=True)
    with pytest.raises(FileNotFoundError, match=r"FlyingChairs"):
        prepare.prepare_data(DataConfig(root=str(tmp_path), source="download", val_scenes=("x",)), allow_network=False)
    assert not (tmp_path / "archives").exists()
