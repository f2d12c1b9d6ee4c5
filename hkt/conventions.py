"""The suite's names for things, in one place: runs, weight files, generated datasets, the checkout.

A leaf module (it imports nothing of the suite), so that every layer can read it: the config and
the DAG that name runs and files, the trainer that writes them, and the reports and `hkt compare`
that read them back. A name written out anywhere else is a copy that can drift.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout: data/MANIFEST.yaml, results/paper/
MANIFEST = ROOT / "data" / "MANIFEST.yaml"  # every dataset archive and checkpoint: URL, checksum, place

# -- runs ---------------------------------------------------------------------------------------
# A run is a method's variant, "method/variant" in results and run lists. The parent is one row
# of every table: "parent" in a config's table rows, "parent/default" in results, so that every
# result row has a method and a variant.
PARENT = "parent"
PARENT_RUN = ("parent", "default")
CHILD_RUN = ("alone", "default")  # the trained child: runs with `init: child` start from it
# the controls a new method is compared against by default: the child trained alone, and the child
# trained alone for as many extra steps as a transfer run takes (a matched budget)
CONTROLS = ("alone/default", "alone/finetune")

# -- files --------------------------------------------------------------------------------------
WEIGHTS = {"parent": "parent.pt", "run": "child.pt"}  # a job's deployable weights, by its role

PAPER_CLAIMS = "results/paper/claims.csv"  # the paper's claims in words (the ablation reads them)

# -- data ---------------------------------------------------------------------------------------
GENERATED_SUFFIX = "-generated"  # results name a generated stand-in apart from the real dataset


def run_name(method: str, variant: str) -> str:
    return f"{method}/{variant}"


def results_run(run: str) -> str:
    """A table row's run as results name it ("parent" -> "parent/default")."""
    return run_name(*PARENT_RUN) if run == PARENT else run


def table_run(run: str) -> str:
    """A results run as table rows name it ("parent/default" -> "parent")."""
    return PARENT if run == run_name(*PARENT_RUN) else run


def dataset_label(name: str, source: str) -> str:
    """How results name a dataset: `name`, or `name-generated` for the generated stand-in."""
    return name + GENERATED_SUFFIX if source == "generated" else name


def real_dataset(label: str) -> str:
    """The real dataset a results label stands for (a generated stand-in counts as its dataset)."""
    return label.removesuffix(GENERATED_SUFFIX)
