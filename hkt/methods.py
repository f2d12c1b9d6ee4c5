"""The method registry: how a way of training the child plugs into the suite.

A method is one importable module, named in the config (`methods.<name>.module`), that defines

    Params        a dataclass of its hyper-parameters; unknown or invalid keys raise ValueError
    NEEDS_PARENT  whether it reads the frozen parent
    build(child, parent, task, params, sample) -> Method

Nothing else in the suite changes when a method is added: the workflow trains, evaluates and
tabulates every (method, variant) the config lists.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch
import torch.nn as nn

from hkt.fields import dataclass_from
from hkt.tasks import Task

BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class Method(nn.Module):
    """A training objective for the child. Trainable extras (transfer layers, regressors) are
    submodules, so `parameters()` and `state_dict()` cover exactly what training changes."""

    def __init__(self, child: nn.Module, parent: nn.Module | None, task: Task):
        super().__init__()
        self.child = child
        # The parent stays outside the module tree: it is never handed to the optimiser, never
        # written into checkpoints, and `method.train()` cannot switch it out of eval mode.
        self.__dict__["parent"] = freeze(parent) if parent is not None else None
        self.__dict__["task"] = task

    def loss(self, x, y) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the total loss and its named parts (logged, never optimised separately)."""
        raise NotImplementedError

    def forward(self, x, y):
        # DistributedDataParallel synchronises gradients of what forward() computes.
        return self.loss(x, y)

    def _apply(self, fn, *args, **kwargs):
        if self.parent is not None:  # .to(device) and friends move the parent along
            self.parent._apply(fn, *args, **kwargs)
        return super()._apply(fn, *args, **kwargs)


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode (BatchNorm uses its running statistics and never updates them) and no grads."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def require_blocks(task: Task, needed: int, what: str) -> None:
    """Refuse a setting that needs more aligned blocks than the task's models offer."""
    if needed > task.max_stages:
        raise ValueError(f"{what} exceeds the {task.max_stages} aligned blocks that the {task.name} models offer")


def load_method(module_name: str, key: str = "module") -> ModuleType:
    """Import a method module and check that it honours the contract above."""
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"{key}: cannot import method module {module_name!r} ({err})") from err
    for attr in ("Params", "NEEDS_PARENT", "build"):
        if not hasattr(module, attr):
            raise ValueError(f"{key}: method module {module_name!r} defines no `{attr}`")
    return module


def make_params(module: ModuleType, params: dict, key: str = "params"):
    """Build the method's Params from a config mapping, naming the offending key on error."""
    return dataclass_from(module.Params, params, key, getattr(module, "PARAM_ALIASES", {}))
