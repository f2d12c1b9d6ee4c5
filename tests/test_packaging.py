"""pyproject.toml and environment.yml say the same thing."""

import tomllib

import yaml
from conftest import REPO


def test_environment_yml_pins_the_same_packages_as_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["dev"])
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip if not p.startswith("-")}
    assert listed == wanted
    assert "torch==2.14.1" in wanted and "torchvision==0.29.1" in wanted
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    # tarfile's extraction filter, which safe_extract needs, came in 3.11.4
    assert python == "python>=3.11.4,<3.12" and project["requires-python"] == ">=3.11.4,<3.12"


def test_the_rules_environment_pins_the_runtime_packages_of_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "workflow" / "envs" / "hkt.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert {p for p in pip if not p.startswith("-")} == set(project["dependencies"])
    for rules in (REPO / "workflow" / "rules").glob("*.smk"):
        text = rules.read_text()
        assert text.count("\nrule ") == text.count('conda:\n        "../envs/hkt.yaml"'), rules.name
