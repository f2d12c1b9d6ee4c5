"""One validated configuration file -> plain, resolved specifications of every job.

`validate` runs before any job (the Snakefile calls it at parse time): first the JSON schema
(workflow/schemas/config.schema.yaml, typos included), then what a schema cannot know: that
every method module honours the contract, that each variant's parameters build its Params,
that each task's data/evaluation blocks build its own config dataclasses, that schedules and
stage counts fit, that runs and report rows exist. Every error names the offending key.

The specifications (`parent_specs`, `run_specs`, `evaluation_spec`, `report_spec`) are what a
job receives through Snakemake's `params:` and nothing else: a job never reads the config.
Each is canonical (keys sorted at every level), so reordering or reformatting the YAML changes
nothing, while any value that affects a job changes its specification, hence its hash and
Snakemake's rerun decision. A specification names its upstream jobs by their hashes, so a
change reruns everything downstream of it too.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import yaml

from hkt.benchplan import bench_block
from hkt.conventions import CHILD_RUN, MANIFEST, ROOT  # noqa: F401  (C.ROOT, C.CHILD_RUN: read by the DAG)
from hkt.fields import dataclass_from
from hkt.methods import load_method, make_params
from hkt.schedule import Schedule
from hkt.tasks import build_model, get_task

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
STAGE_KEYS = ("name", "data")  # keys of a stage entry that are not Schedule fields
SINGLE_STAGE = "main"  # the name of the one stage of a schedule given as a mapping


class ConfigError(ValueError):
    pass


# The printed numbers that tables are set beside: the HKT paper's transcription, and the
# literature's (other papers' numbers in the same columns, e.g. the CIFAR-100 rows).
PAPER_FILES = ("results/paper/results.csv", "results/paper/literature.csv")


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


def manifest_datasets(data: dict, datasets: dict | None = None) -> dict:
    """The data/MANIFEST.yaml `datasets` entries that a data block names by a value (LiTS's
    `archive: lits_decathlon`): part of its data job's specification, so that a changed URL or
    checksum reruns exactly the jobs that read it (the file itself is not their input: a changed
    checkpoint entry must rerun no data job)."""
    datasets = load_manifest()["datasets"] if datasets is None else datasets
    return {v: datasets[v] for v in data.values() if isinstance(v, str) and v in datasets}


def manifest_for(cfg: dict) -> dict:
    """data/MANIFEST.yaml with the configuration's `stand_ins` in place of the checkpoints they
    replace (a rehearsal's random-weight files, marked `stand_in: true` in every specification
    that names them, so no result is ever mistaken for one of the published weights)."""
    manifest = load_manifest()
    for name, entry in (cfg.get("stand_ins") or {}).items():
        manifest["checkpoints"][name] = {**entry, "stand_in": True}
    return manifest


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------
def validate(cfg: dict, manifest: dict | None = None) -> dict:
    """Return `cfg` unchanged if it is valid, else raise ConfigError naming the key."""
    import jsonschema

    schema = yaml.safe_load(SCHEMA.read_text())
    err = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if err is not None:
        while err.context:  # "not valid under any of the given schemas": say why, at the deepest key
            err = max(err.context, key=lambda e: (len(e.absolute_path), -len(e.schema_path)))
        raise ConfigError(f"config key {_dotted(err.absolute_path) or '<top level>'}: {err.message}")
    manifest = manifest_for(cfg) if manifest is None else manifest
    for name, method in cfg["methods"].items():
        module = load_method(method["module"], key=f"methods.{name}.module")
        for variant in method["variants"]:
            make_params(module, _variant_params(method, variant), key=f"methods.{name}.variants.{variant}.params")
    for task_name, task_cfg in cfg["tasks"].items():
        try:
            _validate_task(cfg, task_name, task_cfg, manifest)
        except ConfigError:
            raise
        except ValueError as err:
            raise ConfigError(f"config key {err}") from err
    data_jobs(cfg)  # blocks that share a data root must prepare it alike
    for task_name, task_cfg in cfg["tasks"].items():  # every GPU job fits one of the site's GPU classes
        for kind, block in task_cfg["resources"].items():
            try:
                gpu_constraint(cfg, block.get("gpu_mem_mb"), block["gpus"])
            except ConfigError as err:
                raise ConfigError(f"config key tasks.{task_name}.resources.{kind}.gpu_mem_mb: {err}") from None
    return cfg


_BUILT: set[tuple[str, str]] = set()  # (task name, architecture) built once in this process


def _check_arch(task, arch: str) -> None:
    """Raise ValueError if the task cannot build `arch`. Every SLURM job validates the configuration
    again, and building real models took seconds of each job's start: each architecture is built
    once per task package, on the meta device (shapes only, no weights initialised)."""
    if (task.name, arch) in _BUILT:
        return
    import torch

    with torch.device("meta"):
        build_model(task, arch)
    _BUILT.add((task.name, arch))


def _validate_task(cfg: dict, task_name: str, task_cfg: dict, manifest: dict) -> None:
    key = f"tasks.{task_name}"
    try:
        task = get_task(task_name, task_cfg.get("module"))
    except ValueError as err:
        raise ValueError(f"{key}.module: {err}") from err
    for role in ("parent", "child"):
        try:
            _check_arch(task, task_cfg[role]["arch"])
        except ValueError as err:
            raise ValueError(f"{key}.{role}.arch: {err}") from err
    task_config(task, task_cfg["data"], f"{key}.data")
    if task.check_config:
        try:
            task.check_config(task_cfg)
        except ValueError as err:
            raise ValueError(f"{key}.{err}") from err
    dataclass_from(task.eval_config, task_cfg["evaluation"], f"{key}.evaluation")
    _validate_stages(task, task_cfg, key)
    _validate_checkpoints(task_cfg, key, manifest)
    _validate_runs(cfg, task_name, task, task_cfg, key)
    bench = bench_block(task_cfg, key)
    if bench is not None and bench.pipelines is not None:
        if task.plain_loader is None:
            raise ValueError(
                f"{key}.bench.pipelines: task {task.name!r} describes no DataLoader loop (Task.plain_loader)"
            )
        task_config(task, {**task_cfg["data"], **(bench.pipelines.data or {})}, f"{key}.bench.pipelines.data")
    _validate_report(task, task_cfg, key)


def _validate_stages(task, task_cfg: dict, key: str) -> None:
    """Every training stage: unique names, a valid Schedule, its data block with the stage's overrides."""
    for role, schedule in (("parent", "train"), ("child", "train"), ("child", "finetune")):
        block = task_cfg[role][schedule]
        names = [stage["name"] for stage in stages(block)]
        if len(set(names)) != len(names):
            raise ValueError(f"{key}.{role}.{schedule}: stage names must be unique, got {names}")
        for i, stage in enumerate(stages(block)):
            skey = f"{key}.{role}.{schedule}" + (f"[{i}]" if isinstance(block, list) else "")
            dataclass_from(Schedule, schedule_of(stage), skey)
            task_config(task, merge(task_cfg["data"], stage.get("data")), f"{skey}.data")


def _validate_checkpoints(task_cfg: dict, key: str, manifest: dict) -> None:
    """Published checkpoints: each in data/MANIFEST.yaml, the parent's of the parent's architecture."""
    parent = task_cfg["parent"]
    if parent["source"] == "published" and not parent.get("published"):
        raise ValueError(f"{key}.parent.published: required when parent.source is 'published'")
    for i, name in enumerate([parent.get("published")] + task_cfg["evaluation"].get("published", [])):
        if name and name not in manifest.get("checkpoints", {}):
            where = f"{key}.parent.published" if i == 0 else f"{key}.evaluation.published[{i - 1}]"
            raise ValueError(f"{where}: {name!r} is not a checkpoint in data/MANIFEST.yaml")
    if parent.get("published"):
        entry = manifest["checkpoints"][parent["published"]]
        if entry["arch"] != parent["arch"]:
            raise ValueError(
                f"{key}.parent.published: {parent['published']!r} is a "
                f"{entry['arch']}, but parent.arch is {parent['arch']}"
            )


def _validate_runs(cfg: dict, task_name: str, task, task_cfg: dict, key: str) -> None:
    """Each run: a configured method/variant, its parameters for this task, its architecture, and
    the trained child it may start from."""
    for method_name in task_cfg.get("method_params") or {}:
        if method_name not in cfg["methods"]:
            raise ValueError(f"{key}.method_params.{method_name}: no such method in `methods`")
    for i, run in enumerate(task_cfg["runs"]):
        method_name, variant = run.split("/")
        method = cfg["methods"].get(method_name)
        if method is None or variant not in method["variants"]:
            raise ValueError(f"{key}.runs[{i}]: {run!r} names no configured method/variant")
        params = make_params(
            load_method(method["module"]),
            _run_params(cfg, task_name, method_name, variant),
            key=f"methods.{method_name}.variants.{variant}.params (with {key}.method_params)",
        )
        arch = run_arch(cfg, task_name, method_name, variant)
        if arch != task_cfg["child"]["arch"]:
            where = "variants." + variant if "arch" in method["variants"][variant] else "arch"
            try:
                _check_arch(task, arch)
            except ValueError as err:
                raise ValueError(f"methods.{method_name}.{where} ({arch!r} for {key}): {err}") from err
            if run_init(cfg, method_name, variant) == "child":
                raise ValueError(
                    f"methods.{method_name}.{where}: a run that deploys its own architecture cannot "
                    f"start from the trained child ({task_cfg['child']['arch']}); use init: scratch"
                )
        if hasattr(params, "check_task"):
            try:
                params.check_task(task)
            except ValueError as err:
                raise ValueError(f"methods.{method_name}.variants.{variant}.params: {err}") from err
    uses_child = [r for r in task_cfg["runs"] if run_init(cfg, *r.split("/")) == "child"]
    if uses_child and run_init(cfg, *CHILD_RUN) != "scratch":
        raise ValueError(
            f"{key}.runs: {uses_child[0]!r} starts from the trained child, which needs "
            f"method {CHILD_RUN[0]!r} with a variant {CHILD_RUN[1]!r} trained from scratch"
        )
    if uses_child and "/".join(CHILD_RUN) not in task_cfg["runs"]:
        raise ValueError(
            f"{key}.runs: {uses_child[0]!r} starts from the trained child, so "
            f"{'/'.join(CHILD_RUN)!r} must be in the runs"
        )


def _validate_report(task, task_cfg: dict, key: str) -> None:
    report = task_cfg["report"]
    runs = set(task_cfg["runs"]) | {"parent"}
    for name, table in report["tables"].items():
        if name not in task.tables:
            raise ValueError(
                f"{key}.report.tables.{name}: the {task.name} task makes no such table; it makes {sorted(task.tables)}"
            )
        for i, row in enumerate(table.get("rows", [])):
            if row["paper"] is None and (row["run"] is None or not row.get("label")):
                raise ValueError(
                    f"{key}.report.tables.{name}.rows[{i}]: a row without a paper method needs a run and a label"
                )
        named = [
            (f"rows[{i}].run", row["run"]) for i, row in enumerate(table.get("rows", [])) if row["run"] is not None
        ]
        named += [(f"controls[{i}]", run) for i, run in enumerate(table.get("controls", []))]
        named += [(f"runs.{role}", run) for role, run in (table.get("runs") or {}).items()]
        for where, run in named:
            if run not in runs:
                raise ValueError(f"{key}.report.tables.{name}.{where}: {run!r} is not in {key}.runs")
    for i, name in enumerate(report["figures"]):
        if name not in task.figures:
            raise ValueError(
                f"{key}.report.figures[{i}]: the {task.name} task makes no figure {name!r}; "
                f"it makes {sorted(task.figures)}"
            )
    for name, export_runs in (report.get("exports") or {}).items():
        if name not in task.exports:
            raise ValueError(
                f"{key}.report.exports.{name}: the {task.name} task has no such export; it has {sorted(task.exports)}"
            )
        for i, run in enumerate(export_runs):
            if run not in task_cfg["runs"]:
                raise ValueError(f"{key}.report.exports.{name}[{i}]: {run!r} is not in {key}.runs")


def _dotted(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _variant_params(method: dict, variant: str) -> dict:
    return {**(method.get("params") or {}), **(method["variants"][variant].get("params") or {})}


def _run_params(cfg: dict, task: str, method: str, variant: str) -> dict:
    """A run's method parameters: the method's, then the task's overrides, then the variant's."""
    m = cfg["methods"][method]
    task_params = (cfg["tasks"][task].get("method_params") or {}).get(method) or {}
    return {**(m.get("params") or {}), **task_params, **(m["variants"][variant].get("params") or {})}


def task_config(task, data: dict, key: str):
    """The task's data dataclass built from a (merged) data block."""
    return dataclass_from(task.data_config, data, key)


# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------
def stages(schedule_cfg: dict | list) -> list[dict]:
    """A schedule block as a list of stages: a mapping is one stage named 'main'; a list holds
    stages in training order, each with a `name`, optional `data` overrides and its schedule."""
    if isinstance(schedule_cfg, dict):
        return [{"name": SINGLE_STAGE, **schedule_cfg}]
    return [dict(stage) for stage in schedule_cfg]


def schedule_of(stage: dict) -> dict:
    return {k: v for k, v in stage.items() if k not in STAGE_KEYS}


def merge(base: dict, override: dict | None) -> dict:
    """`base` with `override` merged in, nested mappings merged key by key."""
    out = dict(base)
    for k, v in (override or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------------------------------------
# Resolved specifications (what each job receives through `params:`)
# ---------------------------------------------------------------------------------------------
def canonical(obj):
    """A copy with mapping keys sorted at every level (stable repr, stable hash)."""
    if isinstance(obj, dict):
        return {str(k): canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    return obj


def config_hash(obj) -> str:
    """A short, stable digest of a JSON-able specification."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_init(cfg: dict, method: str, variant: str) -> str | None:
    m = cfg["methods"].get(method)
    if m is None or variant not in m["variants"]:
        return None
    return m["variants"][variant].get("init", m.get("init", "scratch"))


def run_arch(cfg: dict, task: str, method: str, variant: str) -> str:
    """The architecture a run deploys: the variant's or method's `arch` (with `{parent}` and
    `{child}` replaced by the task's), else the task's child architecture."""
    t, m = cfg["tasks"][task], cfg["methods"][method]
    arch = m["variants"][variant].get("arch", m.get("arch"))
    if arch is None:
        return t["child"]["arch"]
    return arch.replace("{parent}", t["parent"]["arch"]).replace("{child}", t["child"]["arch"])


def run_schedule(cfg: dict, method: str, variant: str) -> str:
    """`train` or `finetune`: the child schedule a run follows (by default, as its init says)."""
    m = cfg["methods"][method]
    default = "finetune" if run_init(cfg, method, variant) == "child" else "train"
    return m["variants"][variant].get("schedule", m.get("schedule", default))


def runs(cfg: dict, task: str) -> list[tuple[str, str]]:
    return [tuple(run.split("/")) for run in cfg["tasks"][task]["runs"]]


def _common(cfg: dict, task: str) -> dict:
    t = cfg["tasks"][task]
    return {
        "task": task,
        "task_module": t.get("module"),
        "scale": cfg["scale"],
        "device": cfg["device"],
        "deterministic": cfg["deterministic"],
    }


def resolved(obj) -> dict:
    """A validated config dataclass as the plain values a job uses, defaults included: a changed
    code default changes the specification, and writing a default out explicitly does not."""
    return dataclasses.asdict(obj)


def resolved_data(cfg: dict, task: str, data: dict) -> dict:
    t = cfg["tasks"][task]
    return resolved(task_config(get_task(task, t.get("module")), data, f"tasks.{task}.data"))


def _staged(cfg: dict, task: str, base: dict, data: dict, schedule_cfg, upstream: dict) -> list[dict]:
    """One specification per stage; each later stage names the one before it."""
    entries = stages(schedule_cfg)
    names = [s["name"] for s in entries]
    out = []
    for k, stage in enumerate(entries):
        ups = (
            dict(upstream)
            if k == 0
            else {**{u: h for u, h in upstream.items() if u != "init"}, "previous_stage": config_hash(out[-1])}
        )
        out.append(
            canonical(
                {
                    **base,
                    "stage": stage["name"],
                    "stages": names,
                    "schedule": resolved(dataclass_from(Schedule, schedule_of(stage), "schedule")),
                    "data": resolved_data(cfg, task, merge(data, stage.get("data"))),
                    "upstream": ups,
                }
            )
        )
    return out


def hub_cache_path(entry: dict) -> Path:
    """Where torch.hub keeps a downloaded release of this manifest entry."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / Path(entry["url"]).name


def parent_specs(cfg: dict, task: str, manifest: dict | None = None) -> list[dict]:
    """The parent's job specifications: one per training stage, or one for a published checkpoint."""
    manifest = manifest_for(cfg) if manifest is None else manifest
    t = cfg["tasks"][task]
    p = t["parent"]
    base = {**_common(cfg, task), "role": "parent", "arch": p["arch"], "seed": p["seed"]}
    # `published` or `train`, as written: an `auto` that chose by what is on disk planned other jobs
    # once a file appeared, so one configuration gave two DAGs.
    if p["source"] == "published":
        return [
            canonical(
                {
                    **base,
                    "source": "published",
                    "published": p["published"],
                    "checkpoint": manifest["checkpoints"][p["published"]],
                    "stage": "published",
                    "stages": ["published"],
                    "data": resolved_data(cfg, task, t["data"]),
                    "upstream": {},
                }
            )
        ]
    return _staged(
        cfg,
        task,
        {**base, "source": "train", "module": "baselines.alone", "params": {}, "init": "scratch"},
        t["data"],
        p["train"],
        {},
    )


def run_specs(cfg: dict, task: str, method: str, variant: str, seed: int, manifest: dict | None = None) -> list[dict]:
    """The job specifications of one (method, variant, seed) run: one per training stage."""
    t, m = cfg["tasks"][task], cfg["methods"][method]
    init = run_init(cfg, method, variant)
    module = load_method(m["module"])
    base = {
        **_common(cfg, task),
        "role": "run",
        "method": method,
        "variant": variant,
        "seed": seed,
        "module": m["module"],
        "params": resolved(make_params(module, _run_params(cfg, task, method, variant))),
        "init": init,
        "arch": run_arch(cfg, task, method, variant),
        "needs_parent": module.NEEDS_PARENT,
    }
    upstream = {}
    if module.NEEDS_PARENT:
        base["parent_arch"] = t["parent"]["arch"]
        upstream["parent"] = config_hash(parent_specs(cfg, task, manifest)[-1])
    if init == "child":
        upstream["init"] = config_hash(run_specs(cfg, task, *CHILD_RUN, seed, manifest)[-1])
    return _staged(cfg, task, base, t["data"], t["child"][run_schedule(cfg, method, variant)], upstream)


# ---------------------------------------------------------------------------------------------
# Data jobs: one per (data root, part), shared by the blocks that read it
# ---------------------------------------------------------------------------------------------
def data_root_key(cfg: dict, task: str) -> str:
    """A file-name-safe name for the task's data root (`data/flow` -> `data-flow`)."""
    root = resolved_data(cfg, task, cfg["tasks"][task]["data"])["root"]
    return "-".join(part for part in Path(root).parts if part not in ("/", ".", "")) or "root"


def stage_data(cfg: dict, task: str) -> list[dict]:
    """The resolved data configuration of every training stage of a block (parent and child)."""
    t = cfg["tasks"][task]
    out = []
    for role, schedule in (("parent", "train"), ("child", "train"), ("child", "finetune")):
        for stage in stages(t[role][schedule]):
            data = resolved_data(cfg, task, merge(t["data"], stage.get("data")))
            if data not in out:
                out.append(data)
    return out


def data_parts(cfg: dict, task: str) -> list[str]:
    """The parts of its data root a block reads (its stages' training sets and its evaluation
    sets, e.g. no HD1K for C+T): each part is prepared by one job, shared by every block."""
    t = cfg["tasks"][task]
    task_obj = get_task(task, t.get("module"))
    if task_obj.data_parts is None:
        return ["all"]
    configs = [task_config(task_obj, d, f"tasks.{task}.data") for d in stage_data(cfg, task)]
    return list(task_obj.data_parts(configs))


def data_jobs(cfg: dict) -> dict[tuple[str, str], dict]:
    """(root key, part) -> the specification of the job that prepares that part of that root.

    Blocks that share a data root share its jobs, so a dataset is fetched and extracted once; they
    must then prepare it alike (the same task package and the same data block), else ConfigError.
    """
    jobs, owner = {}, {}
    datasets = load_manifest()["datasets"]  # read once, not once per block and part
    for task, t in cfg["tasks"].items():
        key = data_root_key(cfg, task)
        data = resolved_data(cfg, task, t["data"])
        module = task_module_of(cfg, task)
        if key in owner:
            first = owner[key]
            if (module, data) != (task_module_of(cfg, first), resolved_data(cfg, first, cfg["tasks"][first]["data"])):
                raise ConfigError(
                    f"config key tasks.{task}.data: shares the data root {data['root']!r} with tasks.{first}.data "
                    "but prepares it differently (another task package or data block); give it its own root"
                )
        owner.setdefault(key, task)
        for part in data_parts(cfg, task):
            spec = {"task": owner[key], "task_module": cfg["tasks"][owner[key]].get("module"), "part": part}
            spec["manifest"] = manifest_datasets(data, datasets)
            jobs.setdefault((key, part), canonical({**spec, "data": data, "root_key": key}))
    return jobs


def task_module_of(cfg: dict, task: str) -> str:
    from hkt.tasks import task_module

    return task_module(task, cfg["tasks"][task].get("module"))


def data_spec(cfg: dict, task: str, part: str | None = None) -> dict:
    """What a data job needs: the data block of the root a block reads, and which part of it (by
    default the block's first)."""
    key = data_root_key(cfg, task)
    return data_jobs(cfg)[(key, part or data_parts(cfg, task)[0])]


def evaluation_spec(cfg: dict, task: str, manifest: dict | None = None) -> dict:
    """What the evaluation job needs: the test data, evaluation options and published releases."""
    manifest = manifest_for(cfg) if manifest is None else manifest
    t = cfg["tasks"][task]
    published = {name: manifest["checkpoints"][name] for name in t["evaluation"].get("published", [])}
    task_obj = get_task(task, t.get("module"))
    evaluation = resolved(dataclass_from(task_obj.eval_config, t["evaluation"], f"tasks.{task}.evaluation"))
    return canonical(
        {
            **_common(cfg, task),
            "data": resolved_data(cfg, task, t["data"]),
            "evaluation": evaluation,
            "published": published,
        }
    )


def report_spec(cfg: dict, task: str) -> dict:
    """What the table and figure jobs need, resolved (defaults written out, so report code repeats
    none): the report block, the runs it is about, the data and evaluation blocks through their
    dataclasses, and each metric's direction (Task.directions)."""
    t = cfg["tasks"][task]
    package = get_task(task, t.get("module"))
    init_child = [r for r in t["runs"] if run_init(cfg, *r.split("/")) == "child"]
    return canonical(
        {
            "task": task,
            "task_module": t.get("module"),
            "scale": cfg["scale"],
            "seeds": cfg["seeds"],
            "runs": t["runs"],
            "init_child": init_child,
            "report": t["report"],
            "parent_arch": t["parent"]["arch"],
            "child_arch": t["child"]["arch"],
            "evaluation": resolved(dataclass_from(package.eval_config, t["evaluation"], f"tasks.{task}.evaluation")),
            "data": resolved_data(cfg, task, t["data"]),
            "directions": package.directions(),
        }
    )


# ---------------------------------------------------------------------------------------------
# Where a SLURM site runs a job (the optional `cluster` block; profiles/slurm)
# ---------------------------------------------------------------------------------------------
def slurm_partition(cfg: dict, task: str, kind: str, gpus: int) -> str | None:
    """The partition of a job: the site's GPU partition when it asks for a GPU, else its CPU one
    (data, tables, plotting): None without a `cluster` block (the profile's default applies)."""
    cluster = cfg.get("cluster")
    if not cluster:
        return None
    return cluster["gpu_partition"] if gpus > 0 else cluster["cpu_partition"]


def gpu_constraint(cfg: dict, gpu_mem_mb: int | None, gpus: int) -> str | None:
    """The SLURM constraint (node feature) of the smallest GPU class that holds `gpu_mem_mb`
    (`cluster.gpu_constraints`: GB -> feature); None where the job asks for no GPU, names no
    memory, or the site lists no classes."""
    classes = (cfg.get("cluster") or {}).get("gpu_constraints") or {}
    if not gpus or not gpu_mem_mb or not classes:
        return None
    fitting = sorted((int(gb), feature) for gb, feature in classes.items() if int(gb) * 1000 >= gpu_mem_mb)
    if not fitting:
        largest = max(int(gb) for gb in classes)
        raise ConfigError(
            f"a job needs {gpu_mem_mb} MB of GPU memory, more than the largest class in cluster.gpu_constraints "
            f"({largest} GB); lower its batch or add a class"
        )
    return fitting[0][1]


def differing_keys(recorded: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two specifications."""
    out = []
    for k in sorted(set(recorded) | set(current)):
        a, b, name = recorded.get(k), current.get(k), f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += differing_keys(a, b, name + ".")
        elif a != b:
            out.append(name)
    return out
