"""The toy task's models: a small and a large PairNet, two aligned blocks each."""

from __future__ import annotations

import torch
import torch.nn as nn

WIDTHS = {"small": 8, "large": 16}


class PairNet(nn.Module):
    """Two aligned blocks: features of the stacked pair (a map), then pooling and a linear head."""

    def __init__(self, width: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU()
        )
        self.head = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 2)
        )

    def blocks(self):
        return [lambda pair: self.features(torch.cat(pair, dim=1)), self.head]

    def forward(self, pair):
        return self.head(self.features(torch.cat(pair, dim=1)))


def build_model(arch: str) -> PairNet:
    if arch not in WIDTHS:
        raise ValueError(f"unknown toy architecture {arch!r}; known: {sorted(WIDTHS)}")
    return PairNet(WIDTHS[arch])


def blocks(model: PairNet) -> list:
    return model.blocks()
