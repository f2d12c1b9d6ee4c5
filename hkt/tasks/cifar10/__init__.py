"""CIFAR-10 classification (the paper's Table 2): ResNet-110 parent, ResNet-20 child, 2HKT."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from hkt.models import build_cifar_resnet
from hkt.tasks import Task


def mae_to_onehot(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """A literal reading of the paper's MAE(z, G_T) for labels: |softmax(z) - onehot(y)|, averaged."""
    onehot = F.one_hot(labels, logits.shape[1]).to(logits.dtype)
    return (logits.softmax(dim=1) - onehot).abs().mean()


TASK = Task(
    name="cifar10",
    build_model=build_cifar_resnet,
    blocks=lambda model: model.blocks(),
    task_loss=F.cross_entropy,
    # The authors' code uses cross-entropy on all three paths; "mae" is the paper's wording.
    inherit_losses={"ce": F.cross_entropy, "mae": mae_to_onehot},
    max_stages=2,
)


class Batches:
    """Augmented training batches as a pure function of (seed, step).

    Nothing here has state to checkpoint: the epoch permutation and the per-sample crop/flip
    draws come from generators seeded by (seed, epoch) and (seed, step), so a resumed run sees
    exactly the batches an uninterrupted one would.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int, seed: int,
                 mean: Sequence[float], std: Sequence[float], crop_padding: int, flip: bool = True):
        if len(images) < batch_size:
            raise ValueError(f"batch_size {batch_size} exceeds the {len(images)} training images")
        self.images, self.labels = images, labels
        self.batch_size, self.seed = batch_size, seed
        self.pad, self.flip = crop_padding, flip
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.per_epoch = len(images) // batch_size  # drop the last partial batch
        self._epoch, self._order = -1, None

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, k = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._order = epoch, torch.randperm(len(self.images), generator=g)
        idx = self._order[k * self.batch_size:(k + 1) * self.batch_size]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 500_009 + step)
        x = self._augment(self.images[idx], g)
        return normalize(x, self.mean, self.std), self.labels[idx]

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        b, _, h, w = x.shape
        if self.pad:  # random crop from a zero-padded image, as torchvision's RandomCrop(padding)
            padded = F.pad(x, (self.pad,) * 4)
            oy = torch.randint(0, 2 * self.pad + 1, (b,), generator=g)
            ox = torch.randint(0, 2 * self.pad + 1, (b,), generator=g)
            rows = (oy[:, None] + torch.arange(h))[:, None, :, None]
            cols = (ox[:, None] + torch.arange(w))[:, None, None, :]
            x = padded[torch.arange(b)[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
        if self.flip:
            flipped = torch.rand(b, generator=g) < 0.5
            x = torch.where(flipped[:, None, None, None], x.flip(3), x)
        return x


def normalize(images_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (images_u8.float() / 255 - mean.to(images_u8.device)) / std.to(images_u8.device)


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *,
             mean: Sequence[float], std: Sequence[float], batch_size: int = 500) -> dict[str, float]:
    """Top-1 accuracy and error (percent) of `model` in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    correct = 0
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size].to(device), mean_t, std_t)
        correct += (model(x).argmax(1).cpu() == labels[start:start + batch_size]).sum().item()
    model.train(was_training)
    acc = 100.0 * correct / len(images)
    return {"top1_acc": acc, "top1_err": 100.0 - acc}
