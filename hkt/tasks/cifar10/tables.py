"""Table 2 (CIFAR-10) beside the paper, method comparisons, and the two figures."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hkt import report  # noqa: E402
from hkt.io import atomic_path, atomic_write_text  # noqa: E402

METRICS = {"top1_acc": "test", "top1_err": "test", "params_m": "-", "inference_ms": "-"}
HEADERS = {"top1_acc": ("Prec. (%)", 2), "top1_err": ("Error (%)", 2), "params_m": ("Params (M)", 3),
           "inference_ms": ("Inf. (ms)", 3)}


def table2(cfg: dict, metrics_csv, paper_csv, out_csv, out_md, out_tex, out_comparisons) -> pd.DataFrame:
    task_cfg = cfg["tasks"]["cifar10"]
    results = pd.read_csv(metrics_csv)
    paper = pd.read_csv(paper_csv)
    rows = task_cfg["table"]["paper_rows"]
    labels = {"parent": f"P ({task_cfg['parent']['arch']})", "child": f"C ({task_cfg['child']['arch']})",
              "hkt2": f"Ours: 2HKT ({task_cfg['child']['arch']})"}
    extra = [r for r in task_cfg["runs"] if r not in rows.values()]
    table = report.paper_table(results, paper, table="table2", rows=rows, labels=labels, metrics=METRICS,
                               extra_runs=extra)
    scale = cfg["scale"]
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False)

    controls = [r for r in (rows["child"], "alone/finetune") if r in task_cfg["runs"]]
    comparisons = report.compare(results, metric="top1_acc", split="test", controls=controls)
    with atomic_path(out_comparisons) as tmp:
        comparisons.to_csv(tmp, index=False)

    cols, body = report.wide(table, HEADERS)
    seeds = ", ".join(str(s) for s in cfg["seeds"])
    notes = [f"Suite: mean ± sample std over seeds {seeds}; Δ = suite − paper.",
             f"Paper rows: P, C and Ours are the paper's Table 2 (TITAN RTX); the suite's parent is "
             f"{task_cfg['parent']['arch']}, its child {task_cfg['child']['arch']}.",
             "Inference: median ms per image over repeats after warm-up, batch "
             f"{task_cfg['evaluation']['timing']['batch_size']}, on the evaluation device in results/cifar10/metrics.csv.",
             "Model selection used the validation split only; the test split was read once, by evaluation.",
             "Deviations from the paper: results/discrepancies.csv."]
    md = report.to_markdown("Table 2: CIFAR-10", scale, cols, body, notes)
    md += "\n## Comparisons (test top-1 accuracy, Welch's and paired t-tests over seeds)\n\n"
    md += _comparison_markdown(comparisons)
    atomic_write_text(out_md, md)
    atomic_write_text(out_tex, report.to_latex("CIFAR-10: ResNet parent, ResNet child and HKT.", scale, cols, body))
    return table


def _comparison_markdown(comparisons: pd.DataFrame) -> str:
    if comparisons.empty:
        return "No comparison available.\n"
    lines = ["| Run | Control | Mean | Control mean | Δ | n | Welch t | p | paired Δ (seeds) | paired t | paired p |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    f = report.fmt
    for r in comparisons.itertuples():
        lines.append(f"| {r.run} | {r.control} | {r.mean:.2f} | {r.control_mean:.2f} | {r.diff:+.2f} | "
                     f"{r.n}/{r.n_control} | {f(r.welch_t, 2)} | {f(r.p_value, 3)} | {r.paired_diff:+.2f} "
                     f"({r.n_paired}) | {f(r.paired_t, 2)} | {f(r.paired_p, 3)} |")
    return "\n".join(lines) + ("\n\nPaired: the t-test on seed-matched differences (a run fine-tuned from the child "
                               "of seed k against the control of seed k); – where it is undefined (fewer than two "
                               "shared seeds, or identical differences). With few seeds both tests have little "
                               "power and many comparisons are made: p-values are descriptive.\n")


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------
def figures(cfg: dict, metrics_csv, run_dirs: dict[tuple[str, str, int], str], out_curves, out_scatter) -> None:
    scale = cfg["scale"]
    curves = []
    for (method, variant, seed), run_dir in run_dirs.items():
        curve = pd.read_csv(Path(run_dir) / "curve.csv")
        if curve.empty:  # a published parent has no curve
            continue
        curve["run"], curve["seed"] = f"{method}/{variant}", seed
        curves.append(curve)
    curves = pd.concat(curves, ignore_index=True)
    init_child = {r for r in cfg["tasks"]["cifar10"]["runs"]
                  if cfg["methods"][r.split("/")[0]]["variants"][r.split("/")[1]].get(
                      "init", cfg["methods"][r.split("/")[0]].get("init", "scratch")) == "child"}

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, title, keep in ((axes[0], "Trained from scratch", lambda r: r not in init_child),
                            (axes[1], "Starting from the trained child", lambda r: r in init_child)):
        for run, group in curves.groupby("run", sort=False):
            if not keep(run):
                continue
            stats = group.groupby("step")["val_top1_acc"].agg(["mean", "std"]).reset_index()
            line, = ax.plot(stats["step"], stats["mean"], label=run, lw=1.4)
            ax.fill_between(stats["step"], stats["mean"] - stats["std"].fillna(0),
                            stats["mean"] + stats["std"].fillna(0), color=line.get_color(), alpha=0.15)
        ax.set(title=title, xlabel="training step", ylabel="validation top-1 (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"CIFAR-10 learning curves (mean ± std over seeds) — {scale.upper()} SCALE"
                 + (": not a reproduction" if scale == "smoke" else ""))
    fig.tight_layout()
    _save(fig, out_curves)

    results = pd.read_csv(metrics_csv)
    summary = report.summarise(results)
    acc = summary[(summary.metric == "top1_acc") & (summary.split == "test")]
    params = summary[summary.metric == "params_m"].set_index(["method", "variant"])["mean"]
    fig, ax = plt.subplots(figsize=(9, 5))
    # Every child-sized run has the same parameter count: spread each column a little along the
    # (log) x axis and name the runs in a legend, so that no label sits on another.
    markers = "osD^v<>ph*XP"
    colours = plt.get_cmap("tab10" if len(acc) <= 10 else "tab20")
    acc = acc.reset_index(drop=True)
    acc["params"] = [params.loc[(m, v)] for m, v in zip(acc.method, acc.variant)]
    for _, column in acc.groupby("params", sort=True):
        for k, r in enumerate(column.itertuples()):
            i = r.Index  # one colour and marker per run, in the order of metrics.csv
            ax.errorbar(r.params * 1.035 ** (k - (len(column) - 1) / 2), r.mean, yerr=r.std if r.n > 1 else None, fmt=markers[i % len(markers)],
                        ms=6, capsize=3, color=colours(i % colours.N), label=f"{r.method}/{r.variant} (n={r.n})")
    ax.set(xscale="log", xlabel="parameters (M, log scale; equal-size runs spread apart)",
           ylabel="test top-1 (%, mean ± std over seeds)",
           title=f"CIFAR-10: accuracy vs parameters — {scale.upper()} SCALE"
                 + (": not a reproduction" if scale == "smoke" else ""))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    _save(fig, out_scatter)


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, format=Path(path).suffix.lstrip("."))
    plt.close(fig)
