"""InherNet (seed 004) as a method added through the registry and the config alone: SVD
inheritance, the asymmetric gated layer, the child's parameter budget, and the deployed network
loading into its bare architecture as evaluation loads it."""

import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from conftest import REPO, parent_spec, quiet, run_spec, train_run

from baselines import inhernet as I
from hkt import config as C
from hkt import pipeline
from hkt.methods import load_method
from hkt.models import load_checkpoint
from hkt.tasks import ReportInput, build_model, get_task, load_shown_models

CIFAR = get_task("cifar10")
ARCH = "baselines.inhernet:resnet20@budget=resnet8,heads=2"


def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("gate,bias", [(True, False), (False, True)])
def test_at_full_rank_an_inherited_layer_computes_the_parents_convolution(gate, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 24, 3, stride=2, padding=1, bias=bias)
    layer = I.InheritedConv2d(conv, rank=24, heads=3, gate=gate)
    error = layer.inherit(conv, noise=0.0, generator=torch.Generator())
    x = torch.randn(2, 16, 9, 9)
    assert error < 1e-6
    torch.testing.assert_close(layer(x), conv(x), atol=1e-5, rtol=1e-5)


def test_the_rank_r_layer_is_the_best_rank_r_kernel_of_eckart_young():
    torch.manual_seed(1)
    conv = nn.Conv2d(12, 20, 3, padding=1, bias=False)
    layer = I.InheritedConv2d(conv, rank=5, heads=1, gate=False)
    error = layer.inherit(conv, noise=0.0, generator=torch.Generator())
    w = conv.weight.detach().reshape(20, -1).double()
    s = torch.linalg.svdvals(w)
    tail = (s[5:] ** 2).sum().sqrt() / (s**2).sum().sqrt()
    approx = layer.up.weight.detach().reshape(20, 5).double() @ layer.down.weight.detach().reshape(5, -1).double()
    assert error == pytest.approx(float(tail), rel=1e-6)
    assert float(torch.linalg.norm(w - approx) / torch.linalg.norm(w)) == pytest.approx(float(tail), rel=1e-5)


def test_the_budget_architecture_stays_within_the_childs_parameters_and_uses_most_of_them():
    budget = n_params(CIFAR.build_model("resnet8"))
    for heads in (1, 2, 4):
        model = build_model(CIFAR, f"baselines.inhernet:resnet20@budget=resnet8,heads={heads}")
        assert 0.85 * budget <= n_params(model) <= budget
        layers = [m for m in model.modules() if isinstance(m, I.InheritedConv2d)]
        assert layers and all(m.heads == heads for m in layers)
    # the parent's structure stays: depth, batch normalisation, classifier, aligned blocks
    model = build_model(CIFAR, ARCH)
    assert len(model.blocks()) == 2 and model.linear.out_features == 10


def test_inheritance_copies_everything_but_the_decomposed_kernels_from_the_parent():
    torch.manual_seed(2)
    parent = CIFAR.build_model("resnet20")
    for m in parent.modules():  # non-trivial running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    child = build_model(CIFAR, ARCH)
    errors = I.inherit(child, parent, noise=0.01, seed=0)
    assert len(errors) == sum(isinstance(m, I.InheritedConv2d) for m in child.modules())
    assert all(0 <= e < 1 for e in errors.values())
    own, theirs = child.state_dict(), parent.state_dict()
    copied = [k for k in theirs if k in own]
    assert any("bn" in k for k in copied) and "linear.weight" in copied
    assert all(torch.equal(own[k], theirs[k]) for k in copied)


def test_the_heads_start_apart_only_by_the_configured_noise():
    conv = nn.Conv2d(8, 8, 3, padding=1, bias=False)
    layer = I.InheritedConv2d(conv, rank=4, heads=2, gate=True)
    layer.inherit(conv, noise=0.0, generator=torch.Generator())
    up = layer.up.weight.detach().reshape(8, 2, 4)
    assert torch.equal(up[:, 0], up[:, 1])
    layer.inherit(conv, noise=0.05, generator=torch.Generator().manual_seed(0))
    up = layer.up.weight.detach().reshape(8, 2, 4)
    assert not torch.equal(up[:, 0], up[:, 1])


@pytest.mark.parametrize(
    "name,message",
    [
        ("resnet20", "exactly one of budget"),
        ("resnet20@rank=0", r"rank must lie in \(0, 1\]"),
        ("resnet20@rank=0.3,heads=0", "heads must be >= 1"),
        ("resnet20@rank=0.3,depth=2", "bad option 'depth=2'"),
        ("resnet21@rank=0.3", "unknown CIFAR ResNet 'resnet21'"),
    ],
)
def test_a_bad_architecture_name_is_refused_with_the_reason(name, message):
    with pytest.raises(ValueError, match=message):
        build_model(CIFAR, f"baselines.inhernet:{name}")


def test_trained_through_the_workflow_the_deployed_network_loads_into_its_bare_architecture(cfg, tmp_path):
    parent_dir, run_dir = tmp_path / "parent", tmp_path / "inhernet"
    parent = pipeline.train_stage(parent_spec(cfg), parent_dir, log=quiet)
    spec = run_spec(cfg, "inhernet", "default")
    assert spec["arch"] == ARCH and spec["init"] == "scratch" and spec["needs_parent"]
    assert spec["schedule"]["lr"] == cfg["tasks"]["cifar10"]["child"]["finetune"]["lr"]  # the fine-tuning schedule
    weights = train_run(cfg, "inhernet", "default", 0, run_dir, parent=parent)
    model = build_model(CIFAR, spec["arch"])
    load_checkpoint(model, weights)  # strict: exactly the inherited network's keys
    assert n_params(model) <= n_params(CIFAR.build_model("resnet8"))
    table = pipeline.evaluate(
        C.evaluation_spec(cfg, "cifar10"),
        {("inhernet", "default", 0): (run_dir, spec)},
        tmp_path / "metrics.csv",
        log=quiet,
    )
    assert set(table.metric) >= {"top1_acc", "params_m", "inference_ms"}
    # figures that run models (flow Figure 4, LiTS overlays) show it in its own architecture
    shown = load_shown_models(
        ReportInput(
            spec={"task": "cifar10"},
            results=None,
            paper=None,
            curves={},
            model_dirs={("inhernet", "default", 0): run_dir, ("parent", "default", None): parent_dir},
        ),
        {"inhernet": ("inhernet", "default", 0), "parent": ("parent", "default", None), "absent": ("kd", "default", 0)},
    )
    assert list(shown) == ["inhernet", "parent"] and not shown["inhernet"].training
    x = torch.randn(2, 3, 8, 8)
    assert torch.equal(shown["inhernet"](x), model.eval()(x))
    assert type(shown["parent"]) is type(CIFAR.build_model(cfg["tasks"]["cifar10"]["parent"]["arch"]))


def test_the_method_refuses_a_child_that_is_not_inherited():
    module = load_method("baselines.inhernet")
    with pytest.raises(ValueError, match="needs an inherited architecture"):
        module.build(CIFAR.build_model("resnet8"), CIFAR.build_model("resnet20"), CIFAR, module.Params(), None)


def test_inhernet_changes_nothing_in_the_core_library():
    # The proof: the method is one module in baselines/ plus config entries; no file of
    # the core library names it.
    mentions = [
        str(path.relative_to(REPO))
        for path in (REPO / "hkt").rglob("*.py")
        if re.search("inhernet", path.read_text(), re.I)
    ]
    assert mentions == []
    assert Path(I.__file__).parent.name == "baselines"
