"""What `make bench` measures: a task's `bench` block, validated by its dataclass, and each
measurement as a typed record that the measuring process receives (hkt.bench measures them).

Kept apart from hkt.bench so that the configuration's validation (hkt.config) reads the block's
dataclass without importing what measures it.
"""

from __future__ import annotations

from dataclasses import dataclass

from hkt.fields import dataclass_from

SWITCHES = ("channels_last", "bf16", "compile")  # Schedule switches that `bench.switches` may name
SUITE = "suite"  # the pipeline label of the task's own batches (Task.training)


@dataclass(frozen=True)
class Pipelines:
    """The step of `run` with its batches read as well: the task's own batches against its plain
    DataLoader loop with each number of `workers` (`data`: overrides of the stage's data block)."""

    run: str
    workers: tuple
    data: dict | None = None


@dataclass(frozen=True)
class Concurrent:
    """`copies` processes training `run` at once on one device, for each number of copies."""

    run: str
    copies: tuple


@dataclass(frozen=True)
class BenchBlock:
    """tasks.<task>.bench (the schema checks the types; this, how the keys relate)."""

    runs: tuple
    batch_size: int | None = None  # overrides the stage's batch
    data: dict | None = None  # overrides of the stage's data block
    steps: int = 20
    warmup: int = 3
    switches: tuple = ()
    switch_runs: tuple = ()  # the runs timed with each switch; default: the first
    pipelines: Pipelines | None = None
    concurrent: Concurrent | None = None

    def __post_init__(self):
        for name, cls in (("pipelines", Pipelines), ("concurrent", Concurrent)):
            if isinstance(getattr(self, name), dict):
                object.__setattr__(self, name, dataclass_from(cls, getattr(self, name), name))
        for i, run in enumerate(self.switch_runs):
            if run not in self.runs:
                raise ValueError(f"switch_runs[{i}]: {run!r} is not in bench.runs")
        for name in ("pipelines", "concurrent"):
            block = getattr(self, name)
            if block is not None and block.run not in self.runs:
                raise ValueError(f"{name}.run: {block.run!r} is not in bench.runs")

    def plan(self, config: str, task: str, *, threads: int, inference: tuple) -> list:
        """Every Measurement of this block, one process each (concurrent copies apart)."""
        common = {"config": config, "task": task, "threads": threads, "steps": self.steps, "warmup": self.warmup}
        plan = [Measurement("train_step", run=run, **common) for run in self.runs]
        plan += [Measurement("inference", run=role, **common) for role in inference]
        plan += [
            Measurement("train_step", run=run, switches=(switch,), **common)
            for run in self.switch_runs or self.runs[:1]
            for switch in self.switches
        ]
        if self.pipelines:
            plan += [
                Measurement("pipeline", run=self.pipelines.run, workers=w, **common)
                for w in (None, *self.pipelines.workers)
            ]
        return plan


def bench_block(task_cfg: dict, key: str) -> BenchBlock | None:
    """The validated `bench` block of a task block (None without one); ValueError naming the key."""
    if "bench" not in task_cfg:
        return None
    for i, run in enumerate(task_cfg["bench"].get("runs", [])):
        if run not in task_cfg["runs"]:
            raise ValueError(f"{key}.bench.runs[{i}]: {run!r} is not in {key}.runs")
    return dataclass_from(BenchBlock, task_cfg["bench"], f"{key}.bench")


@dataclass(frozen=True)
class Measurement:
    """One measurement of `make bench`, run in a process of its own (`python -m hkt.bench --one
    JSON`) so that no two share a process's memory peak or warm caches."""

    kind: str  # train_step | inference | pipeline | ga
    config: str = ""
    task: str = ""
    run: str = ""  # method/variant; for inference, "parent" or "child"
    switches: tuple = ()  # train_step: speed switches turned on
    workers: int | None = None  # pipeline: None for the task's own batches, else DataLoader workers
    steps: int = 20
    warmup: int = 3
    threads: int = 1
    side: int = 0  # ga: the feature map's side and channels
    channels: int = 0

    def __post_init__(self):
        if self.kind not in ("train_step", "inference", "pipeline", "ga"):
            raise ValueError(f"unknown measurement kind {self.kind!r}")
        object.__setattr__(self, "switches", tuple(self.switches))

    @property
    def label(self) -> str:
        """What the measurement is of, as its row names it: run+switches, a pipeline, or a role."""
        if self.kind == "train_step":
            return "+".join((self.run, *self.switches))
        if self.kind == "pipeline":
            return self.pipeline
        return self.run

    @property
    def pipeline(self) -> str:
        """The pipeline's label in the results (`suite`, `dataloader:<workers>`)."""
        return SUITE if self.workers is None else f"dataloader:{self.workers}"
