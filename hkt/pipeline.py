"""The experiment's jobs for any task: prepare data, obtain the parent, train one stage of a
run, evaluate. Each takes the resolved specification of its job (hkt.config) and reaches the
task only through its `Task` contract (hkt.tasks).

A model directory (the parent's, a run's, or a stage's) holds exactly: the deployable weights
(`parent.pt` or `child.pt`; best on validation), curve.csv (validation curve), meta.json
(commit, specification and its hash, versions, device, selection), `method.pt` after a stage
that another stage continues, and while training is in progress checkpoint.pt. Only
`evaluate` ever reads the test split.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hkt import config as C
from hkt.conventions import WEIGHTS
from hkt.fields import dataclass_from
from hkt.io import atomic_path, atomic_torch_save, atomic_write_csv, atomic_write_json, download, verify_checksum
from hkt.methods import load_method, make_params
from hkt.models import count_parameters, load_checkpoint, save_checkpoint
from hkt.runmeta import device_name, pick_device, run_metadata
from hkt.schedule import Schedule
from hkt.tasks import build_model, get_task
from hkt.timing import inference_ms_per_input
from hkt.train import CHECKPOINT, TrainResult, train

if TYPE_CHECKING:
    import pandas as pd

METHOD_STATE = "method.pt"  # the whole method (child and its trainable extras) for the next stage
RESULT_COLUMNS = [
    "task",
    "method",
    "variant",
    "dataset",
    "split",
    "metric",
    "seed",
    "value",
    "scale",
    "commit",
    "config_hash",
    "python",
    "torch",
    "torchvision",
    "device",
    "eval_device",
]
META_COLUMNS = ("commit", "config_hash", "python", "torch", "torchvision", "device")


def task_of(spec: dict):
    return get_task(spec["task"], spec.get("task_module"))


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------
def prepare_data(spec: dict, out: str | Path, *, allow_network: bool = True) -> dict:
    """Prepare one part of a data root (verify + extract what the download rules fetched, check a
    layout placed by hand, or generate) and write its record to `out` last."""
    task = task_of(spec)
    data = C.task_config(task, spec["data"], f"tasks.{spec['task']}.data")
    part = spec.get("part", "all")
    record = task.prepare_data(data, part=part, allow_network=allow_network)
    atomic_write_json(out, {"spec_hash": C.config_hash(spec), "data": spec["data"], "part": part, "prepared": record})
    return record


def mirrored(url: str, mirrors: dict | None) -> str:
    """`url` served from a site's mirror (config `mirrors`: URL prefix -> replacement; the longest
    matching prefix wins), or `url` itself."""
    prefixes = sorted((p for p in mirrors or {} if url.startswith(p)), key=len, reverse=True)
    return mirrors[prefixes[0]] + url[len(prefixes[0]) :] if prefixes else url


def fetch(item, log: Callable = print, mirrors: dict | None = None) -> Path:
    """One hkt.tasks.Download of a data job, fetched and verified (the local download rules run this)."""
    url = mirrored(item.url, mirrors)
    path = download(url, item.path, unpublished_checksum=not item.checksums, log=log, **item.checksums)
    log(
        f"{url} -> {path} (checked: {sorted(item.checksums) or 'length, and the sha256 recorded at the first download'})"
    )
    return path


# ---------------------------------------------------------------------------------------------
# Parent
# ---------------------------------------------------------------------------------------------
def published_checkpoint(name: str, entry: dict, *, allow_network: bool, mirrors: dict | None = None) -> Path:
    """Path of a verified published checkpoint (a data/MANIFEST.yaml entry), downloading it if allowed."""
    if entry.get("loadable") is False:
        raise ValueError(f"checkpoint {name!r} has another architecture ({entry['arch']}) and cannot be loaded")
    path = C.ROOT / entry["place_at"]
    sums = {k: entry[k] for k in ("md5", "sha256", "sha256_prefix") if k in entry}
    cached = C.hub_cache_path(entry)
    if not path.exists() and cached.exists():  # already in the torch hub cache: verify, then copy
        verify_checksum(cached, **sums)
        with atomic_path(path) as tmp:
            tmp.write_bytes(cached.read_bytes())
    if path.exists():
        verify_checksum(path, **sums)
        return path
    missing = (
        f"published checkpoint {name!r} is missing: download {entry['url']} and place it at {path} "
        f"(or in the torch hub cache, {cached})"
    )
    if not allow_network:
        raise FileNotFoundError(missing)
    try:
        return download(mirrored(entry["url"], mirrors), path, **sums)
    except OSError as err:
        raise FileNotFoundError(f"{err}\n{missing}") from err


def obtain_parent(
    spec: dict,
    out_dir: str | Path,
    *,
    init_path: str | Path | None = None,
    threads: int = 1,
    log: Callable = print,
    allow_network: bool = True,
) -> Path:
    """One stage of the parent: a verified published checkpoint, or trained with the task loss.

    A present file that fails its checksum is an error, never a silent fallback to training.
    """
    if spec["source"] == "train":
        return train_stage(spec, out_dir, init_path=init_path, threads=threads, log=log)
    out_dir, task = Path(out_dir), task_of(spec)
    device = setup(spec, threads)
    path = published_checkpoint(spec["published"], spec["checkpoint"], allow_network=allow_network)
    model = build_model(task, spec["arch"])
    record = load_checkpoint(model, path)
    data = task.training(C.task_config(task, spec["data"], "data"), batch_size=1, seed=spec["seed"], device=device)
    best = {"step": None, **data.validate(model.to(device))}
    log(f"parent from published checkpoint {path} ({record}); validation {best}")
    result = TrainResult(
        best_state={f"child.{k}": v for k, v in model.state_dict().items()}, best=best, curve=[], seconds=0.0
    )
    write_model_dir(out_dir, result, spec, device=device, extra={"parent_source": "published"})
    return out_dir / WEIGHTS["parent"]


# ---------------------------------------------------------------------------------------------
# Training (one stage of a run or of the parent)
# ---------------------------------------------------------------------------------------------
def train_stage(
    spec: dict,
    out_dir: str | Path,
    *,
    parent_path: str | Path | None = None,
    init_path: str | Path | None = None,
    threads: int = 1,
    log: Callable = print,
) -> Path:
    """Train one stage of a run (or of the parent) as its specification says.

    `init_path` is the model directory this stage starts from: the previous stage of the same
    run (the whole method continues), or for a run's first stage with `init: child` the
    trained child-alone run of the same seed (only the child's weights). `parent_path` is the
    parent's weights for methods that read it.
    """
    out_dir, task = Path(out_dir), task_of(spec)
    chash = C.config_hash(spec)
    device = setup(spec, threads)
    role = spec["role"]
    key = f"methods.{spec.get('method')}.variants.{spec.get('variant')}.params" if role == "run" else "parent"
    module = load_method(spec["module"])
    params = make_params(module, spec["params"], key=key)
    continues = spec["stage"] != spec["stages"][0]

    torch.manual_seed(spec["seed"])
    child = build_model(task, spec["arch"])
    if (continues or spec["init"] == "child") and init_path is None:
        raise ValueError(f"{_name(spec)} starts from another model, but no init_path was given")
    if spec["init"] == "child" and not continues:
        load_checkpoint(child, Path(init_path) / WEIGHTS["run"])
    parent = None
    if module.NEEDS_PARENT:
        if parent_path is None:
            raise ValueError(f"{_name(spec)} needs the parent, but no parent_path was given")
        parent = build_model(task, spec["parent_arch"])
        load_checkpoint(parent, parent_path)
    schedule = dataclass_from(Schedule, spec["schedule"], "schedule")
    data = task.training(
        C.task_config(task, spec["data"], "data"), batch_size=schedule.batch_size, seed=spec["seed"], device=device
    )
    objective = module.build(child, parent, data.adapt(task), params, data.sample)
    if continues:
        _load_method_state(objective, Path(init_path) / METHOD_STATE)
    result = train(
        objective,
        data.batches,
        data.validate,
        schedule,
        out_dir,
        select=task.select,
        config_hash=chash,
        device=device,
        log=log,
        label=_name(spec),
    )
    if result is not None:  # rank 0 (or a single process) writes
        trainable = sum(p.numel() for p in objective.parameters() if p.requires_grad)
        write_model_dir(
            out_dir,
            result,
            spec,
            device=device,
            extra={"trainable_parameters": trainable, "parent_source": spec.get("source")},
        )
    return out_dir / WEIGHTS[role]


def _name(spec: dict) -> str:
    run = "parent" if spec["role"] == "parent" else f"{spec['method']}/{spec['variant']} seed {spec['seed']}"
    return f"{spec['task']} {run} stage {spec['stage']!r}"


def _load_method_state(objective, path: Path) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        objective.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"{path} does not match this method: {err}") from err


def setup(spec: dict, threads: int) -> torch.device:
    torch.set_num_threads(threads)
    device = pick_device(spec["device"])
    if device.type == "cuda" and torch.distributed.is_initialized():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))  # one GPU per rank
        torch.cuda.set_device(device)
    if device.type == "cuda":
        # The switch governs CUDA kernels; CPU kernels are deterministic already (the resume test
        # checks bitwise equality), and calling it costs every job a 2 s import of torch._inductor.
        torch.use_deterministic_algorithms(spec["deterministic"], warn_only=True)
        torch.backends.cudnn.benchmark = not spec["deterministic"]
    return device


def write_model_dir(out_dir: Path, result: TrainResult, spec: dict, *, device, extra: dict) -> None:
    """curve.csv, meta.json, method.pt (before a further stage), then the weights last."""
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    meta = {
        **run_metadata(config_hash=C.config_hash(spec), seed=spec["seed"], device=device, scale=spec["scale"]),
        "spec": spec,
        "selected": result.best,
        "train_seconds": result.seconds,
        "world_size": world,
        **extra,
    }
    # a published parent trains no step: its curve is the header alone
    atomic_write_csv(out_dir / "curve.csv", result.curve, columns_if_empty=("step",))
    atomic_write_json(out_dir / "meta.json", meta)
    if spec["stage"] != spec["stages"][-1]:
        atomic_torch_save(result.best_state, out_dir / METHOD_STATE)
    child = {k[len("child.") :]: v for k, v in result.best_state.items() if k.startswith("child.")}
    save_checkpoint(
        child,
        out_dir / WEIGHTS[spec["role"]],
        arch=spec["arch"],
        task=spec["task"],
        selected_step=-1 if result.best["step"] is None else result.best["step"],
    )
    (out_dir / CHECKPOINT).unlink(missing_ok=True)  # training state is no longer needed


# ---------------------------------------------------------------------------------------------
# Evaluation (the only reader of the test split)
# ---------------------------------------------------------------------------------------------
def check_recorded(meta: dict, spec: dict, where: str) -> None:
    """Refuse a model whose recorded specification is not the current one, naming the keys."""
    if meta.get("config_hash") == C.config_hash(spec):
        return
    changed = C.differing_keys(meta.get("spec") or {}, spec)
    upstream = {
        "upstream.parent": "the parent",
        "upstream.init": "the trained child it starts from",
        "upstream.previous_stage": "its previous training stage",
    }
    changed = [f"{k} ({upstream[k]} was retrained or changed)" if k in upstream else k for k in changed]
    raise ValueError(
        f"{where} was trained with another specification (hash {meta.get('config_hash')}, "
        f"now {C.config_hash(spec)}); changed: {', '.join(changed) or 'unknown'}. "
        f"Rerun its training (snakemake reruns it unless told otherwise)."
    )


def load_deployed(task, model_dir: str | Path, current: dict, what: str):
    """The deployed model of a model directory in its bare architecture (strict keys), after
    checking that it was trained with the `current` specification; returns (model, meta)."""
    model_dir = Path(model_dir)
    meta = json.loads((model_dir / "meta.json").read_text())
    check_recorded(meta, current, f"{what} ({model_dir})")
    model = build_model(task, current["arch"])
    load_checkpoint(model, model_dir / WEIGHTS[current["role"]])
    return model, meta


def evaluate(
    spec: dict,
    models: dict[tuple[str, str, int], tuple[str | Path, dict]],
    out_csv: str | Path,
    *,
    threads: int = 1,
    log: Callable = print,
    allow_network: bool = True,
) -> pd.DataFrame:
    """Score each model on the test data; `models` maps (method, variant, seed) -> (dir, current spec).

    Each model is loaded into a bare architecture with strict key matching: inference needs
    nothing but its own weights. Published checkpoints of the evaluation spec (e.g. the
    authors' released children) are scored as they are, with method 'published'.
    """
    task = task_of(spec)
    device = setup(spec, threads)
    data = C.task_config(task, spec["data"], "data")
    ev = dataclass_from(task.eval_config, spec["evaluation"], "evaluation")
    test = task.evaluation(data, ev, device)
    timing = spec["evaluation"]["timing"]
    metric = task.select[0]

    def score(model, val_value, trainable=None):
        model.to(device)
        latency = inference_ms_per_input(
            model, test.infer, test.batch_size, warmup=timing["warmup"], repeats=timing["repeats"]
        )
        deployed = count_parameters(model)
        rows = [
            {"dataset": "-", "split": "val", "metric": metric, "value": val_value},
            *test.score(model),
            {"dataset": "-", "split": "-", "metric": "params_m", "value": deployed / 1e6},
            {"dataset": "-", "split": "-", "metric": "inference_ms", "value": latency},
        ]
        if trainable is not None:  # what training updated beyond the deployed network (ETM units, regressors)
            rows.append(
                {"dataset": "-", "split": "-", "metric": "extra_params_m", "value": (trainable - deployed) / 1e6}
            )
        return rows

    rows, common = [], {"task": spec["task"], "scale": spec["scale"], "eval_device": device_name(device)}
    for (method, variant, seed), (model_dir, current) in models.items():
        model, meta = load_deployed(task, model_dir, current, f"{spec['task']} {method}/{variant} seed {seed}")
        base = {**common, "method": method, "variant": variant, "seed": seed, **{k: meta[k] for k in META_COLUMNS}}
        scored = score(model, meta["selected"][metric], meta.get("trainable_parameters"))
        rows += [{**base, **r} for r in scored]
        log(
            f"{method}/{variant} seed {seed}: "
            + ", ".join(f"{r['dataset']} {r['split']} {r['metric']} {r['value']:.4g}" for r in scored)
        )
    if spec["published"]:
        val = task.training(data, batch_size=1, seed=0, device=device).validate
    for name, entry in spec["published"].items():
        model = build_model(task, entry["arch"])
        load_checkpoint(model, published_checkpoint(name, entry, allow_network=allow_network))
        meta = run_metadata(config_hash=C.config_hash(entry), seed=None, device=device, scale=spec["scale"])
        base = {**common, "method": "published", "variant": name, "seed": -1, **{k: meta[k] for k in META_COLUMNS}}
        rows += [{**base, **r} for r in score(model, val(model.to(device))[metric])]
    import pandas as pd  # here, not at the top: training jobs, which import this module, need none

    table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    return table


# ---------------------------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------------------------
def export(spec: dict, name: str, model_dir: str | Path, current: dict, out_dir: str | Path, *, threads: int = 1):
    """Write the task's export `name` of one deployed model into `out_dir`, all or nothing.

    The model is checked against its current specification and loaded into its bare
    architecture, as evaluation does; files go to a staging folder that is renamed into place
    with its `export.json` (what was exported, from which model, with the run metadata) last.
    """
    task = task_of(spec)
    device = setup(spec, threads)
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    model, _ = load_deployed(task, model_dir, current, f"{spec['task']} export {name}")
    staging = out_dir.with_name(out_dir.name + ".partial")
    if staging.exists():  # left by a killed job
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    data = C.task_config(task, spec["data"], "data")
    ev = dataclass_from(task.eval_config, spec["evaluation"], "evaluation")
    with torch.no_grad():
        record = task.exports[name](model.to(device).eval(), data, ev, staging, device)
    meta_out = run_metadata(
        config_hash=C.config_hash(current), seed=current.get("seed"), device=device, scale=spec["scale"]
    )
    atomic_write_json(
        staging / "export.json", {"export": name, "model_dir": str(model_dir), **record, "meta": meta_out}
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return out_dir
