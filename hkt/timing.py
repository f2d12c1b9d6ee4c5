"""Inference latency: warm-up, synchronised timing, median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


@torch.no_grad()
def inference_ms_per_input(
    model: torch.nn.Module, infer: Callable[[torch.nn.Module], object], batch_size: int, *, warmup: int, repeats: int
) -> float:
    """Median wall time of `infer(model)` (one inference over a batch), divided by the batch size.

    The model runs in eval mode. CUDA work is asynchronous, so the clock is read only after
    `torch.cuda.synchronize()`.
    """
    was_training = model.training
    model.eval()
    on_cuda = next(model.parameters()).is_cuda
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    for _ in range(warmup):
        infer(model)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        infer(model)
        sync()
        times.append(time.perf_counter() - start)
    model.train(was_training)
    return 1000.0 * statistics.median(times) / batch_size
