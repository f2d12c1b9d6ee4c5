"""Liver segmentation metrics as LiTS reports them, the training loss, and scoring: whole volumes
predicted with an overlapping sliding window whose logits are averaged (no MONAI needed for this;
the window is the training patch), and the Dice of a model over cases.

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
import torch.nn.functional as F

from hkt.models import evaluating

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


# ---------------------------------------------------------------------------------------------
# The training loss, whole volumes, and scoring
# ---------------------------------------------------------------------------------------------
def segmentation_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy plus (1 - soft Dice) averaged over liver and tumour. H-DenseUNet trains with
    weighted cross-entropy, PocketNet with Dice; the sum serves both (results/discrepancies.csv)."""
    ce = F.cross_entropy(logits.float(), target)
    probs = logits.float().softmax(1)
    onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).to(probs.dtype)
    dims = tuple(range(2, logits.dim()))
    inter = (probs * onehot).sum(dims)[:, 1:]
    denom = (probs + onehot).sum(dims)[:, 1:]
    soft_dice = (2 * inter + 1) / (denom + 1)  # +1: an absent class predicted absent scores 1
    return ce + (1 - soft_dice).mean()


def padded(array: np.ndarray, patch) -> np.ndarray:
    """Zero-pad (the window's floor, air) at the far end so that every axis holds a patch."""
    pads = [(0, max(0, p - s)) for s, p in zip(array.shape, patch, strict=True)]
    return np.pad(array, pads) if any(p for _, p in pads) else array


def _starts(size: int, window: int, step: int) -> list[int]:
    starts = list(range(0, max(size - window, 0) + 1, step))
    if starts[-1] + window < size:
        starts.append(size - window)
    return starts


@torch.no_grad()
def sliding_window(
    model, image: np.ndarray | torch.Tensor, patch, *, overlap: float = 0.5, device=None
) -> torch.Tensor:
    """Logits (C, D, H, W) of a whole volume (D, H, W): windows of `patch` overlapping by
    `overlap`, their logits averaged where they overlap; volumes smaller than a window are
    zero-padded and cropped back."""
    vol = torch.as_tensor(image, dtype=torch.float32)
    size = tuple(vol.shape)
    vol = torch.from_numpy(padded(vol.numpy(), patch))
    device = device or torch.device("cpu")
    steps = [max(1, int(p * (1 - overlap))) for p in patch]
    grid = [_starts(s, p, st) for s, p, st in zip(vol.shape, patch, steps, strict=True)]
    total = count = None
    for z in grid[0]:
        for y in grid[1]:
            for x in grid[2]:
                window = (slice(z, z + patch[0]), slice(y, y + patch[1]), slice(x, x + patch[2]))
                logits = model(vol[window][None, None].to(device))[0].float().cpu()
                if total is None:
                    total = torch.zeros((logits.shape[0], *vol.shape))
                    count = torch.zeros(vol.shape)
                total[(slice(None), *window)] += logits
                count[window] += 1
    return (total / count)[:, : size[0], : size[1], : size[2]]


def predict_labels(model, image, patch, *, overlap: float = 0.5, device=None) -> np.ndarray:
    """Label map (D, H, W) uint8: the arg-max class of the averaged window logits."""
    return sliding_window(model, image, patch, overlap=overlap, device=device).argmax(0).numpy().astype(np.uint8)


def dice_of(model, cases, patch, overlap, device) -> dict:
    meter = DiceMeter()
    with evaluating(model):
        for _, image, labels in cases:
            meter.update(predict_labels(model, image, patch, overlap=overlap, device=device), labels)
    return meter.result()
