"""LiTS liver segmentation (the paper's Table 3 and its overlays): H-DenseUNet -> PocketNet.

The task contract (hkt.tasks.Task) for LiTS: the two 3-D networks and their three aligned
blocks (hkt.tasks.lits.models), NIfTI cases read with nibabel, checked, split by patient and
cached preprocessed (hkt.tasks.lits.prepare, .volumes, .preprocess), a segmentation loss
(cross-entropy plus soft Dice), selection on the validation cases' per-case liver Dice (LiTS's
D-Mean; higher is better), scoring on the test cases with a sliding window over each whole
volume (hkt.tasks.lits.metrics), and Table 3 with the overlay figure (hkt.tasks.lits.tables).
Each part in the module of the task template (README, "Adding a task").
"""

from __future__ import annotations

from hkt.tasks import Task, deferred
from hkt.tasks.lits import data, metrics, models

PREPARE, TABLES = "hkt.tasks.lits.prepare", "hkt.tasks.lits.tables"  # data and report jobs only

TASK = Task(
    name="lits",
    build_model=models.build,
    blocks=models.blocks,
    task_loss=metrics.segmentation_loss,
    # The paper's L1/L3 "MAE against G_T": the same segmentation loss against the ground truth.
    inherit_losses={"segmentation": metrics.segmentation_loss},
    max_stages=3,
    mixed_leaves=models.mixed_leaves,
    feature_points=models.feature_points,
    data_config=data.DataConfig,
    eval_config=data.EvalConfig,
    prepare_data=deferred(PREPARE, "prepare_data"),
    downloads=deferred(PREPARE, "downloads"),
    stand_in=deferred(PREPARE, "stand_in"),
    training=data.training,
    evaluation=data.evaluation,
    select=("dice_mean", "max"),
    metrics={"dice_mean": "max", "dice_global": "max", "tumour_dice_mean": "max"},
    headline=("dice_mean",),
    benchmark=data.benchmark,
    tables={"table3": deferred(TABLES, "table3"), "comparisons": deferred("hkt.report", "comparisons_table")},
    figures={"overlays": deferred(TABLES, "overlays")},
)
