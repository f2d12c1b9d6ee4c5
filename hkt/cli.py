"""The `hkt` command: what a researcher runs on results.

    hkt compare results/cifar10/metrics.csv                  your runs against the suite's baselines
    hkt compare results/*/metrics.csv --all                  every run against every frozen run
    hkt freeze results/*/metrics.csv --out results/frozen/smoke   frozen reproductions (`snakemake freeze`)

(hkt.compare holds what these do.) Training jobs are the workflow's: `snakemake` runs them through
hkt.launch, one job per stage of a run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from hkt import config as C
from hkt.compare import (
    compare,
    controls_from_config,
    focused,
    freeze,
    load_frozen,
    paper_rows_from_config,
    read_results,
    screen,
    screen_markdown,
    task_modules,
    terminal,
    to_markdown,
)
from hkt.io import atomic_write_text
from hkt.report import read_paper


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="hkt", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmp_ = sub.add_parser("compare", help="your runs against the suite's baselines (--all: everything)")
    cmp_.add_argument("results", nargs="+", help="results CSVs (long format, as the DAG writes them)")
    cmp_.add_argument("--frozen", default="results/frozen/smoke", help="folder of frozen results with MANIFEST.json")
    cmp_.add_argument("--runs", nargs="+", help="your runs (method/variant); default: those the frozen set lacks")
    cmp_.add_argument("--best", type=int, default=2, help="baselines beside the controls: the best N (default 2)")
    cmp_.add_argument("--all", action="store_true", help="every run against every frozen run, on every metric")
    cmp_.add_argument(
        "--across-devices", action="store_true", help="compare smoke results with frozen ones of another device"
    )
    cmp_.add_argument(
        "--config",
        default="config/config.yaml",
        help="each block's task package and controls, the runs' rows in the paper",
    )
    cmp_.add_argument(
        "--paper",
        nargs="+",
        default=list(C.PAPER_FILES),
        help="printed numbers: the paper's transcription and the literature's",
    )
    cmp_.add_argument("--out", help="write <out>.csv, <out>_paper.csv (--all) or <out>_ranking.csv, and <out>.md")
    frz = sub.add_parser("freeze", help="freeze results CSVs with a checksum manifest")
    frz.add_argument("results", nargs="+")
    frz.add_argument("--out", required=True, help="folder, e.g. results/frozen/smoke")
    frz.add_argument("--allow-dirty", action="store_true")
    frz.add_argument("--config", default="config/config.yaml", help="the task package of each block")
    args = parser.parse_args(argv)
    cfg = C.load(args.config) if Path(args.config).exists() else None
    modules = task_modules(cfg)
    if args.command == "freeze":
        manifest = freeze(args.results, args.out, allow_dirty=args.allow_dirty, modules=modules)
        print(f"froze {', '.join(manifest['files'])} into {args.out}")
        return
    new = pd.concat([read_results(p, modules) for p in args.results], ignore_index=True)
    rows = paper_rows_from_config(cfg) if cfg else {}
    present = [p for p in args.paper if Path(p).exists()]
    paper = read_paper(present) if present else None
    frozen = load_frozen(args.frozen, modules)
    scale = new["scale"].iloc[0]
    try:
        if args.all:
            against, vs_paper = compare(
                new, frozen, paper=paper, paper_rows=rows, across_devices=args.across_devices, modules=modules
            )
            text, md = terminal(against), to_markdown(against, vs_paper, scale)
            extra = ("_paper", vs_paper)
        else:
            controls = controls_from_config(cfg) if cfg else None
            against, ranking, notes = focused(
                new, frozen, runs=args.runs, controls=controls, best=args.best,
                across_devices=args.across_devices, paper=paper, paper_rows=rows, modules=modules,
            )  # fmt: skip
            text, md = screen(against, ranking, notes, scale), screen_markdown(against, ranking, notes, scale)
            extra = ("_ranking", ranking)
    except ValueError as err:
        raise SystemExit(f"hkt compare: {err}") from None
    print(text, end="" if text.endswith("\n") else "\n")
    if args.out:
        atomic_write_text(f"{args.out}.csv", against.to_csv(index=False))
        atomic_write_text(f"{args.out}{extra[0]}.csv", extra[1].to_csv(index=False))
        atomic_write_text(f"{args.out}.md", md)


if __name__ == "__main__":
    main()
