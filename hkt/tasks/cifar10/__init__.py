"""CIFAR-10 classification (the paper's Table 2): ResNet-110 parent, ResNet-20 child, 2HKT; and
CIFAR-100, a configuration of the same task (`data.dataset: cifar100`, `cifar100_resnetN` models).

The task contract (hkt.tasks.Task) for CIFAR: ResNets with two aligned blocks, the data in
the official python-pickle layout (downloaded, or generated for the embedded default),
augmented batches as a pure function of (seed, step), top-1 accuracy for selection and
scoring, and Table 2 with its figures. Each part in the module of the task template (README,
"Adding a task"): models, prepare, data, metrics, tables.
"""

from __future__ import annotations

import torch.nn.functional as F

from hkt.tasks import Task, deferred, template_parts
from hkt.tasks.cifar10 import metrics, models

TABLES = "hkt.tasks.cifar10.tables"  # matplotlib: report jobs only

TASK = Task(
    name="cifar10",
    # prepare.py reads with torchvision: data jobs only
    **template_parts(
        __name__,
        data=("benchmark", "check_config"),
        prepare=("prepare_data", "downloads", "stand_in", "plain_loader"),
    ),
    build_model=models.build,
    blocks=models.blocks,
    task_loss=F.cross_entropy,
    # The authors' code uses cross-entropy on all three paths; "mae" is the paper's wording.
    inherit_losses={"ce": F.cross_entropy, "mae": metrics.mae_to_onehot},
    max_stages=2,
    feature_points=models.feature_points,
    select=("top1_acc", "max"),
    metrics={"top1_acc": "max", "top1_err": "min"},
    headline=("top1_acc",),
    tables={"table2": deferred(TABLES, "table2"), "comparisons": deferred("hkt.report", "comparisons_table")},
    figures={name: deferred(TABLES, name) for name in ("learning_curves", "accuracy_vs_params")},
)
