"""LiTS parent and child (3-D liver / tumour segmentation) and their three aligned blocks for HKT.

Both networks map a CT patch (B, 1, D, H, W), intensities in [0, 1], H and W multiples of 32,
to logits (B, 3, D, H, W) for background / liver / tumour. Every downsampling is in-plane only,
so any depth D works and every feature map keeps depth D.

Child, PocketNet (Celaya et al. 2022): a U-Net whose levels all keep `width` filters; `depth`
counts resolution levels including the bottleneck (the authors' `depth` counts poolings, so
their default, 16 filters and depth 4, is PocketNet(width=16, depth=5) here: 146,211
parameters; convolutions carry no bias, as the norm after each makes it redundant).
`pocketnet` = width 32, depth 6 (five (1,2,2) poolings, hence H, W multiples of 32): 721,219
parameters, the largest constant-width net these patches allow at 32 filters and within 10% of
the paper's ~0.8M. `pocketnet_smoke` = width 8, depth 3: 19,411.

Parent, H-DenseUNet (Li et al. 2018): (a) a 2-D DenseUNet run on every slice with its two
neighbours as three channels (edge slices repeat), encoder = torchvision's DenseNet features,
decoder = five x2 upsampling stages (add the encoder feature of that scale, 1x1-projected where
widths differ, then 3x3 conv) back to full size, and a 2-D classifier; (b) a 3-D DenseUNet of
the same layout on the volume concatenated with the 2-D softmax; (c) hybrid fusion: 2-D final
features (stacked back into a volume) + 3-D final features, 3x3x3 conv, 1x1x1 output conv.
`hdenseunet` = DenseNet-161 encoder, decoder widths 768/384/96/96/64 (the release's), 3-D
blocks (3,4,12,8), growth 32, 96 initial features, 3-D decoder 504/224/192/96/64:
65,964,022 parameters (2-D encoder 26.5M, 2-D decoder 23.1M, 3-D encoder 4.2M, 3-D decoder
12.2M, fusion 0.1M; the release has ~61M, the paper quotes 80M). `hdenseunet_smoke` (DenseNet
growth 8, blocks (2,2,2,2), 16 initial features; 3-D blocks (1,1,1,1), growth 8): 103,974.
Departures from the release: the 3-D part pools in-plane only (D is arbitrary here), no dropout,
the 2-D logits are not returned (no auxiliary 2-D loss) and nothing is ImageNet-initialised.

The three aligned blocks (Algorithm 1), the same boundaries for both networks:

    1 encoder          x                    -> (bottleneck, carry)
    2 decoder to 1/4   (bottleneck, carry)  -> (decoder map at 1/4 in-plane, carry)
    3 rest             (map, carry)         -> logits

Boundary 1 is the encoder bottleneck: 1/32 in-plane for H-DenseUNet and `pocketnet`, the
deepest level 1/2^(depth-1) for other PocketNets (1/4 for `pocketnet_smoke`).

PocketNet's boundary 2 is the decoder level at H/4 (level 2), or its deepest decoder level if it
has none at H/4: depth 3 (`pocketnet_smoke`, bottleneck at H/4) uses the decoder level at H/2.
For H-DenseUNet leaf 0 is the 2-D path's per-slice map stacked into (B, C, D, h, w); the parent's
third block holds the end of the 2-D decoder, the whole 3-D DenseUNet and the fusion.

Every signal is (feature, carry): leaf 0 is the 5-D map that HKT mixes, leaf 1 is everything
later blocks need (skip connections; the input volume for the parent's 3-D part), flattened per
sample and concatenated. One packed leaf, rather than one leaf per skip, because
hkt.inheritance.build_inheritance needs parent and child boundaries to carry equally many
leaves, and the two networks (and the two scales) have different numbers of skips.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import DenseNet, densenet161

PAPER_PARAMETERS = {"pocketnet": 721_219, "hdenseunet": 65_964_022}
_DENSENET_LAYOUT = (
    "conv0",
    "norm0",
    "relu0",
    "pool0",
    "denseblock1",
    "transition1",
    "denseblock2",
    "transition2",
    "denseblock3",
    "transition3",
    "denseblock4",
    "norm5",
)
_TAPS_2D = ("relu0", "denseblock1", "denseblock2", "denseblock3")  # outputs at 1/2, 1/4, 1/8, 1/16


def _pack(like: torch.Tensor, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One (B, N) leaf holding `tensors`, each flattened per sample (row b is sample b)."""
    batch = like.shape[0]
    if not tensors:
        return like.new_zeros(batch, 0)
    return torch.cat([t.reshape(batch, -1) for t in tensors], dim=1)


def _unpack(carry: torch.Tensor, shapes: Sequence[tuple[int, ...]]) -> list[torch.Tensor]:
    """Invert `_pack`; `shapes` are the full shapes the receiving block expects."""
    batch = carry.shape[0]
    sizes = [math.prod(s) // batch for s in shapes]
    if sum(sizes) != carry.shape[1]:
        raise ValueError(
            f"the carried leaf holds {carry.shape[1]} values per sample but this block expects {sum(sizes)} "
            f"(shapes {list(shapes)}): was the signal made by another architecture or input size?"
        )
    return [piece.reshape(s) for piece, s in zip(carry.split(sizes, dim=1), shapes, strict=True)]


def _check_input(x: torch.Tensor, channels: int, multiple: int) -> None:
    if x.dim() != 5 or x.shape[1] != channels:
        raise ValueError(f"expected a patch (B, {channels}, D, H, W), got shape {tuple(x.shape)}")
    if x.shape[-1] % multiple or x.shape[-2] % multiple:
        # the carried skips are unpacked from shapes derived by exact halving
        raise ValueError(f"H and W must be multiples of {multiple}, got {tuple(x.shape[-2:])}")


def _to_volume(slices: torch.Tensor, batch: int) -> torch.Tensor:
    """(B*D, C, h, w) per-slice maps -> (B, C, D, h, w); slices of one sample are consecutive."""
    bd, c, h, w = slices.shape
    return slices.reshape(batch, bd // batch, c, h, w).transpose(1, 2)


def _to_slices(volume: torch.Tensor) -> torch.Tensor:
    b, c, d, h, w = volume.shape
    return volume.transpose(1, 2).reshape(b * d, c, h, w)


def _conv_norm_relu(dims: int, cin: int, cout: int) -> nn.Sequential:
    conv, norm = (nn.Conv2d, nn.BatchNorm2d) if dims == 2 else (nn.Conv3d, nn.BatchNorm3d)
    # no conv bias: the norm's shift makes it redundant
    return nn.Sequential(conv(cin, cout, 3, padding=1, bias=False), norm(cout), nn.ReLU(inplace=True))


class _ThreeBlocks(nn.Module):
    """A network defined by its three aligned blocks (encode, decode, finish): the forward pass
    is their composition by construction, so HKT's stages and the plain model never disagree."""

    def blocks(self) -> list:
        return [self.encode, self.decode, self.finish]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks():
            x = block(x)
        return x


# --- PocketNet -----------------------------------------------------------------------------------


class PocketNet(_ThreeBlocks):
    """Constant-width 3-D U-Net with in-plane (1,2,2) pooling and skip concatenation."""

    def __init__(self, in_channels: int = 1, classes: int = 3, width: int = 32, depth: int = 6, convs: int = 2):
        super().__init__()
        if depth < 2 or convs < 1:
            raise ValueError(f"PocketNet needs depth >= 2 and convs >= 1, got depth={depth}, convs={convs}")
        self.in_channels, self.width, self.depth = in_channels, width, depth

        def block(cin: int) -> nn.Sequential:
            return nn.Sequential(*[_conv_norm_relu(3, cin if i == 0 else width, width) for i in range(convs)])

        # encoder[l] works at in-plane scale 1/2^l; the last one is the bottleneck
        self.encoder = nn.ModuleList([block(in_channels if level == 0 else width) for level in range(depth)])
        # decoder[l] works at scale 1/2^l on [upsampled deeper map, skip l]
        self.decoder = nn.ModuleList([block(2 * width) for _ in range(depth - 1)])
        self.head = nn.Conv3d(width, classes, 1)
        self.cut = min(2, depth - 2)  # decoder level of boundary 2: H/4, or the deepest decoder level

    def _skip_shapes(self, feature: torch.Tensor, level: int, levels: range) -> list[tuple[int, ...]]:
        b, _, d, h, w = feature.shape
        return [(b, self.width, d, h << (level - k), w << (level - k)) for k in levels]

    def _up(self, feature: torch.Tensor, skip: torch.Tensor, level: int) -> torch.Tensor:
        feature = F.interpolate(feature, scale_factor=(1, 2, 2), mode="nearest")
        return self.decoder[level](torch.cat([feature, skip], dim=1))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 1: -> (bottleneck (B, width, D, H/2^(depth-1), W/2^(depth-1)), skips 0..depth-2)."""
        _check_input(x, self.in_channels, 2 ** (self.depth - 1))
        skips = []
        for block in self.encoder[:-1]:
            x = block(x)
            skips.append(x)
            x = F.max_pool3d(x, (1, 2, 2))
        bottom = self.encoder[-1](x)
        return bottom, _pack(bottom, skips)

    def decode(self, signal) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 2: decoder levels depth-2 .. cut -> (map at 1/2^cut, skips 0..cut-1)."""
        feature, carry = signal
        top = self.depth - 1
        skips = _unpack(carry, self._skip_shapes(feature, top, range(top)))
        for level in range(top - 1, self.cut - 1, -1):
            feature = self._up(feature, skips[level], level)
        return feature, _pack(feature, skips[: self.cut])

    def finish(self, signal) -> torch.Tensor:
        """Block 3: the remaining decoder levels and the 1x1x1 output conv."""
        feature, carry = signal
        skips = _unpack(carry, self._skip_shapes(feature, self.cut, range(self.cut)))
        for level in range(self.cut - 1, -1, -1):
            feature = self._up(feature, skips[level], level)
        return self.head(feature)


# --- H-DenseUNet ---------------------------------------------------------------------------------


class _UpStage(nn.Module):
    """Upsample x2 in-plane, add the (projected) encoder feature of that scale, 3x3(x3) conv."""

    def __init__(self, dims: int, cin: int, cskip: int | None, cout: int):
        super().__init__()
        self.scale = (2, 2) if dims == 2 else (1, 2, 2)
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.has_skip = cskip is not None
        # as the release: a 1x1 projection only where the encoder's width differs from the decoder's
        self.project = nn.Identity() if cskip in (None, cin) else conv(cskip, cin, 1)
        self.conv = _conv_norm_relu(dims, cin, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=self.scale, mode="nearest")
        if self.has_skip:
            x = x + self.project(skip)
        return self.conv(x)


def _decoder(dims: int, bottom: int, skips: Sequence[int], widths: Sequence[int]) -> nn.ModuleList:
    """Stages from 1/32 to full size; `skips` are the encoder widths at 1/16, 1/8, 1/4, 1/2."""
    if len(widths) != 5:
        raise ValueError(f"a decoder from 1/32 to full size has 5 stages, got widths {tuple(widths)}")
    cins = [bottom, *widths[:-1]]
    return nn.ModuleList(_UpStage(dims, cins[i], ([*skips, None])[i], widths[i]) for i in range(5))


class _DenseLayer3d(nn.Module):
    """DenseNet-BC layer in 3-D: BN-ReLU-1x1x1 (bn_size*growth) -> BN-ReLU-3x3x3 (growth), concatenated."""

    def __init__(self, cin: int, growth: int, bn_size: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm3d(cin),
            nn.ReLU(inplace=True),
            nn.Conv3d(cin, bn_size * growth, 1, bias=False),
            nn.BatchNorm3d(bn_size * growth),
            nn.ReLU(inplace=True),
            nn.Conv3d(bn_size * growth, growth, 3, padding=1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], dim=1)


class DenseEncoder3d(nn.Module):
    """torchvision's DenseNet layout in 3-D with in-plane-only downsampling (any depth D)."""

    def __init__(self, cin: int, blocks: Sequence[int], growth: int, init_features: int, bn_size: int = 4):
        super().__init__()
        if len(blocks) != 4:
            raise ValueError(f"the 3-D DenseNet has 4 dense blocks, got {tuple(blocks)}")
        self.stem = nn.Sequential(
            nn.Conv3d(cin, init_features, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(init_features),
            nn.ReLU(inplace=True),
        )
        self.dense, self.transitions, self.widths = nn.ModuleList(), nn.ModuleList(), [init_features]
        c = init_features
        for i, layers in enumerate(blocks):
            self.dense.append(nn.Sequential(*[_DenseLayer3d(c + k * growth, growth, bn_size) for k in range(layers)]))
            c += layers * growth
            self.widths.append(c)
            if i < 3:
                self.transitions.append(
                    nn.Sequential(
                        nn.BatchNorm3d(c),
                        nn.ReLU(inplace=True),
                        nn.Conv3d(c, c // 2, 1, bias=False),
                        nn.AvgPool3d((1, 2, 2)),
                    )
                )
                c //= 2
        self.norm = nn.BatchNorm3d(c)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """-> (ReLU'd bottleneck at 1/32, features at [1/16, 1/8, 1/4, 1/2])."""
        x = self.stem(x)
        taps = [x]
        x = F.max_pool3d(x, (1, 3, 3), (1, 2, 2), (0, 1, 1))
        for i, block in enumerate(self.dense):
            x = block(x)
            if i < 3:
                taps.append(x)
                x = self.transitions[i](x)
        return F.relu(self.norm(x)), taps[::-1]


class HDenseUNet(_ThreeBlocks):
    """H-DenseUNet: 2-D DenseUNet on slice triplets, 3-D DenseUNet on volume + 2-D softmax, fusion."""

    def __init__(
        self,
        encoder2d: nn.Module,
        decoder2d: Sequence[int],
        blocks3d: Sequence[int],
        growth3d: int,
        init3d: int,
        decoder3d: Sequence[int],
        classes: int = 3,
    ):
        super().__init__()
        names = tuple(name for name, _ in encoder2d.named_children())
        if names != _DENSENET_LAYOUT:
            raise ValueError(f"encoder2d must be torchvision DenseNet `.features` ({_DENSENET_LAYOUT}), got {names}")
        if decoder2d[-1] != decoder3d[-1]:
            raise ValueError(
                f"the fusion adds 2-D and 3-D features: final widths differ ({decoder2d[-1]}, {decoder3d[-1]})"
            )
        # torchvision's DenseNet: a dense block's output width is what the next transition normalises
        skips2d = [encoder2d.conv0.out_channels] + [
            getattr(encoder2d, f"transition{i}").norm.num_features for i in (1, 2, 3)
        ]
        self.encoder2d = encoder2d
        self.decoder2d = _decoder(2, encoder2d.norm5.num_features, skips2d[::-1], decoder2d)
        self.classifier2d = nn.Conv2d(decoder2d[-1], classes, 1)
        self.encoder3d = DenseEncoder3d(1 + classes, blocks3d, growth3d, init3d)
        widths3d = self.encoder3d.widths
        self.decoder3d = _decoder(3, widths3d[-1], widths3d[-2::-1], decoder3d)
        self.fuse = _conv_norm_relu(3, decoder3d[-1], decoder3d[-1])
        self.head = nn.Conv3d(decoder3d[-1], classes, 1)
        self._skip_widths = skips2d  # at 1/2, 1/4, 1/8, 1/16

    def _shapes(self, volume: torch.Tensor, scale: int, scales: Sequence[int]) -> list[tuple[int, ...]]:
        """Shapes of the 2-D encoder features at `scales` (1/2^k) given a leaf-0 map at 1/2^scale."""
        b, _, d, h, w = volume.shape
        return [(b * d, self._skip_widths[k - 1], h << (scale - k), w << (scale - k)) for k in scales]

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 1: the 2-D encoder on every slice triplet -> (bottleneck (B, C, D, H/32, W/32), carry)."""
        _check_input(x, 1, 32)
        b, _, d, h, w = x.shape
        index = torch.arange(d, device=x.device)
        volume = x[:, 0]
        triplets = torch.stack(
            [volume[:, (index - 1).clamp(min=0)], volume, volume[:, (index + 1).clamp(max=d - 1)]], 2
        )
        f = triplets.reshape(b * d, 3, h, w)
        taps = []
        for name, module in self.encoder2d.named_children():
            f = module(f)
            if name in _TAPS_2D:
                taps.append(f)
        bottom = _to_volume(F.relu(f), b)  # torchvision's DenseNet applies this ReLU after norm5 too
        return bottom, _pack(bottom, [*taps[::-1], x])

    def decode(self, signal) -> tuple[torch.Tensor, torch.Tensor]:
        """Block 2: 2-D decoder stages to 1/4 -> (per-slice map (B, C, D, H/4, W/4), carry)."""
        bottom, carry = signal
        b, _, d, h, w = bottom.shape
        *skips, x = _unpack(carry, [*self._shapes(bottom, 5, (4, 3, 2, 1)), (b, 1, d, h * 32, w * 32)])
        f = _to_slices(bottom)
        for stage, skip in zip(self.decoder2d[:3], skips[:3], strict=True):
            f = stage(f, skip)
        quarter = _to_volume(f, b)
        return quarter, _pack(quarter, [skips[3], x])

    def finish(self, signal) -> torch.Tensor:
        """Block 3: end of the 2-D decoder, 2-D softmax, the 3-D DenseUNet and the hybrid fusion."""
        quarter, carry = signal
        b, _, d, h, w = quarter.shape
        half, x = _unpack(carry, [*self._shapes(quarter, 2, (1,)), (b, 1, d, h * 4, w * 4)])
        f = self.decoder2d[4](self.decoder2d[3](_to_slices(quarter), half))
        probs = _to_volume(self.classifier2d(f).softmax(dim=1), b)
        g, taps = self.encoder3d(torch.cat([x, probs], dim=1))
        for stage, skip in zip(self.decoder3d, [*taps, None], strict=True):
            g = stage(g, skip)
        return self.head(self.fuse(_to_volume(f, b) + g))


# --- registry ------------------------------------------------------------------------------------


def _hdenseunet() -> HDenseUNet:
    return HDenseUNet(
        densenet161(weights=None).features,  # block config (6,12,36,24), growth 48, 96 initial features
        decoder2d=(768, 384, 96, 96, 64),
        blocks3d=(3, 4, 12, 8),
        growth3d=32,
        init3d=96,
        decoder3d=(504, 224, 192, 96, 64),
    )


def _hdenseunet_smoke() -> HDenseUNet:
    return HDenseUNet(
        DenseNet(growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16).features,
        decoder2d=(32, 16, 16, 8, 8),  # thin full-resolution stages keep CPU steps fast
        blocks3d=(1, 1, 1, 1),
        growth3d=8,
        init3d=8,
        decoder3d=(16, 16, 8, 8, 8),
    )


ARCHS = {
    "pocketnet": lambda: PocketNet(width=32, depth=6),
    "pocketnet_smoke": lambda: PocketNet(width=8, depth=3),
    "hdenseunet": _hdenseunet,
    "hdenseunet_smoke": _hdenseunet_smoke,
}


def build(arch: str) -> nn.Module:
    """A freshly initialised network of the named architecture (no weights are downloaded)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown LiTS architecture {arch!r}; known: {sorted(ARCHS)}")
    return ARCHS[arch]()


def blocks(model: nn.Module) -> list:
    """The three aligned functional blocks; composed they are exactly `model(x)`."""
    if not isinstance(model, PocketNet | HDenseUNet):
        raise TypeError(f"expected a PocketNet or HDenseUNet, got {type(model).__name__}")
    return model.blocks()


def feature_points(model: nn.Module) -> dict[str, str]:
    """Named feature maps (hkt.features): "decoded", the last full-resolution volume features
    before the classifier (PocketNet's top decoder level, H-DenseUNet's fused 2D+3D features)."""
    if isinstance(model, HDenseUNet):
        return {"decoded": "fuse"}
    if isinstance(model, PocketNet):
        return {"decoded": "decoder.0"}
    return {}


def mixed_leaves(stages: int) -> list[list[int]]:
    """Leaf 0 (the feature map) at every boundary; the carried skips and volume only ride along."""
    if stages not in (2, 3):
        raise ValueError(f"the LiTS models offer 2 or 3 aligned stages, got {stages}")
    return [[0] for _ in range(stages - 1)]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
