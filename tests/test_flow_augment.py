"""RAFT's augmentation against the anchor's facts (princeton-vl/RAFT 2888e15: core/utils/augmentor.py,
core/datasets.py): the applied scales, stretches and flips per dataset, flow that still carries the
augmented first image onto the second under every spatial transform, sparse ground truth resampled
without inventing valid pixels, photometric changes that leave the flow alone, and batches that are
a pure function of (seed, step)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO

from hkt import config as C
from hkt.tasks.flow import augment as A
from hkt.tasks.flow import scenes
from hkt.tasks.flow.data import Batches, DataConfig


def draws(stage, dataset, n=4000, size=(2000, 2000), crop=(64, 64), flip=True):
    low, high, allowed = A.scales_for(stage, dataset)
    g = torch.Generator().manual_seed(0)
    sparse = dataset in A.SPARSE
    return [A.draw_spatial(size, crop, g, low=low, high=high, flip=flip and allowed, sparse=sparse) for _ in range(n)]


# core/datasets.py fetch_dataloader: (stage, dataset) -> min_scale, max_scale, do_flip
RAFT_DATASETS_PY = {
    ("chairs", "chairs"): (-0.1, 1.0, True),
    ("things", "things"): (-0.4, 0.8, True),
    ("mixture", "sintel"): (-0.2, 0.6, True),
    ("mixture", "things"): (-0.2, 0.6, True),
    ("mixture", "kitti"): (-0.3, 0.5, True),
    ("mixture", "hd1k"): (-0.5, 0.2, True),
    ("kitti", "kitti"): (-0.2, 0.4, False),
}


@pytest.mark.parametrize(("stage", "dataset"), sorted(RAFT_DATASETS_PY))
def test_applied_scales_stretches_and_flips_follow_rafts_parameters_for_each_dataset(stage, dataset):
    assert A.scales_for(stage, dataset) == RAFT_DATASETS_PY[(stage, dataset)]
    low, high, flips = RAFT_DATASETS_PY[(stage, dataset)]
    d = draws(stage, dataset)
    applied = [s for s in d if (s.scale_x, s.scale_y) != (1.0, 1.0)]
    assert abs(len(applied) / len(d) - 0.8) < 0.03  # spatial_aug_prob
    sparse = dataset in A.SPARSE
    stretched = [s for s in applied if not math.isclose(s.scale_x, s.scale_y)]
    if sparse:  # SparseFlowAugmentor never stretches
        assert not stretched
    else:
        assert abs(len(stretched) / len(applied) - 0.8) < 0.03  # stretch_prob
        ratio = [math.log2(s.scale_x / s.scale_y) for s in stretched]
        assert max(map(abs, ratio)) <= 2 * 0.2 + 1e-9  # each axis 2^U(-0.2, 0.2)
    plain = [math.log2(s.scale_x) for s in applied if math.isclose(s.scale_x, s.scale_y)]
    assert low - 1e-9 <= min(plain) and max(plain) <= high + 1e-9  # 2^U(min_scale, max_scale)
    assert abs(np.mean(plain) - (low + high) / 2) < 0.03 and abs(np.std(plain) - (high - low) / 12**0.5) < 0.03
    h_rate = np.mean([s.h_flip for s in d])
    v_rate = np.mean([s.v_flip for s in d])
    assert abs(h_rate - (0.5 if flips else 0)) < 0.03
    assert abs(v_rate - (0.1 if flips and not sparse else 0)) < 0.02  # sparse flips horizontally only


def test_the_scale_never_shrinks_a_pair_below_the_crop_plus_rafts_margin():
    size, crop = (384, 512), (368, 496)  # FlyingChairs at RAFT's chairs crop
    floor = max((crop[0] + 8) / size[0], (crop[1] + 8) / size[1])
    d = draws("chairs", "chairs", n=2000, size=size, crop=crop)
    applied = [s for s in d if (s.scale_x, s.scale_y) != (1.0, 1.0)]
    assert min(min(s.scale_x, s.scale_y) for s in applied) >= floor - 1e-12
    assert all(0 <= s.y0 and s.y0 + crop[0] <= A.scaled_size(size, s.scale_x, s.scale_y)[0] for s in d)
    sparse = draws("kitti", "kitti", n=2000, size=(375, 1242), crop=(288, 960))
    assert all(0 <= s.x0 <= A.scaled_size((375, 1242), s.scale_x, s.scale_y)[1] - 960 for s in sparse)


def smooth_image(h, w, seed):
    """A smooth RGB image: random noise low-passed, so that bilinear resampling is nearly exact."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, h // 8 + 2, w // 8 + 2, generator=g)
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)[0].clamp(0, 1)


def warp_error(img1, img2, flow, margin=12):
    """Mean |img1(x) - img2(x + flow(x))| inside the borders: ~0 when the flow carries 1 onto 2."""
    _, h, w = img1.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    grid = torch.stack([(xs + flow[0]) / (w - 1) * 2 - 1, (ys + flow[1]) / (h - 1) * 2 - 1], -1)
    warped = F.grid_sample(img2[None], grid[None], mode="bilinear", align_corners=True)[0]
    inner = (slice(None), slice(margin, h - margin), slice(margin, w - margin))
    return float((img1 - warped)[inner].abs().mean())


@pytest.mark.parametrize("seed", range(12))
def test_the_augmented_flow_carries_the_augmented_first_image_onto_the_second_under_every_spatial_transform(seed):
    h, w, (u, v) = 160, 224, (5.0, -3.0)
    big = smooth_image(h + 20, w + 20, seed)
    img1, img2 = big[:, 10 : 10 + h, 10 : 10 + w], big[:, 13 : 13 + h, 5 : 5 + w]  # img2(y - 3, x + 5) = img1(y, x)
    flow = torch.tensor([u, v]).view(2, 1, 1).expand(2, h, w).contiguous()
    assert warp_error(img1, img2, flow) < 1e-6  # img2(x + (5, -3)) = img1(x)
    g = torch.Generator().manual_seed(seed)
    crop = (96, 128)
    spatial = A.draw_spatial((h, w), crop, g, low=-0.4, high=0.8, flip=True, sparse=False)
    if seed < 4:  # make sure flips are met whatever the draws
        spatial = A.Spatial(spatial.scale_x, spatial.scale_y, seed % 2 == 1, seed >= 2, spatial.y0, spatial.x0)
    hwc = lambda t: (t.permute(1, 2, 0).numpy() * 255).astype(np.float32)
    a, b, f, _ = A.apply_spatial(
        hwc(img1), hwc(img2), flow.permute(1, 2, 0).numpy(), np.ones((h, w), bool), spatial, crop, sparse=False
    )
    chw = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).float() / 255
    a, b, f = chw(a), chw(b), torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)
    assert a.shape[1:] == b.shape[1:] == f.shape[1:] == crop
    sign = (-1 if spatial.h_flip else 1, -1 if spatial.v_flip else 1)
    assert torch.allclose(f[0], torch.full(crop, sign[0] * u * spatial.scale_x), atol=1e-4)
    assert torch.allclose(f[1], torch.full(crop, sign[1] * v * spatial.scale_y), atol=1e-4)
    assert warp_error(a, b, f) < 0.01
    unflipped = f * torch.tensor([sign[0], sign[1]]).view(2, 1, 1)  # the flow as if the flips were forgotten
    if spatial.h_flip or spatial.v_flip:
        assert warp_error(a, b, unflipped) > 3 * warp_error(a, b, f)  # the check can fail


def test_photometric_jitter_and_the_eraser_change_the_images_only():
    h, w = 120, 160
    a, b = (smooth_image(h, w, s) * 2 - 1 for s in (1, 2))
    flow = torch.randn(2, h, w)
    valid = torch.ones(h, w, dtype=torch.bool)
    for seed in range(10):
        out = A.raft_augment(
            a, b, flow, valid, (64, 96), torch.Generator().manual_seed(seed), stage="chairs", dataset="chairs"
        )
        # replay the same draws: the flow is what the spatial part alone makes of it
        g = torch.Generator().manual_seed(seed)
        u1, u2 = (((x + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy() for x in (a, b))
        u1, u2 = A.jitter_pair(u1, u2, g, A.DENSE_JITTER)
        A.erase(u2, g)
        spatial = A.draw_spatial((h, w), (64, 96), g, low=-0.1, high=1.0, flip=True, sparse=False)
        ones = np.ones((h, w), bool)
        _, _, f, _ = A.apply_spatial(
            u1,
            u2,
            flow.permute(1, 2, 0).numpy(),
            ones,
            spatial,
            (64, 96),
            sparse=False,
        )
        assert torch.equal(out[2], torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1))
        assert out[3].all()


def test_the_eraser_paints_one_or_two_boxes_of_50_to_99_px_of_the_second_image_in_its_mean_colour_half_the_time():
    b = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    mean = b.reshape(-1, 3).mean(0).astype(np.uint8)
    erased = 0
    for seed in range(400):
        out = A.erase(b, torch.Generator().manual_seed(seed))
        changed = (out != b).any(2)
        if changed.any():
            erased += 1
            assert (out[changed] == mean).all() and (out[~changed] == b[~changed]).all()
            assert changed.sum() <= 2 * 99 * 99  # one or two boxes of 50-99 px a side (an edge may cut them)
    assert abs(erased / 400 - 0.5) < 0.08


def test_the_pair_is_jittered_alike_except_with_rafts_asymmetric_probability():
    a = np.random.default_rng(3).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    alike = [np.array_equal(*A.jitter_pair(a, a, torch.Generator().manual_seed(s), A.DENSE_JITTER)) for s in range(500)]
    assert abs(1 - np.mean(alike) - 0.2) < 0.05  # asymmetric_color_aug_prob
    sparse = [
        np.array_equal(*A.jitter_pair(a, a, torch.Generator().manual_seed(s), A.SPARSE_JITTER)) for s in range(50)
    ]
    assert all(sparse)  # SparseFlowAugmentor jitters the pair alike, always


@pytest.mark.parametrize("scale", [0.7, 1.0, 1.37])
def test_sparse_flow_is_resampled_without_inventing_valid_pixels(scale):
    rng = np.random.default_rng(0)
    h, w = 100, 300
    valid = rng.random((h, w)) < 0.3
    flow = rng.normal(size=(h, w, 2)).astype(np.float32) * valid[..., None]
    size = (int(round(h * scale)), int(round(w * scale)))
    out_flow, out_valid = A.resample_sparse(flow, valid, scale, scale, size)
    assert out_valid.sum() <= valid.sum() and not out_flow[~out_valid].any()
    ys, xs = np.nonzero(valid)
    target = {(int(round(y * scale)), int(round(x * scale))): (y, x) for y, x in zip(ys, xs, strict=True)}
    for y, x in zip(*np.nonzero(out_valid), strict=True):  # each valid pixel is a valid source point, moved
        sy, sx = target[(y, x)]
        assert np.allclose(out_flow[y, x], flow[sy, sx] * scale)
    assert not out_valid[0].any() and not out_valid[:, 0].any()  # RAFT's `> 0` drops row and column 0


def test_a_kitti_pair_keeps_its_ground_truth_sparse_through_the_whole_augmentation():
    h, w = 375, 1242
    rng = np.random.default_rng(1)
    valid = torch.from_numpy(rng.random((h, w)) < 0.2)
    flow = torch.from_numpy(rng.normal(size=(2, h, w)).astype(np.float32)) * valid
    a = b = torch.zeros(3, h, w)
    for seed in range(6):
        *_, f, v = A.raft_augment(
            a, b, flow, valid, (288, 960), torch.Generator().manual_seed(seed), stage="mixture", dataset="kitti"
        )
        assert v.shape == (288, 960) and 0 < v.float().mean() < 0.2 + 0.05 and not f[:, ~v].any()


def test_batches_with_rafts_augmentation_are_a_pure_function_of_seed_and_step(tmp_path):
    scenes.generate_flow_datasets(
        tmp_path, seed=2, size=(96, 128), counts={"chairs": 4, "sintel": 2, "things": 2, "kitti": 2, "hd1k": 2}
    )
    data = DataConfig(
        root=str(tmp_path),
        dataset="chairs",
        crop=(64, 96),
        augment="raft",
        val_scenes=("scene_0",),
        generated={"seed": 2},
    )
    one, two = Batches(data, batch_size=3, seed=5), Batches(data, batch_size=3, seed=5)
    (a1, b1), (f1, v1) = one(7)
    (a2, b2), (f2, v2) = two(7)
    assert torch.equal(a1, a2) and torch.equal(b1, b2) and torch.equal(f1, f2) and torch.equal(v1, v2)
    assert a1.shape == (3, 3, 64, 96) and f1.shape == (3, 2, 64, 96)
    assert not torch.equal(one(8)[0][0], a1)
    assert not torch.equal(Batches(dataclasses.replace(data, augment="crop_flip"), batch_size=3, seed=5)(7)[0][0], a1)


def test_every_flow_stage_of_the_paper_config_trains_with_rafts_augmentation_and_the_smoke_scale_does_not():
    paper = C.load(REPO / "config" / "paper.yaml")
    for block in ("flow", "flow-ctsk", "flow-ctskh"):
        assert {d["augment"] for d in C.stage_data(paper, block)} == {"raft"}, block
    smoke = C.load(REPO / "config" / "config.yaml")
    assert {d["augment"] for d in C.stage_data(smoke, "flow")} == {"crop_flip"}  # the 12-minute budget
    with pytest.raises(ValueError, match=r"no RAFT scale range for \['hd1k'\] in a hd1k stage"):
        DataConfig(root="x", dataset="hd1k", augment="raft", val_scenes=("a",))
