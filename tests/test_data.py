"""CIFAR-10 on disk: generated data in the official layout, the download path tested with local
archives, checksums, safe extraction, and deterministic batches."""

import hashlib
import io
import pickle
import tarfile

import pytest
import torch
import torchvision

from hkt.io import COMPLETE, safe_extract
from hkt.tasks.cifar10 import data as S
from hkt.tasks.cifar10 import prepare as D
from hkt.tasks.cifar10.data import Batches


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_generated_data_uses_the_official_pickle_layout(tiny_data):
    folder = tiny_data / D.FOLDER
    assert sorted(p.name for p in folder.iterdir()) == sorted([*D.TRAIN_FILES, *D.TEST_FILES, D.META_FILE])
    batch = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="latin1")
    assert set(batch) == {"batch_label", "labels", "data", "filenames"}
    assert batch["data"].dtype.name == "uint8" and batch["data"].shape[1] == 3072
    images, labels = S.load_split(tiny_data, train=True)
    assert images.shape == (384, 3, 32, 32) and images.dtype == torch.uint8
    assert set(labels.tolist()) == set(range(10))
    # the stored tensors are exactly what torchvision's reader decodes from the pickles
    reader = D._verified_reader(D.CIFAR10, folder, True, S.read_manifest(tiny_data)["md5"])
    assert torch.equal(images.permute(0, 2, 3, 1), torch.from_numpy(reader.data))


def _archive_of(folder, path, *, extra: dict | None = None):
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname=D.FOLDER)
        for name, data in (extra or {}).items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_download_verifies_extracts_and_marks_complete(tiny_data, tmp_path):
    archive = _archive_of(tiny_data / D.FOLDER, tmp_path / "mirror.tar.gz")
    sums = S.read_manifest(tiny_data)["md5"]
    root = tmp_path / "cifar10"
    manifest = D.prepare_download(root, url=archive.as_uri(), archive_md5=md5(archive), file_md5=sums)
    assert manifest.exists() and (root / "extracted" / COMPLETE).exists()
    images, labels = S.load_split(root, train=False)
    assert images.shape == (128, 3, 32, 32)
    assert not list(root.glob("**/*.part"))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_or_truncated_archive_fails_its_checksum_and_leaves_nothing(tiny_data, tmp_path, damage):
    archive = _archive_of(tiny_data / D.FOLDER, tmp_path / "mirror.tar.gz")
    good = md5(archive)
    data = bytearray(archive.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 3]
    archive.write_bytes(bytes(data))
    root = tmp_path / "cifar10"
    with pytest.raises(ValueError, match="md5 .* does not match"):
        D.prepare_download(root, url=archive.as_uri(), archive_md5=good, file_md5={})
    assert not (root / D.MANIFEST).exists() and not (root / D.ARCHIVE).exists()
    assert not (root / "extracted").exists() and not list(root.glob("*.part"))


def test_truncated_archive_with_matching_sum_fails_extraction_and_marks_nothing_complete(tiny_data, tmp_path):
    archive = _archive_of(tiny_data / D.FOLDER, tmp_path / "mirror.tar.gz")
    archive.write_bytes(archive.read_bytes()[:5000])
    root = tmp_path / "cifar10"
    with pytest.raises(ValueError, match="cannot be extracted safely"):
        D.prepare_download(root, url=archive.as_uri(), archive_md5=md5(archive), file_md5={})
    assert not (root / "extracted").exists() and not (root / D.MANIFEST).exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".extracted")]


def _tar_with(path, member, *, link_to=None):
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo(member)
        if link_to:
            info.type, info.linkname = tarfile.SYMTYPE, link_to
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize("member,link_to", [("../escape.txt", None), ("link", "/etc/passwd"), ("up", "../../escape")])
def test_extraction_refuses_members_that_leave_the_destination(tmp_path, member, link_to):
    archive = _tar_with(tmp_path / "evil.tar", member, link_to=link_to)
    with pytest.raises(ValueError, match="cannot be extracted safely"):
        safe_extract(archive, tmp_path / "out" / "dest")
    assert not (tmp_path / "out" / "escape.txt").exists() and not (tmp_path / "out" / "dest").exists()


def test_absolute_member_names_are_confined_to_the_destination(tmp_path):
    # The 'data' filter (PEP 706) strips the leading slash rather than writing to /abs.
    dest = safe_extract(_tar_with(tmp_path / "abs.tar", "/abs/escape.txt"), tmp_path / "dest")
    assert (dest / "abs" / "escape.txt").read_bytes() == b"evil"


def test_missing_dataset_offline_says_where_to_get_it_and_where_to_put_it(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        D.prepare_download(tmp_path / "cifar10", allow_network=False)
    assert D.URL in str(err.value) and str(tmp_path / "cifar10" / D.ARCHIVE) in str(err.value)
    assert D.ARCHIVE_MD5 in str(err.value)


def test_unreachable_url_gives_the_same_instructions(tmp_path):
    with pytest.raises(FileNotFoundError, match="place it at"):
        D.prepare_download(tmp_path / "cifar10", url=(tmp_path / "nowhere.tar.gz").as_uri())


def test_a_tampered_batch_file_fails_its_md5_before_it_is_unpickled(tiny_data, tmp_path):
    import shutil

    shutil.copytree(tiny_data / D.FOLDER, tmp_path / "src" / D.FOLDER)
    (tmp_path / "src" / D.FOLDER / "test_batch").write_bytes(b"not a pickle")
    archive = _archive_of(tmp_path / "src" / D.FOLDER, tmp_path / "mirror.tar.gz")
    with pytest.raises(ValueError, match="test_batch is missing or does not match its published md5"):
        D.prepare_download(
            tmp_path / "cifar10",
            url=archive.as_uri(),
            archive_md5=md5(archive),
            file_md5=S.read_manifest(tiny_data)["md5"],
        )
    assert not (tmp_path / "cifar10" / D.MANIFEST).exists()


def test_a_modified_tensor_file_fails_its_sha256_at_load(tiny_data, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_data, copy)
    data = bytearray((copy / "test.pt").read_bytes())
    data[-100] ^= 0xFF
    (copy / "test.pt").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256 .* does not match"):
        S.load_split(copy, train=False)


@pytest.mark.parametrize("damage", [b'{"tensors": {"train": {"fi', b'{"md5": {}}', b"\xff\xfe not json"])
def test_a_truncated_or_foreign_manifest_names_the_file_instead_of_a_bare_json_or_key_error(
    tiny_data, tmp_path, damage
):
    import shutil

    copy = shutil.copytree(tiny_data, tmp_path / "copy")
    (copy / S.MANIFEST).write_bytes(damage)
    with pytest.raises(ValueError, match=rf"{S.MANIFEST}: not a (readable|CIFAR) manifest.*rerun the data job"):
        S.load_split(copy, train=True)


def test_an_unfinished_dataset_has_no_manifest_and_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="never prepared completely"):
        S.load_split(tmp_path, train=True)


def test_split_is_fixed_and_disjoint():
    train, val = S.split_train_val(100, 10, seed=0)
    again, val2 = S.split_train_val(100, 10, seed=0)
    assert torch.equal(train, again) and torch.equal(val, val2)
    assert len(set(train.tolist()) & set(val.tolist())) == 0 and len(train) + len(val) == 100


def test_batches_are_a_pure_function_of_seed_and_step(tiny_data):
    images, labels = S.load_split(tiny_data, train=True)
    kw = dict(batch_size=32, mean=[0.5] * 3, std=[0.25] * 3, crop_padding=4)
    a, b = Batches(images, labels, seed=3, **kw), Batches(images, labels, seed=3, **kw)
    for step in (0, 5, 11, 30):  # 30 lies in a later epoch
        xa, ya = a(step)
        xb, yb = b(step)  # a fresh object, as after a resume
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(a(0)[0], Batches(images, labels, seed=4, **kw)(0)[0])
    assert a(0)[0].shape == (32, 3, 32, 32)


def test_every_augmented_image_is_a_torchvision_random_crop_with_padding_and_flip_of_its_source():
    """The device-side augmentation is the plain DataLoader loop's RandomCrop(32, padding=4) +
    RandomHorizontalFlip: each output is one of their outcomes, and every outcome occurs."""
    from torchvision.transforms.v2 import functional as TF

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    batches = Batches(images, torch.arange(64), batch_size=16, seed=0, mean=[0.0] * 3, std=[1.0] * 3, crop_padding=4)
    seen = set()
    for step in range(64):  # 1,024 draws: every one of the 81 offsets occurs
        x, source = batches(step)
        for image, i in zip(x, source.tolist(), strict=True):
            padded = TF.pad(images[i], [4])
            outcomes = set()
            for dy in range(9):
                for dx in range(9):
                    crop = TF.crop(padded, dy, dx, 32, 32)
                    for flip in (False, True):
                        if torch.equal(image, (TF.horizontal_flip(crop) if flip else crop).float() / 255):
                            outcomes.add((dy, dx, flip))
            assert outcomes, f"step {step}: image {i} is not a padded crop (or its mirror) of its source"
            seen |= outcomes
    assert {(dy, dx) for dy, dx, _ in seen} == {(dy, dx) for dy in range(9) for dx in range(9)}
    assert {flip for *_, flip in seen} == {False, True}


def test_batches_stay_on_the_device_that_holds_the_images():
    """With the images on an accelerator, every draw is moved there and the batch is built there
    (the meta device stands in for a GPU here: a tensor left on the CPU fails the same way)."""
    images = torch.zeros(40, 3, 32, 32, dtype=torch.uint8, device="meta")
    batches = Batches(
        images,
        torch.zeros(40, dtype=torch.long, device="meta"),
        batch_size=8,
        seed=0,
        mean=[0.5] * 3,
        std=[0.25] * 3,
        crop_padding=4,
    )
    x, y = batches(7)
    assert x.device.type == y.device.type == "meta" and x.shape == (8, 3, 32, 32) and x.dtype == torch.float32


@pytest.mark.parametrize("member", ["../escape.txt", "/abs.txt", "a/../../escape.txt"])
def test_zip_members_that_leave_the_destination_are_refused_and_nothing_is_extracted(tmp_path, member):
    import zipfile

    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
        z.writestr("fine.txt", "ok")
        z.writestr(member, "evil")
    with pytest.raises(ValueError, match="would leave the destination"):
        safe_extract(tmp_path / "bad.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape.txt").exists()


def test_a_zip_archive_extracts_whole_and_is_marked_complete(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "good.zip", "w") as z:
        z.writestr("training/flow/a.flo", b"x")
    out = safe_extract(tmp_path / "good.zip", tmp_path / "out")
    assert (out / "training" / "flow" / "a.flo").read_bytes() == b"x" and (out / ".complete").exists()


# ---------------------------------------------------------------------------------------------
# CIFAR-100: the same task, another layout
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cifar100(tmp_path_factory):
    root = tmp_path_factory.mktemp("c100") / "cifar100-generated"
    D.prepare_generated(root, n_train=400, n_test=200, seed=3, dataset="cifar100")
    return root


def test_generated_cifar100_is_in_the_official_layout_read_by_torchvisions_cifar100(cifar100):
    layout = D.LAYOUTS["cifar100"]
    folder = cifar100 / "cifar-100-python"
    assert sorted(p.name for p in folder.iterdir()) == ["meta", "test", "train"]
    batch = pickle.loads((folder / "train").read_bytes(), encoding="latin1")
    assert {"fine_labels", "coarse_labels", "data"} <= set(batch)
    reader = D._verified_reader(layout, folder, False, S.read_manifest(cifar100)["md5"])
    assert isinstance(reader, torchvision.datasets.CIFAR100) and len(reader.classes) == 100
    images, labels = S.load_split(cifar100, train=False)
    assert torch.equal(images.permute(0, 2, 3, 1), torch.from_numpy(reader.data))
    assert labels.tolist() == reader.targets and 0 <= labels.min() and labels.max() <= 99
    assert len(set(labels.tolist())) > 80 and S.read_manifest(cifar100)["classes"] == 100


def test_cifar100_download_verifies_its_archive_and_files(cifar100, tmp_path):
    archive = tmp_path / "mirror100.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar100 / "cifar-100-python", arcname="cifar-100-python")
    sums = S.read_manifest(cifar100)["md5"]
    root = tmp_path / "cifar100"
    D.prepare_download(root, dataset="cifar100", url=archive.as_uri(), archive_md5=md5(archive), file_md5=sums)
    assert S.load_split(root, train=True)[1].shape == (400,)
    with pytest.raises(ValueError, match="md5 .* does not match the expected 0+"):
        D.prepare_download(tmp_path / "bad", dataset="cifar100", url=archive.as_uri(), archive_md5="0" * 32)
    assert not (tmp_path / "bad" / D.MANIFEST).exists() and not list((tmp_path / "bad").glob("*.tar.gz"))


def test_missing_cifar100_offline_names_its_own_url_and_md5(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        D.prepare_download(tmp_path / "cifar100", dataset="cifar100", allow_network=False)
    message = str(err.value)
    assert "CIFAR-100 is not available" in message and "cifar-100-python.tar.gz" in message
    assert "eb9058c3a382ffc7106e4002c42a8d85" in message


def test_cifar100_is_a_configuration_of_the_cifar_task(cifar100, tmp_path):
    from conftest import tiny_config, train_run

    from hkt import config as C

    cfg = tiny_config(cifar100)
    t = cfg["tasks"]["cifar10"]
    t["data"].update(dataset="cifar100", root=str(tmp_path / "c100"))
    t["parent"]["arch"], t["child"]["arch"] = "cifar100_resnet20", "cifar100_resnet8"
    cfg["tasks"]["cifar10"]["runs"] = ["alone/default"]
    cfg["tasks"]["cifar10"]["bench"] = {"runs": ["alone/default"]}
    cfg["tasks"]["cifar10"]["report"]["tables"]["table2"]["rows"] = [{"paper": "parent", "run": "parent"}]
    cfg["tasks"]["cifar10"]["report"]["tables"]["comparisons"]["controls"] = ["alone/default"]
    cfg = C.validate(cfg)
    from hkt import pipeline

    record = pipeline.prepare_data(C.data_spec(cfg, "cifar10"), tmp_path / "record.json")
    assert record["classes"] == 100
    weights = train_run(cfg, "alone", "default", 0, tmp_path / "run")
    state = torch.load(weights, weights_only=True)["state_dict"]
    assert state["linear.weight"].shape == (100, 64)
