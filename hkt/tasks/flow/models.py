"""RAFT parent and child (torchvision's RAFT class), and their three aligned blocks for HKT.

Paper scale: `raft_large` (5,257,536 parameters) -> `raft_small` (990,162), torchvision's own
builders, so a deployed child's state_dict loads strictly into `raft_small()`. Smoke scale:
the same `RAFT` class at reduced widths (`raft_smoke_large`, `raft_smoke_small`), built with the
same layer types as the paper pair (residual blocks, instance norm and the convex-upsampling
mask predictor for the parent; bottleneck blocks and bilinear upsampling for the child), and a
3-level correlation pyramid so that 64x64 crops fit (the 4-level pyramid needs 128 px).

The paper's three aligned blocks (Algorithm 1 on RAFT):

    1 feature encoder     (image1, image2)                 -> (fmap1, fmap2, image1)
    2 context encoder     (fmap1, fmap2, image1)           -> (fmap1, fmap2, hidden, context)
    3 flow prediction     (fmap1, fmap2, hidden, context)  -> [flow_1 .. flow_N]
                          correlation pyramid, N recurrent updates, upsampling to full size

`mixed_leaves` says which leaves each boundary mixes: with three stages the first boundary
mixes the feature maps and the second the hidden state and context (the image only rides
along); with two stages the one boundary (after both encoders) mixes the feature maps only.
RAFT's two encoders run in parallel (the context encoder reads image1, never the feature maps),
so mixing the feature maps before the context encoder is the same computation as mixing them
after it: had 2HKT mixed all four leaves at its one boundary, it would equal 3HKT exactly
(hkt.inheritance.mixing_plans; HKT refuses such a pair). 2HKT is therefore RAFT's feature
extraction and flow prediction inherited, and 3HKT adds the context encoder (results/
discrepancies.csv, raft-stages).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.nn import BatchNorm2d, InstanceNorm2d
from torchvision.models.optical_flow import raft_large, raft_small
from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow
from torchvision.models.optical_flow.raft import RAFT, BottleneckBlock, CorrBlock, ResidualBlock, _raft

PAPER_PARAMETERS = {"raft_large": 5_257_536, "raft_small": 990_162}


def _smoke_large() -> RAFT:
    return _raft(
        feature_encoder_layers=(24, 24, 32, 48, 64),
        feature_encoder_block=ResidualBlock,
        feature_encoder_norm_layer=InstanceNorm2d,
        context_encoder_layers=(24, 24, 32, 48, 64),
        context_encoder_block=ResidualBlock,
        context_encoder_norm_layer=BatchNorm2d,
        corr_block_num_levels=3,
        corr_block_radius=3,
        motion_encoder_corr_layers=(64, 48),
        motion_encoder_flow_layers=(32, 16),
        motion_encoder_out_channels=48,
        recurrent_block_hidden_state_size=32,
        recurrent_block_kernel_size=((1, 5), (5, 1)),
        recurrent_block_padding=((0, 2), (2, 0)),
        flow_head_hidden_size=64,
        use_mask_predictor=True,
    )


def _smoke_small() -> RAFT:
    return _raft(
        feature_encoder_layers=(16, 16, 24, 32, 32),
        feature_encoder_block=BottleneckBlock,
        feature_encoder_norm_layer=InstanceNorm2d,
        context_encoder_layers=(16, 16, 24, 32, 40),
        context_encoder_block=BottleneckBlock,
        context_encoder_norm_layer=None,
        corr_block_num_levels=3,
        corr_block_radius=3,
        motion_encoder_corr_layers=(48,),
        motion_encoder_flow_layers=(32, 16),
        motion_encoder_out_channels=40,
        recurrent_block_hidden_state_size=24,
        recurrent_block_kernel_size=(3,),
        recurrent_block_padding=(1,),
        flow_head_hidden_size=48,
        use_mask_predictor=False,
    )


BUILDERS = {
    "raft_large": raft_large,
    "raft_small": raft_small,
    "raft_smoke_large": _smoke_large,
    "raft_smoke_small": _smoke_small,
}


class Float32CorrBlock(CorrBlock):
    """torchvision's correlation block, computed and looked up in float32 under autocast, as RAFT's
    mixed precision does (raft.py casts fmap1 and fmap2 to float before CorrBlock and indexes it
    outside autocast). Built under bf16 autocast instead, the pyramid would be bf16, and autocast
    promotes grid_sample to its widest input: every lookup of every update would cast the whole
    pyramid to float32 again and keep that copy for backward (traced: 3HKT at 400x720, batch 6,
    33 GiB under bf16 against 19 GiB in float32). No parameters: state_dicts are unchanged."""

    def build_pyramid(self, fmap1, fmap2):
        with torch.autocast(fmap1.device.type, enabled=False):
            super().build_pyramid(fmap1.float(), fmap2.float())

    def index_pyramid(self, centroids_coords):
        with torch.autocast(centroids_coords.device.type, enabled=False):
            return super().index_pyramid(centroids_coords.float())


def build(arch: str) -> RAFT:
    """A freshly initialised RAFT of the named architecture (no weights are downloaded), its
    correlation in float32 under autocast (Float32CorrBlock)."""
    if arch not in BUILDERS:
        raise ValueError(f"unknown RAFT architecture {arch!r}; known: {sorted(BUILDERS)}")
    model = BUILDERS[arch]() if arch.startswith("raft_smoke") else BUILDERS[arch](weights=None)
    corr = model.corr_block
    model.corr_block = Float32CorrBlock(num_levels=corr.num_levels, radius=corr.radius)
    return model


def _features(model: RAFT, pair):
    image1, image2 = pair
    if image1.shape != image2.shape:
        raise ValueError(f"the two images differ in shape: {tuple(image1.shape)} and {tuple(image2.shape)}")
    fmap1, fmap2 = model.feature_encoder(torch.cat([image1, image2], dim=0)).chunk(2, dim=0)
    return fmap1, fmap2, image1


def _context(model: RAFT, signal):
    fmap1, fmap2, image1 = signal
    out = model.context_encoder(image1)
    hidden_size = model.update_block.hidden_state_size
    hidden, context = out.split([hidden_size, out.shape[1] - hidden_size], dim=1)
    return fmap1, fmap2, torch.tanh(hidden), F.relu(context)


def _predict(model: RAFT, signal, updates: int) -> list[torch.Tensor]:
    """RAFT's iterations (torchvision's RAFT.forward after the encoders), from any signal."""
    fmap1, fmap2, hidden, context = signal
    batch, _, h, w = fmap1.shape
    model.corr_block.build_pyramid(fmap1, fmap2)
    coords0 = make_coords_grid(batch, h, w).to(fmap1.device)
    coords1 = coords0.clone()
    predictions = []
    for _ in range(updates):
        coords1 = coords1.detach()  # as RAFT: no gradient through the coordinate update chain
        corr = model.corr_block.index_pyramid(centroids_coords=coords1)
        hidden, delta = model.update_block(hidden, context, corr, coords1 - coords0)
        coords1 = coords1 + delta.float()  # as RAFT: the coordinates accumulate in float32
        up_mask = None if model.mask_predictor is None else model.mask_predictor(hidden)
        predictions.append(upsample_flow(flow=coords1 - coords0, up_mask=up_mask))
    return predictions


def blocks(model: RAFT, updates: int) -> list:
    """The three aligned functional blocks; composed they are `model(image1, image2, updates)`."""
    return [lambda pair: _features(model, pair), lambda s: _context(model, s), lambda s: _predict(model, s, updates)]


def mixed_leaves(stages: int) -> list[list[int]]:
    """3HKT: the feature maps, then hidden state and context; 2HKT: the feature maps only."""
    if stages == 3:
        return [[0, 1], [2, 3]]
    return [[0, 1]]


def run(model: RAFT, pair, updates: int) -> list[torch.Tensor]:
    """The plain model on an image pair: the deployed child (or the parent) runs exactly this."""
    return model(pair[0], pair[1], num_flow_updates=updates)


def feature_points(model: RAFT) -> dict[str, str]:
    """RAFT's two encoders (torchvision's module names, on every RAFT of the suite)."""
    return {"features": "feature_encoder", "context": "context_encoder"}
