"""Table 1 (optical flow) beside the paper, the ablation study with mu and the paper's
percentages, the comparisons, Figure 3 (mu per method) and Figure 4 (qualitative flows): the
report functions of the flow task (each takes a hkt.tasks.ReportInput)."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from hkt import report  # noqa: E402
from hkt.conventions import CHILD_RUN, PAPER_CLAIMS, PARENT_RUN, ROOT, table_run  # noqa: E402
from hkt.io import atomic_path, atomic_write_text  # noqa: E402
from hkt.tasks import ReportInput, load_shown_models  # noqa: E402

BENCHMARKS = [  # (paper dataset, metric, title): the four numbers mu averages, as the paper does
    ("sintel-clean", "epe", "Sintel clean EPE"),
    ("sintel-final", "epe", "Sintel final EPE"),
    ("kitti-2015", "epe", "KITTI EPE"),
    ("kitti-2015", "fl_all", "KITTI Fl-all (%)"),
]
COLUMNS = [report.Column(m, t, 2, d, "train") for d, m, t in BENCHMARKS] + [
    report.Column("params_m", "Params (M)", 3, "-", "-", suite_split="-", training="-"),
    report.Column("inference_ms", "Inf. (ms)", 1, "-", "-", suite_split="-", training="-"),
    report.Column("extra_params_m", "Train-only params (M)", 2, "-", "-", suite_split="-", training="-"),
]
# Signs of the paper's words: "improving/reducing/lowers" mu or EPE = a negative relative change.
SIGN = {"improving": -1, "reducing": -1, "lowers": -1, "raising": 1, "increases": 1, "raises": 1}


# ---------------------------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------------------------
def table1(inp: ReportInput, outs: dict) -> pd.DataFrame:
    spec, options = inp.spec, inp.spec["report"]["tables"]["table1"]
    rows = options["rows"]
    reproduced = {(r["paper"], r.get("training", "-")) for r in rows}
    paper = inp.paper[inp.paper.table == options["paper"]]
    literature = paper[(paper.role == "literature") & (paper.training != "-")][["method", "training"]]
    lit_rows = [
        {"paper": m, "training": t, "run": None}
        for m, t in literature.drop_duplicates().itertuples(index=False)
        if (m, t) not in reproduced
    ]
    notes = [
        "EPE in pixels, Fl-all in percent. Columns are the training sets of Sintel and KITTI-2015 (as the "
        f"paper's): Sintel without the scenes held out for model selection ({', '.join(spec['data']['val_scenes'])}), "
        "which no model trains or is scored on.",
        f"Suite parent {spec['parent_arch']}, child {spec['child_arch']}; literature rows are the paper's numbers.",
        "Inference: median ms per frame pair at the evaluation size after warm-up (RAFT's padding), "
        "on the evaluation device in the metrics file.",
        "Every transfer run continues from the trained child of its seed for the fine-tuning stage; the "
        "fine-tuning control (alone/finetune) gets the same extra steps without a parent: compare transfer rows "
        "with it, not only with the child row (results/discrepancies.csv, hkt-init).",
        "2HKT mixes RAFT's feature maps (feature extraction and flow prediction inherited); 3HKT adds the context "
        "encoder's hidden state and context as a stage of its own (raft-stages).",
        "DRAFT row (draft/default): the loss of DRAFT's public code at its current version, whose sign-pattern "
        "KL term carries no gradient, so the row trains the child on 0.9 x RAFT's loss: in effect the "
        "fine-tuning control. draft/reskd, where configured, is the repository's earlier differentiable "
        "softmax-KL on the raw flows; which one produced the published DRAFT numbers is not stated (draft-row).",
        "Train-only params: what training updated beyond the deployed child (ETM extractors and transfers, "
        "regressors); the paper calls ETM non-parametric (etm-parameters). The deployed child runs without them.",
    ]
    return report.write_paper_table(
        inp,
        outs,
        paper=options["paper"],
        rows=rows + lit_rows,
        columns=COLUMNS,
        title="Table 1: optical flow",
        caption="Optical flow: RAFT parent, RAFT-S child, DRAFT and HKT.",
        notes=notes,
    )


# ---------------------------------------------------------------------------------------------
# The ablation study: mu per run and the paper's percentages beside the measured ones
# ---------------------------------------------------------------------------------------------
def benchmark_means(results: pd.DataFrame) -> pd.DataFrame:
    """Per run (method/variant): the seed mean of each benchmark number and their average mu."""
    res = results[results.split == "train"].assign(paper_dataset=lambda f: f.dataset.map(report.paper_dataset))
    out = {}
    for dataset, metric, title in BENCHMARKS:
        sub = res[(res.paper_dataset == dataset) & (res.metric == metric)]
        out[title] = sub.groupby(sub.method + "/" + sub.variant, sort=False)["value"].mean()
    table = pd.DataFrame(out)
    table.index = [table_run(r) for r in table.index]
    table["mu"] = table[[t for _, _, t in BENCHMARKS]].mean(axis=1)
    return table


def _claims(means: pd.DataFrame, paper_claims: pd.DataFrame, roles: dict) -> pd.DataFrame:
    what = {
        "mu": "mu",
        "sintel_clean_epe": "Sintel clean EPE",
        "kitti_fl_all": "KITTI Fl-all (%)",
        "epe": "Sintel clean EPE",
    }
    pairs = {
        "3HKT vs 2HKT": ("hkt3", "hkt2"),
        "no GA vs 3HKT": ("no_ga", "hkt3"),
        "no mixture unit vs 3HKT": ("no_mixture", "hkt3"),
    }
    lines = []
    for c in paper_claims.itertuples():
        if c.comparison not in pairs or c.quantity not in what:
            continue
        variant, reference = (roles.get(r) for r in pairs[c.comparison])
        column = what[c.quantity]
        measured = math.nan
        if variant in means.index and reference in means.index:
            measured = 100 * (means.loc[variant, column] - means.loc[reference, column]) / means.loc[reference, column]
        lines.append(
            {
                "claim": c.claim_id,
                "comparison": c.comparison,
                "quantity": column,
                "paper_word": c.direction,
                "paper_change_pct": SIGN[c.direction] * c.value,
                "run": variant,
                "reference": reference,
                "measured_change_pct": measured,
            }
        )
    return pd.DataFrame(lines)


def ablation(inp: ReportInput, outs: dict) -> pd.DataFrame:
    options = inp.spec["report"]["tables"]["ablation"]
    means = benchmark_means(inp.results)
    claims = _claims(means, _paper_claims(), options["runs"])
    with atomic_path(outs["csv"]) as tmp:
        means.rename_axis("run").reset_index().to_csv(tmp, index=False)
    cols = ["Run", *means.columns]
    body = [[run, *(report.fmt(v, 3) for v in row)] for run, row in means.iterrows()]
    notes = [
        "mu = AVG(metrics): the mean of the four benchmark numbers (EPE in px and Fl-all in %, averaged "
        "as the paper does); lower is better. Each number is the mean over seeds.",
        "Claims: relative change of the run against its reference, signed as the paper's word says "
        "(improving/reducing/lowers = negative); 'measured' is this suite's.",
    ]
    md = report.to_markdown("Ablation study: optical flow", inp.spec["scale"], cols, body, notes)
    md += "\n## The paper's percentages beside the measured ones\n\n"
    md += "| Claim | Comparison | Quantity | Paper (word) | Paper % | Run vs reference | Measured % |\n"
    md += "|---|---|---|---|---|---|---|\n"
    for c in claims.itertuples():
        md += (
            f"| {c.claim} | {c.comparison} | {c.quantity} | {c.paper_word} | {c.paper_change_pct:+.0f} | "
            f"{c.run} vs {c.reference} | {report.fmt(c.measured_change_pct, 1)} |\n"
        )
    atomic_write_text(outs["md"], md)
    atomic_write_text(
        outs["tex"], report.to_latex("Optical-flow ablations: benchmark numbers and mu.", inp.spec["scale"], cols, body)
    )
    return means


def _paper_claims() -> pd.DataFrame:
    claims = pd.read_csv(ROOT / PAPER_CLAIMS)
    return claims[claims.task == "flow"]


def figure3_mu(inp: ReportInput, path) -> None:
    """mu per method on a polar plot: each method at its own angle, radius mu (closer to the centre is better)."""
    means = benchmark_means(inp.results)["mu"].sort_values()
    angles = [2 * math.pi * k / len(means) for k in range(len(means))]
    fig = plt.figure(figsize=(7.5, 7))
    ax = fig.add_subplot(projection="polar")
    ax.plot(angles + angles[:1], list(means.values) + [means.values[0]], "o-", lw=1.2)
    ax.fill(angles + angles[:1], list(means.values) + [means.values[0]], alpha=0.1)
    ax.set_xticks(angles, [f"{run}\n{mu:.2f}" for run, mu in means.items()], fontsize=7)
    ax.set_title(
        "Figure 3: mu = AVG(Sintel clean/final EPE, KITTI EPE, Fl-all) per run — closer to the centre "
        f"is better{report.scale_suffix(inp.spec['scale'])}",
        fontsize=8,
    )
    report.save_figure(fig, path, dpi=120)


def figure4_roles(report_block: dict) -> dict:
    """role (draft, hkt2, hkt3, ...) -> run that Figure 4 shows beside the parent and the child: the
    ablation study's roles where the block has one, else Table 1's rows (the regime blocks have no
    ablation table; without this they would show the parent and the child alone)."""
    tables = report_block["tables"]
    return tables.get("ablation", {}).get("runs") or report.row_roles(tables.get("table1", {}))


def figure4_qualitative(inp: ReportInput, path) -> None:
    """Flows (flow_to_image) and EPE maps of the parent, the child, DRAFT, 2HKT and 3HKT on the same frames."""
    import torch
    from torchvision.utils import flow_to_image

    from hkt.fields import dataclass_from
    from hkt.tasks.flow.data import DataConfig, sintel_pairs
    from hkt.tasks.flow.metrics import infer_pair

    spec = inp.spec
    options = figure4_roles(spec["report"])
    data = dataclass_from(DataConfig, spec["data"], "data")
    pairs = list(sintel_pairs(data.root, pass_name="final", scenes=data.val_scenes, keep=False)[:2])
    seed = spec["seeds"][0]
    shown = {"parent": (*PARENT_RUN, None), "child": (*CHILD_RUN, seed)}
    for role in ("draft", "hkt2", "hkt3"):
        if role in options:
            method, variant = options[role].split("/")
            shown[role] = (method, variant, seed)
    nets = load_shown_models(inp, {f"{role} ({m}/{v})": (m, v, s) for role, (m, v, s) in shown.items()})
    updates = spec["evaluation"]["sintel_updates"]
    fig, axes = plt.subplots(2 * len(pairs), len(nets) + 1, figsize=(2.6 * (len(nets) + 1), 2.3 * len(pairs) * 2))
    for i, (a, b, flow, valid) in enumerate(pairs):
        top, bottom = axes[2 * i], axes[2 * i + 1]
        top[0].imshow(((a.permute(1, 2, 0) + 1) / 2).clamp(0, 1))
        top[0].set_title("frame 1", fontsize=7)
        bottom[0].imshow(flow_to_image(flow).permute(1, 2, 0))
        bottom[0].set_title("ground truth", fontsize=7)
        for j, (name, model) in enumerate(nets.items(), start=1):
            with torch.no_grad():
                pred = infer_pair(model, a, b, updates, report.figure_device())
            err = (pred - flow).norm(dim=0) * valid
            top[j].imshow(flow_to_image(pred).permute(1, 2, 0))
            top[j].set_title(name, fontsize=6)
            bottom[j].imshow(err, cmap="magma", vmin=0, vmax=max(float(flow.norm(dim=0).max()), 1.0))
            bottom[j].set_title(f"EPE map, mean {float(err[valid].mean()):.2f} px", fontsize=6)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(
        "Figure 4: flows (colour wheel) and end-point-error maps on Sintel final frames"
        + report.scale_suffix(spec["scale"]),
        fontsize=8,
    )
    fig.tight_layout()
    report.save_figure(fig, path, dpi=120)
