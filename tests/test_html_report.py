"""results/report.html: one self-contained page of every table and figure, read in a browser."""

import base64
import json
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest

from hkt.html_report import build, markdown_to_html

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def test_the_table_markdown_becomes_html_tables_lists_and_headings():
    md = "# Table 3\n\n**SMOKE**\n\n| A | B |\n|---|---|\n| 1 | `x` |\n\n- note one\n- note two\n"
    page = markdown_to_html(md)
    assert "<h3>Table 3</h3>" in page and "<strong>SMOKE</strong>" in page
    assert page.count("<tr>") == 2 and "<code>x</code>" in page and page.count("<li>") == 2


def test_every_table_and_figure_is_embedded_with_the_smoke_banner(tmp_path):
    (tmp_path / "t.md").write_text("# T\n\n| A |\n|---|\n| 1 |\n")
    (tmp_path / "f.png").write_bytes(PNG)
    metrics = tmp_path / "m.csv"
    pd.DataFrame(
        [{"method": "alone", "variant": "default", "seed": 0, "scale": "smoke", "commit": "c" * 40, "torch": "2.14.1"}]
    ).to_csv(metrics, index=False)
    task = {"name": "toy", "scale": "smoke", "metrics": str(metrics), "tables": [str(tmp_path / "t.md")]}
    task["figures"] = [str(tmp_path / "f.png")]
    build([task], "results/discrepancies.csv", tmp_path / "r.html", title="R")
    page = (tmp_path / "r.html").read_text()
    assert "SMOKE SCALE" in page and page.count("data:image/png;base64,") == 1 and 'src="http' not in page
    assert page.count("<table") == 1 + 2 + 1  # the task's table, two metadata tables, the register


CHECK = """<!DOCTYPE html><html><body><iframe id="r" src="REPORT" width="1400" height="3000"></iframe>
<pre id="out">pending</pre><script>
document.getElementById('r').onload = () => {
  const d = document.getElementById('r').contentDocument;
  const images = [...d.images];
  document.getElementById('out').textContent = 'RESULT' + JSON.stringify({
    tables: [...d.querySelectorAll('div.table')].map(t => t.dataset.file),
    htmlTables: d.querySelectorAll('table').length,
    images: images.map(i => i.alt),
    broken: images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt),
    banners: d.querySelectorAll('.banner').length,
    sections: [...d.querySelectorAll('section')].map(s => s.id)});
};
</script></body></html>"""


def _chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("HKT_BROWSER_TESTS") == "1":
            pytest.fail("HKT_BROWSER_TESTS=1 but no chromium on PATH (apt-get install chromium)")
        pytest.skip("no chromium (CI installs it; set HKT_BROWSER_TESTS=1 to require it)")
    return found


@pytest.mark.slow
def test_the_default_dags_report_renders_in_chromium_with_every_table_and_figure(dag, tmp_path):
    chromium = _chromium()
    report = dag / "results" / "report.html"
    wrapper = tmp_path / "check.html"
    wrapper.write_text(CHECK.replace("REPORT", report.as_uri()))
    flags = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files"]
    dom = subprocess.run(
        [*flags, "--virtual-time-budget=20000", "--dump-dom", wrapper.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    result = json.loads(re.search(r"RESULT(\{.*?\})</pre>", dom).group(1))
    expected_tables = sorted(p.name for p in (dag / "results" / "tables").glob("*/*.md"))
    expected_figures = sorted(p.name for p in (dag / "figures").glob("*.png"))
    assert sorted(result["tables"]) == expected_tables and len(expected_tables) == 7
    assert sorted(result["images"]) == expected_figures and not result["broken"]
    assert result["sections"] == ["cifar10", "flow", "lits", "register"] and result["banners"] >= 4
    shot = tmp_path / "report.png"
    subprocess.run(
        [*flags, f"--screenshot={shot}", "--window-size=1400,4000", report.as_uri()],
        capture_output=True, timeout=120, check=True,
    )  # fmt: skip
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
