"""Tasks: what a parent/child pair is trained on and how it is scored.

A task module (hkt.tasks.<name>) exposes `TASK`, a `Task` that methods read their losses and
aligned blocks from, plus its own data preparation and evaluation functions that the workflow
scripts call. Methods never import a task module directly, so one method serves every task.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Callable, Mapping

import torch.nn as nn

TASKS = ("cifar10",)


@dataclass(frozen=True)
class Task:
    name: str
    build_model: Callable[[str], nn.Module]   # architecture name -> fresh model
    blocks: Callable[[nn.Module], list]        # model -> its aligned functional blocks (Algorithm 1)
    task_loss: Callable                        # ell(output, target): the native loss L2
    inherit_losses: Mapping[str, Callable] = field(default_factory=dict)  # choices for L1 / L3
    max_stages: int = 2                         # how many aligned blocks the models offer


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {list(TASKS)}")
    return importlib.import_module(f"hkt.tasks.{name}").TASK
