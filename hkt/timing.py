"""Inference latency: warm-up, synchronised timing, median of repeats."""
from __future__ import annotations

import statistics
import time

import torch


@torch.no_grad()
def inference_ms_per_image(model: torch.nn.Module, example: torch.Tensor, *, warmup: int, repeats: int) -> float:
    """Median wall time of one forward pass over `example`, divided by its batch size.

    CUDA work is asynchronous, so the clock is read only after `torch.cuda.synchronize()`.
    """
    was_training = model.training
    model.eval()
    sync = torch.cuda.synchronize if example.is_cuda else (lambda: None)
    for _ in range(warmup):
        model(example)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(example)
        sync()
        times.append(time.perf_counter() - start)
    model.train(was_training)
    return 1000.0 * statistics.median(times) / example.shape[0]
