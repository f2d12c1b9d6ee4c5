"""Optical-flow metrics, RAFT's sequence loss, RAFT's input padding, and scoring: a model's flow for
one pair and the pixel-pooled EPE over pairs.

Followed (read, not copied): princeton-vl/RAFT `train.py` (sequence_loss), `evaluate.py`
(validate_sintel, validate_kitti) and `core/utils/utils.py` (InputPadder), and torchvision's
`references/optical_flow/utils.py` (compute_metrics, sequence_loss, InputPadder), which agree
with RAFT on every point used here. Flows are (B, 2, H, W) in pixels; masks are (B, H, W) bool.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hkt.models import evaluating
from hkt.tasks.flow import models

MAX_FLOW = 400.0  # RAFT's training excludes ground-truth displacements of 400 px and more
OUTLIER_PX = 3.0  # KITTI devkit: an outlier's end-point error exceeds 3 px ...
OUTLIER_REL = 0.05  # ... and 5% of the ground-truth magnitude (both strict)
ACCURACY_PX = (1, 3, 5)  # RAFT's and torchvision's "1px/3px/5px": share of pixels with error < N px


# -- sequence loss -------------------------------------------------------------------------------


def training_mask(flow: torch.Tensor, valid: torch.Tensor, max_flow: float = MAX_FLOW) -> torch.Tensor:
    """The pixels RAFT trains on: valid ground truth whose magnitude is below `max_flow`."""
    return valid & (flow.norm(dim=1) < max_flow)


def sequence_loss(predictions, target, *, gamma: float = 0.8, max_flow: float = MAX_FLOW) -> torch.Tensor:
    """RAFT's loss over the N flow predictions, target = (flow_gt, valid):

        L = sum_i gamma^(N-i-1) * sum_{b,c,h,w} m_bhw |pred_i - gt|_bchw / (B * 2 * H * W)

    with m = valid & |gt| < max_flow. This is exactly RAFT's `(valid[:, None] * i_loss).mean()`
    and torchvision's reference: the absolute difference is averaged over the two channels and
    over ALL pixels, the excluded ones counting as zeros. It is therefore not a mean over the
    valid pixels: on sparse ground truth (KITTI) it is scaled by the valid fraction, as in RAFT.
    We keep RAFT's normalisation because the paper names RAFT's loss, and because the recipes
    we reproduce (RAFT's learning rates and clipping, DRAFT's alpha) were tuned on this scale;
    it is also 0, not NaN, on a batch without a valid pixel.
    """
    flow, valid = target
    if not predictions:
        raise ValueError("sequence_loss needs at least one prediction")
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
    _check_flows(predictions[-1], flow, valid)
    mask = training_mask(flow, valid, max_flow)[:, None]
    n = len(predictions)
    total = flow.new_zeros(())
    for i, pred in enumerate(predictions):
        # where(), not RAFT's product: equal on finite values, and a NaN in an excluded pixel stays out
        error = torch.where(mask, (pred - flow).abs(), 0.0)
        total = total + gamma ** (n - i - 1) * error.mean()
    return total


# -- metrics -------------------------------------------------------------------------------------


def _check_flows(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None) -> None:
    if pred.dim() != 4 or pred.shape[1] != 2 or pred.shape != gt.shape:
        raise ValueError(f"flows must both be (B, 2, H, W), got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if valid is not None:
        if valid.dtype != torch.bool:
            raise ValueError(f"the valid mask must be bool, got {valid.dtype}")
        if valid.shape != gt.shape[:1] + gt.shape[2:]:
            raise ValueError(
                f"the valid mask must be (B, H, W) = {tuple(gt.shape[:1] + gt.shape[2:])}, got {tuple(valid.shape)}"
            )


def _pixel_errors(pred, gt, valid):
    """End-point errors, ground-truth magnitudes and the mask, all (B, H, W)."""
    _check_flows(pred, gt, valid)
    if valid is None:
        valid = torch.ones(gt.shape[:1] + gt.shape[2:], dtype=torch.bool, device=gt.device)
    if not valid.any():
        raise ValueError("no valid pixel")
    return (pred - gt).norm(dim=1), gt.norm(dim=1), valid


def is_outlier(error: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
    """KITTI's outlier: error > 3 px and error > 5% of |gt|. Written as a product, not RAFT's
    error / |gt| > 0.05: the same set (where |gt| = 0 any error > 3 px counts), without 0 / 0."""
    return (error > OUTLIER_PX) & (error > OUTLIER_REL * magnitude)


def epe(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Mean end-point error (px) over the valid pixels of the batch, pooled."""
    error, _, valid = _pixel_errors(pred, gt, valid)
    return float(error[valid].double().mean())


def fl_all(pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Percentage of the batch's valid pixels that are outliers (KITTI-2015 Fl-all)."""
    error, magnitude, valid = _pixel_errors(pred, gt, valid)
    return 100.0 * float(is_outlier(error, magnitude)[valid].double().mean())


class FlowMeter:
    """A dataset's metrics, accumulated image by image as RAFT's evaluation aggregates them:

    - `pixel_epe`: EPE pooled over all valid pixels of the dataset (RAFT's Sintel number, and
      torchvision's "epe", whose meters are weighted by pixel count);
    - `image_epe`: the mean of per-image EPEs (RAFT's KITTI number, torchvision's "per_image_epe");
    - Fl-all pooled over all valid pixels of the dataset (RAFT's KITTI number and the KITTI
      devkit's definition), in %;
    - 1/3/5 px accuracies pooled over pixels, as fractions (RAFT and torchvision print fractions).

    Sums are kept in float64 so the order of images does not change the result.
    """

    def __init__(self):
        self.pixels = 0
        self.error_sum = 0.0
        self.outliers = 0
        self.within = dict.fromkeys(ACCURACY_PX, 0)
        self.image_epes: list[float] = []

    def update(self, pred: torch.Tensor, gt: torch.Tensor, valid: torch.Tensor | None = None) -> None:
        """Add a batch of images; each image needs at least one valid pixel (its EPE is a mean)."""
        error, magnitude, valid = _pixel_errors(pred, gt, valid)
        per_image = valid.flatten(1).sum(dim=1)
        if (per_image == 0).any():
            raise ValueError("no valid pixel in an image of the batch")
        error, magnitude, valid = error.double(), magnitude.double(), valid.double()
        sums = (error * valid).flatten(1).sum(dim=1)
        self.image_epes += (sums / per_image).tolist()
        self.pixels += int(per_image.sum())
        self.error_sum += float(sums.sum())
        self.outliers += int((is_outlier(error, magnitude) * valid).sum())
        for px in ACCURACY_PX:
            self.within[px] += int(((error < px) * valid).sum())

    @property
    def pixel_epe(self) -> float:
        return self.error_sum / self._pixels()

    @property
    def image_epe(self) -> float:
        self._pixels()
        return sum(self.image_epes) / len(self.image_epes)

    def _pixels(self) -> int:
        if self.pixels == 0:
            raise ValueError("no valid pixel: the meter saw no image")
        return self.pixels

    def result(self, *, kitti: bool = False) -> dict[str, float]:
        """{"epe", "fl_all", "1px", "3px", "5px"}; "epe" is the per-image mean for KITTI
        (kitti=True), the pixel-pooled mean otherwise, as RAFT reports each dataset."""
        pixels = self._pixels()
        return {
            "epe": self.image_epe if kitti else self.pixel_epe,
            "fl_all": 100.0 * self.outliers / pixels,
            **{f"{px}px": self.within[px] / pixels for px in ACCURACY_PX},
        }


# -- padding -------------------------------------------------------------------------------------

PAD_MODES = ("sintel", "kitti")


def pad_to_multiple(images: torch.Tensor, multiple: int = 8, mode: str = "sintel"):
    """Replicate-pad (..., H, W) images so that H and W are multiples of `multiple`, as RAFT's
    InputPadder does: "sintel" splits the padding evenly (the odd pixel right / bottom);
    "kitti" splits the width evenly and puts all the height padding at the BOTTOM (RAFT's
    kitti mode pads [w//2, w - w//2, 0, h]: nothing on top). Returns (padded, pads) with
    pads = (left, right, top, bottom) for `unpad`."""
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = images.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    top = pad_h // 2 if mode == "sintel" else 0
    pads = (pad_w // 2, pad_w - pad_w // 2, top, pad_h - top)
    return F.pad(images, pads, mode="replicate"), pads


def unpad(x: torch.Tensor, pads) -> torch.Tensor:
    """Crop what `pad_to_multiple` added (works on the padded images and on flows predicted from them)."""
    left, right, top, bottom = pads
    h, w = x.shape[-2:]
    return x[..., top : h - bottom, left : w - right]


# -- scoring ---------------------------------------------------------------------------------------


@torch.no_grad()
def epe_on(model, pairs, updates: int, device) -> dict:
    """Pixel-pooled EPE of `model` over (image1, image2, flow, valid) pairs, one at a time."""
    meter = FlowMeter()
    with evaluating(model):
        for a, b, flow, valid in pairs:
            meter.update(infer_pair(model, a, b, updates, device)[None], flow[None], valid[None])
    return {"epe": meter.result()["epe"]}


def infer_pair(model, a, b, updates: int, device, mode: str = "sintel") -> torch.Tensor:
    """The final flow for one pair, padded to a multiple of 8 as RAFT's InputPadder does."""
    batch, pads = pad_to_multiple(torch.stack([a, b]).to(device), mode=mode)
    flow = models.run(model, (batch[:1], batch[1:]), updates)[-1]
    return unpad(flow, pads)[0].cpu()
