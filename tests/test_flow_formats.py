"""The flow data layer: the real file formats round-trip exactly, torchvision's own dataset classes
read every generated layout unchanged, the generated ground truth is exact, and every broken file
or missing folder fails with a message that names it."""

import re
import tracemalloc
from pathlib import Path

import cv2
import numpy as np
import pytest
from torchvision import datasets
from torchvision.datasets._optical_flow import _read_16bits_png_with_flow_and_valid_mask, _read_flo
from torchvision.datasets.utils import _read_pfm
from torchvision.io import decode_png, read_file

from hkt.tasks.flow import formats, scenes

FLOW = np.random.default_rng(0).normal(0, 5, (2, 16, 24)).astype(np.float32)
SEED = 3
COUNTS = {"chairs": 4, "things": 2, "sintel": 3, "kitti": 3, "hd1k": 2}
# torchvision 0.29 deprecates decode_png, which its own KittiFlow and HD1K readers call: those
# readers are what these tests check, so the warning is expected here
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    scenes.generate_flow_datasets(root, seed=SEED, counts=COUNTS)
    return root


# ---------------------------------------------------------------------------------------------
# Formats: exact round trips, the same arrays as torchvision's readers
# ---------------------------------------------------------------------------------------------
def test_flo_round_trips_exactly_and_torchvision_reads_the_same_array(tmp_path):
    formats.write_flo(tmp_path / "a.flo", FLOW)
    np.testing.assert_array_equal(formats.read_flo(tmp_path / "a.flo"), FLOW)
    np.testing.assert_array_equal(_read_flo(str(tmp_path / "a.flo")), FLOW)
    assert (tmp_path / "a.flo").read_bytes()[:4] == b"PIEH"


def test_pfm_round_trips_exactly_stores_rows_bottom_up_and_torchvision_reads_the_same_array(tmp_path):
    formats.write_pfm(tmp_path / "a.pfm", FLOW)
    np.testing.assert_array_equal(formats.read_pfm(tmp_path / "a.pfm"), FLOW)
    np.testing.assert_array_equal(_read_pfm(str(tmp_path / "a.pfm")), FLOW)
    raw = (tmp_path / "a.pfm").read_bytes()
    assert raw.startswith(b"PF\n24 16\n-1.0\n")
    first_stored_pixel = np.frombuffer(raw[len(b"PF\n24 16\n-1.0\n") :][:12], "<f4")
    np.testing.assert_array_equal(first_stored_pixel, [FLOW[0, -1, 0], FLOW[1, -1, 0], 0])


def test_kitti_png_round_trips_to_a_128th_of_a_pixel_as_torchvision_reads_it(tmp_path):
    valid = np.random.default_rng(1).random(FLOW.shape[1:]) < 0.5
    formats.write_kitti_flow(tmp_path / "f.png", FLOW, valid)
    flow, got_valid = formats.read_kitti_flow(tmp_path / "f.png")
    assert (got_valid == valid).all()
    assert np.abs(flow - FLOW)[:, valid].max() <= 1 / 128
    tv_flow, tv_valid = _read_16bits_png_with_flow_and_valid_mask(str(tmp_path / "f.png"))
    np.testing.assert_array_equal(tv_flow, flow)
    np.testing.assert_array_equal(tv_valid, valid)


def test_kitti_png_holds_u_v_valid_in_file_order_and_zeros_where_invalid_as_the_devkit_writes(tmp_path):
    valid = np.zeros(FLOW.shape[1:], bool)
    valid[::2] = True
    on_grid = np.round(FLOW * 64) / 64
    formats.write_kitti_flow(tmp_path / "f.png", on_grid, valid)
    raw = decode_png(read_file(str(tmp_path / "f.png"))).numpy().astype(np.int64)  # (R, G, B) as stored
    np.testing.assert_array_equal(raw[:2, valid], on_grid[:, valid] * 64 + 2**15)
    np.testing.assert_array_equal(raw[2], valid)
    assert (raw[:, ~valid] == 0).all()


def test_a_kitti_prediction_written_without_a_mask_is_valid_everywhere(tmp_path):
    formats.write_kitti_flow(tmp_path / "000000_10.png", FLOW)
    assert formats.read_kitti_flow(tmp_path / "000000_10.png")[1].all()


def test_a_ppm_and_a_png_image_round_trip_exactly(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    for name in ("a.ppm", "a.png"):
        formats.write_image(tmp_path / name, rgb)
        np.testing.assert_array_equal(np.asarray(datasets.folder.default_loader(str(tmp_path / name))), rgb)
    assert (tmp_path / "a.ppm").read_bytes().startswith(b"P6")


# ---------------------------------------------------------------------------------------------
# Broken files: each error names the file and the problem
# ---------------------------------------------------------------------------------------------
def test_a_wrong_flo_magic_number_names_the_file(tmp_path):
    (tmp_path / "x.flo").write_bytes(np.array([1.0], "<f4").tobytes() + bytes(100))
    with pytest.raises(ValueError, match=r"x\.flo: magic number 1\.0 is not 202021\.25 \(not a \.flo file\?\)"):
        formats.read_flo(tmp_path / "x.flo")


def test_a_truncated_flo_names_the_file_and_the_missing_bytes(tmp_path):
    formats.write_flo(tmp_path / "t.flo", FLOW)
    (tmp_path / "t.flo").write_bytes((tmp_path / "t.flo").read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"t\.flo: truncated: expected 3072 bytes of flow for 16x24, found 3032"):
        formats.read_flo(tmp_path / "t.flo")


def test_a_truncated_pfm_names_the_file_and_the_missing_bytes(tmp_path):
    formats.write_pfm(tmp_path / "t.pfm", FLOW)
    (tmp_path / "t.pfm").write_bytes((tmp_path / "t.pfm").read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"t\.pfm: truncated: expected 4608 bytes of flow for 16x24, found 4568"):
        formats.read_pfm(tmp_path / "t.pfm")


@pytest.mark.parametrize(
    "header,problem",
    [
        (b"P6\n24 16\n255\n", "not PF or Pf"),
        (b"PF\n24x16\n-1.0\n", "is not 'width height'"),
        (b"PF\n24 16\nx\n", "scale"),
    ],
)
def test_a_pfm_with_a_bad_header_names_the_file(tmp_path, header, problem):
    (tmp_path / "h.pfm").write_bytes(header + bytes(4608))
    with pytest.raises(ValueError, match=r"h\.pfm: bad header: .*" + re.escape(problem)):
        formats.read_pfm(tmp_path / "h.pfm")


def test_a_flow_png_of_the_wrong_size_names_the_file_and_both_sizes(tmp_path):
    formats.write_kitti_flow(tmp_path / "f.png", FLOW)
    with pytest.raises(ValueError, match=r"f\.png: flow of size 16x24 does not match its images \(32x24\)"):
        formats.read_kitti_flow(tmp_path / "f.png", expected_hw=(32, 24))


def test_an_8_bit_png_is_refused_as_flow_naming_the_file(tmp_path):
    cv2.imwrite(str(tmp_path / "u8.png"), np.zeros((16, 24, 3), np.uint8))
    with pytest.raises(ValueError, match=r"u8\.png: a flow PNG must be 16-bit"):
        formats.read_kitti_flow(tmp_path / "u8.png")


def test_a_16_bit_png_without_a_valid_channel_is_refused_naming_the_file(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.png"), np.zeros((16, 24), np.uint16))
    with pytest.raises(ValueError, match=r"grey\.png: has no valid channel: 1 channel"):
        formats.read_kitti_flow(tmp_path / "grey.png")


@pytest.mark.parametrize("suffix", [".flo", ".pfm"])
def test_a_flow_header_declaring_a_billion_columns_is_named_without_allocating_them(tmp_path, suffix):
    path = tmp_path / f"huge{suffix}"
    if suffix == ".flo":
        path.write_bytes(np.array([formats.FLO_MAGIC], "<f4").tobytes() + np.array([10**9, 3], "<i4").tobytes())
    else:
        path.write_bytes(b"PF\n1000000000 3\n-1.0\n")
    path.write_bytes(path.read_bytes() + bytes(96))
    problem = (
        rf"huge\{suffix}: truncated: expected \d+ bytes of flow for 3x1000000000, found 96 \(or a corrupt header\)"
    )
    tracemalloc.start()
    try:
        for read in (formats.read_flow, formats.check_flow_header):
            with pytest.raises(ValueError, match=problem):
                read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # bytes: torchvision's reader would ask for 24 GB here


def test_a_flo_header_with_a_negative_size_names_the_file(tmp_path):
    (tmp_path / "n.flo").write_bytes(
        np.array([formats.FLO_MAGIC], "<f4").tobytes() + np.array([-4, 2], "<i4").tobytes()
    )
    with pytest.raises(ValueError, match=r"n\.flo: header gives an impossible size 2x-4"):
        formats.read_flo(tmp_path / "n.flo")


def test_a_flo_shorter_than_its_header_names_the_file(tmp_path):
    (tmp_path / "s.flo").write_bytes(b"PIEH")
    with pytest.raises(ValueError, match=r"s\.flo: truncated: 4 bytes, shorter than the 12-byte \.flo header"):
        formats.check_flow_header(tmp_path / "s.flo")


def test_a_pfm_of_zero_width_is_refused_naming_the_file(tmp_path):
    (tmp_path / "z.pfm").write_bytes(b"PF\n0 16\n-1.0\n")
    with pytest.raises(ValueError, match=r"z\.pfm: header gives an impossible size 16x0"):
        formats.read_pfm(tmp_path / "z.pfm")


def test_check_flow_header_gives_the_declared_size_of_a_good_flo_and_pfm(tmp_path):
    formats.write_flo(tmp_path / "a.flo", FLOW)
    formats.write_pfm(tmp_path / "a.pfm", FLOW)
    assert formats.check_flow_header(tmp_path / "a.flo") == formats.check_flow_header(tmp_path / "a.pfm") == (16, 24)
    formats.write_kitti_flow(tmp_path / "a.png", FLOW)
    assert formats.check_flow_header(tmp_path / "a.png") is None  # a PNG decoder checks its own header


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_truncated_or_corrupt_kitti_png_names_the_file(tmp_path, damage):
    formats.write_kitti_flow(tmp_path / "k.png", FLOW)
    raw = bytearray((tmp_path / "k.png").read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:
        raw[len(raw) // 2] ^= 0xFF  # inside the compressed pixels: a CRC and a deflate error
    (tmp_path / "k.png").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=rf"k\.png: a truncated or corrupt PNG \({len(raw)} bytes; OpenCV cannot"):
        formats.read_flow(tmp_path / "k.png")


def test_a_file_that_is_not_a_png_is_refused_as_kitti_flow_naming_it(tmp_path):
    formats.write_flo(tmp_path / "f.png", FLOW)  # a .flo under a PNG name
    with pytest.raises(ValueError, match=r"f\.png: not a PNG file"):
        formats.read_kitti_flow(tmp_path / "f.png")


@pytest.mark.parametrize("name", ["a_img1.ppm", "a_img1.png"])
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_truncated_or_corrupt_image_of_a_pair_names_the_file(tmp_path, name, damage):
    rgb = np.random.default_rng(4).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    first, second = tmp_path / name, tmp_path / name.replace("img1", "img2")
    formats.write_image(first, rgb)
    formats.write_image(second, rgb)
    raw = first.read_bytes()
    first.write_bytes(raw[: len(raw) // 2] if damage == "truncate" else b"garbage, not an image")
    problem = "a truncated or corrupt image" if damage == "truncate" else "not a readable image"
    with pytest.raises(ValueError, match=rf"{re.escape(str(first))}: {problem}"):
        formats.check_pair(first, second)


def test_an_image_pair_of_different_sizes_names_both_files_and_sizes(tmp_path):
    formats.write_image(tmp_path / "a_img1.ppm", np.zeros((64, 80, 3), np.uint8))
    formats.write_image(tmp_path / "a_img2.ppm", np.zeros((72, 80, 3), np.uint8))
    with pytest.raises(ValueError, match=r"different sizes: .*a_img1\.ppm is 64x80, .*a_img2\.ppm is 72x80"):
        formats.check_pair(tmp_path / "a_img1.ppm", tmp_path / "a_img2.ppm")
    assert formats.check_pair(tmp_path / "a_img1.ppm", tmp_path / "a_img1.ppm") == (64, 80)


# ---------------------------------------------------------------------------------------------
# Generated layouts through torchvision's dataset classes
# ---------------------------------------------------------------------------------------------
def _open(root, name, split="train", pass_name="clean", camera="left"):
    if name == "chairs":
        return datasets.FlyingChairs(root, split=split)
    if name == "things":
        return datasets.FlyingThings3D(root, split=split, pass_name=pass_name, camera=camera)
    if name == "sintel":
        return datasets.Sintel(root, split=split, pass_name=pass_name)
    return {"kitti": datasets.KittiFlow, "hd1k": datasets.HD1K}[name](root, split=split)


def _source(name: str, path1: str, path2: str):
    """(scene index, frame of image 1, frame of image 2, camera) that a pair's file names encode."""
    p1, p2 = Path(path1), Path(path2)
    if name == "chairs":
        return int(p1.name[:5]) - 1, 0, 1, "left"
    if name == "things":  # .../<A|B|C>/<NNNN>/<camera>/<FFFF>.png, frames from 0006
        letter, seq, camera = p1.parts[-4:-1]
        return 3 * int(seq) + "ABC".index(letter), int(p1.stem) - 6, int(p2.stem) - 6, camera
    if name == "sintel":  # scene_<K>/frame_<FFFF>.png, frames from 0001
        return int(p1.parent.name.split("_")[1]), int(p1.stem[-4:]) - 1, int(p2.stem[-4:]) - 1, "left"
    if name == "kitti":
        return int(p1.name[:6]), 0, 1, "left"
    return int(p1.name[:6]), int(p1.stem[-4:]), int(p2.stem[-4:]), "left"  # hd1k: SSSSSS_FFFF.png


@pytest.mark.parametrize("name", list(scenes.DATASETS))
def test_torchvision_reads_every_generated_dataset_as_the_scenes_that_were_written(generated, name):
    ds = _open(generated, name)
    assert len(ds) > 0
    for i in range(len(ds)):
        item = ds[i]
        index, t1, t2, camera = _source(name, *ds._image_list[i])
        scene = scenes.make_scene(SEED, name, index, scenes.DEFAULT_SIZE)
        np.testing.assert_array_equal(np.asarray(item[0]), scene.render(t1, camera))
        np.testing.assert_array_equal(np.asarray(item[1]), scene.render(t2, camera))
        flow = scene.flow(t1, t2 - t1, camera)[0]
        if name in ("kitti", "hd1k"):  # sparse ground truth, as the real data
            valid = item[3]
            assert 0.4 < valid.mean() < 0.6
            np.testing.assert_array_equal(item[2][:, valid], flow[:, valid])
        else:
            assert len(item) == 3
            np.testing.assert_array_equal(item[2], flow)
    scenes.check_layout(generated, name)


def test_torchvision_finds_every_split_pass_and_camera(generated):
    assert len(datasets.FlyingChairs(generated, split="val")) >= 1
    train = 2 * (scenes.FRAMES["things"] - 1) * COUNTS["things"]  # into_future and into_past pairs
    assert len(_open(generated, "things", pass_name="both", camera="both")) == 4 * train
    assert len(_open(generated, "things", split="test", pass_name="final", camera="right")) > 0
    assert len(_open(generated, "sintel", pass_name="final")) == COUNTS["sintel"] * (scenes.FRAMES["sintel"] - 1)
    assert len(_open(generated, "sintel", split="test")) > 0
    assert _open(generated, "kitti", split="test")[0][2] is None
    assert len(_open(generated, "hd1k", split="test")) == COUNTS["hd1k"]


def test_final_pass_has_the_clean_pass_flow_but_other_pixels(generated):
    clean, final = _open(generated, "sintel"), _open(generated, "sintel", pass_name="final")
    np.testing.assert_array_equal(clean[0][2], final[0][2])
    difference = np.abs(np.asarray(clean[0][0], float) - np.asarray(final[0][0], float))
    assert 3 < difference.mean() < 60


# ---------------------------------------------------------------------------------------------
# The ground truth is exact, and worth learning
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(scenes.DATASETS))
def test_true_flow_carries_frame_1_onto_frame_2_wherever_the_surface_stays_visible(generated, name):
    ds = _open(generated, name)
    for i in range(min(len(ds), 4)):
        index, t1, t2, camera = _source(name, *ds._image_list[i])
        matched = scenes.make_scene(SEED, name, index, scenes.DEFAULT_SIZE).flow(t1, t2 - t1, camera)[1]
        first, second, flow, *valid = ds[i]
        first, second = np.asarray(first), np.asarray(second)
        y, x = np.nonzero(matched & valid[0] if valid else matched)  # KITTI, HD1K: flow only where valid
        # flows are whole pixels: sampling frame 2 at p + flow(p) is nearest sampling, exactly
        landed = second[y + flow[1, y, x].astype(int), x + flow[0, y, x].astype(int)]
        np.testing.assert_array_equal(landed, first[y, x])
        assert 0.5 < matched.mean() < 1  # occlusions and pixels leaving the image exist, and are a minority


def test_sintel_occlusions_and_kitti_noc_mark_exactly_the_pixels_that_stay_visible(generated):
    scene = scenes.make_scene(SEED, "sintel", 1, scenes.DEFAULT_SIZE)
    occluded = cv2.imread(str(generated / "Sintel/training/occlusions/scene_1/frame_0002.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(occluded == 255, ~scene.flow(1)[1])
    matched = scenes.make_scene(SEED, "kitti", 0, scenes.DEFAULT_SIZE).flow(0)[1]
    _, occ = formats.read_kitti_flow(generated / "KittiFlow/training/flow_occ/000000_10.png")
    _, noc = formats.read_kitti_flow(generated / "KittiFlow/training/flow_noc/000000_10.png")
    np.testing.assert_array_equal(noc, occ & matched)
    assert (occ & ~matched).any()  # flow_occ keeps occluded pixels, as KITTI's does


@pytest.mark.parametrize("name", list(scenes.DATASETS))
def test_zero_flow_epe_of_the_generated_data_is_well_above_one_pixel(generated, name):
    ds = _open(generated, name)
    norms = [np.linalg.norm(item[2], axis=0)[item[3] if len(item) == 4 else slice(None)] for item in ds]
    assert np.concatenate([n.ravel() for n in norms]).mean() > 3.0


def test_generation_is_a_pure_function_of_the_seed_and_one_datasets_count_leaves_the_others(tmp_path):
    small = {name: scenes.MINIMUM_COUNTS[name] for name in scenes.DATASETS}
    for name, seed, counts in (("a", 5, small), ("b", 5, small), ("c", 6, small), ("d", 5, {**small, "chairs": 3})):
        scenes.generate_flow_datasets(tmp_path / name, seed=seed, size=(64, 80), counts=counts)
    frame = "Sintel/training/clean/scene_1/frame_0002.png"
    assert (tmp_path / "a" / frame).read_bytes() == (tmp_path / "b" / frame).read_bytes()
    assert (tmp_path / "a" / frame).read_bytes() == (tmp_path / "d" / frame).read_bytes()
    assert (tmp_path / "a" / frame).read_bytes() != (tmp_path / "c" / frame).read_bytes()


def test_regenerating_replaces_the_old_tree_but_real_data_is_never_overwritten(tmp_path):
    small = {name: scenes.MINIMUM_COUNTS[name] for name in scenes.DATASETS}
    scenes.generate_flow_datasets(tmp_path / "gen", seed=0, size=(64, 80), counts={**small, "chairs": 5})
    scenes.generate_flow_datasets(tmp_path / "gen", seed=0, size=(64, 80), counts=small)
    assert len(datasets.FlyingChairs(tmp_path / "gen")) + len(datasets.FlyingChairs(tmp_path / "gen", split="val")) == 2
    (tmp_path / "real" / "Sintel").mkdir(parents=True)
    with pytest.raises(FileExistsError, match=r"real holds Sintel but no GENERATED\.json"):
        scenes.generate_flow_datasets(tmp_path / "real", seed=0, size=(64, 80), counts=small)


def test_too_small_sizes_and_unknown_or_too_small_counts_are_refused(tmp_path):
    # real frames are not multiples of 8 (KITTI's 375x1242): the generator writes them, too small is refused
    with pytest.raises(ValueError, match=r"size must be \[H, W\] of at least"):
        scenes.generate_flow_datasets(tmp_path, seed=0, size=(8, 160))
    with pytest.raises(ValueError, match=r"unknown datasets \['sintel2'\]"):
        scenes.generate_flow_datasets(tmp_path, seed=0, counts={"sintel2": 3})
    with pytest.raises(ValueError, match=r"counts.sintel must be an integer >= 2"):  # a scene to hold out
        scenes.generate_flow_datasets(tmp_path, seed=0, counts={"sintel": 1})
    with pytest.raises(ValueError, match=r"HD1K reads 36 sequences at most"):
        scenes.generate_flow_datasets(tmp_path, seed=0, counts={"hd1k": 37})


# ---------------------------------------------------------------------------------------------
# Real datasets: what is missing, where it belongs, how to get it
# ---------------------------------------------------------------------------------------------
def test_a_missing_sintel_flow_folder_is_named_with_where_to_download_and_extract(tmp_path):
    for part in ("clean", "final"):
        (tmp_path / "Sintel" / "training" / part / "alley_1").mkdir(parents=True)
        (tmp_path / "Sintel" / "training" / part / "alley_1" / "frame_0001.png").touch()
    with pytest.raises(FileNotFoundError) as err:
        scenes.check_layout(tmp_path, "sintel")
    assert str(err.value) == (
        f"Sintel: {tmp_path}/Sintel/training/flow is missing: download MPI-Sintel-complete.zip from "
        f"http://sintel.is.tue.mpg.de (http://files.is.tue.mpg.de/sintel/MPI-Sintel-complete.zip) and extract it into "
        f"{tmp_path}/Sintel, so that {tmp_path}/Sintel/training/{{clean,final,flow}} exist"
    )


def test_an_empty_folder_is_named_with_the_files_it_should_hold(tmp_path):
    (tmp_path / "KittiFlow" / "training" / "image_2").mkdir(parents=True)
    with pytest.raises(
        FileNotFoundError,
        match=r"KITTI-2015: .*training/image_2 holds no \*_10\.png; .*flow_occ is missing: register at",
    ):
        scenes.check_layout(tmp_path, "kitti")
    with pytest.raises(FileNotFoundError, match=r"FlyingThings3D: .*frames_cleanpass/TRAIN is missing.*by hand"):
        scenes.check_layout(tmp_path, "things")


def test_a_chairs_split_file_with_more_entries_than_flows_is_named(generated, tmp_path):
    import shutil

    shutil.copytree(generated / "FlyingChairs", tmp_path / "FlyingChairs")
    (tmp_path / "FlyingChairs" / "FlyingChairs_train_val.txt").write_text("1\n" * 4 + "2\n" * 3)
    with pytest.raises(ValueError, match=r"FlyingChairs_train_val\.txt: 7 split entries for 4 flows"):
        scenes.check_layout(tmp_path, "chairs")


def test_a_chairs_split_file_that_does_not_match_the_flows_is_named(generated, tmp_path):
    import shutil

    shutil.copytree(generated / "FlyingChairs", tmp_path / "FlyingChairs")
    (tmp_path / "FlyingChairs" / "FlyingChairs_train_val.txt").write_text("1\n")
    with pytest.raises(ValueError, match=r"FlyingChairs_train_val\.txt: 1 split entries for 4 flows"):
        scenes.check_layout(tmp_path, "chairs")


def test_every_dataset_names_its_source_and_no_invented_checksum():
    for name, entry in scenes.DATASETS.items():
        assert entry["checksum"] is None and entry["manual"] in (True, False)
        assert "http" in entry["how"], name
        assert entry["manual"] or entry["files"], name  # what is not fetched by hand has its URLs
    assert not scenes.DATASETS["sintel"]["manual"] and scenes.DATASETS["sintel"]["url"].endswith(
        "MPI-Sintel-complete.zip"
    )
