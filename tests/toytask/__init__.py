"""A test-only task that proves the task contract: two-image inputs, regression, lower is better.

Each input is a pair of single-channel images: a textured image of random gain, and the same
image shifted by a random (nuisance) number of pixels, brightened by a random offset, with
noise. The target is (gain, offset). It is registered from the tests only, through its
config block (`tasks.toy.module: toytask`), exactly as a user's task package would be: nothing
in hkt/ or workflow/ names it. Its modules follow the task template (README, "Adding a task").
"""

from __future__ import annotations

import torch.nn.functional as F

from hkt.tasks import Task, deferred, template_parts
from toytask import models, tables

TASK = Task(
    name="toy",
    **template_parts(__name__),
    build_model=models.build_model,
    blocks=models.blocks,
    task_loss=F.mse_loss,
    inherit_losses={"mse": F.mse_loss},
    max_stages=2,
    select=("mse", "min"),
    metrics={"mse": "min"},
    tables={"summary": tables.summary, "comparisons": deferred("hkt.report", "comparisons_table")},
    figures={"mse": tables.mse_figure},
)
