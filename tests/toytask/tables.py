"""The toy task's table and figure."""

from __future__ import annotations

from hkt import report
from hkt.io import atomic_write_text


def summary(inp, outs):
    table = report.summarise(inp.results)
    table = table[table.metric == "mse"]
    table.to_csv(outs["csv"], index=False)
    body = [[f"{r.method}/{r.variant}", r.split, f"{r.mean:.4f} ± {r.std:.4f} (n={r.n})"] for r in table.itertuples()]
    cols = ["Run", "Split", "MSE"]
    atomic_write_text(outs["md"], report.to_markdown("Toy task", inp.spec["scale"], cols, body))
    atomic_write_text(outs["tex"], report.to_latex("Toy task.", inp.spec["scale"], cols, body))


def mse_figure(inp, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    test = inp.results[(inp.results.metric == "mse") & (inp.results.split == "test")]
    means = test.groupby(test.method + "/" + test.variant)["value"].mean()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(means.index, means.values)
    ax.set(ylabel="test MSE", title=f"toy ({inp.spec['scale']}), {len(inp.curves)} curves")
    fig.savefig(path, format="png")
    plt.close(fig)
