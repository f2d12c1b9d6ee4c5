"""The paper DAG, rehearsed on one machine before a cluster runs it (`make rehearse`).

    python -m hkt.rehearse config --paper config/paper.yaml --out results/rehearsal   (the overlay)
    snakemake --profile slurm --configfile results/rehearsal/config.yaml               (the DAG)
    python -m hkt.rehearse report --dir results/rehearsal                               (jobs.csv)

The overlay is derived from config/paper.yaml by code, never copied by hand, so it cannot drift:
every block, method, variant and stage of it, one seed, its architectures, crops, update counts,
evaluation sizes, optimisers, schedules and speed switches, with only what a CPU machine cannot do
changed, each change recorded beside the paper's value in the report:

- data: each task's generated stand-in (`Task.stand_in`) in the real on-disk layout, at the real
  frame and volume sizes, with the published lengths where sampling depends on them;
- published checkpoints: random-weight stand-in files (`stand_ins`), marked as such;
- a few steps per stage (STEPS; a checkpoint after every step) and a smaller batch where a CPU
  step at the paper's would take minutes (BATCH_CAP; LiTS patches 4 slices deep instead of 12,
  PATCH_DEPTH); evaluation on a few real-size samples (LiTS: whole scans, windows without
  overlap, EVAL_OVERLAP);
- resources: no GPUs, and threads and memory within this machine's;
- one training job of each kind per block is stopped once after its first step, as SLURM's
  pre-timeout warning would stop it (HKT_STOP_ONCE), so that it checkpoints, is requeued and
  resumes.

The report (results/rehearsal/jobs.csv) has one row per job: its rule, block, run and stage,
status, wall time and peak resident memory (Snakemake's benchmark files), the memory its rule
declares at paper scale, the training seconds per step at the rehearsed shapes (`step_s`: a
rehearsal validates and checkpoints after every step, so this is an upper bound on a step's cost, not
the paper's step time), the batch used
and the paper's, and, for every training job, the GPU memory it needs at the paper's batch
(hkt.memory: traced with fake tensors) against what its rule requests.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
from pathlib import Path

import pandas as pd
import torch
import yaml

from hkt import config as C
from hkt.io import atomic_write_text, file_digest
from hkt.models import save_checkpoint
from hkt.tasks import build_model, get_task

STEPS = 3  # per stage: a one-cycle schedule needs two rising steps; a checkpoint after each
BATCH_CAP = {"flow": 1, "lits": 1}  # task package -> the largest batch a CPU steps in seconds
# H-DenseUNet's CPU step at the paper's 12x224x224 patch takes two minutes (a 3HKT step more): LiTS
# patches keep their 224x224 in-plane size and take 4 slices, as `make bench` does; the GPU trace
# of the report is at the paper's patch
PATCH_DEPTH = {"lits": 4}
EVAL_PAIRS = 1  # flow: pairs per evaluation set
# LiTS: whole 512x512 scans slid over without overlap (the paper's 0.5 covers each voxel ~8 times:
# an H-DenseUNet scan takes a CPU over ten minutes), in the validation of training and in evaluation
EVAL_OVERLAP = {"lits": 0.0}
SCHEDULES = (("parent", "train"), ("child", "train"), ("child", "finetune"))
# the data keys that decide a training step's tensor shapes (flow crop and updates, LiTS patch,
# CIFAR resolution and classes)
SHAPE_KEYS = ("crop", "train_updates", "patch", "resolution", "dataset")
BOUND_MIN = 90  # what `make rehearse` may take from a fresh clone, setup to report (issue 19)


def _package(block: dict, name: str) -> str:
    return (block.get("module") or f"hkt.tasks.{name}").rsplit(".", 1)[-1]


def _stage(stage: dict, package: str, cpus: int) -> dict:
    out = {**stage, "steps": STEPS, "eval_every": STEPS, "checkpoint_every": 1, "log_every": 1}
    if stage.get("loader_workers"):
        out["loader_workers"] = min(stage["loader_workers"], cpus)
    if stage.get("lr_schedule") == "onecycle":
        out["pct_start"] = 2 / STEPS  # the least rising phase a one-cycle schedule takes
    if package in BATCH_CAP:
        out["batch_size"] = min(stage["batch_size"], BATCH_CAP[package])
    return out


def _schedule(schedule, package: str, cpus: int):
    if isinstance(schedule, dict):
        return _stage(schedule, package, cpus)
    return [_stage(stage, package, cpus) for stage in schedule]


def overlay(paper: dict, out_dir: str | Path, *, cpus: int, mem_mb: int) -> dict:
    """The rehearsal configuration of `paper`, with its data and stand-in checkpoints under `out_dir`."""
    out_dir = Path(out_dir)
    cfg = copy.deepcopy(paper)
    cfg.update(scale="rehearsal", seeds=paper["seeds"][:1], device="cpu")
    cfg["cluster"] = {"gpu_partition": "cpu", "cpu_partition": "cpu", "gpu_constraints": {}}
    manifest = C.load_manifest()
    published = set()
    for name, block in cfg["tasks"].items():
        package = _package(block, name)
        task = get_task(name, block.get("module"))
        block["data"] = task.stand_in(block["data"], str(out_dir / "data" / C.data_root_key(paper, name)))
        if package in PATCH_DEPTH:
            block["data"]["patch"] = [PATCH_DEPTH[package], *block["data"]["patch"][1:]]
        for role, schedule in SCHEDULES:
            block[role][schedule] = _schedule(block[role][schedule], package, cpus)
        if block["parent"].get("published"):
            published.add(block["parent"]["published"])
        published.update(block["evaluation"].get("published", []))
        if package == "flow":  # real-size Sintel pairs at 32 updates take seconds each on a CPU
            block["evaluation"]["max_pairs"] = EVAL_PAIRS
            block["data"]["val_max_pairs"] = EVAL_PAIRS
        if package in EVAL_OVERLAP:
            block["evaluation"]["overlap"] = EVAL_OVERLAP[package]
            block["data"]["val_overlap"] = EVAL_OVERLAP[package]
        block["evaluation"]["timing"] = {**block["evaluation"]["timing"], "warmup": 0, "repeats": 1}
        for resources in block["resources"].values():
            resources.update(threads=min(resources["threads"], cpus), mem_mb=min(resources["mem_mb"], mem_mb), gpus=0)
            if "processes" in resources:
                resources["processes"] = 1
        block.pop("bench", None)  # `make bench` is not part of the DAG
    cfg["stand_ins"] = {name: _stand_in(name, manifest["checkpoints"][name], out_dir) for name in sorted(published)}
    return C.validate(cfg)


def _stand_in(name: str, entry: dict, out_dir: Path) -> dict:
    """A random-weight checkpoint of the entry's architecture (seeded), written once."""
    path = out_dir / "checkpoints" / f"{name}.stand-in.pt"
    if not path.exists():
        task = next(get_task(t) for t in ("cifar10", "flow", "lits") if _builds(get_task(t), entry["arch"]))
        torch.manual_seed(0)
        save_checkpoint(build_model(task, entry["arch"]), path)
    return {
        "arch": entry["arch"],
        "place_at": str(path),
        "sha256": file_digest(path),
        "url": f"stand-in://{path.name}",
        "stands_for": entry.get("url", name),
    }


def _builds(task, arch: str) -> bool:
    try:
        with torch.device("meta"):
            task.build_model(arch)
        return True
    except ValueError:
        return False


def stop_once(cfg: dict) -> list[str]:
    """The training jobs stopped once after their first step (HKT_STOP_ONCE): per block, the
    parent's first trained stage, the child's first stage and the last stage of its first
    transfer run, named as the trainer's progress lines name them (hkt.pipeline)."""
    labels = []
    for name, block in cfg["tasks"].items():
        seed = cfg["seeds"][0]
        parent = [s for s in C.parent_specs(cfg, name) if s.get("source") == "train"]
        if parent:
            labels.append(f"{name} parent stage {parent[0]['stage']!r}")
        child = C.run_specs(cfg, name, *C.CHILD_RUN, seed)
        labels.append(f"{name} {'/'.join(C.CHILD_RUN)} seed {seed} stage {child[0]['stage']!r}")
        transfer = next((r for r in block["runs"] if C.run_init(cfg, *r.split("/")) == "child"), None)
        if transfer:
            last = C.run_specs(cfg, name, *transfer.split("/"), seed)[-1]
            labels.append(f"{name} {transfer} seed {seed} stage {last['stage']!r}")
    return labels


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
def _benchmarks(work: Path) -> dict[tuple[str, str], dict]:
    """(rule, wildcards) -> Snakemake's benchmark record of the job (seconds, max_rss)."""
    out = {}
    for path in sorted((work / "benchmarks").rglob("*.tsv")):
        frame = pd.read_csv(path, sep="\t")
        rule = path.relative_to(work / "benchmarks").parts[0]
        out[(rule, path.stem)] = frame.iloc[-1].to_dict()
    return out


def _training_jobs(cfg: dict, paper: dict):
    """(rule, block, run, stage, its spec, the paper's spec, its model directory) of every training job."""
    runs_dir = Path("results/runs")
    for name, block in cfg["tasks"].items():
        parent = C.parent_specs(cfg, name)
        paper_parent = C.parent_specs(paper, name)
        for k, (spec, theirs) in enumerate(zip(parent, paper_parent, strict=True)):
            rule = "train_parent" if k == len(parent) - 1 else "train_parent_stage"
            folder = runs_dir / name / "parent" / ("" if k == len(parent) - 1 else f"stage-{spec['stage']}")
            yield rule, name, "parent", spec, theirs, folder
        seed = cfg["seeds"][0]
        for run in block["runs"]:
            method, variant = run.split("/")
            specs = C.run_specs(cfg, name, method, variant, seed)
            paper_specs = C.run_specs(paper, name, method, variant, seed)
            for k, (spec, theirs) in enumerate(zip(specs, paper_specs, strict=True)):
                last = k == len(specs) - 1
                folder = runs_dir / name / method / variant / f"seed{seed}" / ("" if last else f"stage-{spec['stage']}")
                yield ("train_run" if last else "train_run_stage"), name, run, spec, theirs, folder


def _trace_key(paper: dict, name: str, theirs: dict) -> tuple:
    """Jobs that differ only in what their data holds (not its shapes) need the same GPU memory."""
    return (
        _package(paper["tasks"][name], name),
        theirs.get("module"),
        json.dumps(theirs.get("params"), sort_keys=True),
        theirs["arch"],
        json.dumps({k: theirs["data"].get(k) for k in SHAPE_KEYS}, sort_keys=True),
        theirs.get("schedule", {}).get("batch_size"),
    )


def _traces(paper: dict, jobs: list, workers: int) -> dict[tuple, int]:
    """Trace key -> the GPU bytes a training job of that key needs at the paper's batch, traced in
    `workers` processes (a trace is seconds to a minute of one CPU thread; 65 of them in a row took
    nine minutes)."""
    from concurrent.futures import ProcessPoolExecutor

    from hkt.memory import training_peak_bytes

    todo = {}
    for _, name, _, spec, theirs, _ in jobs:
        if spec.get("source") != "published":
            todo.setdefault(_trace_key(paper, name, theirs), (name, theirs))
    if workers <= 1:
        return {key: training_peak_bytes(paper, name, theirs) for key, (name, theirs) in todo.items()}
    with ProcessPoolExecutor(workers) as pool:
        futures = {key: pool.submit(training_peak_bytes, paper, name, theirs) for key, (name, theirs) in todo.items()}
        return {key: future.result() for key, future in futures.items()}


def report(
    work: str | Path, cfg_path: str | Path, paper_path: str | Path, out_csv: str | Path, *, workers: int = 1
) -> pd.DataFrame:
    """jobs.csv of a finished rehearsal run in `work` (see the module docstring), the GPU traces in
    `workers` processes."""
    from hkt.memory import request_mb

    work = Path(work)
    cfg, paper = C.load(cfg_path), C.load(paper_path)
    benchmarks = _benchmarks(work)
    jobs = list(_training_jobs(cfg, paper))
    traced = _traces(paper, jobs, workers)
    rows = []
    for rule, name, run, spec, theirs, folder in jobs:
        meta_path = work / folder / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        steps = spec["schedule"]["steps"] if spec.get("source") != "published" else 0
        kind = "parent" if run == "parent" else "train"
        peak = traced.get(_trace_key(paper, name, theirs))
        bench = _match(benchmarks, rule, name, run, spec)
        rows.append(
            {
                "rule": rule,
                "block": name,
                "run": run,
                "stage": spec["stage"],
                "status": "ok" if meta and bench is not None else "missing",
                "seconds": bench and bench.get("s"),
                "peak_rss_mb": bench and bench.get("max_rss"),
                "declared_mem_mb": paper["tasks"][name]["resources"][kind]["mem_mb"],
                "rehearsal_mem_mb": cfg["tasks"][name]["resources"][kind]["mem_mb"],
                "step_s": (meta.get("train_seconds") or 0) / steps if steps and meta else None,
                "batch": spec.get("schedule", {}).get("batch_size"),
                "paper_batch": theirs.get("schedule", {}).get("batch_size"),
                "gpu_peak_gib_at_paper_batch": None if peak is None else round(peak / 2**30, 2),
                "gpu_needed_mb": None if peak is None else request_mb(peak),
                "gpu_requested_mb": paper["tasks"][name]["resources"][kind].get("gpu_mem_mb"),
            }
        )
    for (rule, wildcards), bench in sorted(benchmarks.items()):  # the jobs that train nothing
        if rule.startswith("train_"):
            continue
        block = re.search(r"task=([\w-]+)", wildcards)
        block = block.group(1) if block else _data_blocks(cfg, wildcards)
        kind = {"evaluate": "evaluate", "export": "evaluate", "figure": "figure", "prepare_data": "data"}.get(rule)
        declared = None
        first = block.split("+")[0]
        if kind and first in paper["tasks"]:
            declared = (paper["tasks"][first]["resources"].get(kind) or {"mem_mb": 2000})["mem_mb"]
        rows.append(
            {
                "rule": rule,
                "block": block,
                "run": wildcards,
                "stage": "-",
                "status": "ok",
                "seconds": bench.get("s"),
                "peak_rss_mb": bench.get("max_rss"),
                "declared_mem_mb": declared if declared is not None else 2000,
            }
        )
    frame = pd.DataFrame(rows)
    atomic_write_text(out_csv, frame.to_csv(index=False))
    return frame


def _data_blocks(cfg: dict, wildcards: str) -> str:
    """The blocks whose data a prepare_data job writes ("flow+flow-ctsk+flow-ctskh": one job per
    shared root), from its `dataroot=...,part=...` wildcards."""
    found = re.search(r"dataroot=([^,]+)", wildcards)
    blocks = [name for name in cfg["tasks"] if found and C.data_root_key(cfg, name) == found.group(1)]
    return "+".join(blocks) or "-"


def _match(benchmarks: dict, rule: str, name: str, run: str, spec: dict):
    """The benchmark record of a training job: its rule and wildcards as the benchmark file names them."""
    if run == "parent":
        wild = f"task={name}" + (f",stage={spec['stage']}" if rule.endswith("_stage") else "")
    else:
        method, variant = run.split("/")
        wild = f"task={name},method={method},variant={variant},seed={spec['seed']}"
        wild += f",stage={spec['stage']}" if rule.endswith("_stage") else ""
    return benchmarks.get((rule, wild))


def dag_progress(log_text: str) -> tuple[int | None, int | None, list[str]]:
    """(jobs done, jobs in the DAG, outputs of jobs with a failed attempt) from Snakemake's log of
    the run: jobs.csv has a row per job that ran, so a job that never wrote a benchmark shows here."""
    steps = re.findall(r"(\d+) of (\d+) steps", log_text)
    done, total = (int(steps[-1][0]), int(steps[-1][1])) if steps else (None, None)
    failed = re.findall(r"^Error in rule \w+:\n(?:    .*\n)*?    output: (.*)$", log_text, flags=re.M)
    return done, total, sorted(set(failed))


def summary(frame: pd.DataFrame, seconds: int | None, machine: str, cores: int = 1, dag=None) -> str:
    """results/rehearsal/summary.md: what ran, what failed, every check of the report, and where
    the wall time went (the jobs' own time against what the node's cores had)."""
    train = frame[frame.rule.str.startswith("train_")]
    job_min = frame.seconds.sum() / 60
    by_rule = (frame.groupby("rule").seconds.sum() / 60).sort_values(ascending=False)
    over = frame[frame.peak_rss_mb > frame.declared_mem_mb]
    gpu = train.dropna(subset=["gpu_needed_mb"])
    short = gpu[gpu.gpu_needed_mb > gpu.gpu_requested_mb.fillna(0)]
    lines = [
        "# Rehearsal of config/paper.yaml (make rehearse)",
        "",
        f"Machine: {machine}. Wall time: {'-' if seconds is None else f'{seconds / 60:.0f} min'} (setup, SLURM, the DAG, this report).",
        "",
        f"- jobs: {len(frame)}, of which training {len(train)}; status ok: {int((frame.status == 'ok').sum())}",
        *_dag_lines(dag),
        f"- by rule: {', '.join(f'{r} {n}' for r, n in frame.rule.value_counts().sort_index().items())}",
        f"- blocks: {', '.join(sorted({b for names in frame.block for b in names.split('+')} - {'-'}))}",
        f"- peak resident memory above what the rule declares at paper scale: {len(over)} job(s)",
        f"- training jobs whose GPU need at the paper's batch (traced) exceeds their rule's gpu_mem_mb: {len(short)}",
        f"- largest traced GPU need: {gpu.gpu_peak_gib_at_paper_batch.max():.1f} GiB "
        f"({gpu.loc[gpu.gpu_peak_gib_at_paper_batch.idxmax(), 'block']} "
        f"{gpu.loc[gpu.gpu_peak_gib_at_paper_batch.idxmax(), 'run']})"
        if len(gpu)
        else "- no GPU trace",
        f"- batches smaller than the paper's (a CPU step at the paper's takes minutes): "
        f"{int((train.batch < train.paper_batch).sum())} of {len(train)} training jobs",
        f"- job time: {job_min:.0f} min, one thread each (benchmark seconds); by rule: "
        + ", ".join(f"{rule} {minutes:.0f}" for rule, minutes in by_rule.items()),
    ]
    if seconds is not None:
        lines.append(
            f"- wall time {seconds / 60:.0f} min, {'within' if seconds / 60 <= BOUND_MIN else 'over'} the "
            f"{BOUND_MIN}-minute bound: the jobs alone fill {job_min / cores:.0f} min of {cores} core(s); the rest "
            "is setup, each SLURM job's two Snakemake starts, Snakemake's status checks and this report"
        )
    lines += [
        "",
        "Each row of jobs.csv: the job's rule, block, run and stage, status, wall seconds and peak resident",
        "memory (Snakemake's benchmark), the memory its rule declares at paper scale, training seconds per",
        "step at the rehearsed shapes (step_s: every rehearsed step also validates and checkpoints, so it bounds",
        "a step's cost from above), the batch used and the paper's, and the GPU memory the job needs at",
        "the paper's batch (hkt.memory: traced with fake tensors, x1.25 + 1 GiB) against its rule's request.",
    ]
    return "\n".join(lines) + "\n"


def _dag_lines(dag) -> list[str]:
    if dag is None or dag[1] is None:
        return []
    done, total, failed = dag
    lines = [f"- Snakemake (this invocation): {done} of {total} jobs done"]
    if failed:
        lines.append(f"- jobs with a failed attempt (snakemake.log): {', '.join(failed)}")
    return lines


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hkt.rehearse", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("config", help="write the rehearsal configuration, its stand-ins and HKT_STOP_ONCE")
    c.add_argument("--paper", default="config/paper.yaml")
    c.add_argument("--out", default="rehearsal/stand-ins", help="config.yaml, stop_once.txt, data/, checkpoints/")
    c.add_argument("--cpus", type=int, default=1, help="threads per job")
    c.add_argument("--mem-mb", type=int, default=10000, help="memory per job")
    r = sub.add_parser("report", help="jobs.csv and summary.md of a finished rehearsal")
    r.add_argument("--work", default="rehearsal", help="where the rehearsal ran")
    r.add_argument("--config", default="rehearsal/rehearsal.yaml")
    r.add_argument("--paper", default="config/paper.yaml")
    r.add_argument("--out", default="results/rehearsal")
    r.add_argument("--seconds", type=int)
    r.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes tracing GPU memory")
    args = parser.parse_args(argv)
    if args.command == "config":
        out = Path(args.out)
        cfg = overlay(C.load(args.paper), out, cpus=args.cpus, mem_mb=args.mem_mb)
        header = "# written by `python -m hkt.rehearse config` from " + args.paper + "\n"
        atomic_write_text(out / "config.yaml", header + yaml.safe_dump(cfg, sort_keys=False))
        atomic_write_text(out / "stop_once.txt", ";".join(stop_once(cfg)) + "\n")
        print(f"wrote {out / 'config.yaml'}")
        return
    from hkt.runmeta import device_name

    out = Path(args.out)
    frame = report(args.work, args.config, args.paper, out / "jobs.csv", workers=args.workers)
    cores = os.cpu_count() or 1
    machine = f"{device_name(torch.device('cpu'))}, {cores} cores"
    log = Path(args.work) / "snakemake.log"
    dag = dag_progress(log.read_text()) if log.exists() else None
    text = summary(frame, args.seconds, machine, cores, dag)
    atomic_write_text(out / "summary.md", text)
    print(text)


if __name__ == "__main__":
    main()
