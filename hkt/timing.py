"""Inference latency: warm-up, synchronised timing, median of repeats."""
from __future__ import annotations

import statistics
import time

import torch


def _leaves(example) -> list[torch.Tensor]:
    return [example] if isinstance(example, torch.Tensor) else list(example)


@torch.no_grad()
def inference_ms_per_input(model: torch.nn.Module, example, *, warmup: int, repeats: int) -> float:
    """Median wall time of one forward pass over `example`, divided by its batch size.

    `example` is the model's input: a tensor, or a tuple of tensors passed as separate
    arguments (e.g. an image pair), each with the batch first. CUDA work is asynchronous, so
    the clock is read only after `torch.cuda.synchronize()`.
    """
    was_training = model.training
    model.eval()
    leaves = _leaves(example)
    sync = torch.cuda.synchronize if leaves[0].is_cuda else (lambda: None)
    for _ in range(warmup):
        model(*leaves)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(*leaves)
        sync()
        times.append(time.perf_counter() - start)
    model.train(was_training)
    return 1000.0 * statistics.median(times) / leaves[0].shape[0]
