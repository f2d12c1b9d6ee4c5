"""The CIFAR-10 experiment as four functions the workflow calls: prepare the data, obtain the
parent (published checkpoint or trained), train one (method, variant, seed) run, evaluate.

A run directory holds exactly: child.pt (the deployable child, best on validation), curve.csv
(validation curve), meta.json (commit, config hash, versions, device, selection), and while
training is in progress checkpoint.pt. Only `evaluate` ever reads the test split.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from hkt import config as C
from hkt.io import atomic_path, atomic_write_json, download, verify_checksum
from hkt.methods import load_method, make_params
from hkt.models import count_parameters, load_checkpoint, save_checkpoint
from hkt.runmeta import pick_device, run_metadata
from hkt.tasks.cifar10 import TASK, Batches, accuracy, normalize
from hkt.tasks.cifar10 import stored as S
from hkt.timing import inference_ms_per_image
from hkt.train import CHECKPOINT, Schedule, TrainResult, train

SELECT = "top1_acc"


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def prepare_data(data_cfg: dict, *, allow_network: bool = True) -> Path:
    from hkt.tasks.cifar10 import data as D  # torchvision is needed here only

    root = Path(data_cfg["root"])
    if data_cfg["source"] == "generated":
        return D.prepare_generated(root, **data_cfg["generated"])
    return D.prepare_download(root, allow_network=allow_network)


def dataset_name(data_cfg: dict) -> str:
    return "cifar10" if data_cfg["source"] == "download" else "cifar10-generated"


def load_train_val(data_cfg: dict):
    images, labels = S.load_split(data_cfg["root"], train=True)
    train_idx, val_idx = S.split_train_val(len(images), data_cfg["val_size"], data_cfg["split_seed"])
    images = S.resize(images, data_cfg["resolution"])
    return images[train_idx], labels[train_idx], images[val_idx], labels[val_idx]


def load_test(data_cfg: dict):
    images, labels = S.load_split(data_cfg["root"], train=False)
    return S.resize(images, data_cfg["resolution"]), labels


# ---------------------------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------------------------
def published_checkpoint(name: str, manifest: dict, *, allow_network: bool) -> Path:
    """Path of a verified published checkpoint, downloading it if allowed."""
    entry = manifest["checkpoints"][name]
    if entry.get("loadable") is False:
        raise ValueError(f"checkpoint {name!r} has another architecture ({entry['arch']}) and cannot be loaded")
    path = C.ROOT / entry["place_at"]
    sums = {k: entry[k] for k in ("md5", "sha256", "sha256_prefix") if k in entry}
    if path.exists():
        verify_checksum(path, **sums)
        return path
    missing = f"published checkpoint {name!r} is missing: download {entry['url']} and place it at {path}"
    if not allow_network:
        raise FileNotFoundError(missing)
    try:
        return download(entry["url"], path, **sums)
    except OSError as err:
        raise FileNotFoundError(f"{err}\n{missing}") from err


def parent_source(parent_cfg: dict, manifest: dict) -> str:
    """'published' or 'train', resolved from the config and what is on disk."""
    if parent_cfg["source"] != "auto":
        return parent_cfg["source"]
    name = parent_cfg.get("published")
    if name and (C.ROOT / manifest["checkpoints"][name]["place_at"]).exists():
        return "published"
    return "train"


def obtain_parent(cfg: dict, out_dir: str | Path, *, threads: int = 1, log: Callable = print,
                  allow_network: bool = True, manifest: dict | None = None) -> Path:
    """Write out_dir/{child.pt, curve.csv, meta.json} for the parent (its checkpoint is 'child.pt'
    so that parent and children are evaluated by the same code).

    The parent is the published checkpoint named by the config when its file is present and
    passes its checksum (`source: auto`), or always (`source: published`, downloading it);
    otherwise it is trained. A present file that fails its checksum is an error, never a
    silent fallback to training.
    """
    out_dir = Path(out_dir)
    spec = C.parent_spec(cfg, "cifar10")
    manifest = C.load_manifest() if manifest is None else manifest
    source = parent_source(cfg["tasks"]["cifar10"]["parent"], manifest)
    device = _setup(cfg, threads)
    chash = C.config_hash(spec)
    if source == "published":
        path = published_checkpoint(spec["published"], manifest, allow_network=allow_network)
        model = TASK.build_model(spec["arch"])
        record = load_checkpoint(model, path)
        _, _, val_x, val_y = load_train_val(spec["data"])
        best = {"step": None, **accuracy(model.to(device), val_x, val_y, mean=spec["data"]["mean"],
                                          std=spec["data"]["std"])}
        log(f"parent from published checkpoint {path} ({record}); validation {best}")
        result = TrainResult(best_state=model.state_dict(), best=best, curve=[], seconds=0.0)
    else:
        torch.manual_seed(spec["seed"])
        model = TASK.build_model(spec["arch"])
        method = load_method("baselines.alone").build(model, None, TASK, None, None)
        result = _fit(method, spec, load_train_val(spec["data"]), spec["seed"], out_dir, chash, device, log)
    if result is not None:  # rank 0 (or a single process) writes
        _write_run(out_dir, result, spec, seed=spec["seed"], config_hash=chash, device=device,
                   extra={"parent_source": source})
    return out_dir / "child.pt"


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------
def train_run(cfg: dict, method: str, variant: str, seed: int, out_dir: str | Path, *,
              parent_path: str | Path | None, init_path: str | Path | None, threads: int = 1,
              log: Callable = print) -> Path:
    out_dir = Path(out_dir)
    spec = C.run_spec(cfg, "cifar10", method, variant)
    chash = C.config_hash({**spec, "seed": seed})
    device = _setup(cfg, threads)
    module = load_method(spec["module"])
    params = make_params(module, spec["params"], key=f"methods.{method}.variants.{variant}.params")

    torch.manual_seed(seed)
    child = TASK.build_model(spec["arch"])
    if spec["init"] == "child":
        if init_path is None:
            raise ValueError(f"{method}/{variant} starts from the trained child, but no init_path was given")
        load_checkpoint(child, init_path)
    parent = None
    if module.NEEDS_PARENT:
        if parent_path is None:
            raise ValueError(f"{method}/{variant} needs the parent, but no parent_path was given")
        parent = TASK.build_model(cfg["tasks"]["cifar10"]["parent"]["arch"])
        load_checkpoint(parent, parent_path)
    splits = load_train_val(spec["data"])
    sample = normalize(splits[0][:2], torch.tensor(spec["data"]["mean"]).view(1, 3, 1, 1),
                       torch.tensor(spec["data"]["std"]).view(1, 3, 1, 1))
    objective = module.build(child, parent, TASK, params, sample)
    result = _fit(objective, spec, splits, seed, out_dir, chash, device, log)
    if result is not None:  # rank 0 (or a single process) writes
        _write_run(out_dir, result, spec, seed=seed, config_hash=chash, device=device,
                   extra={"trainable_parameters": sum(p.numel() for p in objective.parameters() if p.requires_grad)})
    return out_dir / "child.pt"


def _setup(cfg: dict, threads: int) -> torch.device:
    torch.set_num_threads(threads)
    device = pick_device(cfg["device"])
    if device.type == "cuda" and torch.distributed.is_initialized():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # one GPU per rank
        torch.cuda.set_device(device)
    if device.type == "cuda":
        # The switch governs CUDA kernels; CPU kernels are deterministic already (the resume test
        # checks bitwise equality), and calling it costs every job a 2 s import of torch._inductor.
        torch.use_deterministic_algorithms(cfg["deterministic"], warn_only=True)
        torch.backends.cudnn.benchmark = not cfg["deterministic"]
    return device


def _fit(method, spec: dict, splits, seed: int, out_dir: Path, chash: str, device, log) -> TrainResult | None:
    data = spec["data"]
    train_x, train_y, val_x, val_y = splits
    sched = dict(spec["schedule"])
    batches = Batches(train_x.to(device), train_y.to(device), batch_size=sched.pop("batch_size"), seed=seed,
                      mean=data["mean"], std=data["std"], crop_padding=data["crop_padding"])
    schedule = Schedule(**{k: tuple(v) if isinstance(v, list) else v for k, v in sched.items()})

    def validate(child):
        return accuracy(child, val_x, val_y, mean=data["mean"], std=data["std"])

    return train(method, batches, validate, schedule, out_dir, select=SELECT, config_hash=chash,
                 device=device, log=log)


def _write_run(out_dir: Path, result: TrainResult, spec: dict, *, seed: int, config_hash: str,
               device, extra: dict) -> None:
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    meta = {**run_metadata(config_hash=config_hash, seed=seed, device=device, scale=spec["scale"]),
            "spec": spec, "selected": result.best, "train_seconds": result.seconds, "world_size": world, **extra}
    with atomic_path(out_dir / "curve.csv") as tmp:
        pd.DataFrame(result.curve).to_csv(tmp, index=False)
    atomic_write_json(out_dir / "meta.json", meta)
    save_checkpoint(result.best_state, out_dir / "child.pt", arch=spec["arch"], task=spec["task"],
                    selected_step=-1 if result.best["step"] is None else result.best["step"])
    (out_dir / CHECKPOINT).unlink(missing_ok=True)  # training state is no longer needed


# ---------------------------------------------------------------------------------------------
# Evaluation (the only reader of the test split)
# ---------------------------------------------------------------------------------------------
RESULT_COLUMNS = ["task", "method", "variant", "dataset", "split", "metric", "seed", "value", "scale",
                  "commit", "config_hash", "python", "torch", "torchvision", "device", "eval_device"]


def evaluate(cfg: dict, run_dirs: dict[tuple[str, str, int], str | Path], out_csv: str | Path, *,
             threads: int = 1, log: Callable = print, allow_network: bool = True,
             manifest: dict | None = None) -> pd.DataFrame:
    """Score each deployed child on the test split; `run_dirs` maps (method, variant, seed) -> dir.

    Each child is loaded into a bare architecture with strict key matching: inference needs
    nothing but the child's own weights. Checkpoints listed in `evaluation.published` (e.g. the
    authors' released HKT ResNet-20) are scored as they are, with method 'published'.
    """
    import json

    from hkt.runmeta import device_name, run_metadata

    task_cfg = cfg["tasks"]["cifar10"]
    device = _setup(cfg, threads)
    data, ev = task_cfg["data"], task_cfg["evaluation"]
    test_x, test_y = load_test(data)
    mean, std = torch.tensor(data["mean"]).view(1, 3, 1, 1), torch.tensor(data["std"]).view(1, 3, 1, 1)
    example = normalize(test_x[:ev["timing"]["batch_size"]].to(device), mean, std)

    def score(model, val_acc):
        model.to(device)
        scores = accuracy(model, test_x, test_y, mean=data["mean"], std=data["std"], batch_size=ev["batch_size"])
        latency = inference_ms_per_image(model, example, warmup=ev["timing"]["warmup"],
                                         repeats=ev["timing"]["repeats"])
        return [("val", "top1_acc", val_acc), ("test", "top1_acc", scores["top1_acc"]),
                ("test", "top1_err", scores["top1_err"]), ("-", "params_m", count_parameters(model) / 1e6),
                ("-", "inference_ms", latency)]

    rows, common = [], {"task": "cifar10", "dataset": dataset_name(data), "scale": cfg["scale"],
                        "eval_device": device_name(device)}
    for (method, variant, seed), run_dir in run_dirs.items():
        meta = json.loads((Path(run_dir) / "meta.json").read_text())
        model = TASK.build_model(meta["spec"]["arch"])
        load_checkpoint(model, Path(run_dir) / "child.pt")
        base = {**common, "method": method, "variant": variant, "seed": seed,
                **{k: meta[k] for k in ("commit", "config_hash", "python", "torch", "torchvision", "device")}}
        rows += [{**base, "split": s, "metric": m, "value": v} for s, m, v in score(model, meta["selected"]["top1_acc"])]
        log(f"{method}/{variant} seed {seed}: test top-1 {rows[-3]['value']:.2f}%")
    manifest = C.load_manifest() if manifest is None else manifest
    val = load_train_val(data)[2:] if ev.get("published") else None
    for name in ev.get("published", []):
        entry = manifest["checkpoints"][name]
        model = TASK.build_model(entry["arch"])
        load_checkpoint(model, published_checkpoint(name, manifest, allow_network=allow_network))
        meta = run_metadata(config_hash=C.config_hash(entry), seed=None, device=device, scale=cfg["scale"])
        base = {**common, "method": "published", "variant": name, "seed": -1,
                **{k: meta[k] for k in ("commit", "config_hash", "python", "torch", "torchvision", "device")}}
        val_acc = accuracy(model.to(device), *val, mean=data["mean"], std=data["std"])["top1_acc"]
        rows += [{**base, "split": s, "metric": m, "value": v} for s, m, v in score(model, val_acc)]
    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table
