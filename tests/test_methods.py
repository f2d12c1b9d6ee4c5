"""Every configured method trains the child only; HKT's losses follow eq. (9) and Algorithm 1."""

import pytest
import torch
import torch.nn.functional as F
from conftest import REPO

from hkt import config as C
from hkt import genetic_attention
from hkt.methods import load_method, make_params
from hkt.tasks import build_model
from hkt.tasks.cifar10 import TASK
from hkt.tasks.cifar10.models import build as build_cifar_resnet

CFG = C.load(REPO / "config" / "paper.yaml")  # the widest list of variants
CFG["tasks"]["cifar10"]["parent"]["arch"], CFG["tasks"]["cifar10"]["child"]["arch"] = "resnet14", "resnet8"
RUNS = [(m, v) for m, v in C.runs(CFG, "cifar10")]


def build(method, variant, parent=None, seed=0):
    spec = C.run_specs(CFG, "cifar10", method, variant, seed)[-1]
    module = load_method(spec["module"])
    params = make_params(module, spec["params"])
    torch.manual_seed(seed)
    child = build_model(TASK, spec["arch"])  # ResNet-8, or the architecture the method brings
    parent = parent if parent is not None else build_cifar_resnet("resnet14")
    x = torch.randn(16, 3, 16, 16)
    return module.build(child, parent if module.NEEDS_PARENT else None, TASK, params, x[:2]), x


@pytest.mark.parametrize("method,variant", RUNS, ids=[f"{m}/{v}" for m, v in RUNS])
def test_training_steps_change_the_child_and_never_the_parent(method, variant):
    parent = build_cifar_resnet("resnet14")
    frozen = {k: v.clone() for k, v in parent.state_dict().items()}
    objective, x = build(method, variant, parent)
    y = torch.randint(0, 10, (16,))
    trainable = [p for p in objective.parameters() if p.requires_grad]
    assert not any(p is q for p in trainable for q in parent.parameters())
    assert not any(k.startswith("parent") for k in objective.state_dict())
    child_before = {k: v.clone() for k, v in objective.child.state_dict().items()}
    opt = torch.optim.SGD(trainable, lr=0.05, momentum=0.9)
    objective.train()
    for _ in range(2):
        loss, parts = objective.loss(x, y)
        assert torch.isfinite(loss) and parts
        opt.zero_grad()
        loss.backward()
        opt.step()
    # the parent's weights never change; its BatchNorm statistics move only where a variant asks for
    # the authors' batch-statistics parent (hkt parent_bn: train)
    moving = getattr(getattr(objective, "params", None), "parent_bn", "eval") == "train"
    buffers = {name for name, _ in parent.named_buffers()}
    for k, v in parent.state_dict().items():
        assert torch.equal(v, frozen[k]) or (moving and k in buffers), f"parent {k} changed"
    if objective.parent is not None:
        assert not objective.parent.training
    assert any(not torch.equal(v, child_before[k]) for k, v in objective.child.state_dict().items())


def test_hkt_loss_is_the_weighted_sum_of_l1_l2_l3():
    objective, x = build("hkt", "default")
    y = torch.randint(0, 10, (16,))
    total, parts = objective.loss(x, y)
    torch.testing.assert_close(total, (parts["L1"] + parts["L2"] + parts["L3"]) / 3)
    objective, _ = build("hkt", "no_head")
    total, parts = objective.loss(x, y)
    assert "L3" not in parts
    torch.testing.assert_close(total, (parts["L1"] + parts["L2"]) / 2)


def test_hkt_losses_follow_algorithm_1_on_the_resnet_pair():
    objective, x = build("hkt", "default")
    y = torch.randint(0, 10, (16,))
    objective.eval()
    _, parts = objective.loss(x, y)
    child, parent = objective.child, objective.parent
    z, zp = child.features(x), parent.features(x)
    phi_c = z + 0.6 * genetic_attention(z, zp)  # line 7: the child's signal is the query
    phi_p = zp + 0.6 * genetic_attention(zp, z)  # line 6: the parent's signal is the query
    torch.testing.assert_close(parts["L1"], F.cross_entropy(child.linear(phi_c), y))
    torch.testing.assert_close(parts["L2"], F.cross_entropy(child(x), y))
    torch.testing.assert_close(parts["L3"], F.cross_entropy(parent.linear(phi_p), y))


def test_the_literal_vector_equation_mixes_nothing_in():
    zero, x = build("hkt", "literal_vector_ga")  # GA = 0 on vectors
    y = torch.randint(0, 10, (16,))
    zero.eval()
    _, parts = zero.loss(x, y)
    torch.testing.assert_close(parts["L1"], parts["L2"])


def test_the_authors_head_path_reads_the_child_query_mixture():
    paper, x = build("hkt", "default")
    authors, _ = build("hkt", "authors_head_path")
    y = torch.randint(0, 10, (16,))
    paper.eval(), authors.eval()
    _, a = paper.loss(x, y)
    _, b = authors.loss(x, y)
    torch.testing.assert_close(a["L1"], b["L1"])  # same child path
    assert not torch.isclose(a["L3"], b["L3"])  # different parent-head input


def test_kd_is_hintons_loss():
    objective, x = build("kd", "default")
    y = torch.randint(0, 10, (16,))
    objective.eval()
    loss, parts = objective.loss(x, y)
    s, t = objective.child(x), objective.parent(x)
    soft = F.kl_div(F.log_softmax(s / 4, 1), F.softmax(t / 4, 1), reduction="batchmean") * 16
    torch.testing.assert_close(parts["kd"], soft)
    torch.testing.assert_close(loss, 0.1 * F.cross_entropy(s, y) + 0.9 * soft)


def test_the_authors_batch_statistics_parent_moves_only_its_batchnorm_statistics_and_changes_the_losses():
    """HKT-ResNet trainer.py never calls parent.eval(): its parent normalises with batch statistics."""
    parent = build_cifar_resnet("resnet14")
    frozen = {k: v.clone() for k, v in parent.state_dict().items()}
    suite, x = build("hkt", "authors_head_path", build_cifar_resnet("resnet14"))
    suite.parent.load_state_dict(frozen)
    authors, _ = build("hkt", "authors_wiring", parent)
    assert authors.params.parent_bn == "train" and suite.params.parent_bn == "eval"
    authors.child.load_state_dict(suite.child.state_dict())
    authors.inheritance.load_state_dict(suite.inheritance.state_dict())
    y = torch.randint(0, 10, (16,))
    suite.train(), authors.train()
    (_, ours), (_, theirs) = suite.loss(x, y), authors.loss(x, y)
    assert not torch.allclose(ours["L1"], theirs["L1"])  # batch statistics, not running ones
    torch.testing.assert_close(ours["L2"], theirs["L2"])  # the child alone is the same network
    moved = [k for k, v in parent.state_dict().items() if not torch.equal(v, frozen[k])]
    assert moved and all(k.endswith(("running_mean", "running_var", "num_batches_tracked")) for k in moved)
    assert all(torch.equal(v, frozen[k]) for k, v in suite.parent.state_dict().items())
    assert not any(p.requires_grad for p in parent.parameters())
