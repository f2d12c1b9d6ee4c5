"""CIFAR ResNets of He et al. 2016, section 4.2: depth 6n+2, widths 16/32/64, option-A shortcuts.

Parameter names match the widely used public checkpoints (akamaster/pytorch_resnet_cifar10,
the release the HKT authors load their ResNet-110 parent from): conv1, bn1, layer{1,2,3}.k.*,
linear. ResNet-20 has 269,722 parameters and ResNet-110 1,727,962.

For HKT the network is two aligned functional blocks (the paper's CIFAR setting): the backbone
up to the average pooling (feature abstraction) and the fully connected layer (prediction).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# the outputs of the ResNets' three groups of residual blocks (every CIFAR ResNet has them, and every
# network built on one), as feature-map distillers read them
FEATURE_POINTS = {"stage1": "layer1", "stage2": "layer2", "stage3": "layer3"}
DEPTHS = {f"resnet{6 * n + 2}": n for n in (1, 2, 3, 5, 7, 9, 18, 200)}
DATASET_CLASSES = {"cifar10": 10, "cifar100": 100}


class PadShortcut(nn.Module):
    """Option A: subsample by 2 and zero-pad the new channels; no parameters."""

    def __init__(self, extra_channels: int):
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        changes_shape = stride != 1 or in_planes != planes
        self.shortcut = PadShortcut(planes - in_planes) if changes_shape else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, blocks_per_stage: int, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        widths, planes, layers = (16, 32, 64), 16, []
        for stage, width in enumerate(widths):
            stride = 1 if stage == 0 else 2
            layers.append(
                nn.Sequential(
                    *[
                        BasicBlock(planes if k == 0 else width, width, stride if k == 0 else 1)
                        for k in range(blocks_per_stage)
                    ]
                )
            )
            planes = width
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(64, num_classes)
        for m in self.modules():  # the initialisation of the reference implementation
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone up to and including global average pooling: (B, 3, H, W) -> (B, 64)."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))

    def blocks(self) -> list:
        """The aligned functional blocks for HKT: [backbone -> pooled features, FC layer]."""
        return [self.features, self.linear]


def classes_of(arch: str) -> int:
    """Outputs of an architecture name: `resnet20` and `cifar10_resnet20` have 10, `cifar100_resnet20`
    100 (the naming of the widely used CIFAR model hubs)."""
    prefix, _, depth = arch.rpartition("_")
    if depth not in DEPTHS or (prefix and prefix not in DATASET_CLASSES):
        names = sorted(DEPTHS, key=DEPTHS.get)
        raise ValueError(
            f"unknown CIFAR ResNet {arch!r}; choose from {names}, optionally prefixed cifar10_ or cifar100_"
        )
    return DATASET_CLASSES.get(prefix, 10)


def build(arch: str, num_classes: int | None = None) -> CifarResNet:
    classes = classes_of(arch)
    return CifarResNet(DEPTHS[arch.rpartition("_")[2]], classes if num_classes is None else num_classes)


def resnet20(num_classes: int = 10) -> CifarResNet:
    return build("resnet20", num_classes)


def resnet110(num_classes: int = 10) -> CifarResNet:
    return build("resnet110", num_classes)


def blocks(model: CifarResNet) -> list:
    return model.blocks()


def feature_points(model: nn.Module) -> dict[str, str]:
    return FEATURE_POINTS


def normalize(images_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 images as the networks take them: scaled to [0, 1], less the mean, over the std."""
    return (images_u8.float() / 255 - mean.to(images_u8.device)) / std.to(images_u8.device)
