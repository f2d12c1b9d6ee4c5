"""Flow file formats: exact round trips, torchvision reading the generated layouts, and broken
files failing with their name and the problem."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hkt.tasks.flow import formats, scenes
from hkt.tasks.flow.data import DATASETS, load_item, open_dataset

FLOW = np.random.default_rng(0).normal(0, 5, (2, 16, 24)).astype(np.float32)


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    scenes.generate_flow_datasets(
        root, seed=3, size=(64, 80), counts={"chairs": 6, "things": 3, "sintel": 2, "kitti": 3, "hd1k": 2}
    )
    return root


def test_flo_and_pfm_round_trip_exactly(tmp_path):
    formats.write_flo(tmp_path / "a.flo", FLOW)
    formats.write_pfm(tmp_path / "a.pfm", FLOW)
    np.testing.assert_array_equal(formats.read_flo(tmp_path / "a.flo"), FLOW)
    np.testing.assert_array_equal(formats.read_pfm(tmp_path / "a.pfm"), FLOW)


def test_kitti_png_round_trips_to_a_64th_of_a_pixel_with_its_valid_mask(tmp_path):
    valid = np.random.default_rng(1).random(FLOW.shape[1:]) < 0.5
    formats.write_kitti_flow(tmp_path / "f.png", FLOW, valid)
    flow, got = formats.read_kitti_flow(tmp_path / "f.png")
    assert np.abs(flow - FLOW).max() <= 1 / 128 + 1e-6 and (got == valid).all()


def test_a_wrong_flo_magic_number_names_the_file(tmp_path):
    (tmp_path / "x.flo").write_bytes(b"ABCD" + bytes(100))
    with pytest.raises(ValueError, match=r"x\.flo: magic number .* is not 202021\.25"):
        formats.read_flo(tmp_path / "x.flo")


@pytest.mark.parametrize(
    "name,writer,reader",
    [("t.flo", formats.write_flo, formats.read_flo), ("t.pfm", formats.write_pfm, formats.read_pfm)],
)
def test_a_truncated_flow_file_names_the_file_and_the_missing_bytes(tmp_path, name, writer, reader):
    writer(tmp_path / name, FLOW)
    (tmp_path / name).write_bytes((tmp_path / name).read_bytes()[:-40])
    with pytest.raises(ValueError, match=re.escape(name) + r": truncated or padded: expected \d+ bytes"):
        reader(tmp_path / name)


def test_a_flow_png_of_the_wrong_size_or_without_the_valid_channel_is_refused(tmp_path):
    import cv2

    formats.write_kitti_flow(tmp_path / "f.png", FLOW, np.ones(FLOW.shape[1:], bool))
    with pytest.raises(ValueError, match=r"f\.png: flow of size 16x24 does not match its images \(32x24\)"):
        formats.read_kitti_flow(tmp_path / "f.png", expected_hw=(32, 24))
    cv2.imwrite(str(tmp_path / "two.png"), np.zeros((16, 24, 2), np.uint16)[..., 0])
    with pytest.raises(ValueError, match=r"two\.png: has no valid channel"):
        formats.read_kitti_flow(tmp_path / "two.png")
    cv2.imwrite(str(tmp_path / "u8.png"), np.zeros((16, 24, 3), np.uint8))
    with pytest.raises(ValueError, match=r"u8\.png: a flow PNG must be 16-bit"):
        formats.read_kitti_flow(tmp_path / "u8.png")


@pytest.mark.parametrize("name", DATASETS)
def test_torchvision_reads_every_generated_dataset_unchanged(generated, name):
    ds = open_dataset(generated, name)
    assert len(ds) > 0
    a, b, flow, valid = load_item(ds, 0)
    assert a.shape == b.shape == (3, 64, 80) and flow.shape == (2, 64, 80)
    assert -1 <= a.min() and a.max() <= 1
    if name in ("kitti", "hd1k"):  # sparse ground truth, as the real data
        assert 0.2 < valid.float().mean() < 0.8
    scenes.check_layout(generated, name)


def test_generated_flow_is_exact_and_worth_learning(generated):
    ds = open_dataset(generated, "sintel")
    zero, warp = [], []
    for i in range(len(ds)):
        a, b, flow, _ = load_item(ds, i)
        h, w = a.shape[1:]
        yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
        grid = torch.stack([(xx + flow[0] + 0.5) / w * 2 - 1, (yy + flow[1] + 0.5) / h * 2 - 1], -1)
        back = F.grid_sample(b[None], grid[None], mode="nearest", align_corners=False)[0]
        inside = (grid.abs() < 1).all(-1)
        same = (back - a).abs().amax(0) < 1e-6
        warp.append(float(same[inside].float().mean()))
        zero.append(float(flow.norm(dim=0).mean()))
    assert min(warp) > 0.8  # the rest are occlusions: surfaces hidden in frame 2
    assert np.mean(zero) > 2.0  # the zero-flow EPE a learner has to beat


def test_a_broken_flow_file_in_a_dataset_names_the_file(generated, tmp_path):
    import shutil

    root = shutil.copytree(generated, tmp_path / "copy")
    ds = open_dataset(root, "sintel")
    flo = ds._flow_list[0]
    with open(flo, "r+b") as f:
        f.truncate(100)
    with pytest.raises(ValueError, match=r"frame_0001\.flo: truncated or padded"):
        load_item(open_dataset(root, "sintel"), 0)


def test_an_image_pair_of_different_sizes_names_both_files(generated, tmp_path):
    import shutil

    import cv2

    root = shutil.copytree(generated, tmp_path / "copy")
    ds = open_dataset(root, "chairs")
    second = ds._image_list[0][1]
    cv2.imwrite(second, np.zeros((72, 80, 3), np.uint8))
    with pytest.raises(
        ValueError, match=r"image pair of different sizes: .*_img1\.ppm is 64x80, .*_img2\.ppm is 72x80"
    ):
        load_item(open_dataset(root, "chairs"), 0)


def test_a_dataset_root_in_the_wrong_layout_says_what_is_missing_and_where(tmp_path):
    (tmp_path / "Sintel" / "training" / "clean").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"sintel: .*Sintel/training/final, .*Sintel/training/flow missing"):
        scenes.check_layout(tmp_path, "sintel")
    with pytest.raises(FileNotFoundError, match=r"kitti: .*KittiFlow/training/image_2.* registration required"):
        scenes.check_layout(tmp_path, "kitti")
