"""What every run records about itself: code version, configuration, software, hardware."""

from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from importlib.metadata import version

import numpy
import torch

from hkt.conventions import ROOT

REWRITTEN_OUTPUTS = ("results/bench", "results/frozen")  # committed, and rewritten by rules


def git_commit() -> str:
    """HEAD's commit, suffixed '-dirty' when tracked files differ from it; 'unknown' outside git.
    The committed outputs that `make bench` and the freeze rule rewrite do not count: a
    measurement would otherwise call its own commit dirty once the first output is replaced."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        outputs = [f":(exclude){path}" for path in REWRITTEN_OUTPUTS]
        dirty = (
            subprocess.run(["git", "diff", "--quiet", "HEAD", "--", ".", *outputs], cwd=ROOT, timeout=10).returncode
            != 0
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu:{cpu} x{torch.get_num_threads()} threads"


def pick_device(setting: str) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("config device is 'cuda' but no CUDA device is available")
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)


def run_metadata(*, config_hash: str, seed: int | None, device: torch.device, scale: str) -> dict:
    return {
        "commit": git_commit(),
        "config_hash": config_hash,
        "seed": seed,
        "scale": scale,
        "device": device_name(device),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": version("torchvision"),  # importing it would cost every job 1.6 s
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "argv": sys.argv,
        "finished_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
