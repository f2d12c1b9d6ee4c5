"""Tasks: what a parent/child pair is trained on, how it is scored and how it is reported.

A task is one package plus one config block (`tasks.<name>`), as a method is one module plus
one config entry. The package (by default `hkt.tasks.<name>`; a config block may name another
with `module:`) defines `TASK`, a `Task` below. Everything task-independent (obtaining the
parent, training a stage of a run, metadata, the evaluation driver, the DAG) lives once in
`hkt/` and `workflow/` and reaches a task only through these fields, so adding a task changes
no generic code. Methods see only the model-facing part (models, aligned blocks, losses).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch.nn as nn

SELECT_MODES = ("max", "min")


class Download(NamedTuple):
    """A file a data job reads that comes from the network: fetched beforehand by a local rule
    (compute nodes often have no internet), verified, never half-written (hkt.io.download)."""

    url: str
    path: str  # where the data job expects it
    checksums: dict  # md5 / sha256 / sha256_prefix; empty: none is published (the first sha256 is kept)


def as_assembled(task: Task) -> Task:
    """What a stage's `adapt` is unless its data says otherwise: the task as its package assembled it."""
    return task


class TrainingData(NamedTuple):
    """What one training stage reads from its data: see `Task.training`."""

    batches: Callable[[int], tuple]  # step -> (inputs, targets), a pure function of (seed, step)
    validate: Callable[[nn.Module], dict]  # child -> validation metrics (the selection metric among them)
    sample: Any  # a small input batch for shape probing (tensor or tuple)
    # the task as this stage runs its models, made from the assembled one (e.g. RAFT's update count)
    adapt: Callable[[Task], Task] = as_assembled


class EvaluationData(NamedTuple):
    """What evaluation reads from the test data: see `Task.evaluation`."""

    score: Callable[[nn.Module], list[dict]]  # model -> rows {dataset, split, metric, value}
    infer: Callable[[nn.Module], Any]  # model -> its inference on one timing batch (timed)
    batch_size: int  # inputs in that batch (time is reported per input)


class BenchData(NamedTuple):
    """What `make bench` times: see `Task.benchmark`. Random tensors, so no data is read."""

    batch: tuple  # (inputs, targets) of one training batch at the stage's shapes
    infer_input: Any  # one inference input at the evaluation's timing shape
    infer: Callable[[nn.Module, Any], Any]  # (model, infer_input) -> the timed inference
    infer_batch: int  # inputs in infer_input (time is reported per input)
    adapt: Callable[[Task], Task] = as_assembled  # the task as that stage runs its models


def deferred(module: str, name: str) -> Callable:
    """`module.name`, imported at its first call. A task package's `__init__` names its parts this
    way where they import what most jobs never need (torchvision's dataset readers to prepare data,
    matplotlib to draw): a training job then starts without them."""

    def call(*args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__, call.__qualname__ = name, f"{module}.{name}"
    return call


def template_parts(package: str, *, data: tuple = (), prepare: tuple = ("prepare_data",)) -> dict:
    """The Task fields a package keeps under the task template's names (README, "Adding a task"):
    its data.py's DataConfig, EvalConfig, training and evaluation, the further `data` parts named
    (benchmark, check_config), and the `prepare` parts of its prepare.py, deferred (they import what
    a training job never needs). Its __init__ then spells out only the choices that make the task."""
    module = importlib.import_module(f"{package}.data")
    parts = {
        "data_config": module.DataConfig,
        "eval_config": module.EvalConfig,
        "training": module.training,
        "evaluation": module.evaluation,
    }
    parts.update({name: getattr(module, name) for name in data})
    parts.update({name: deferred(f"{package}.prepare", name) for name in prepare})
    return parts


def call(model: nn.Module, x):
    """Run a model on a training input as methods do: one argument, tensor or tuple."""
    return model(x)


@dataclass(frozen=True)
class Task:
    name: str
    # -- models: what methods read ------------------------------------------------------------
    build_model: Callable[[str], nn.Module]  # architecture name -> fresh model (ValueError if unknown)
    blocks: Callable[[nn.Module], list]  # model -> its aligned functional blocks (Algorithm 1)
    task_loss: Callable  # ell(output, target): the native loss L2
    forward: Callable = call  # (model, input) -> output, as methods run a model
    inherit_losses: Mapping[str, Callable] = field(default_factory=dict)  # choices for L1 / L3
    max_stages: int = 2  # how many aligned blocks the models offer
    # which leaves of each boundary signal Algorithm 1 mixes, given the stage count (None: all)
    mixed_leaves: Callable[[int], list] | None = None
    # model -> {feature point: module path}: named intermediate outputs that methods reading feature
    # maps ask for (hkt.features), the same names on the child and the parent (CIFAR's "stage1"..
    # "stage3" are the ResNets' three groups); a method may also name a module path directly
    feature_points: Callable[[nn.Module], Mapping[str, str]] = lambda model: {}
    # -- configuration: dataclasses that validate tasks.<name>.data / .evaluation -------------
    data_config: type | None = None  # built from the data block merged with a stage's overrides
    eval_config: type | None = None
    # -- data ---------------------------------------------------------------------------------
    # (data_config, part=, allow_network=) -> record (dict): verify and extract, check, or generate one
    # part of the data in its real layout; in the DAG it runs offline, after the local download
    # rules have fetched what `downloads` lists
    prepare_data: Callable | None = None
    # [stage data configs] -> the parts of the data root a block reads (flow: its stages' datasets and
    # the evaluation sets); one data job prepares each part, shared by every block of that root.
    # None: one part, "all"
    data_parts: Callable | None = None
    # (data_config, part) -> [Download]: what prepare_data reads from the network; a function of the
    # configuration alone, never of the disk (they are the data job's inputs: a list that shrank once
    # a dataset was extracted made Snakemake rerun the job and everything downstream of it)
    downloads: Callable | None = None
    # (data block, root) -> the data block of a small generated stand-in of the real data, in its
    # real layout at its real frame or volume sizes (and, where sampling needs them, its real
    # lengths), under `root`: what `make rehearse` runs the paper's configuration on (hkt.rehearse)
    stand_in: Callable | None = None
    training: Callable | None = None  # (data_config, batch_size=, seed=, device=) -> TrainingData
    evaluation: Callable | None = None  # (data_config, eval_config, device) -> EvaluationData
    select: tuple[str, str] = ("accuracy", "max")  # validation metric that picks the deployed child
    # every metric its evaluation reports -> "max" or "min" (higher or lower is better), for
    # `hkt compare`; params_m, inference_ms and extra_params_m (written for every task) are "min"
    # without saying
    metrics: Mapping[str, str] = field(default_factory=dict)
    # the metrics `hkt compare` ranks a new method on by default (the paper's columns: accuracy, EPE
    # and Fl-all, Dice); every other metric with --all
    headline: tuple[str, ...] = ()
    # (data_config, eval_config, batch_size, generator) -> BenchData at the configured shapes
    benchmark: Callable | None = None
    # (data_config, batch_size=, seed=, device=, workers=) -> endless iterator of (inputs,
    # targets) on the device: the plain DataLoader loop that `training`'s batches replace, which
    # `make bench` times against them (tasks.<name>.bench.pipelines); None: no such comparison
    plain_loader: Callable | None = None
    # -- reports ------------------------------------------------------------------------------
    tables: Mapping[str, Callable] = field(default_factory=dict)  # name -> fn(ReportInput, {csv, md, tex: path})
    figures: Mapping[str, Callable] = field(default_factory=dict)  # name -> fn(ReportInput, png path)
    # validates the whole block tasks.<name> where keys depend on each other (ValueError naming
    # the key below tasks.<name>)
    check_config: Callable[[dict], None] | None = None
    # name -> fn(model, data_config, eval_config, out_dir, device) -> record (dict): files a
    # deployed model writes for an outside benchmark (e.g. KITTI test-set submissions)
    exports: Mapping[str, Callable] = field(default_factory=dict)

    def directions(self) -> dict[str, str]:
        """Every metric the task reports (its selection metric included) -> "max" or "min"."""
        return {self.select[0]: self.select[1], **self.metrics}

    def __post_init__(self):
        if not set(self.metrics.values()) <= set(SELECT_MODES):
            raise ValueError(f"task {self.name}: metric directions must be among {SELECT_MODES}")
        if self.select[1] not in SELECT_MODES:
            raise ValueError(f"task {self.name}: select mode must be one of {SELECT_MODES}, got {self.select[1]!r}")


class ReportInput(NamedTuple):
    """What a table or figure function receives from the workflow."""

    spec: dict  # the task's report specification (config block, runs, seeds, scale, archs, data)
    results: Any  # pandas DataFrame: the long-format results of results/<task>/metrics.csv
    paper: Any  # pandas DataFrame: results/paper/results.csv
    curves: dict  # (method, variant, seed) -> curve DataFrame ("parent", "default", s) included
    model_dirs: dict = {}  # (method, variant, seed) -> model directory (figures that run models)


def build_model(task: Task, arch: str) -> nn.Module:
    """A fresh model of `arch`: one of the task's own architectures, or `package.module:name` for
    an architecture that a method brings (e.g. a compressed form of the parent). That module
    defines `build_model(name, task) -> nn.Module` and raises ValueError for a name it does not
    know; it may build on the task's own architectures through `task.build_model`."""
    if ":" not in arch:
        return task.build_model(arch)
    module_name, name = arch.split(":", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"architecture {arch!r}: cannot import {module_name!r} ({err})") from err
    if not callable(getattr(module, "build_model", None)):
        raise ValueError(f"architecture {arch!r}: module {module_name!r} defines no build_model(name, task)")
    return module.build_model(name, task)


def task_module(name: str, module: str | None = None) -> str:
    """The one task registry: the package named by the config, or hkt.tasks.<name>."""
    return module or f"hkt.tasks.{name}"


def get_task(name: str, module: str | None = None) -> Task:
    path = task_module(name, module)
    try:
        mod = importlib.import_module(path)
    except ImportError as err:
        raise ValueError(f"task {name!r}: cannot import its package {path!r} ({err})") from err
    task = getattr(mod, "TASK", None)
    if not isinstance(task, Task):
        raise ValueError(f"task {name!r}: package {path!r} defines no `TASK` (a hkt.tasks.Task)")
    if task.name != name and module is None:
        raise ValueError(f"task {name!r}: package {path!r} defines the task {task.name!r}")
    # A config block may use another name with an explicit module (e.g. one block per training
    # regime of the same task); results then carry the block's name.
    return task


# ---------------------------------------------------------------------------------------------
# What table and figure jobs receive (workflow/scripts/table.py, figure.py)
# ---------------------------------------------------------------------------------------------
def report_input(spec: dict, metrics_csv, paper_csv, model_dirs: dict | None = None):
    """The ReportInput of a table or figure job, and the task that makes it."""
    from pathlib import Path

    import pandas as pd

    from hkt.report import read_paper

    curves = {key: pd.read_csv(Path(d) / "curve.csv") for key, d in (model_dirs or {}).items()}
    inp = ReportInput(
        spec=spec,
        results=pd.read_csv(metrics_csv),
        paper=read_paper(paper_csv),
        curves=curves,
        model_dirs=dict(model_dirs or {}),
    )
    return inp, get_task(spec["task"], spec.get("task_module"))


def load_shown_models(inp, shown: dict) -> dict:
    """The models a figure runs, in eval mode on `figure_device()`: `shown` maps a display name to
    (method, variant, seed), seed None for any; each comes from the report's model directories,
    built in the architecture its meta.json records (so a method that brings its own architecture
    is shown as trained) and loaded with strict keys. Names without a model directory are left out."""
    import json
    from pathlib import Path

    from hkt.conventions import WEIGHTS
    from hkt.models import load_checkpoint
    from hkt.report import figure_device

    task = get_task(inp.spec["task"], inp.spec.get("task_module"))
    nets = {}
    for name, (method, variant, seed) in shown.items():
        key = next((k for k in inp.model_dirs if k[:2] == (method, variant) and seed in (None, k[2])), None)
        if key is None:
            continue
        folder = Path(inp.model_dirs[key])
        trained = json.loads((folder / "meta.json").read_text())["spec"]
        model = build_model(task, trained["arch"])
        load_checkpoint(model, folder / WEIGHTS[trained["role"]])
        nets[name] = model.eval().to(figure_device())
    return nets
