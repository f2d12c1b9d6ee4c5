"""Flow metrics, dataset aggregation, RAFT's padding and RAFT's sequence loss against hand computations."""

import math

import pytest
import torch

from hkt.tasks.flow.metrics import FlowMeter, epe, fl_all, pad_to_multiple, sequence_loss, unpad


def flows(*vectors):
    """A (1, 2, 1, W) flow from W (u, v) pairs."""
    return torch.tensor(vectors, dtype=torch.float32).T.reshape(1, 2, 1, len(vectors))


def mask(*bits):
    return torch.tensor(bits, dtype=torch.bool).reshape(1, 1, len(bits))


def test_epe_is_the_mean_euclidean_error_over_valid_pixels():
    gt = flows((0, 0), (1, 1), (5, 5))
    pred = flows((3, 4), (1, 2), (5, 5))  # errors 5, 1, 0
    assert epe(pred, gt) == pytest.approx(2.0)
    assert epe(pred, gt, mask(True, True, False)) == pytest.approx(3.0)
    assert epe(pred, gt, mask(False, True, True)) == pytest.approx(0.5)


# |gt| = 80: the threshold is 5% of it, 4 px; |gt| = 10 and 0: the 3 px floor decides
BOUNDARY_GT = flows((80, 0), (80, 0), (10, 0), (10, 0), (0, 0), (0, 0))
BOUNDARY_PRED = flows((84, 0), (84.5, 0), (13, 0), (13.25, 0), (3, 0), (0, 3.5))


def test_fl_all_needs_more_than_3px_and_more_than_5_percent_both_strictly():
    # errors 4 (= 5% of 80), 4.5, 3 (= 3 px), 3.25, 3 (= 3 px), 3.5: outliers 4.5, 3.25, 3.5
    assert fl_all(BOUNDARY_PRED, BOUNDARY_GT) == pytest.approx(50.0)
    assert fl_all(BOUNDARY_PRED, BOUNDARY_GT, mask(True, True, False, False, False, False)) == pytest.approx(50.0)
    assert fl_all(BOUNDARY_PRED, BOUNDARY_GT, mask(True, False, True, False, True, False)) == 0.0
    assert fl_all(BOUNDARY_PRED, BOUNDARY_GT, mask(False, True, False, False, False, True)) == pytest.approx(100.0)


def test_fl_all_counts_a_large_error_on_zero_ground_truth_as_an_outlier():
    assert fl_all(flows((4, 0)), flows((0, 0))) == 100.0


@pytest.mark.parametrize("metric", [epe, fl_all])
def test_an_empty_mask_is_an_error_never_nan(metric):
    with pytest.raises(ValueError, match="no valid pixel"):
        metric(flows((1, 0)), flows((0, 0)), mask(False))


def test_the_meter_refuses_an_image_without_valid_pixels():
    with pytest.raises(ValueError, match="no valid pixel"):
        FlowMeter().update(flows((1, 0)), flows((0, 0)), mask(False))
    with pytest.raises(ValueError, match="no valid pixel"):
        FlowMeter().result()


@pytest.mark.parametrize(
    "pred, gt, valid",
    [
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5), None),  # flows differ
        (torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), None),  # not two channels
        (torch.zeros(2, 4, 4), torch.zeros(2, 4, 4), None),  # no batch dimension
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.ones(1, 4, 5, dtype=torch.bool)),
        (torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.ones(1, 4, 4)),  # a float mask
    ],
)
def test_shape_and_mask_mismatches_are_errors(pred, gt, valid):
    for metric in (epe, fl_all):
        with pytest.raises(ValueError):
            metric(pred, gt, valid)


def _two_images():
    """Image A: one valid pixel, error 4 on zero flow (an outlier). Image B: three valid pixels, error 0."""
    gt = torch.zeros(2, 2, 1, 4)
    pred = gt.clone()
    pred[0, 0, 0, 0] = 4.0
    pred[0, 0, 0, 1:] = 50.0  # invalid pixels: must not count
    valid = torch.tensor([[[True, False, False, False]], [[True, True, True, False]]])
    return pred, gt, valid


def test_sintel_epe_pools_pixels_and_kitti_epe_averages_images():
    pred, gt, valid = _two_images()
    meter = FlowMeter()
    meter.update(pred, gt, valid)
    pooled, per_image = 4.0 / 4, (4.0 / 1 + 0.0 / 3) / 2
    assert meter.result()["epe"] == pytest.approx(pooled) == pytest.approx(meter.pixel_epe)
    assert meter.result(kitti=True)["epe"] == pytest.approx(per_image) == pytest.approx(meter.image_epe)
    assert pooled != per_image


def test_fl_all_and_accuracies_pool_all_valid_pixels_of_the_dataset():
    pred, gt, valid = _two_images()
    meter = FlowMeter()
    meter.update(pred, gt, valid)
    result = meter.result(kitti=True)
    assert result["fl_all"] == pytest.approx(100.0 * 1 / 4)  # per image it would be (100 + 0) / 2
    assert (result["1px"], result["3px"], result["5px"]) == pytest.approx((3 / 4, 3 / 4, 4 / 4))


def test_the_meter_gives_the_same_numbers_image_by_image_or_batched():
    pred, gt, valid = _two_images()
    batched, single = FlowMeter(), FlowMeter()
    batched.update(pred, gt, valid)
    for i in (1, 0):  # order does not matter either
        single.update(pred[i : i + 1], gt[i : i + 1], valid[i : i + 1])
    for kitti in (False, True):
        assert single.result(kitti=kitti) == pytest.approx(batched.result(kitti=kitti))


def test_the_meter_without_a_mask_counts_every_pixel():
    meter = FlowMeter()
    meter.update(flows((3, 4), (0, 0)), flows((0, 0), (0, 0)))
    assert meter.result()["epe"] == pytest.approx(2.5) and meter.result()["fl_all"] == pytest.approx(50.0)


@pytest.mark.parametrize("mode", ["sintel", "kitti"])
@pytest.mark.parametrize("size", [(37, 50), (436, 1024), (375, 1242), (128, 128)])
def test_unpad_inverts_pad_to_multiple(mode, size):
    x = torch.randn(2, 3, *size)
    padded, pads = pad_to_multiple(x, mode=mode)
    assert padded.shape[-2] % 8 == 0 and padded.shape[-1] % 8 == 0
    assert torch.equal(unpad(padded, pads), x)


@pytest.mark.parametrize("h", range(1, 33))
def test_padding_totals_are_raft_input_padders(h):
    raft_total = (((h // 8) + 1) * 8 - h) % 8  # InputPadder's formula
    _, (left, right, top, bottom) = pad_to_multiple(torch.zeros(1, 1, h, h))
    assert left + right == top + bottom == raft_total


def test_sintel_mode_pads_evenly_and_kitti_mode_pads_the_bottom_only():
    x = torch.arange(37 * 50, dtype=torch.float32).reshape(1, 1, 37, 50)
    padded, pads = pad_to_multiple(x, mode="sintel")
    assert pads == (3, 3, 1, 2)
    assert torch.equal(padded[..., 0, 3:53], x[..., 0, :])  # replicated first row on top
    padded, pads = pad_to_multiple(x, mode="kitti")
    assert pads == (3, 3, 0, 3)
    assert torch.equal(padded[..., :37, 3:53], x)
    assert torch.equal(padded[..., 37:, 3:53], x[..., -1:, :].expand(1, 1, 3, 50))  # replicated last row


def test_pad_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        pad_to_multiple(torch.zeros(1, 3, 9, 9), mode="chairs")


def test_sequence_loss_is_rafts_masked_mean_weighted_by_gamma():
    # pixel 0 trains; pixel 1 is invalid; pixel 2 has |gt| = 400 = max_flow, excluded
    gt = flows((1, 0), (0, 0), (400, 0))
    valid = mask(True, False, True)
    first = flows((0, 0), (99, 99), (0, 0))  # |diff| at pixel 0: (1, 0)
    last = flows((1, 2), (99, 99), (0, 0))  # |diff| at pixel 0: (0, 2)
    elements = 1 * 2 * 1 * 3  # RAFT averages over B * 2 * H * W, excluded pixels as zeros
    expected = 0.8 * (1 + 0) / elements + 1.0 * (0 + 2) / elements
    assert float(sequence_loss([first, last], (gt, valid), gamma=0.8)) == pytest.approx(expected)
    assert float(sequence_loss([first, last], (gt, valid), gamma=0.5)) == pytest.approx((0.5 * 1 + 2) / elements)
    # a larger max_flow lets pixel 2 in: its error |(0, 0) - (400, 0)| = 400 in both predictions
    assert float(sequence_loss([first, last], (gt, valid), max_flow=1000.0)) == pytest.approx(
        expected + (0.8 + 1.0) * 400 / elements
    )


def test_sequence_loss_is_zero_not_nan_without_a_valid_pixel():
    gt, pred = flows((1, 0)), flows((5, 5))
    loss = sequence_loss([pred], (gt, mask(False)))
    assert loss.item() == 0.0 and not math.isnan(loss.item())
