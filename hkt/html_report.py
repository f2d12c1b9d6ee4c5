"""One self-contained HTML page of every result: `results/report.html`.

For every task of the configuration, in the order of the config: its tables (the Markdown each
table job writes, rendered) and its figures (embedded as base64 PNGs, so the one file can be
mailed or attached to a review), then the run metadata found in its `metrics.csv` (commits,
configuration hashes, versions, devices); then the discrepancy register (paper vs the authors'
code vs this suite). A banner says wherever numbers are smoke scale. No JavaScript, no network.
"""

from __future__ import annotations

import argparse
import base64
import html
import re
from pathlib import Path

import pandas as pd

from hkt.io import atomic_write_text

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1400px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; padding-top: 1em; } h3 { font-size: 1.1em; }
.banner { background: #fff3cd; border: 1px solid #e0c36a; padding: .6em 1em; font-weight: 600; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: .82em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; } .meta td { font-family: monospace; }
"""
SMOKE_BANNER = (
    "SMOKE SCALE: these numbers come from the embedded default (generated data, reduced models "
    "and schedules). They show that the pipeline runs; they are not a reproduction of the paper."
)


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def markdown_to_html(text: str, *, level_offset: int = 2) -> str:
    """The Markdown the table jobs write: headings, paragraphs, bullet lists and pipe tables."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i].rstrip()
        if line.startswith("#"):
            depth = len(line) - len(line.lstrip("#"))
            tag = f"h{min(6, depth + level_offset)}"
            out.append(f"<{tag}>{_inline(line.lstrip('#').strip())}</{tag}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            head, *body = rows
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>")
            out += ["<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in body]
            out.append("</tbody></table>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif line:
            out.append(f"<p>{_inline(line)}</p>")
        i += 1
    return "\n".join(out)


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(path.name)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{html.escape(path.name)}</figcaption></figure>"
    )


def _frame_table(frame: pd.DataFrame, css: str = "") -> str:
    return frame.to_html(index=False, escape=True, border=0, classes=css or None, na_rep="–")


def _metadata(metrics: pd.DataFrame) -> str:
    columns = [c for c in ("scale", "commit", "config_hash", "python", "torch", "torchvision", "device", "eval_device")]
    present = [c for c in columns if c in metrics]
    summary = pd.DataFrame(
        {"field": present, "values": [", ".join(sorted(map(str, set(metrics[c])))) for c in present]}
    )
    runs = metrics.groupby(["method", "variant"])["seed"].nunique().reset_index(name="seeds")
    return "<h3>Run metadata</h3>" + _frame_table(summary, "meta") + _frame_table(runs)


def build(tasks: list[dict], register: str | Path, out: str | Path, *, title: str) -> None:
    """tasks: [{name, scale, metrics: path, tables: [md paths], figures: [png paths]}]."""
    smoke = any(t["scale"] == "smoke" for t in tasks)
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if smoke:
        parts.append(f'<p class="banner">{SMOKE_BANNER}</p>')
    parts.append("<nav><ul>" + "".join(f'<li><a href="#{t["name"]}">{t["name"]}</a></li>' for t in tasks))
    parts.append('<li><a href="#register">Discrepancy register</a></li></ul></nav>')
    for t in tasks:
        parts.append(f'<section id="{t["name"]}"><h2>{html.escape(t["name"])} ({t["scale"]} scale)</h2>')
        if t["scale"] == "smoke":
            parts.append(f'<p class="banner">{SMOKE_BANNER}</p>')
        for md in t["tables"]:
            parts.append(f'<div class="table" data-file="{html.escape(Path(md).name)}">')
            parts.append(markdown_to_html(Path(md).read_text()))
            parts.append("</div>")
        parts += [_figure(Path(png)) for png in t["figures"]]
        parts.append(_metadata(pd.read_csv(t["metrics"])))
        parts.append("</section>")
    reg = pd.read_csv(register, keep_default_na=False)
    parts.append('<section id="register"><h2>Discrepancy register: paper, authors\' code, suite</h2>')
    parts.append(_frame_table(reg[["id", "task", "topic", "paper", "authors_code", "suite", "kind"]]))
    parts.append("</section>")
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>\n"
    )
    atomic_write_text(out, page)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", required=True, help="JSON: {title, register, tasks: [...]} (see build)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    import json

    spec = json.loads(Path(args.spec).read_text())
    build(spec["tasks"], spec["register"], args.out, title=spec["title"])


if __name__ == "__main__":
    main()
