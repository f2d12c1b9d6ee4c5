"""Feature access for methods (hkt.features) and attention transfer (baselines/attention_transfer.py),
a method that reads feature maps, added as one module plus config entries."""

import re

import pytest
import torch
from conftest import REPO

from baselines import attention_transfer as at
from hkt.features import FeatureTap
from hkt.methods import load_method, make_params
from hkt.tasks import build_model, get_task

CIFAR = get_task("cifar10")


def _resnets():
    torch.manual_seed(0)
    return build_model(CIFAR, "resnet8").eval(), build_model(CIFAR, "resnet20").eval()


def test_a_tap_records_the_named_layers_and_leaves_the_forward_pass_and_checkpoint_unchanged():
    child, _ = _resnets()
    x = torch.randn(2, 3, 16, 16)
    plain = child(x)
    keys = list(child.state_dict())
    with FeatureTap(child, ["stage1", "layer3"], CIFAR.feature_points(child)) as tap:
        tapped = child(x)
        stage1, stage3 = tap.take()
        assert keys == list(child.state_dict())  # hooks are not state
    assert torch.equal(plain, tapped)
    # the group outputs, computed by hand from the ResNet's own modules
    h = child.layer1(torch.relu(child.bn1(child.conv1(x))))
    assert torch.equal(stage1, h) and torch.equal(stage3, child.layer3(child.layer2(h)))
    assert not child._forward_hooks and not child.layer1._forward_hooks  # closed: no hook is left behind


def test_an_unknown_layer_is_refused_with_the_feature_points_and_close_names():
    child, _ = _resnets()
    with pytest.raises(ValueError, match=r"no layer 'stage4'.*feature points: \['stage1', 'stage2', 'stage3'\]"):
        FeatureTap(child, ["stage4"], CIFAR.feature_points(child))
    with pytest.raises(ValueError, match=r"did you mean \['layer1'"):
        FeatureTap(child, ["layer1x"], {})
    tap = FeatureTap(child, ["stage2"], CIFAR.feature_points(child))
    with pytest.raises(RuntimeError, match=r"did not run the layers \['stage2'\]"):
        tap.take()


def test_attention_maps_follow_the_papers_definition():
    """Q(A) = vec(mean_c |A_c|^p) / ||.||_2, computed here element by element."""
    torch.manual_seed(1)
    a = torch.randn(2, 5, 3, 4)
    q = at.attention(a, 2.0)
    for b in range(2):
        m = [sum(float(a[b, c, i, j]) ** 2 for c in range(5)) / 5 for i in range(3) for j in range(4)]
        norm = sum(v * v for v in m) ** 0.5
        assert torch.allclose(q[b], torch.tensor([v / norm for v in m]), atol=1e-6)
    # channel counts may differ, a positive scale changes nothing, the teacher is resized to the student
    assert at.attention_loss(a, 3.0 * a).item() < 1e-12
    assert at.attention_loss(a, torch.cat([a, a], dim=1)).item() < 1e-12
    big = torch.nn.functional.interpolate(a, size=(6, 8), mode="nearest")
    assert at.attention_loss(a, big).item() < 0.05 * at.attention_loss(a, torch.randn(2, 5, 6, 8)).item()
    with pytest.raises(ValueError, match="batch sizes differ"):
        at.attention_loss(a, a[:1])


@pytest.mark.parametrize(
    "task_name, child_arch, parent_arch, x, layers",
    [
        ("cifar10", "resnet8", "resnet20", torch.randn(4, 3, 16, 16), ["stage1", "stage2", "stage3"]),
        ("lits", "pocketnet_smoke", "hdenseunet_smoke", torch.randn(1, 1, 4, 32, 32), ["decoded"]),
        ("flow", "raft_smoke_small", "raft_smoke_large", None, ["features"]),
    ],
)
def test_attention_transfer_trains_the_child_alone_through_the_task_feature_points(
    task_name, child_arch, parent_arch, x, layers
):
    task = get_task(task_name)
    torch.manual_seed(0)
    child, parent = build_model(task, child_arch), build_model(task, parent_arch)
    if task_name == "cifar10":
        y = torch.randint(0, 10, (4,))
    elif task_name == "lits":
        y = torch.randint(0, 3, (1, 4, 32, 32))
    else:  # RAFT: a pair of frames and its flow
        x = (torch.rand(1, 3, 64, 80) * 2 - 1, torch.rand(1, 3, 64, 80) * 2 - 1)
        y = (torch.randn(1, 2, 64, 80), torch.ones(1, 64, 80, dtype=torch.bool))
    module = load_method("baselines.attention_transfer")
    method = module.build(child, parent, task, make_params(module, {"layers": layers}), x)
    loss, parts = method.loss(x, y)
    loss.backward()
    assert torch.isfinite(loss) and parts["at"].item() > 0
    assert all(p.grad is not None for p in child.parameters() if p.requires_grad)
    assert all(p.grad is None for p in parent.parameters())
    assert set(method.state_dict()) == {f"child.{k}" for k in child.state_dict()}  # a plain child is deployed


def test_the_core_library_names_no_feature_method():
    # one module in baselines/ plus config entries: no file of hkt/ names it
    assert [p.name for p in (REPO / "hkt").rglob("*.py") if re.search("attention.transfer", p.read_text(), re.I)] == []
