"""The LiTS data layer: generated cases are valid CT-like NIfTI in LiTS's layout, every broken
input fails with its file's name, the cache is all-or-nothing per case, preprocessing resamples
and windows as documented, the split is by patient, and the Decathlon maps onto LiTS's names."""

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from hkt.io import file_digest
from hkt.tasks.lits import preprocess, volumes
from hkt.tasks.lits.preprocess import cache_cases, load_cached, preprocess_case, split_patients
from hkt.tasks.lits.volumes import check_layout, decathlon_to_lits, generate_cases, read_case

SEED = 5


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("lits")
    generate_cases(root, n_cases=3, seed=SEED)
    return root


def copy_of(generated, tmp_path):
    return shutil.copytree(generated, tmp_path / "copy")


def save(path, data, affine):
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_generated_cases_round_trip_through_nibabel_with_their_affine_and_spacing(generated):
    assert check_layout(generated) == [0, 1, 2]
    spacings = []
    for case in range(3):
        rebuilt = volumes.make_case(SEED, case)
        volume, segmentation = generated / f"volume-{case}.nii.gz", generated / f"segmentation-{case}.nii.gz"
        on_disk = nib.load(volume)
        assert on_disk.get_data_dtype() == np.int16 and nib.load(segmentation).get_data_dtype() == np.uint8
        image, labels, affine, spacing = read_case(volume, segmentation)
        assert image.dtype == np.float32 and labels.dtype == np.uint8 and image.shape == volumes.DEFAULT_SHAPE
        np.testing.assert_array_equal(image, rebuilt.image)
        np.testing.assert_array_equal(labels, rebuilt.labels)
        np.testing.assert_allclose(affine, rebuilt.affine, atol=1e-5)
        np.testing.assert_allclose(spacing, rebuilt.spacing, rtol=1e-6)
        np.testing.assert_allclose(np.abs(np.diag(affine)[:3]), spacing, rtol=1e-6)  # header zooms = affine
        assert affine[0, 0] < 0 and affine[1, 1] < 0 and affine[2, 2] > 0 and np.abs(affine[:3, 3]).min() > 100
        assert spacing[2] > 2 * spacing[0]  # anisotropic, as abdominal CT
        assert image.min() <= -900 and image.max() >= 300  # air and bone in HU
        spacings.append(spacing)
    assert len({tuple(s) for s in spacings}) == 3  # spacing varies between cases


def test_generation_is_deterministic_given_the_seed(generated, tmp_path):
    generate_cases(tmp_path / "same", n_cases=2, seed=SEED)
    generate_cases(tmp_path / "other", n_cases=2, seed=SEED + 1)
    for name in ("volume-1.nii.gz", "segmentation-1.nii.gz"):
        assert file_digest(tmp_path / "same" / name) == file_digest(generated / name)
        assert file_digest(tmp_path / "other" / name) != file_digest(generated / name)


def test_liver_is_present_but_not_the_whole_body_and_its_neighbours_are_unlabelled():
    tumour_cases = 0
    for case in range(6):
        c = volumes.make_case(SEED, case)
        body, liver = c.organs["body"], c.labels >= 1
        assert 0.03 < liver.sum() / body.sum() < 0.4
        assert (liver <= body).all()
        np.testing.assert_array_equal(liver, c.organs["liver"])
        np.testing.assert_array_equal(c.labels == 2, c.organs["lesions"])
        liver_hu = c.image[ndimage.binary_erosion(c.organs["liver"] & ~c.organs["lesions"])]
        low, high = np.percentile(liver_hu, [5, 95])
        for neighbour in ("spleen", "kidneys", "bowel"):
            mask = c.organs[neighbour]
            assert mask.sum() > 200, neighbour
            assert (c.labels[mask] == 0).all(), neighbour
            # intensity alone cannot tell them from the liver: most of their voxels (away from the
            # edges, which blur into fat) lie in the liver's central 90% HU range
            hu = c.image[ndimage.binary_erosion(mask)]
            assert ((hu >= low) & (hu <= high)).mean() > 0.5, neighbour
        if c.organs["lesions"].any():
            tumour_cases += 1
            assert c.image[c.organs["lesions"]].mean() < liver_hu.mean() - 20  # lesions are darker
    assert 0 < tumour_cases < 6


def test_generation_refuses_to_overwrite_a_folder_of_real_cases(tmp_path):
    (tmp_path / "volume-0.nii").write_bytes(b"real")
    with pytest.raises(FileExistsError, match="volume-0.nii"):
        generate_cases(tmp_path, n_cases=1, seed=0)


def test_regeneration_with_fewer_cases_removes_the_extra_ones(tmp_path):
    generate_cases(tmp_path, n_cases=3, seed=0, shape=(32, 32, 8))
    generate_cases(tmp_path, n_cases=2, seed=0, shape=(32, 32, 8))
    assert check_layout(tmp_path) == [0, 1]


# ---------------------------------------------------------------------------------------------
# Broken inputs
# ---------------------------------------------------------------------------------------------
def break_shape(volume, segmentation):
    labels = np.asarray(nib.load(segmentation).dataobj)
    save(segmentation, labels[:, :, :-1].copy(), nib.load(segmentation).affine)
    return segmentation, r"shape \(96, 96, 23\) differs"


def break_affine(volume, segmentation):
    img = nib.load(segmentation)
    affine = img.affine.copy()
    affine[2, 3] += 5.0
    save(segmentation, np.asarray(img.dataobj), affine)
    return segmentation, "affine differs"


def break_label(volume, segmentation):
    img = nib.load(segmentation)
    labels = np.asarray(img.dataobj).copy()
    labels[0, 0, 0] = 3
    save(segmentation, labels, img.affine)
    return segmentation, r"1 voxels hold labels outside \{0, 1, 2\}: 3"


def break_nan(volume, segmentation):
    img = nib.load(volume)
    image = np.asarray(img.dataobj).astype(np.float32)
    image[4, 5, 6] = np.nan
    save(volume, image, img.affine)
    return volume, r"1 voxels are NaN or inf \(the first at index \(4, 5, 6\)\)"


def break_truncated(volume, segmentation):
    size = os.path.getsize(volume)
    with open(volume, "r+b") as f:
        f.truncate(size // 2)
    return volume, "truncated"


def break_dimensions(volume, segmentation):
    img = nib.load(volume)
    save(volume, np.asarray(img.dataobj)[..., None], img.affine)
    return volume, r"expected 3-D data.*\(96, 96, 24, 1\)"


@pytest.mark.parametrize(
    "breaker", [break_shape, break_affine, break_label, break_nan, break_truncated, break_dimensions]
)
def test_a_broken_case_raises_value_error_naming_the_file_and_the_problem(generated, tmp_path, breaker):
    root = copy_of(generated, tmp_path)
    volume, segmentation = root / "volume-1.nii.gz", root / "segmentation-1.nii.gz"
    culprit, problem = breaker(volume, segmentation)
    with pytest.raises(ValueError, match=rf"{culprit.name}.*{problem}") as raised:
        read_case(volume, segmentation)
    assert str(culprit) in str(raised.value)


def test_a_truncated_uncompressed_nii_names_the_file(generated, tmp_path):
    image, labels, affine, _ = read_case(generated / "volume-0.nii.gz", generated / "segmentation-0.nii.gz")
    volume = save(tmp_path / "volume-0.nii", image.astype(np.int16), affine)
    segmentation = save(tmp_path / "segmentation-0.nii", labels, affine)
    with open(volume, "r+b") as f:
        f.truncate(os.path.getsize(volume) // 2)
    with pytest.raises(ValueError, match=r"volume-0\.nii: .*truncated"):
        read_case(volume, segmentation)


def test_a_truncated_or_corrupt_segmentation_names_the_segmentation_file(generated, tmp_path):
    root = copy_of(generated, tmp_path)
    volume, segmentation = root / "volume-2.nii.gz", root / "segmentation-2.nii.gz"
    segmentation.write_bytes(segmentation.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"segmentation-2\.nii\.gz: .*(truncated|damaged)"):
        read_case(volume, segmentation)
    segmentation.write_bytes(b"not a NIfTI at all")
    with pytest.raises(ValueError, match=r"segmentation-2\.nii\.gz: not a readable NIfTI file"):
        read_case(volume, segmentation)


# ---------------------------------------------------------------------------------------------
# Voxel spacing: a header preprocessing cannot trust is refused
# ---------------------------------------------------------------------------------------------
def rewrite_geometry(root, case, affine):
    """Case `case` of `root` with both headers given `affine` (voxels unchanged)."""
    volume, segmentation = root / f"volume-{case}.nii.gz", root / f"segmentation-{case}.nii.gz"
    for path in (volume, segmentation):
        img = nib.load(path)
        save(path, np.asarray(img.dataobj), affine)
    return volume, segmentation


@pytest.mark.parametrize("flips", [(1, 1, 1), (-1, -1, 1)])
def test_an_identity_affine_case_is_refused_naming_the_case_and_the_decathlon_copy(generated, tmp_path, flips):
    root = copy_of(generated, tmp_path)
    volume, segmentation = rewrite_geometry(root, 1, np.diag([*flips, 1.0]))  # as LiTS's volumes 28-47
    with pytest.raises(ValueError, match=r"volume-1\.nii\.gz: its affine is the identity") as raised:
        read_case(volume, segmentation)
    assert str(volume) in str(raised.value)
    assert "Decathlon" in str(raised.value) and "source: download" in str(raised.value)


@pytest.mark.parametrize(
    "spacing, bound",
    [
        ((5.0, 5.0, 2.5), r"x 5 mm is outside the in-plane bounds 0\.4-1\.2 mm; y 5 mm"),
        ((0.8, 0.8, 12.0), r"z 12 mm is outside the slice bounds 0\.4-8 mm"),
        ((0.1, 0.8, 2.5), r"x 0\.1 mm is outside the in-plane bounds 0\.4-1\.2 mm; LiTS reports"),
    ],
)
def test_an_implausible_spacing_is_refused_naming_the_case_and_the_bound(generated, tmp_path, spacing, bound):
    root = copy_of(generated, tmp_path)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [170.0, 180.0, -500.0]
    volume, segmentation = rewrite_geometry(root, 0, affine)
    with pytest.raises(ValueError, match=r"volume-0\.nii\.gz: voxel spacing .* cannot be a LiTS CT's \(" + bound):
        read_case(volume, segmentation)
    with pytest.raises(ValueError, match=r"volume-0\.nii\.gz: voxel spacing"):  # and preprocessing stops there
        cache_cases(root, tmp_path / "cache", [0], target_spacing=TARGET)


@pytest.mark.parametrize("spacing", [(0.55, 0.55, 0.45), (1.0, 1.0, 6.0), (0.7, 0.7, 5.0)])
def test_a_spacing_in_the_published_lits_range_passes(generated, tmp_path, spacing):
    root = copy_of(generated, tmp_path)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [170.0, 180.0, -500.0]
    _, _, _, read = read_case(*rewrite_geometry(root, 0, affine))
    np.testing.assert_allclose(read, spacing, rtol=1e-6)


def test_generated_spacings_of_every_config_lie_inside_the_bounds_and_an_implausible_one_is_refused(tmp_path):
    import yaml
    from conftest import REPO

    from hkt.tasks.lits import prepare

    embedded = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["tasks"]["lits"]["data"]["generated"]
    rehearsal = prepare.stand_in({}, str(tmp_path / "stand-in"))["generated"]
    for nominal in (volumes.DEFAULT_SPACING, embedded["spacing"], rehearsal["spacing"]):
        for case in range(8):
            spacing = volumes.make_case(0, case, shape=volumes.MIN_SHAPE, spacing=nominal).spacing
            assert volumes.IN_PLANE_MM[0] <= spacing[:2].min() and spacing[:2].max() <= volumes.IN_PLANE_MM[1]
            assert volumes.SLICE_MM[0] <= spacing[2] <= volumes.SLICE_MM[1]
    widest = r"\(x 1\.65 mm is outside the in-plane bounds 0\.4-1\.2 mm; y 1\.65 mm is outside .*\)$"
    with pytest.raises(ValueError, match=r"spacing \[1\.5, 1\.5, 2\.5\] mm: generated cases .*" + widest):
        generate_cases(tmp_path, n_cases=1, seed=0, shape=volumes.MIN_SHAPE, spacing=(1.5, 1.5, 2.5))
    assert not list(tmp_path.iterdir())  # refused before anything was written


# ---------------------------------------------------------------------------------------------
# Cache and preprocessing
# ---------------------------------------------------------------------------------------------
TARGET = (1.6, 1.6, 2.5)


def test_cache_cases_writes_reproducible_npz_files_that_the_manifest_describes(generated, tmp_path):
    manifest = cache_cases(generated, tmp_path / "a", [0, 2], target_spacing=TARGET)
    again = cache_cases(generated, tmp_path / "b", [0, 2], target_spacing=TARGET)
    assert sorted(manifest) == [0, 2]
    for case, entry in manifest.items():
        path = tmp_path / "a" / entry["file"]
        assert entry["sha256"] == file_digest(path) == again[case]["sha256"]
        image, labels = load_cached(path)
        assert list(image.shape) == entry["shape"] == list(labels.shape)
        assert entry["original_shape"] == list(volumes.DEFAULT_SHAPE)
        assert image.dtype == np.float32 and 0.0 <= image.min() and image.max() <= 1.0
        assert set(np.unique(labels)) <= {0, 1, 2} and (labels == 1).any()
        with np.load(path) as data:
            np.testing.assert_allclose(data["spacing"], TARGET, rtol=0.05)
            np.testing.assert_array_equal(data["original_shape"], volumes.DEFAULT_SHAPE)
            assert data["affine"].shape == (4, 4)


def test_cache_cases_leaves_no_npz_for_a_bad_case(generated, tmp_path):
    root = copy_of(generated, tmp_path)
    dest = tmp_path / "cache"
    cache_cases(root, dest, [0, 1, 2], target_spacing=TARGET)  # an earlier good run
    break_truncated(root / "volume-1.nii.gz", None)
    (dest / "case-0.npz").unlink()
    with pytest.raises(ValueError, match=r"volume-1\.nii\.gz"):
        cache_cases(root, dest, [0, 1, 2], target_spacing=TARGET)
    assert (dest / "case-0.npz").exists()  # complete before the failure: kept
    assert not (dest / "case-1.npz").exists()  # the bad case: neither a partial nor the stale file
    assert sorted(p.name for p in dest.iterdir()) == ["case-0.npz", "case-2.npz"]  # no temporary left either


def test_cache_cases_names_a_case_missing_from_the_source(generated, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no case \[7\] \(it holds \[0, 1, 2\]\)"):
        cache_cases(generated, tmp_path / "cache", [0, 7], target_spacing=TARGET)


def test_a_split_naming_a_case_missing_from_the_cache_names_the_file_and_the_fix(generated, tmp_path):
    from hkt.tasks.lits.data import SPLIT_FILE, DataConfig, load_cases

    cache = tmp_path / "cache"
    cache_cases(generated, cache, [0, 1, 2], target_spacing=TARGET)
    split = {"train": [0], "val": [1], "test": [2]}
    (cache / SPLIT_FILE).write_text(json.dumps({"split": split}))
    (cache / "case-1.npz").unlink()
    data = DataConfig(root=str(generated), cache=str(cache), source="manual")
    assert [case for case, _, _ in load_cases(data, "train")] == [0]
    with pytest.raises(FileNotFoundError, match=r"case-1\.npz: no such cached case.*rerun the data job"):
        load_cases(data, "val")


def test_a_truncated_cached_case_names_the_file(generated, tmp_path):
    cache_cases(generated, tmp_path, [0], target_spacing=TARGET)
    path = tmp_path / "case-0.npz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match=r"case-0\.npz: cannot read the cached case \(damaged or truncated\?\)"):
        load_cached(path)


def test_preprocessing_resamples_to_the_target_spacing():
    rng = np.random.default_rng(0)
    image = rng.uniform(-1000, 1000, (40, 30, 10)).astype(np.float32)
    labels = rng.integers(0, 3, (40, 30, 10)).astype(np.uint8)
    out, out_labels = preprocess_case(image, labels, (0.8, 0.8, 2.5), target_spacing=(1.6, 1.2, 1.25))
    assert out.shape == out_labels.shape == (20, 20, 20)
    assert out.dtype == np.float32 and out_labels.dtype == np.uint8
    assert set(np.unique(out_labels)) <= {0, 1, 2}  # nearest neighbour: no label is invented
    np.testing.assert_allclose(preprocess.resampled_spacing(image.shape, (0.8, 0.8, 2.5), out.shape), (1.6, 1.2, 1.25))
    same, same_labels = preprocess_case(image, labels, (1, 1, 1), target_spacing=(1, 1, 1))
    assert same.shape == image.shape
    np.testing.assert_array_equal(same_labels, labels)


def test_preprocessing_windows_hu_into_the_unit_interval():
    hu = np.array([-1000, -200, 25, 250, 1000], np.float32).reshape(5, 1, 1) * np.ones((1, 2, 2), np.float32)
    out, _ = preprocess_case(hu, np.zeros(hu.shape, np.uint8), (1, 1, 1), target_spacing=(1, 1, 1))
    np.testing.assert_allclose(out[:, 0, 0], [0.0, 0.0, 0.5, 1.0, 1.0])
    out, _ = preprocess_case(
        hu, np.zeros(hu.shape, np.uint8), (1, 1, 1), target_spacing=(2, 1, 1), hu_window=(-100, 100)
    )
    assert 0.0 <= out.min() and out.max() <= 1.0


# ---------------------------------------------------------------------------------------------
# Split and layout
# ---------------------------------------------------------------------------------------------
def test_split_patients_is_disjoint_deterministic_and_covers_all_cases():
    ids = list(range(131))
    split = split_patients(ids, val_fraction=0.1, test_fraction=0.2, seed=1)
    parts = [split["train"], split["val"], split["test"]]
    assert sum(len(p) for p in parts) == 131 and set().union(*map(set, parts)) == set(ids)
    assert all(p == sorted(p) and p for p in parts)
    assert (len(split["val"]), len(split["test"])) == (13, 26)
    assert split == split_patients(ids[::-1], val_fraction=0.1, test_fraction=0.2, seed=1)  # order-free
    assert split != split_patients(ids, val_fraction=0.1, test_fraction=0.2, seed=2)
    small = split_patients([4, 7, 9], val_fraction=0.01, test_fraction=0.01, seed=0)
    assert all(len(small[k]) == 1 for k in ("train", "val", "test"))


@pytest.mark.parametrize("n, val, test", [(2, 0.2, 0.2), (10, 0.5, 0.5), (10, 0.0, 0.2)])
def test_split_patients_names_the_fractions_when_a_part_would_be_empty(n, val, test):
    with pytest.raises(ValueError, match=rf"val_fraction={val} and test_fraction={test} of {n} cases"):
        split_patients(range(n), val_fraction=val, test_fraction=test, seed=0)


def fake_decathlon(root, cases, *, unlabelled=()):
    task = root / "Task03_Liver"
    for folder in ("imagesTr", "labelsTr", "imagesTs"):
        (task / folder).mkdir(parents=True)
    for case in cases:
        (task / "imagesTr" / f"liver_{case}.nii.gz").write_bytes(f"image {case}".encode())
        (task / "imagesTr" / f"._liver_{case}.nii.gz").write_bytes(b"macOS resource fork")
        if case not in unlabelled:
            (task / "labelsTr" / f"liver_{case}.nii.gz").write_bytes(f"label {case}".encode())
            (task / "labelsTr" / f"._liver_{case}.nii.gz").write_bytes(b"macOS resource fork")
    (task / "imagesTs" / "liver_200.nii.gz").write_bytes(b"test image, no label")
    return root


def test_decathlon_to_lits_maps_the_training_cases_and_check_layout_names_a_missing_segmentation(tmp_path):
    src = fake_decathlon(tmp_path / "msd", [0, 1, 10])
    dest = tmp_path / "lits"
    assert decathlon_to_lits(src, dest) == [0, 1, 10]
    assert (dest / "volume-10.nii.gz").read_bytes() == b"image 10"
    assert (dest / "segmentation-10.nii.gz").read_bytes() == b"label 10"
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        f"{kind}-{case}.nii.gz" for kind in ("volume", "segmentation") for case in (0, 1, 10)
    )
    assert decathlon_to_lits(src / "Task03_Liver", dest) == [0, 1, 10]  # again, from the task folder: idempotent
    (dest / "segmentation-1.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"volume-1\.nii\.gz has no segmentation-1\.nii\[\.gz\]"):
        check_layout(dest)


def test_decathlon_to_lits_names_an_image_without_its_label(tmp_path):
    src = fake_decathlon(tmp_path / "msd", [0, 1], unlabelled=[1])
    with pytest.raises(FileNotFoundError, match=r"liver_1\.nii\.gz has no labelsTr/liver_1\.nii\.gz"):
        decathlon_to_lits(src, tmp_path / "lits")
    assert not (tmp_path / "lits").exists()


def test_check_layout_of_an_empty_folder_states_the_expected_naming(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no LiTS case: expected volume-N\.nii\[\.gz\] and segmentation-N"):
        check_layout(tmp_path)
    (tmp_path / "segmentation-3.nii").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"segmentation-3\.nii has no volume-3\.nii\[\.gz\]"):
        check_layout(tmp_path)
