"""CIFAR metrics: top-1 accuracy of a model on images (selection and Table 2), and the literal
reading of the paper's MAE inheritance loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from hkt.models import evaluating
from hkt.tasks.cifar10.models import normalize


@torch.no_grad()
def accuracy(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 500,
) -> dict[str, float]:
    """Top-1 accuracy and error (percent) of `model` in eval mode."""
    device = next(model.parameters()).device
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    correct = 0
    with evaluating(model):
        for start in range(0, len(images), batch_size):
            x = normalize(images[start : start + batch_size].to(device), mean_t, std_t)
            correct += (model(x).argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    acc = 100.0 * correct / len(images)
    return {"top1_acc": acc, "top1_err": 100.0 - acc}


def mae_to_onehot(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A literal reading of the paper's MAE(z, G_T) for labels: |softmax(z) - onehot(y)|, averaged."""
    onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return (logits.softmax(dim=1) - onehot).abs().mean()
