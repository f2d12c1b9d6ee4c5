"""What every task does with a model: evaluation mode for a scoring pass, parameter counts, and
checkpoints (strict loading with `weights_only=True`, deployable saving). Architectures live in
their task packages (hkt/tasks/<task>/models.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn

__all__ = ["load_checkpoint", "save_checkpoint", "count_parameters", "evaluating"]

# Checkpoints written before PyTorch 0.4.1 (among them the public CIFAR ResNet release the HKT
# authors use) have no BatchNorm `num_batches_tracked` buffer. It only matters for momentum=None,
# so its absence is the one key mismatch tolerated; every other key must match exactly.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (BatchNorm running statistics, no dropout) for a scoring pass inside training,
    with the previous mode restored afterwards, also when the pass fails."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Load weights into `model` with strict key matching; return the checkpoint's other entries.

    Accepts a plain state dict or a dict holding one under 'state_dict', with or without the
    'module.' prefix that torch.nn.DataParallel adds. Uses `weights_only=True`: no code runs.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"checkpoint {path} could not be read ({type(err).__name__}: {err})") from err
    if not isinstance(checkpoint, dict):
        raise ValueError(f"checkpoint {path} holds a {type(checkpoint).__name__}, not a dict")
    state = checkpoint.get("state_dict", checkpoint)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    expected = set(model.state_dict())
    missing = sorted(k for k in expected - set(state) if not k.endswith(_OPTIONAL_SUFFIX))
    unexpected = sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not match {type(model).__name__}: "
            f"missing keys {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected keys {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}"
        )
    try:
        model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # shape mismatches
        raise ValueError(f"checkpoint {path}: {err}") from err
    return {k: v for k, v in checkpoint.items() if k != "state_dict"} if "state_dict" in checkpoint else {}


def save_checkpoint(weights: nn.Module | dict, path: str | Path, **extra) -> None:
    """Write a deployable checkpoint (the public releases' layout, without 'module.').

    `weights` is a model or its state dict; `extra` entries must be plain values so that the
    file loads with `weights_only=True`.
    """
    from hkt.io import atomic_torch_save

    state = weights.state_dict() if isinstance(weights, nn.Module) else weights
    atomic_torch_save({"state_dict": state, **extra}, path)
