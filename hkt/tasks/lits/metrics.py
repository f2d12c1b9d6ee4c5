"""Liver segmentation metrics as LiTS reports them.

LiTS (Bilic et al., Medical Image Analysis 2023) ranks liver segmentation by "Dice per case"
(D-Mean: the mean over cases of each case's Dice) and also reports "Dice global" (one Dice over
all voxels of all cases pooled, which large livers dominate); both in %. The liver is every
labelled voxel (label >= 1: LiTS's liver includes its tumours), the tumour label 2.

Conventions, fixed here because they decide scores on edge cases:
- Dice(A, B) = 2|A n B| / (|A| + |B|), and 1 when A and B are both empty (nothing to find, nothing
  found: a perfect answer, as LiTS's evaluation scores it);
- a case whose truth holds the structure but whose prediction holds none of it scores 0 (and
  so does the reverse);
- the per-case tumour Dice is averaged over the cases whose truth holds tumour only, so that
  tumour-free cases, trivially 1 for a model that never predicts tumour, do not inflate it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

LIVER, TUMOUR = 1, 2


def _counts(pred, gt) -> tuple[int, int, int]:
    """(|A n B|, |A|, |B|) for two boolean masks of one shape, numpy or torch (mixed too)."""
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(f"dice: prediction shape {tuple(pred.shape)} differs from truth shape {tuple(gt.shape)}")
    for name, mask in (("prediction", pred), ("truth", gt)):
        if mask.dtype not in (np.bool_, torch.bool):
            # a label map (0/1/2) here would silently count tumour as liver, or not: make the caller say
            raise TypeError(f"dice: the {name} must be a boolean mask, got {mask.dtype} (see liver_mask, tumour_mask)")
    if isinstance(pred, torch.Tensor) or isinstance(gt, torch.Tensor):
        device = pred.device if isinstance(pred, torch.Tensor) else gt.device
        pred, gt = torch.as_tensor(pred, device=device), torch.as_tensor(gt, device=device)
        return int((pred & gt).sum()), int(pred.sum()), int(gt.sum())
    pred, gt = np.asarray(pred), np.asarray(gt)
    return int(np.count_nonzero(pred & gt)), int(np.count_nonzero(pred)), int(np.count_nonzero(gt))


def _dice_from_counts(intersection: int, pred: int, gt: int) -> float:
    return 1.0 if pred + gt == 0 else 2.0 * intersection / (pred + gt)


def dice(pred, gt) -> float:
    """2|A n B| / (|A| + |B|) of two boolean masks of any equal shape (numpy or torch); 1.0 when
    both are empty. ValueError on a shape mismatch, TypeError on a non-boolean mask."""
    return _dice_from_counts(*_counts(pred, gt))


def liver_mask(labels):
    """The liver as LiTS scores it: liver and tumour voxels (label >= 1)."""
    return labels >= LIVER


def tumour_mask(labels):
    return labels == TUMOUR


class DiceMeter:
    """LiTS's liver scores over cases added one at a time (each a whole volume's label maps).

    `result()` gives, in %: "dice_mean" (per-case liver Dice averaged: LiTS's D-Mean, the paper's
    Table 3 number), "dice_global" (liver Dice of all cases' voxels pooled), "tumour_dice_mean"
    (per-case tumour Dice averaged over the cases whose truth holds tumour; the key is left out,
    not NaN, when none does) and "cases". Voxel counts are integers, so the order of cases does
    not change the result.
    """

    def __init__(self):
        self.liver_dices: list[float] = []
        self.tumour_dices: list[float] = []
        self.pooled = [0, 0, 0]  # |A n B|, |A|, |B| of the liver over all cases

    def update(self, pred_labels, gt_labels) -> None:
        """Add one case: predicted and true label maps (0 background, 1 liver, 2 tumour)."""
        counts = _counts(liver_mask(pred_labels), liver_mask(gt_labels))
        self.liver_dices.append(_dice_from_counts(*counts))
        self.pooled = [total + c for total, c in zip(self.pooled, counts, strict=True)]
        tumour = _counts(tumour_mask(pred_labels), tumour_mask(gt_labels))
        if tumour[2] > 0:
            self.tumour_dices.append(_dice_from_counts(*tumour))

    def result(self) -> dict[str, float]:
        if not self.liver_dices:
            raise ValueError("DiceMeter: no case was added")
        result = {
            "dice_mean": 100.0 * math.fsum(self.liver_dices) / len(self.liver_dices),
            "dice_global": 100.0 * _dice_from_counts(*self.pooled),
            "cases": len(self.liver_dices),
        }
        if self.tumour_dices:
            result["tumour_dice_mean"] = 100.0 * math.fsum(self.tumour_dices) / len(self.tumour_dices)
        return result
