"""Optical flow (the paper's Table 1, the ablation study, Figures 3 and 4): RAFT -> RAFT-S.

The task contract (hkt.tasks.Task) for flow: torchvision's RAFT models and their three aligned
blocks (hkt.tasks.flow.models), the five datasets read through torchvision's own classes
(hkt.tasks.flow.data; generated in their real on-disk formats by hkt.tasks.flow.scenes for the
embedded default), RAFT's sequence loss, selection on the end-point error of held-out Sintel
scenes (lower is better), scoring on Sintel clean/final and KITTI-2015 (EPE, Fl-all), and the
tables and figures of hkt.tasks.flow.tables. Each part in the module of the task template
(README, "Adding a task"); formats.py and scenes.py are the file formats and the generator.
"""

from __future__ import annotations

from functools import partial

from hkt.tasks import Task, deferred, template_parts
from hkt.tasks.flow import data, metrics, models

TABLES = "hkt.tasks.flow.tables"  # matplotlib: report jobs only

TASK = Task(
    name="flow",
    **template_parts(__name__, data=("benchmark",), prepare=("prepare_data", "data_parts", "downloads", "stand_in")),
    build_model=models.build,
    blocks=partial(models.blocks, updates=12),
    forward=partial(models.run, updates=12),
    task_loss=metrics.sequence_loss,
    # The paper's L1/L3 "MAE against G_T" is RAFT's L1 sequence loss against the ground truth.
    inherit_losses={"sequence": metrics.sequence_loss},
    max_stages=3,
    mixed_leaves=models.mixed_leaves,
    feature_points=models.feature_points,
    select=("epe", "min"),
    metrics={"epe": "min", "fl_all": "min"},
    headline=("epe", "fl_all"),
    exports={"kitti_test": data.kitti_test},
    tables={
        "table1": deferred(TABLES, "table1"),
        "ablation": deferred(TABLES, "ablation"),
        "comparisons": deferred("hkt.report", "comparisons_table"),
    },
    figures={name: deferred(TABLES, name) for name in ("figure3_mu", "figure4_qualitative")},
)
