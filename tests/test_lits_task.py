"""The LiTS task through its public interfaces: preparation and the patient split, patches,
the sliding window, the loss, HKT on the two 3-D networks with a frozen parent."""

import dataclasses
import io
import json

import numpy as np
import pytest
import torch

from hkt.methods import load_method, make_params
from hkt.tasks.lits import TASK, volumes
from hkt.tasks.lits import data as D
from hkt.tasks.lits import prepare as P
from hkt.tasks.lits.metrics import predict_labels, segmentation_loss, sliding_window


def _config(tmp_path, **over) -> D.DataConfig:
    fields = {
        "root": str(tmp_path / "lits"),
        "cache": str(tmp_path / "cache"),
        "generated": {"seed": 3, "n_cases": 6, "shape": [64, 64, 12], "spacing": [0.8, 0.8, 2.5]},
        "target_spacing": [1.6, 1.6, 2.5],
        "patch": [6, 32, 32],
        **over,
    }
    return D.DataConfig(**fields)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    data = _config(tmp_path_factory.mktemp("lits"))
    record = TASK.prepare_data(data, allow_network=False)
    return data, record


def test_prepare_splits_by_patient_with_no_case_in_two_parts(prepared):
    data, record = prepared
    split = record["split"]
    parts = [set(split[p]) for p in ("train", "val", "test")]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set().union(*parts) == set(range(6))
    assert json.loads((D.Path(data.cache) / D.SPLIT_FILE).read_text())["split"] == split
    for part in ("train", "val", "test"):
        assert [c for c, _, _ in D.load_cases(data, part)] == split[part]


def test_cached_cases_are_resampled_slices_first_and_windowed(prepared):
    data, _ = prepared
    (case, image, labels), *_ = D.load_cases(data, "train")
    spacing = np.asarray(volumes.nib.load(D.Path(data.root) / f"volume-{case}.nii.gz").header.get_zooms())
    expected = np.round(np.array([12, 64, 64]) * spacing[[2, 0, 1]] / [2.5, 1.6, 1.6])  # (Z, X, Y) at 1.6/1.6/2.5 mm
    assert image.shape == labels.shape == tuple(expected.astype(int))
    assert 0 <= image.min() and image.max() <= 1 and set(np.unique(labels)) <= {0, 1, 2}


def test_a_bad_case_fails_naming_its_file_and_marks_nothing_complete(tmp_path):
    data = _config(tmp_path)
    volumes.generate_cases(data.root, n_cases=4, shape=(64, 64, 12), spacing=(0.8, 0.8, 2.5), seed=1)
    seg = D.Path(data.root) / "segmentation-2.nii.gz"
    img = volumes.nib.load(seg)
    labels = np.asarray(img.dataobj).copy()
    labels[0, 0, 0] = 7
    volumes.write_nifti(seg, labels.astype(np.uint8), img.affine)
    manual = dataclasses.replace(data, source="manual", generated=None)
    with pytest.raises(ValueError, match=r"segmentation-2\.nii\.gz.*7"):
        TASK.prepare_data(manual, allow_network=False)
    assert not (D.Path(data.cache) / D.SPLIT_FILE).exists()
    with pytest.raises(FileNotFoundError, match="prepare_data"):
        D.split_of(manual)


def test_a_missing_dataset_says_where_the_files_belong(tmp_path):
    manual = dataclasses.replace(_config(tmp_path), source="manual", generated=None)
    with pytest.raises(FileNotFoundError, match=r"volume-N\.nii.*codalab"):
        TASK.prepare_data(manual, allow_network=False)


@pytest.mark.parametrize("body", ['{"split": ', '{"cases": {}}', "[]"])
def test_a_truncated_or_foreign_split_record_names_the_file(tmp_path, body):
    data = _config(tmp_path)
    D.Path(data.cache).mkdir(parents=True)
    (D.Path(data.cache) / D.SPLIT_FILE).write_text(body)
    with pytest.raises(ValueError, match=rf"{D.SPLIT_FILE}: not a split record"):
        D.split_of(data)


def test_patches_are_a_pure_function_of_seed_and_step_and_favour_the_liver(prepared):
    data, _ = prepared
    cases = D.load_cases(data, "train")
    make = lambda seed: D.Batches(cases, patch=data.patch, batch_size=8, seed=seed, liver_fraction=1.0)  # noqa: E731
    x, y = make(0)(5)
    x2, y2 = make(0)(5)
    assert x.shape == (8, 1, 6, 32, 32) and y.shape == (8, 6, 32, 32) and y.dtype == torch.int64
    assert torch.equal(x, x2) and torch.equal(y, y2) and not torch.equal(x, make(1)(5)[0])
    assert all((patch > 0).any() for patch in y)  # centred on a liver voxel, every one


def test_the_sliding_window_covers_a_volume_that_is_no_multiple_of_the_window():
    volume = torch.rand(11, 40, 72)

    def model(x):  # per-voxel logits: averaging overlapping windows must give them back exactly
        return torch.cat([x, 1 - x, 0 * x], dim=1)

    logits = sliding_window(model, volume, (6, 32, 32), overlap=0.5)
    assert logits.shape == (3, 11, 40, 72)
    torch.testing.assert_close(logits[0], volume)
    assert predict_labels(model, volume, (6, 32, 32)).shape == (11, 40, 72)


def test_the_segmentation_loss_is_small_for_confident_right_answers_and_large_otherwise():
    target = torch.randint(0, 3, (2, 4, 8, 8))
    right = torch.nn.functional.one_hot(target, 3).movedim(-1, 1).float() * 20
    wrong = right.roll(1, dims=1)
    assert segmentation_loss(right, target) < 0.01 < 1 < segmentation_loss(wrong, target)


@pytest.mark.parametrize("stages", [2, 3])
def test_hkt_trains_the_child_through_the_frozen_parent(stages):
    module = load_method("hkt.hereditary")
    params = make_params(module, {"stages": stages, "inherit_loss": "segmentation"})
    torch.manual_seed(0)
    child, parent = TASK.build_model("pocketnet_smoke"), TASK.build_model("hdenseunet_smoke")
    frozen = {k: v.clone() for k, v in parent.state_dict().items()}
    before = {k: v.clone() for k, v in child.state_dict().items()}
    x, y = torch.rand(2, 1, 4, 32, 32), torch.randint(0, 3, (2, 4, 32, 32))
    objective = module.build(child, parent, TASK, params, x)
    optimizer = torch.optim.SGD([p for p in objective.parameters() if p.requires_grad], lr=0.1)
    loss, parts = objective(x, y)
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and set(parts) == {"L1", "L2", "L3"}
    assert all(torch.equal(v, parent.state_dict()[k]) for k, v in frozen.items())
    assert any(not torch.equal(v, child.state_dict()[k]) for k, v in before.items())
    deployed = TASK.build_model("pocketnet_smoke")
    deployed.load_state_dict(objective.child.state_dict(), strict=True)  # a plain PocketNet runs alone
    assert deployed(x).shape == (2, 3, 4, 32, 32)


def _decathlon_tar(tmp_path) -> D.Path:
    """A small Task03_Liver archive in the Decathlon's layout: every member data/MANIFEST.yaml lists for
    the real one (dataset.json, the unlabelled imagesTs), and a macOS resource fork beside a scan."""
    import tarfile

    from archives import members

    cases = volumes.generate_cases(tmp_path / "gen", n_cases=5, shape=(64, 64, 8), spacing=(0.8, 0.8, 2.5), seed=2)
    archive = tmp_path / "Task03_Liver.tar"
    with tarfile.open(archive, "w") as tar:
        for member in members("lits_decathlon"):
            info = tarfile.TarInfo(member.rstrip("/"))
            if member.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                body = json.dumps({"name": "Liver", "numTraining": 5, "numTest": 1}).encode()
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))
        for k, volume in enumerate(cases):
            tar.add(volume, f"Task03_Liver/imagesTr/liver_{k}.nii.gz")
            tar.add(volume.with_name(f"segmentation-{k}.nii.gz"), f"Task03_Liver/labelsTr/liver_{k}.nii.gz")
        tar.add(cases[0], "Task03_Liver/imagesTr/._liver_0.nii.gz")
        tar.add(cases[1], "Task03_Liver/imagesTs/liver_200.nii.gz")  # a test scan, with no label: skipped
    return archive


def _with_identity_affine(path) -> None:
    import nibabel as nib

    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), np.eye(4)), path)


def test_cases_whose_header_states_no_spacing_are_refused_all_named_or_left_out_when_the_block_says_so(tmp_path):
    data = _config(tmp_path)
    volumes.generate_cases(data.root, n_cases=6, shape=(64, 64, 12), spacing=(0.8, 0.8, 2.5), seed=3)
    for case in (1, 4):  # as LiTS's challenge release ships volumes 28-47: identity affines
        for kind in ("volume", "segmentation"):
            _with_identity_affine(D.Path(data.root) / f"{kind}-{case}.nii.gz")
    manual = dataclasses.replace(data, source="manual", generated=None)
    with pytest.raises(ValueError, match=r"cases \[1, 4\] have an identity affine.*unstated_spacing: exclude"):
        TASK.prepare_data(manual, allow_network=False)
    assert not (D.Path(data.cache) / D.SPLIT_FILE).exists()
    excluded = dataclasses.replace(manual, unstated_spacing="exclude")
    record = TASK.prepare_data(excluded, allow_network=False, log=lambda m: None)
    assert record["excluded"] == [1, 4] and record["cases"] == 4
    assert not {1, 4} & {case for part in record["split"].values() for case in part}


def test_the_decathlon_archive_is_md5_checked_extracted_and_mapped_to_the_lits_layout(tmp_path, monkeypatch):
    from hkt.io import file_digest

    archive = _decathlon_tar(tmp_path)
    entry = {"url": archive.as_uri(), "md5": file_digest(archive, "md5"), "place_at": str(tmp_path / "a" / "T.tar")}
    monkeypatch.setattr(P, "archive_entry", lambda name: entry)
    data = dataclasses.replace(_config(tmp_path), source="download", generated=None)
    record = TASK.prepare_data(data, allow_network=True)
    assert record["cases"] == 5 and volumes.check_layout(data.root) == [0, 1, 2, 3, 4]
    # a second run (the archive is the job's input in every invocation) verifies it again, links again
    assert TASK.prepare_data(data, allow_network=False)["split"] == record["split"]
    assert (D.Path(entry["place_at"]).with_suffix("") / "Task03_Liver" / "dataset.json").exists()


def test_an_archive_failing_its_md5_is_refused_and_nothing_is_extracted(tmp_path, monkeypatch):
    archive = _decathlon_tar(tmp_path)
    place = tmp_path / "a" / "T.tar"
    monkeypatch.setattr(
        P, "archive_entry", lambda name: {"url": archive.as_uri(), "md5": "0" * 32, "place_at": str(place)}
    )
    data = dataclasses.replace(_config(tmp_path), source="download", generated=None)
    with pytest.raises(ValueError, match="md5"):
        TASK.prepare_data(data, allow_network=True)
    assert not place.exists() and not place.with_suffix("").exists() and not D.Path(data.root).exists()


def test_the_overlays_run_the_models_on_one_window_deep_slab_around_the_slice_they_show():
    """A paper-scale test case has hundreds of slices: the figure needs one of them per case."""
    import numpy as np

    from hkt.tasks.lits.tables import OVERLAY_CASES, overlay_slab

    for most, expected in ((40, slice(34, 46)), (2, slice(0, 12)), (98, slice(88, 100))):
        labels = np.zeros((100, 8, 8), np.uint8)
        labels[most, :4] = 1
        z, slab = overlay_slab(labels, 12)
        assert (z, slab) == (most, expected) and slab.start <= z < slab.stop
    assert overlay_slab(np.ones((5, 4, 4), np.uint8), 12)[1] == slice(0, 12)  # shorter than a window
    assert OVERLAY_CASES == 2


def test_the_overlays_show_the_children_table3_names_by_role_beside_the_parent_and_the_child():
    """The shown runs come from the report block (2HKT is no row of the paper's Table 3), not from
    run names written into the figure."""
    from hkt.tasks.lits.tables import overlay_roles

    rows = [{"paper": "parent", "run": "parent"}, {"paper": "child", "run": "alone/default"}]
    rows += [{"paper": None, "run": "alone/finetune", "label": "C+ft"}, {"paper": "hkt3", "run": "hkt/default"}]
    named = {"tables": {"table3": {"rows": rows, "runs": {"hkt2": "hkt/two_stage", "hkt3": "hkt/default"}}}}
    assert overlay_roles(named) == {"hkt2": "hkt/two_stage", "hkt3": "hkt/default"}
    assert overlay_roles({"tables": {"table3": {"rows": rows}}}) == {"hkt3": "hkt/default"}
