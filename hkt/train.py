"""The training loop shared by every method and task.

Guarantees:
- resume: the full state (method weights, optimiser, schedule, best-so-far, curve) is written
  atomically every `checkpoint_every` steps; batches are a pure function of the step, so a
  killed run started again ends with exactly the weights of an uninterrupted one;
- selection on the validation split only: the deployed child is the best-validation one;
- a non-finite loss stops the run with an error (nothing is written as a result);
- SIGTERM, SIGUSR1 or SIGURG (SLURM's cancel/time-limit signal and the pre-timeout signal the
  workflow asks for) make the loop save a checkpoint after the current step and raise
  `Preempted`, so a resubmitted job resumes;
- data parallelism: under torch.distributed (torchrun) every rank draws the same global batch
  from the step and trains on its shard; DDP averages the gradients, rank 0 validates and
  writes, and stop requests and non-finite losses are agreed on by all ranks before backward.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from hkt import signals
from hkt.io import atomic_torch_save
from hkt.methods import BATCH_NORMS, Method
from hkt.progress import Progress
from hkt.schedule import Schedule
from hkt.signals import Preempted

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainResult:
    best_state: dict  # the method's weights (child included) at the best validation score
    best: dict  # {"step": ..., <validation metrics>}
    curve: list[dict]  # one row per evaluation
    seconds: float


def train(
    method: Method,
    batches: Callable[[int], tuple],
    validate: Callable[[torch.nn.Module], dict],
    schedule: Schedule,
    run_dir: str | Path,
    *,
    select: tuple[str, str],
    config_hash: str,
    device: torch.device | str = "cpu",
    log: Callable[[str], None] = print,
    label: str = "training",
) -> TrainResult | None:
    """Train `method` for `schedule.steps` steps, resuming from `run_dir/checkpoint.pt` if present.

    `batches(step)` returns (inputs, targets) of the global batch, each a tensor or a tuple of
    tensors with the batch first; `validate(child)` returns metrics on the validation split,
    of which `select = (metric, "max" | "min")` picks the deployed child. Under
    torch.distributed, ranks other than 0 return None. `label` names the stage in the progress
    lines (hkt.progress) that rank 0 logs every `schedule.log_every` steps.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    method.to(device)
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    if schedule.batch_size % world:
        raise ValueError(
            f"batch_size {schedule.batch_size} must be a multiple of the {world} data-parallel processes "
            "(each rank trains on an equal share of the global batch)"
        )
    model = method
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: some variants leave transfer units idle (e.g. alpha3 = 0)
        model = DistributedDataParallel(
            method, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=True
        )
    params = [p for p in method.parameters() if p.requires_grad]
    optimizer = schedule.make_optimizer(params)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.lr_factor)
    state = {"step": 0, "best": None, "best_state": None, "curve": [], "window": [0.0, 0], "seconds": 0.0}
    ckpt_path = run_dir / CHECKPOINT
    if ckpt_path.exists():
        state = _resume(ckpt_path, method, optimizer, scheduler, config_hash, schedule)
        log(f"{label}: resumed at step {state['step']}/{schedule.steps} from {ckpt_path}")
    # by default about 100 lines a stage, never more often than the loss is read (sync_every)
    # a rehearsal (hkt.rehearse) stops some jobs once after their first step, as SLURM's pre-timeout
    # warning would, so that they checkpoint, are requeued and resume: HKT_STOP_ONCE lists them
    stop_once = state["step"] == 0 and label in os.environ.get("HKT_STOP_ONCE", "").split(";")
    every = schedule.log_every or max(1, schedule.sync_every, schedule.steps // 100)
    progress = Progress(label, schedule.steps, state["step"], every, device, log)

    training_mode(method, schedule)
    train_step = step_function(method, model, params, optimizer, schedule, device)
    started = time.perf_counter() - state["seconds"]
    installed_here = signals.catch()  # job scripts catch from their first line; tests from here
    # The losses since the last host read, summed on the device: reading a CUDA value waits for
    # the queued kernels, so the loss is read (and checked for NaN/inf) every `sync_every` steps
    # and at every evaluation and checkpoint, not after each step.
    pending, n_pending = None, 0
    stream = batch_stream(batches, state["step"], schedule.steps, schedule.loader_workers, pin=device.type == "cuda")
    try:
        for step, (x, y) in zip(range(state["step"], schedule.steps), stream, strict=True):
            if world > 1:
                x, y = _shard(x, rank, world), _shard(y, rank, world)
            loss, parts = train_step(x, y)
            scheduler.step()
            pending = loss.detach().double() if pending is None else pending + loss.detach().double()
            n_pending += 1
            state["step"] = done = step + 1

            evaluate_now = done % schedule.eval_every == 0 or done == schedule.steps
            checkpoint_now = done % schedule.checkpoint_every == 0 and done < schedule.steps
            report_now = progress.due(done)
            if done % schedule.sync_every == 0 or evaluate_now or checkpoint_now or report_now:
                progress.add_losses(*_read_losses(pending, n_pending, state, world, device, step, loss, parts, rank))
                pending, n_pending = None, 0
            if rank == 0 and evaluate_now:
                _evaluate(method, validate, state, select, optimizer, log)
                training_mode(method, schedule)  # validation's eval mode restores plain train mode
            if rank == 0 and report_now:
                progress.report(done, optimizer.param_groups[0]["lr"], state, select)
            if stop_once and done == 1 and done < schedule.steps:
                signals.request(signals.PLANNED_STOP)
            (stop_requested,) = _agree([signals.requested() is not None], world, device)
            if stop_requested and pending is not None:
                progress.add_losses(*_read_losses(pending, n_pending, state, world, device, step, loss, parts, rank))
                pending, n_pending = None, 0
            if rank == 0 and (stop_requested or checkpoint_now):
                state["seconds"] = time.perf_counter() - started
                _save(ckpt_path, method, optimizer, scheduler, state, config_hash, schedule)
            if stop_requested:
                raise Preempted(
                    f"stop requested by signal {signals.requested() or 'on another rank'}; "
                    f"checkpoint saved at step {done}"
                )
    finally:
        if installed_here:
            signals.release()

    if rank != 0:
        return None
    if state["best_state"] is None:
        raise RuntimeError("training ended without a validation evaluation")
    return TrainResult(
        best_state=state["best_state"], best=state["best"], curve=state["curve"], seconds=time.perf_counter() - started
    )


class _Steps(torch.utils.data.Dataset):
    """Item i is the batch of step start + i: what DataLoader workers compute ahead."""

    def __init__(self, batches: Callable[[int], tuple], start: int, stop: int):
        self.batches, self.start, self.stop = batches, start, stop

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int):
        return self.batches(self.start + i)


def batch_stream(batches: Callable[[int], tuple], start: int, stop: int, workers: int = 0, *, pin: bool = False):
    """The batches of steps start..stop-1 in order. With workers, that many processes compute the
    next steps' batches while the current step trains (decoding a FlyingThings3D pair takes ~0.1 s
    on one core); each batch is still batches(step), a pure function of (seed, step), so a run
    gives the same batches, and the same weights, with any number of workers. Batches built on a
    GPU (CIFAR's device-resident images) need workers = 0: forked workers cannot use CUDA."""
    if workers == 0:
        return (batches(step) for step in range(start, stop))
    return iter(
        torch.utils.data.DataLoader(
            _Steps(batches, start, stop), batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin
        )
    )


def training_mode(method: Method, schedule: Schedule) -> None:
    """Train mode, with the BatchNorm layers in eval mode where the stage freezes them."""
    method.train()
    if schedule.freeze_bn:
        for module in method.modules():
            if isinstance(module, BATCH_NORMS):
                module.eval()


def _read_losses(pending, n_pending, state, world, device, step, loss, parts, rank) -> tuple[float, int]:
    """Read the losses summed on the device since the last read into the curve's window, and
    return (their sum, their count); stop on NaN or inf (agreed by all ranks: a rank that stopped
    alone would leave the others in an all-reduce)."""
    total = pending.item()
    (nonfinite,) = _agree([not math.isfinite(total)], world, device)
    if nonfinite:
        detail = ", ".join(f"{k}={v.item():.4g}" for k, v in parts.items())
        raise FloatingPointError(
            f"non-finite loss in steps {step + 1 - n_pending}-{step} (last: {loss.item()}, {detail}) "
            f"on rank {rank} or another; stopping without writing results"
        )
    state["window"][0] += total
    state["window"][1] += n_pending
    return total, n_pending


def step_function(method: Method, model, params: list, optimizer, schedule: Schedule, device) -> Callable:
    """The optimisation step of a stage with its speed switches applied: (x, y) -> (loss, parts),
    the loss left on the device. `model` is the method or its DistributedDataParallel wrapper.
    `make bench` times this same function."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if schedule.bf16 else nullcontext()
    if schedule.channels_last:
        method.to(memory_format=torch.channels_last)
    forward = torch.compile(model) if schedule.compile else model

    def step(x, y):
        x = to_device(x, device, channels_last=schedule.channels_last)
        with autocast:
            loss, parts = forward(x, to_device(y, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if schedule.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(params, schedule.grad_clip)
        optimizer.step()
        return loss, parts

    return step


def _agree(flags: list[bool], world: int, device) -> list[bool]:
    """True for a flag if any rank raised it (one small all-reduce per step)."""
    if world == 1:
        return flags
    t = torch.tensor([float(f) for f in flags], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]


def _shard(value, rank: int, world: int):
    """This rank's share of a global batch: every `world`-th sample of each tensor."""
    if isinstance(value, torch.Tensor):
        return value[rank::world]
    return type(value)(_shard(v, rank, world) for v in value)


def to_device(value, device, *, channels_last: bool = False):
    if isinstance(value, torch.Tensor):
        value = value.to(device, non_blocking=True)
        if channels_last and value.dim() == 4:
            value = value.contiguous(memory_format=torch.channels_last)
        return value
    return type(value)(to_device(v, device, channels_last=channels_last) for v in value)


def _evaluate(method, validate, state, select, optimizer, log):
    metric, mode = select
    metrics = validate(method.child)
    if metric not in metrics:
        raise KeyError(f"validation returned {sorted(metrics)}, which lacks the selection metric {metric!r}")
    total, count = state["window"]
    row = {
        "step": state["step"],
        "lr": optimizer.param_groups[0]["lr"],
        "train_loss": total / max(count, 1),
        **{f"val_{k}": v for k, v in metrics.items()},
    }
    state["curve"].append(row)
    state["window"] = [0.0, 0]
    best = state["best"]
    if best is None or (metrics[metric] > best[metric] if mode == "max" else metrics[metric] < best[metric]):
        state["best"] = {"step": state["step"], **metrics}
        state["best_state"] = {k: v.detach().cpu().clone() for k, v in method.state_dict().items()}
    log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))


def _save(path, method, optimizer, scheduler, state, config_hash, schedule):
    atomic_torch_save(
        {
            "method": method.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": copy.deepcopy(state),
            "config_hash": config_hash,
            "schedule": asdict(schedule),
        },
        path,
    )


def _resume(path, method, optimizer, scheduler, config_hash, schedule):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("config_hash") != config_hash:
        raise ValueError(
            f"{path} belongs to a run with config hash {ckpt.get('config_hash')}, not "
            f"{config_hash}; delete it to start this configuration afresh"
        )
    method.load_state_dict(ckpt["method"])
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    return ckpt["state"]
