"""One validated configuration file -> plain per-run specifications.

`validate` runs before any job (the Snakefile calls it at parse time): first the JSON schema
(workflow/schemas/config.schema.yaml, typos included), then what a schema cannot know: that
every method module honours the contract, that each variant's parameters build its Params,
that stage counts fit the task's models, that the runs and table rows exist. Every error names
the offending key.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

from hkt.methods import load_method, make_params
from hkt.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
MANIFEST = ROOT / "data" / "MANIFEST.yaml"


class ConfigError(ValueError):
    pass


def load(path: str | Path) -> dict:
    path = Path(path)
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: {err}") from err
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return cfg


def load_manifest(path: str | Path = MANIFEST) -> dict:
    return yaml.safe_load(Path(path).read_text())


def validate(cfg: dict, manifest: dict | None = None) -> dict:
    """Return `cfg` unchanged if it is valid, else raise ConfigError naming the key."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        raise ConfigError(f"config key {_dotted(err.path) or '<top level>'}: {err.message}")
    manifest = load_manifest() if manifest is None else manifest
    for name, method in cfg["methods"].items():
        module = load_method(method["module"], key=f"methods.{name}.module")
        for variant in method["variants"]:
            params = _variant_params(method, variant)
            make_params(module, params, key=f"methods.{name}.variants.{variant}.params")
    for task_name, task_cfg in cfg["tasks"].items():
        _validate_task(cfg, task_name, task_cfg, manifest)
    return cfg


def _validate_task(cfg: dict, task_name: str, task_cfg: dict, manifest: dict) -> None:
    task = get_task(task_name)
    key = f"tasks.{task_name}"
    for role in ("parent", "child"):
        arch = task_cfg[role]["arch"]
        try:
            task.build_model(arch)
        except ValueError as err:
            raise ConfigError(f"config key {key}.{role}.arch: {err}") from err
    parent = task_cfg["parent"]
    if parent["source"] == "published" and not parent.get("published"):
        raise ConfigError(f"config key {key}.parent.published: required when parent.source is 'published'")
    for i, name in enumerate([parent.get("published")] + task_cfg["evaluation"].get("published", [])):
        if name and name not in manifest.get("checkpoints", {}):
            where = f"{key}.parent.published" if i == 0 else f"{key}.evaluation.published[{i - 1}]"
            raise ConfigError(f"config key {where}: {name!r} is not a checkpoint in data/MANIFEST.yaml")
    if parent.get("published"):
        entry = manifest["checkpoints"][parent["published"]]
        if entry["arch"] != parent["arch"]:
            raise ConfigError(f"config key {key}.parent.published: {parent['published']!r} is a "
                              f"{entry['arch']}, but parent.arch is {parent['arch']}")
    data = task_cfg["data"]
    if data["source"] == "generated":
        if "generated" not in data:
            raise ConfigError(f"config key {key}.data.generated: required when data.source is 'generated'")
        if data["val_size"] >= data["generated"]["n_train"]:
            raise ConfigError(f"config key {key}.data.val_size: must be smaller than generated.n_train")
    for i, run in enumerate(task_cfg["runs"]):
        method_name, variant = run.split("/")
        method = cfg["methods"].get(method_name)
        if method is None or variant not in method["variants"]:
            raise ConfigError(f"config key {key}.runs[{i}]: {run!r} names no configured method/variant")
        module = load_method(method["module"])
        params = make_params(module, _variant_params(method, variant))
        if hasattr(params, "check_task"):
            try:
                params.check_task(task)
            except ValueError as err:
                raise ConfigError(f"config key methods.{method_name}.variants.{variant}.params: {err}") from err
    uses_child = [r for r in task_cfg["runs"] if run_init(cfg, *r.split("/")) == "child"]
    if uses_child and run_init(cfg, *CHILD_RUN) != "scratch":
        raise ConfigError(f"config key {key}.runs: {uses_child[0]!r} starts from the trained child, which needs "
                          f"method {CHILD_RUN[0]!r} with a variant {CHILD_RUN[1]!r} trained from scratch")
    for row, run in task_cfg["table"]["paper_rows"].items():
        if run != "parent" and run not in task_cfg["runs"]:
            raise ConfigError(f"config key {key}.table.paper_rows.{row}: {run!r} is not in {key}.runs")


def _dotted(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _variant_params(method: dict, variant: str) -> dict:
    return {**(method.get("params") or {}), **(method["variants"][variant].get("params") or {})}


# ---------------------------------------------------------------------------------------------
# Resolved run specifications
# ---------------------------------------------------------------------------------------------
CHILD_RUN = ("alone", "default")  # the trained child that `init: child` runs start from


def run_init(cfg: dict, method: str, variant: str) -> str | None:
    m = cfg["methods"].get(method)
    if m is None or variant not in m["variants"]:
        return None
    return m["variants"][variant].get("init", m.get("init", "scratch"))


def runs(cfg: dict, task: str) -> list[tuple[str, str]]:
    return [tuple(run.split("/")) for run in cfg["tasks"][task]["runs"]]


def parent_spec(cfg: dict, task: str) -> dict:
    t = cfg["tasks"][task]
    return {"task": task, "role": "parent", "scale": cfg["scale"], "arch": t["parent"]["arch"],
            "source": t["parent"]["source"], "published": t["parent"].get("published"),
            "seed": t["parent"]["seed"], "schedule": t["parent"]["train"], "data": t["data"],
            "deterministic": cfg["deterministic"]}


def run_spec(cfg: dict, task: str, method: str, variant: str) -> dict:
    """Everything that determines a (method, variant) run except its seed."""
    t, m = cfg["tasks"][task], cfg["methods"][method]
    init = run_init(cfg, method, variant)
    module = load_method(m["module"])
    spec = {"task": task, "method": method, "variant": variant, "scale": cfg["scale"],
            "module": m["module"], "params": _variant_params(m, variant), "init": init,
            "arch": t["child"]["arch"], "schedule": t["child"]["finetune" if init == "child" else "train"],
            "data": t["data"], "deterministic": cfg["deterministic"], "needs_parent": module.NEEDS_PARENT}
    if module.NEEDS_PARENT:
        spec["parent"] = config_hash(parent_spec(cfg, task))
    if init == "child":
        spec["init_from"] = config_hash(run_spec(cfg, task, *CHILD_RUN))
    return spec


def config_hash(obj) -> str:
    """A short, stable digest of a JSON-able specification."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
