"""Table 2 (CIFAR-10 and CIFAR-100) beside the paper, and the two figures: the report
functions of the CIFAR task (each takes a hkt.tasks.ReportInput)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hkt import report  # noqa: E402
from hkt.tasks import ReportInput  # noqa: E402

NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


def columns(dataset: str) -> list:
    return [
        report.Column("top1_acc", "Prec. (%)", 2, dataset, "test"),
        report.Column("top1_err", "Error (%)", 2, dataset, "test"),
        report.Column("params_m", "Params (M)", 3, dataset, "test", suite_split="-"),
        report.Column("inference_ms", "Inf. (ms)", 3, dataset, "test", suite_split="-"),
        report.Column("extra_params_m", "Train-only params (M)", 3, "-", "-", suite_split="-"),
    ]


def table2(inp: ReportInput, outs: dict) -> pd.DataFrame:
    """The paper's Table 2 on CIFAR-10; on CIFAR-100 (no HKT number) the same layout beside the
    literature's numbers (results/paper/literature.csv) named by the config's `paper` table."""
    spec, options = inp.spec, inp.spec["report"]["tables"]["table2"]
    dataset = spec["data"]["dataset"]
    printed = inp.paper[inp.paper.table == options["paper"]]
    sources = ", ".join(sorted(printed["source"].unique())) or "none"
    notes = [
        f"Printed rows: table {options['paper']!r} (source: {sources}); the suite's parent is "
        f"{spec['parent_arch']}, its child {spec['child_arch']}.",
        "Inference: median ms per image over repeats after warm-up, batch "
        f"{spec['evaluation']['timing']['batch_size']}, on the evaluation device in results/{spec['task']}/metrics.csv.",
        "Model selection used the validation split only; the test split was read once, by evaluation.",
        "Transfer runs continue from the trained child of their seed; the fine-tuning control (alone/finetune) "
        "gets the same extra steps without a parent. Train-only params: what training updated beyond the "
        "deployed child.",
        f"Comparisons between runs: results/tables/{spec['task']}/comparisons.md.",
    ]
    return report.write_paper_table(
        inp,
        outs,
        paper=options["paper"],
        rows=options["rows"],
        columns=columns(dataset),
        title=f"Table 2: {NAMES[dataset]}",
        caption=f"{NAMES[dataset]}: ResNet parent, ResNet child and the transfer methods.",
        notes=notes,
    )


def learning_curves(inp: ReportInput, out_path) -> None:
    scale = inp.spec["scale"]
    curves = []
    for (method, variant, seed), curve in inp.curves.items():
        if curve.empty:  # a published parent has no curve
            continue
        curves.append(curve.assign(run=f"{method}/{variant}", seed=seed))
    curves = pd.concat(curves, ignore_index=True)
    init_child = set(inp.spec["init_child"])

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, title, keep in (
        (axes[0], "Trained from scratch", lambda r: r not in init_child),
        (axes[1], "Starting from the trained child", lambda r: r in init_child),
    ):
        for run, group in curves.groupby("run", sort=False):
            if not keep(run):
                continue
            stats = group.groupby("step")["val_top1_acc"].agg(["mean", "std"]).reset_index()
            (line,) = ax.plot(stats["step"], stats["mean"], label=run, lw=1.4)
            ax.fill_between(
                stats["step"],
                stats["mean"] - stats["std"].fillna(0),
                stats["mean"] + stats["std"].fillna(0),
                color=line.get_color(),
                alpha=0.15,
            )
        ax.set(title=title, xlabel="training step", ylabel="validation top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    name = NAMES[inp.spec["data"]["dataset"]]
    fig.suptitle(f"{name} learning curves (mean ± std over seeds)" + report.scale_suffix(scale))
    fig.tight_layout()
    report.save_figure(fig, out_path)


def accuracy_vs_params(inp: ReportInput, out_path) -> None:
    scale = inp.spec["scale"]
    summary = report.summarise(inp.results)
    acc = summary[(summary.metric == "top1_acc") & (summary.split == "test")]
    params = summary[summary.metric == "params_m"].set_index(["method", "variant"])["mean"]
    fig, ax = plt.subplots(figsize=(9, 5))
    # Every child-sized run has the same parameter count: spread each column a little along the
    # (log) x axis and name the runs in a legend, so that no label sits on another.
    markers = "osD^v<>ph*XP"
    colours = plt.get_cmap("tab10" if len(acc) <= 10 else "tab20")
    acc = acc.reset_index(drop=True)
    acc["params"] = [params.loc[(m, v)] for m, v in zip(acc.method, acc.variant, strict=True)]
    for _, column in acc.groupby("params", sort=True):
        for k, r in enumerate(column.itertuples()):
            i = r.Index  # one colour and marker per run, in the order of metrics.csv
            ax.errorbar(
                r.params * 1.035 ** (k - (len(column) - 1) / 2),
                r.mean,
                yerr=r.std if r.n > 1 else None,
                fmt=markers[i % len(markers)],
                ms=6,
                capsize=3,
                color=colours(i % colours.N),
                label=f"{r.method}/{r.variant} (n={r.n})",
            )
    ax.set(
        xscale="log",
        xlabel="parameters (M, log scale; equal-size runs spread apart)",
        ylabel="test top-1 (%, mean ± std over seeds)",
        title=f"{NAMES[inp.spec['data'].get('dataset', 'cifar10')]}: accuracy vs parameters"
        + report.scale_suffix(scale),
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    report.save_figure(fig, out_path)
