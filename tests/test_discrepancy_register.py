"""The discrepancy register (results/discrepancies.csv) that ships with every result."""

import pandas as pd
from conftest import REPO

from hkt import config as C

KINDS = {"authors-code", "paper-internal", "open", "suite", "observation"}


def test_register_is_well_formed():
    reg = pd.read_csv(REPO / "results" / "discrepancies.csv", keep_default_na=False)
    assert list(reg.columns) == ["id", "task", "topic", "paper", "authors_code", "suite", "config_key", "kind"]
    assert reg["id"].is_unique and set(reg["kind"]) <= KINDS
    assert (reg["suite"].str.len() > 0).all() and (reg["topic"].str.len() > 0).all()


def test_every_config_key_it_names_exists_in_the_paper_config():
    cfg = C.load(REPO / "config" / "paper.yaml")
    reg = pd.read_csv(REPO / "results" / "discrepancies.csv", keep_default_na=False)
    for entry in reg["config_key"]:
        for key in (k.strip() for k in entry.split(";")):
            if not key.startswith(("methods.", "tasks.")) or "<" in key:
                continue
            node = cfg
            for part in key.split(",")[0].split("/")[0].strip().split("."):
                assert part in node, f"register names {key!r}, which paper.yaml lacks"
                node = node[part]
