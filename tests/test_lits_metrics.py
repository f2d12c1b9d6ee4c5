"""LiTS's Dice and its per-case / pooled aggregation against hand computations."""

import numpy as np
import pytest
import torch

from hkt.tasks.lits.metrics import DiceMeter, dice, liver_mask, tumour_mask


def bits(*values):
    return np.array(values, dtype=bool)


def test_dice_is_twice_the_overlap_over_the_sizes():
    # |A| = 4, |B| = 4, |A n B| = 2: 2 * 2 / 8
    assert dice(bits(1, 1, 1, 1, 0, 0), bits(0, 0, 1, 1, 1, 1)) == pytest.approx(0.5)
    # |A| = 1, |B| = 3, |A n B| = 1: 2 / 4
    assert dice(bits(0, 1, 0, 0), bits(1, 1, 1, 0)) == pytest.approx(0.5)
    assert dice(bits(1, 0, 1), bits(1, 0, 1)) == 1.0
    assert dice(bits(1, 0, 0), bits(0, 0, 1)) == 0.0


def test_dice_of_two_empty_masks_is_one_and_of_one_empty_mask_zero():
    empty = np.zeros((2, 3, 4), bool)
    full = np.ones((2, 3, 4), bool)
    assert dice(empty, empty) == 1.0
    assert dice(empty, full) == 0.0
    assert dice(full, empty) == 0.0


def test_dice_takes_3d_tensors_and_arrays_alike():
    pred = np.zeros((4, 5, 6), bool)
    gt = np.zeros((4, 5, 6), bool)
    pred[1:3, 1:4, 2:5] = True  # 2 * 3 * 3 = 18 voxels
    gt[2:4, 1:4, 2:5] = True  # 18 voxels, 9 of them shared
    expected = 2 * 9 / 36
    assert dice(pred, gt) == pytest.approx(expected)
    assert dice(torch.from_numpy(pred), torch.from_numpy(gt)) == pytest.approx(expected)
    assert dice(torch.from_numpy(pred), gt) == pytest.approx(expected)
    assert isinstance(dice(torch.from_numpy(pred), torch.from_numpy(gt)), float)


def test_dice_refuses_masks_of_different_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 2\)"):
        dice(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


def test_dice_refuses_label_maps_in_place_of_masks():
    with pytest.raises(TypeError, match="boolean"):
        dice(np.array([0, 1, 2]), np.array([0, 1, 2]) > 0)
    with pytest.raises(TypeError, match="boolean"):
        dice(torch.tensor([0, 1, 2]) > 0, torch.tensor([0, 1, 2]))


def test_liver_includes_tumour_and_tumour_is_label_two():
    labels = np.array([0, 1, 2, 1, 0])
    assert liver_mask(labels).tolist() == [False, True, True, True, False]
    assert tumour_mask(labels).tolist() == [False, False, True, False, False]
    assert liver_mask(torch.tensor(labels)).tolist() == [False, True, True, True, False]


def test_dice_meter_per_case_mean_and_pooled_dice_differ_as_computed_by_hand():
    meter = DiceMeter()
    # case 1: 8 liver voxels (2 of them tumour), all found; tumour: truth 2 voxels, predicted 1 of them
    gt1 = np.array([1, 1, 1, 1, 1, 1, 2, 2, 0, 0], np.uint8)
    pred1 = np.array([1, 1, 1, 1, 1, 1, 1, 2, 0, 0], np.uint8)
    meter.update(pred1, gt1)
    # case 2: 2 liver voxels, none predicted: Dice 0; no tumour in the truth
    meter.update(np.zeros(4, np.uint8), np.array([1, 1, 0, 0], np.uint8))
    result = meter.result()
    assert result["cases"] == 2
    assert result["dice_mean"] == pytest.approx(50.0)  # (1 + 0) / 2
    assert result["dice_global"] == pytest.approx(100 * 2 * 8 / (8 + 8 + 0 + 2))  # 88.9: the large case dominates
    assert result["tumour_dice_mean"] == pytest.approx(100 * 2 * 1 / (1 + 2))  # case 1 only


def test_dice_meter_scores_an_empty_case_predicted_empty_as_one_and_omits_tumour_without_tumour():
    meter = DiceMeter()
    meter.update(torch.zeros(2, 2, 2, dtype=torch.uint8), torch.zeros(2, 2, 2, dtype=torch.uint8))
    meter.update(np.array([[1, 0]], np.uint8), np.array([[1, 1]], np.uint8))  # 2 * 1 / 3
    result = meter.result()
    assert result["dice_mean"] == pytest.approx(100 * (1 + 2 / 3) / 2)
    assert result["dice_global"] == pytest.approx(100 * 2 / 3)
    assert "tumour_dice_mean" not in result


def test_dice_meter_without_cases_is_an_error_never_nan():
    with pytest.raises(ValueError, match="no case"):
        DiceMeter().result()
