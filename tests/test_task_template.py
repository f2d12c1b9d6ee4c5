"""Every task package has the same files with the same roles (README, "Adding a task"), so that a
newcomer reads two tasks side by side: __init__ only assembles TASK, and each part of the task
contract lives in the module that the template names for it."""

import ast
import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from hkt.tasks import get_task

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = ("__init__.py", "models.py", "prepare.py", "data.py", "metrics.py", "tables.py")
PACKAGES = {"hkt.tasks.cifar10": "cifar10", "hkt.tasks.flow": "flow", "hkt.tasks.lits": "lits", "toytask": "toy"}
# Task field -> the template module that defines it
HOMES = {
    "build_model": "models",
    "blocks": "models",
    "feature_points": "models",
    "mixed_leaves": "models",
    "prepare_data": "prepare",
    "data_parts": "prepare",
    "downloads": "prepare",
    "stand_in": "prepare",
    "data_config": "data",
    "eval_config": "data",
    "training": "data",
    "benchmark": "data",
    "plain_loader": "prepare",
    "check_config": "data",
    "evaluation": "data",
}
GENERIC_TABLES = {"comparisons": "hkt.report"}  # the one table every task lists from the shared layer


def _module_of(fn) -> str:
    """Where a Task field's value is defined (a deferred part names its module in its qualname)."""
    if getattr(fn, "__module__", "") == "hkt.tasks" and getattr(fn, "__qualname__", "").count("."):
        return fn.__qualname__.rsplit(".", 1)[0]
    return fn.__module__


def _folder(package: str) -> Path:
    return Path(importlib.import_module(package).__file__).parent


@pytest.mark.parametrize("package", PACKAGES)
def test_every_task_package_has_the_template_files(package):
    missing = [name for name in TEMPLATE if not (_folder(package) / name).is_file()]
    assert not missing, f"{package} lacks {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_task_packages_init_only_assembles_task(package):
    tree = ast.parse((_folder(package) / "__init__.py").read_text())
    other = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):  # the docstring
            continue
        values = (
            node.value.elts if isinstance(getattr(node, "value", None), ast.Tuple) else [getattr(node, "value", None)]
        )
        if isinstance(node, ast.Assign) and all(isinstance(v, ast.Constant) for v in values):
            continue  # module names of deferred parts
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["TASK"]:
            continue
        other.append(f"line {node.lineno}: {type(node).__name__}")
    assert not other, f"{package}/__init__.py defines more than TASK: {other}"


@pytest.mark.parametrize("package", PACKAGES)
def test_each_part_of_the_task_lives_in_its_template_module(package):
    task = get_task(PACKAGES[package], package)
    wrong = []
    defaults = {f.name: f.default for f in dataclasses.fields(task)}
    for field, home in HOMES.items():
        value = getattr(task, field)
        value = getattr(value, "func", value)  # a functools.partial of the module's function
        if value is not None and value is not defaults[field] and _module_of(value) != f"{package}.{home}":
            wrong.append(f"{field} in {_module_of(value)}, not {package}.{home}")
    for kind, makers in (("tables", task.tables), ("figures", task.figures)):
        for name, fn in makers.items():
            home = GENERIC_TABLES.get(name) if kind == "tables" else None
            if _module_of(fn) != (home or f"{package}.tables"):
                wrong.append(f"{kind}.{name} in {_module_of(fn)}")
    for name, fn in task.exports.items():
        if _module_of(fn) != f"{package}.data":
            wrong.append(f"exports.{name} in {_module_of(fn)}")
    assert not wrong, f"{package}: {wrong}"


def test_a_training_job_imports_no_plotting_and_cifar_none_of_torchvisions_readers():
    """Parts that import heavy libraries are deferred (hkt.tasks.deferred): a training job starts
    without matplotlib, and a CIFAR one without torchvision (RAFT's tasks need its models)."""
    code = (
        "import sys, hkt.tasks.cifar10; a = {'torchvision', 'matplotlib'} & set(sys.modules); "
        "import hkt.tasks.flow, hkt.tasks.lits; b = 'matplotlib' in sys.modules; print(sorted(a), b)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[] False"


@pytest.mark.parametrize("package", PACKAGES)
def test_metrics_score_what_data_loads_and_import_nothing_of_it(package):
    """One direction between the two modules: data.py hands loaded data to metrics.py's scorers."""
    tree = ast.parse((_folder(package) / "metrics.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert f"{package}.data" not in imported and not any(
        isinstance(node, ast.ImportFrom) and node.module == package and any(a.name == "data" for a in node.names)
        for node in ast.walk(tree)
    )
