"""Invalid configurations fail before any job runs, naming the key."""
import copy
import subprocess
import sys

import pytest
import yaml

from hkt import config as C

from conftest import REPO


@pytest.fixture
def default():
    return C.load(REPO / "config" / "config.yaml")


def test_shipped_configs_are_valid(default):
    C.validate(default)
    C.validate(C.load(REPO / "config" / "paper.yaml"))


def dry_run(*args):
    return subprocess.run([sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_a_configfile_replaces_the_default_instead_of_merging_into_it(default, tmp_path):
    # Merged, a key missing from a paper-scale file would silently keep its smoke value.
    out = dry_run("--configfile", "config/paper.yaml")
    assert out.returncode == 0, out.stderr
    assert "hkt/literal_vector_ga/seed2/child.pt" in out.stdout and "data/cifar10/manifest.json" in out.stdout
    partial = {k: v for k, v in default.items() if k != "methods"}
    (tmp_path / "partial.yaml").write_text(yaml.safe_dump(partial))
    out = dry_run("--configfile", str(tmp_path / "partial.yaml"))
    assert out.returncode != 0 and "'methods' is a required property" in out.stdout + out.stderr


def mutate(cfg, path, value):
    cfg = copy.deepcopy(cfg)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


BAD = [
    (("methods", "kd", "module"), "baselines.nonexistent", r"methods\.kd\.module: cannot import"),
    (("tasks", "cifar10", "runs"), ["alone/default", "dkd/default"], r"tasks\.cifar10\.runs\[1\]: 'dkd/default'"),
    (("methods", "hkt", "params", "lambda"), 1.5, r"methods\.hkt\.variants\.default\.params: .*lambda must lie in \[0, 1\]"),
    (("methods", "hkt", "params", "alphas"), [0.5, 0.3, 0.2], r"methods\.hkt\.variants\.default\.params: .*max\(alpha1, alpha3\) <= alpha2"),
    (("methods", "hkt", "params", "stages"), 3, r"methods\.hkt\.variants\.default\.params: stages = 3 exceeds the 2 aligned blocks"),
    (("methods", "hkt", "params", "mixtur"), "ga", r"methods\.hkt\.variants\.default\.params\.mixtur: unknown parameter"),
    (("methods", "kd", "params", "temperature"), -1, r"methods\.kd\.variants\.default\.params: temperature must be > 0"),
    (("tasks", "cifar10", "parent", "arch"), "resnet21", r"tasks\.cifar10\.parent\.arch: unknown CIFAR ResNet"),
    (("tasks", "cifar10", "data", "resoluton"), 16, r"config key tasks\.cifar10\.data: Additional properties"),
    (("seeds",), [0, 0], r"config key seeds: .*non-unique"),
    (("scale",), "tiny", r"config key scale: 'tiny' is not one of"),
    (("tasks", "cifar10", "parent", "published"), "no_such_release", r"tasks\.cifar10\.parent\.published: 'no_such_release'"),
    (("tasks", "cifar10", "table", "paper_rows", "hkt2"), "hkt/no_ga_typo", r"paper_rows\.hkt2: 'hkt/no_ga_typo' is not in"),
    (("methods", "alone", "variants", "default", "init"), "child", r"starts from the trained child"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[".".join(p) for p, _, _ in BAD])
def test_invalid_config_names_the_key(default, path, value, message):
    with pytest.raises(ValueError, match=message):
        C.validate(mutate(default, path, value))


def test_snakemake_refuses_an_invalid_config_before_scheduling_any_job(default, tmp_path):
    bad = mutate(default, ("methods", "hkt", "params", "lambda"), 1.5)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    out = dry_run("--configfile", str(tmp_path / "bad.yaml"))
    assert out.returncode != 0
    log = out.stdout + out.stderr
    assert "invalid configuration" in log and "lambda must lie in [0, 1]" in log
    assert "Job stats" not in log   # nothing was scheduled


def test_run_specs_hash_everything_but_the_seed(default):
    a = C.run_spec(default, "cifar10", "hkt", "default")
    b = C.run_spec(default, "cifar10", "hkt", "no_ga")
    assert C.config_hash(a) != C.config_hash(b)
    assert a["schedule"] == default["tasks"]["cifar10"]["child"]["finetune"]   # init: child
    assert C.run_spec(default, "cifar10", "alone", "default")["schedule"] == default["tasks"]["cifar10"]["child"]["train"]
    assert a["parent"] == C.config_hash(C.parent_spec(default, "cifar10"))
