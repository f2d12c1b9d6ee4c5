"""The Extraction-Transfer-Mixture triad (paper section "ETM Architecture").

For a source signal x (the block that gives) and a receiving signal x' (the block that takes):

    Extractor   z   = E(x)
    Transfer    tau = T(z)                     1x1 convolution + (bi/tri)linear resize
    Mixture     phi = x' + lambda * GA(tau, x') eq. (3), lambda in [0, 1]

Mixture modes: "ga" is eq. (3); "add" (x' + lambda * tau) is the no-GA ablation;
"mse" (footnote 1) injects nothing and instead reports MSE(tau, x') as an alignment loss;
"replace" (phi = tau) is the no-mixture-unit ablation. The paper names the three units but
not the extractor's form: "none" (the default) passes the block's output on as it is, "conv" is
a learned residual 3x3 convolution started at the identity; the no-transfer ablation swaps the
learned 1x1 projection for a fixed channel truncation / zero padding (the only parameter-free
map between different widths). See results/discrepancies.csv.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from hkt.attention import VECTOR_MODES, genetic_attention

MIXTURE_MODES = ("ga", "add", "mse", "replace")
EXTRACTORS = ("none", "conv")
TRANSFERS = ("conv", "fixed")
_RESIZE_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


class Transfer(nn.Module):
    """T: maps a signal of shape `source` (C, *spatial) to shape `target`, batch excluded.

    Channels change through a 1x1 convolution (a Linear for vectors), spatial size through
    linear interpolation; a transfer between equal shapes is the identity and has no weights
    (the paper's CIFAR and LiTS settings need none).
    """

    def __init__(self, source: tuple[int, ...], target: tuple[int, ...], kind: str = "conv"):
        super().__init__()
        if kind not in TRANSFERS:
            raise ValueError(f"transfer must be one of {TRANSFERS}, got {kind!r}")
        source, target = tuple(source), tuple(target)
        if len(source) != len(target):
            raise ValueError(f"Transfer cannot map rank {len(source)} {source} to rank {len(target)} {target}")
        self.target = target
        spatial = len(source) - 1
        if spatial > 3:
            raise ValueError(f"Transfer supports up to 3 spatial dimensions, got shape {source}")
        self.project: nn.Module = nn.Identity()
        if source[0] != target[0] and kind == "fixed":
            self.project = FixedChannels(target[0])
        elif source[0] != target[0]:
            conv = {0: None, 1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[spatial]
            self.project = nn.Linear(source[0], target[0]) if conv is None else conv(source[0], target[0], 1)
        self.resize = spatial > 0 and source[1:] != target[1:]
        self.mode = _RESIZE_MODE.get(spatial)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        z = self.project(z)
        if self.resize:
            z = F.interpolate(z, size=self.target[1:], mode=self.mode, align_corners=False)
        return z


class FixedChannels(nn.Module):
    """The first `channels` channels, or all of them followed by zeros: no weights to learn."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[1] >= self.channels:
            return z[:, : self.channels]
        return F.pad(z, (0, 0) * (z.dim() - 2) + (0, self.channels - z.shape[1]))


class Extractor(nn.Module):
    """E as a learned residual 3x3 convolution on a feature map, zero-initialised (starts as identity)."""

    def __init__(self, channels: int, spatial: int):
        super().__init__()
        conv = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[spatial]
        self.conv = conv(channels, channels, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def make_extractor(kind: str, source: tuple[int, ...]) -> nn.Module | None:
    if kind not in EXTRACTORS:
        raise ValueError(f"extractor must be one of {EXTRACTORS}, got {kind!r}")
    if kind == "none" or len(source) < 2:  # vectors have no neighbourhood to convolve over
        return None
    return Extractor(source[0], len(source) - 1)


class Mixture(nn.Module):
    """M: fuses the transferred signal `tau` into the receiving signal `receiver`."""

    def __init__(self, mode: str = "ga", lam: float = 0.6, vector_mode: str = "gated"):
        super().__init__()
        if mode not in MIXTURE_MODES:
            raise ValueError(f"mixture must be one of {MIXTURE_MODES}, got {mode!r}")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lambda must lie in [0, 1] (eq. 3), got {lam}")
        if vector_mode not in VECTOR_MODES:
            raise ValueError(f"vector_mode must be one of {VECTOR_MODES}, got {vector_mode!r}")
        self.mode, self.lam, self.vector_mode = mode, lam, vector_mode

    def forward(self, receiver: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Return (phi, alignment loss or None)."""
        if self.mode == "ga":
            return receiver + self.lam * genetic_attention(receiver, tau, vector_mode=self.vector_mode), None
        if self.mode == "add":
            return receiver + self.lam * tau, None
        if self.mode == "replace":
            return tau, None
        return receiver, F.mse_loss(tau, receiver)

    def extra_repr(self) -> str:
        return f"mode={self.mode}, lam={self.lam}, vector_mode={self.vector_mode}"


class ETM(nn.Module):
    """One directed ETM unit: ETM(x, x') = M(x', T(E(x)))."""

    def __init__(self, transfer: Transfer, mixture: Mixture, extractor: Callable | None = None):
        super().__init__()
        self.extractor = extractor
        self.transfer = transfer
        self.mixture = mixture

    def forward(self, source: torch.Tensor, receiver: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        z = source if self.extractor is None else self.extractor(source)
        return self.mixture(receiver, self.transfer(z))
