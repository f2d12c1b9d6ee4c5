"""The frozen transcription of the paper's numbers (results/paper/) that every table reads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
from conftest import REPO

PAPER = REPO / "results" / "paper"
PAPER_TEXT = Path(os.environ.get("HKT_PAPER_TEXT", "/work/shared/seeds/003_a3ea8a8095b2b47d.txt"))


def rows(name):
    frame = pd.read_csv(PAPER / name, dtype=str, keep_default_na=False)
    for record in frame.to_dict("records"):
        record["value"] = float(record["value"])
        for flag in ("approx", "parenthesised"):
            if flag in record:
                record[flag] = {"true": True, "false": False}[record[flag]]
        yield record


@pytest.mark.parametrize("name,definition", [("results.csv", "result_row"), ("claims.csv", "claim_row")])
def test_every_row_matches_the_schema(name, definition):
    schema = json.loads((PAPER / "schema.json").read_text())
    validator = jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{definition}"})
    for i, record in enumerate(rows(name)):
        errors = list(validator.iter_errors(record))
        assert not errors, f"{name} row {i + 2}: {errors[0].message}"


def test_every_table_cell_is_present_once():
    frame = pd.read_csv(PAPER / "results.csv")
    assert frame.groupby("table").size().to_dict() == {"table1": 133, "table2": 12, "table3": 12}
    keys = ["table", "method", "training", "dataset", "split", "metric"]
    assert not frame.duplicated(keys).any()


def test_table2_as_printed():
    t2 = pd.read_csv(PAPER / "results.csv").query("table == 'table2'").set_index(["method", "metric"])["value"]
    assert t2[("parent", "top1_acc")] == 93.6 and t2[("parent", "top1_err")] == 6.43
    assert t2[("child", "top1_acc")] == 91.25 and t2[("hkt2", "top1_acc")] == 92.4
    assert t2[("hkt2", "params_m")] == 0.27 and t2[("parent", "inference_ms")] == 0.30


@pytest.mark.skipif(not PAPER_TEXT.exists(), reason="the paper's text is not part of the repository")
def test_transcription_matches_the_paper_text_cell_by_cell():
    out = subprocess.run(
        [sys.executable, str(PAPER / "check_transcription.py"), "--paper", str(PAPER_TEXT)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr


LITERATURE_SEED = Path(os.environ.get("HKT_LITERATURE_TEXT", "/work/shared/seeds/004_149018dd93a44a5a.txt"))


def test_the_literature_rows_share_the_papers_columns_and_each_number_is_printed_in_its_source():
    literature = pd.read_csv(PAPER / "literature.csv", dtype=str, keep_default_na=False)
    assert list(literature.columns) == list(pd.read_csv(PAPER / "results.csv", nrows=0).columns)
    assert not literature.duplicated(["table", "method", "training", "dataset", "split", "metric"]).any()
    assert (literature.source != "paper").all()  # never mistaken for the HKT paper's own numbers
    c100 = literature[literature.table == "inhernet_cifar100"].set_index("method")["value"].to_dict()
    assert c100 == {"teacher": "72.34", "student": "69.06", "inhernet_large": "73.67"}
    if not LITERATURE_SEED.exists():
        pytest.skip(f"the source text {LITERATURE_SEED} is not on this machine")
    text = " ".join(LITERATURE_SEED.read_text().split())
    sentence = "the student is reported at 69.06, the teacher at 72.34, and InherNet Large at 73.67"
    assert sentence in text and "ResNet56-to-ResNet20" in text and "CIFAR-100" in text
