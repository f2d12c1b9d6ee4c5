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

from hkt.tasks import Task, deferred, template_parts
from hkt.tasks.lits import metrics, models

TABLES = "hkt.tasks.lits.tables"  # matplotlib: report jobs only

TASK = Task(
    name="lits",
    **template_parts(__name__, data=("benchmark",), prepare=("prepare_data", "downloads", "stand_in")),
    build_model=models.build,
    blocks=models.blocks,
    task_loss=metrics.segmentation_loss,
    # The paper's L1/L3 "MAE against G_T": the same segmentation loss against the ground truth.
    inherit_losses={"segmentation": metrics.segmentation_loss},
    max_stages=3,
    mixed_leaves=models.mixed_leaves,
    feature_points=models.feature_points,
    select=("dice_mean", "max"),
    metrics={"dice_mean": "max", "dice_global": "max", "tumour_dice_mean": "max"},
    headline=("dice_mean",),
    tables={"table3": deferred(TABLES, "table3"), "comparisons": deferred("hkt.report", "comparisons_table")},
    figures={"overlays": deferred(TABLES, "overlays")},
)
