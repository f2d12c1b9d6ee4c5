"""How much GPU memory a job needs, estimated without a GPU: its training steps (or its timed
inference) traced with fake tensors, at the paper's shapes and batch, counting the bytes of every
live tensor storage (parameters, buffers, gradients, optimiser state, the activations autograd
keeps for backward), as CUDA's caching allocator must at least hold them.

    python -m hkt.memory --config config/paper.yaml --task flow --run hkt/default

The figure is a lower bound on `torch.cuda.max_memory_allocated`: CUDA's context (about 0.5 GiB),
cuDNN's workspaces and the allocator's fragmentation come on top (REQUEST_FACTOR and
REQUEST_MARGIN_GIB size a request). A fake step runs no arithmetic, so a step of RAFT at 368x768
costs seconds on a CPU, whatever its batch.
"""

from __future__ import annotations

import argparse
import weakref

import torch
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only
from torch.utils.weak import WeakIdKeyDictionary

from hkt import config as C
from hkt.fields import dataclass_from
from hkt.methods import load_method, make_params
from hkt.schedule import Schedule
from hkt.tasks import build_model, get_task

REQUEST_FACTOR = 1.25  # fragmentation and cuDNN workspaces over the traced peak
REQUEST_MARGIN_GIB = 1.0  # CUDA's context


class PeakTensorMemory(TorchDispatchMode):
    """The peak of the bytes held by live tensor storages: those registered with `track` and
    every one an operation creates while the mode is active, each counted until it is freed."""

    def __init__(self):
        super().__init__()
        self._sizes = WeakIdKeyDictionary()
        self.current = self.peak = 0

    def track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        if storage in self._sizes:
            return
        size = storage.nbytes()
        self._sizes[storage] = size
        self.current += size
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, size)

    def _free(self, size: int) -> None:
        self.current -= size

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        tree_map_only(torch.Tensor, self.track, out)
        return out


def _first(x, n: int):
    return tuple(_first(v, n) for v in x) if isinstance(x, tuple) else x[:n]


def _leaves(x) -> list[torch.Tensor]:
    return [x] if isinstance(x, torch.Tensor) else [t for v in x for t in _leaves(v)]


def training_peak_bytes(cfg: dict, task_name: str, spec: dict, batch_size: int | None = None, steps: int = 2) -> int:
    """Peak tensor bytes of `steps` optimisation steps of one training stage (a job's
    specification: the parent's or a run's), at its batch or `batch_size`, traced with fake tensors."""
    from hkt.train import step_function

    t = cfg["tasks"][task_name]
    task = get_task(task_name, t.get("module"))
    module = load_method(spec["module"])
    params = make_params(module, spec["params"])
    schedule = dataclass_from(Schedule, spec["schedule"], "schedule")
    data = C.task_config(task, spec["data"], f"tasks.{task_name}.data")
    ev = dataclass_from(task.eval_config, t["evaluation"], f"tasks.{task_name}.evaluation")

    def trace() -> int:
        peak = PeakTensorMemory()
        bench = task.benchmark(data, ev, batch_size or schedule.batch_size, torch.Generator().manual_seed(0))
        child = build_model(task, spec["arch"])
        parent = build_model(task, spec["parent_arch"]) if module.NEEDS_PARENT else None
        objective = module.build(child, parent, bench.adapt(task), params, _first(bench.batch[0], 2)).train()
        for tensor in [*objective.state_dict().values(), *(parent.state_dict().values() if parent else ())]:
            peak.track(tensor)
        for tensor in _leaves(bench.batch):
            peak.track(tensor)
        trainable = [p for p in objective.parameters() if p.requires_grad]
        optimizer = schedule.make_optimizer(trainable)
        step = step_function(objective, objective, trainable, optimizer, schedule, torch.device("cpu"))
        with peak:
            for _ in range(steps):
                step(*bench.batch)
        return peak.peak

    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            return trace()
    except DataDependentOutputException:
        # a method that builds from the parent's values (an SVD of its weights) cannot be traced with fake
        # tensors: its (small) networks run for real, counted the same way
        return trace()


def inference_peak_bytes(cfg: dict, task_name: str, arch: str) -> int:
    """Peak tensor bytes of the timed inference of evaluation (the task's timing input) for `arch`."""
    t = cfg["tasks"][task_name]
    task = get_task(task_name, t.get("module"))
    data = C.task_config(task, t["data"], f"tasks.{task_name}.data")
    ev = dataclass_from(task.eval_config, t["evaluation"], f"tasks.{task_name}.evaluation")

    def trace() -> int:
        peak = PeakTensorMemory()
        bench = task.benchmark(data, ev, 1, torch.Generator().manual_seed(0))
        model = build_model(task, arch).eval()
        for tensor in [*model.state_dict().values(), *_leaves(bench.infer_input)]:
            peak.track(tensor)
        with peak, torch.no_grad():
            bench.infer(model, bench.infer_input)
        return peak.peak

    try:
        with FakeTensorMode(allow_non_fake_inputs=True):
            return trace()
    except (DataDependentOutputException, RuntimeError):
        # an inference that leaves torch (LiTS's sliding window gathers its windows in NumPy)
        # runs for real, counted the same way
        return trace()


def request_mb(peak: int) -> int:
    """The GPU memory to ask for a traced peak (MB, rounded up to a GiB)."""
    gib = peak / 2**30 * REQUEST_FACTOR + REQUEST_MARGIN_GIB
    return int(-(-gib // 1)) * 1024


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hkt.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--task", required=True)
    parser.add_argument("--run", help="method/variant (default: the parent)")
    parser.add_argument("--batch-size", type=int)
    args = parser.parse_args(argv)
    cfg = C.validate(C.load(args.config))
    if args.run:
        method, variant = args.run.split("/")
        specs = C.run_specs(cfg, args.task, method, variant, cfg["seeds"][0])
    else:
        specs = C.parent_specs(cfg, args.task)
    for spec in specs:
        if spec.get("source") == "published":
            continue
        peak = training_peak_bytes(cfg, args.task, spec, args.batch_size)
        print(
            f"{args.task} {args.run or 'parent'} stage {spec['stage']}: traced peak {peak / 2**30:.2f} GiB, "
            f"request {request_mb(peak)} MB"
        )


if __name__ == "__main__":
    main()
