"""Flow distillation baselines: what they train, and whether their distillation terms carry gradient.

The models are tiny torchvision RAFTs (a step takes a fraction of a second at 128x128, batch 2).
"""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn import BatchNorm2d, InstanceNorm2d
from torchvision.models.optical_flow.raft import BottleneckBlock, ResidualBlock, _raft

from baselines import draft, flow_kd
from hkt.methods import load_method, make_params
from hkt.tasks import Task
from hkt.tasks.flow.metrics import sequence_loss

UPDATES = 3


def tiny_raft(arch: str):
    """A parent like raft_large (residual blocks, mask predictor) or a child like raft_small, narrow."""
    large = arch == "parent"
    return _raft(
        feature_encoder_layers=(8, 8, 12, 16, 24 if large else 16),
        feature_encoder_block=ResidualBlock if large else BottleneckBlock,
        feature_encoder_norm_layer=InstanceNorm2d,
        context_encoder_layers=(8, 8, 12, 16, 24 if large else 20),
        context_encoder_block=ResidualBlock if large else BottleneckBlock,
        context_encoder_norm_layer=BatchNorm2d if large else None,
        corr_block_num_levels=2,
        corr_block_radius=2,
        motion_encoder_corr_layers=(16,),
        motion_encoder_flow_layers=(16, 8),
        motion_encoder_out_channels=16,
        recurrent_block_hidden_state_size=12 if large else 10,
        recurrent_block_kernel_size=(3,),
        recurrent_block_padding=(1,),
        flow_head_hidden_size=16,
        use_mask_predictor=large,
    )


TASK = Task(
    name="flowtest",
    build_model=tiny_raft,
    blocks=lambda model: [model],
    task_loss=sequence_loss,
    forward=lambda model, x: model(*x, num_flow_updates=UPDATES),
)


def batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = tuple(torch.rand(2, 3, 128, 128, generator=g) * 2 - 1 for _ in range(2))
    flow = torch.randn(2, 2, 128, 128, generator=g) * 3
    valid = torch.rand(2, 128, 128, generator=g) > 0.3  # sparse, like KITTI
    return images, (flow, valid)


def method(name: str, **params):
    module = load_method(f"baselines.{name}")
    torch.manual_seed(0)
    child, parent = tiny_raft("child"), tiny_raft("parent")
    x, _ = batch()
    built = module.build(child, parent, TASK, make_params(module, params), (x[0][:1], x[1][:1]))
    return built, child, parent


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["flow_kd", "draft"])
def test_flow_distillation_trains_the_child_and_never_the_parent(name):
    objective, child, parent = method(name)
    parent_ids = {id(p) for p in parent.parameters()}
    assert not parent_ids & {id(p) for p in objective.parameters()}
    assert not [k for k in objective.state_dict() if k.startswith("parent")]
    before_child, before_parent = snapshot(child), snapshot(parent)
    optimiser = torch.optim.SGD(objective.parameters(), lr=1e-3)
    for step in range(3):
        x, y = batch(step)
        loss, parts = objective.loss(x, y)
        assert torch.isfinite(loss) and all(torch.isfinite(v) for v in parts.values())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert all(p.grad is None for p in parent.parameters())
    after_parent = snapshot(parent)  # buffers too: BatchNorm statistics stay frozen
    assert all(torch.equal(before_parent[k], after_parent[k]) for k in before_parent)
    after_child = snapshot(child)
    assert any(not torch.equal(before_child[k], after_child[k]) for k in before_child)


def test_flow_kds_soft_target_term_carries_gradient_to_the_student():
    objective, child, _ = method("flow_kd")
    _, parts = objective.loss(*batch())
    grads = torch.autograd.grad(parts["kd"], list(child.parameters()), allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0


def test_flow_kds_soft_target_is_the_gamma_weighted_l1_to_the_teachers_final_flow():
    teacher = torch.full((1, 2, 1, 1), 2.0)
    predictions = [torch.zeros(1, 2, 1, 1), torch.ones(1, 2, 1, 1)]  # |diffs| 2 then 1
    assert float(flow_kd.soft_target_loss(predictions, teacher, gamma=0.5)) == pytest.approx(0.5 * 2 + 1)


def test_drafts_sign_pattern_term_carries_no_gradient_to_the_student():
    """THE DRAFT GRADIENT QUESTION: the distillation term's gradient w.r.t. the student is exactly zero.

    The term has a value (it is logged), but autograd has no path from it to any parameter, and
    the gradient of DRAFT's total loss equals, bit for bit, that of its ground-truth part alone."""
    objective, child, _ = method("draft")
    params = list(child.parameters())
    total, parts = objective.loss(*batch())
    assert parts["sign_kl"] > 0 and not parts["sign_kl"].requires_grad and parts["sign_kl"].grad_fn is None
    with_term = torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
    without = torch.autograd.grad((1 - objective.params.alpha) * parts["task"], params, allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in without)
    for a, b in zip(with_term, without, strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_drafts_earlier_reskd_term_carries_gradient_to_the_student():
    """Anchor: christian-tchenko/DRAFT commit c411672 ("RsKD checkpoints"), core/distillation.py
    DistillerIKD.rskd_loss: a softmax-KL on raw flow rows, differentiable in the student's flow."""
    objective, child, _ = method("draft", form="reskd", alpha=0.05, temperature=0.1)
    total, parts = objective.loss(*batch())
    assert set(parts) == {"task", "reskd"} and parts["reskd"].requires_grad
    grads = torch.autograd.grad(parts["reskd"], list(child.parameters()), allow_unused=True)
    assert sum(float(g.abs().sum()) for g in grads if g is not None) > 0
    torch.testing.assert_close(total, 0.95 * parts["task"] + 0.05 * parts["reskd"])


def test_the_reskd_term_is_the_public_codes_per_slice_loss_summed_over_updates():
    """c411672 computes, per flow channel slice z[d] (H x W) of one batch item, KLDivLoss(batchmean,
    log_target=True)(log_softmax(teacher / T, dim=1), softmax(student / T, dim=1)) times T, averages
    over the slices, and trainKD.py sums that over the updates without gamma weights."""
    g = torch.Generator().manual_seed(3)
    student = [torch.randn(2, 2, 5, 7, generator=g) for _ in range(3)]
    teacher = [torch.randn(2, 2, 5, 7, generator=g) for _ in range(3)]
    t = 0.1
    kl = torch.nn.KLDivLoss(reduction="batchmean", log_target=True)
    expected = 0.0
    for s_i, t_i in zip(student, teacher, strict=True):
        slices = [(s_i[b, c], t_i[b, c]) for b in range(2) for c in range(2)]
        per_slice = [kl(F.log_softmax(tt / t, dim=1), F.softmax(ss / t, dim=1)) * t for ss, tt in slices]
        expected += sum(per_slice) / len(per_slice)
    torch.testing.assert_close(draft.reskd_term(student, teacher, t), expected)


def test_the_sign_pattern_is_locally_constant_so_even_torch_sign_passes_zero_gradient():
    """Not an accident of torch.where: the sign of a projection is piecewise constant in the flow."""
    g = torch.Generator().manual_seed(1)
    student = torch.randn(2, 2, 16, 16, generator=g, requires_grad=True)
    teacher = torch.randn(2, 2, 16, 16, generator=g)
    weight, bias = draft.random_projection(2, seed=0)
    before = draft.sign_kl(draft.sign_pattern(student, weight, bias), draft.sign_pattern(teacher, weight, bias), 10.0)
    nudged = student.detach() + 1e-5 * torch.randn(2, 2, 16, 16, generator=g)
    after = draft.sign_kl(draft.sign_pattern(nudged, weight, bias), draft.sign_pattern(teacher, weight, bias), 10.0)
    assert torch.equal(before, after)
    rows = torch.sign(F.conv2d(student, weight, bias)).reshape(-1, 16)  # differentiable by autograd
    term = draft.sign_kl(rows, draft.sign_pattern(teacher, weight, bias), 10.0)
    (grad,) = torch.autograd.grad(term, student)
    assert torch.equal(grad, torch.zeros_like(grad))


def test_sign_patterns_are_torch_sign_of_the_projection_as_rows_of_the_image():
    flow = torch.randn(2, 2, 4, 6)
    weight, bias = draft.random_projection(3, seed=5)
    signs = draft.sign_pattern(flow, weight, bias)
    assert signs.shape == (2 * 3 * 4, 6)
    assert torch.equal(signs, torch.sign(F.conv2d(flow, weight, bias)).reshape(-1, 6))


def test_sign_kl_of_equal_patterns_is_the_public_codes_constant_t2_ln_t2():
    # T^2 multiplies the teacher's probabilities: T^2 (KL + ln T^2), and KL = 0 for equal patterns
    signs = torch.tensor([[1.0, -1.0, 0.0, 1.0]])
    assert float(draft.sign_kl(signs, signs, 10.0)) == pytest.approx(100 * math.log(100), rel=1e-5)


def test_drafts_projection_is_a_seeded_buffer_saved_with_the_method_and_never_trained():
    objective, _, _ = method("draft", projection_seed=3)
    again, _, _ = method("draft", projection_seed=3)
    other, _, _ = method("draft", projection_seed=4)
    assert "projection_weight" in objective.state_dict() and "projection_bias" in objective.state_dict()
    assert not any(n.startswith("projection") for n, _ in objective.named_parameters())
    assert torch.equal(objective.projection_weight, again.projection_weight)  # a resumed run draws the same
    assert not torch.equal(objective.projection_weight, other.projection_weight)
    other.load_state_dict(objective.state_dict())
    assert torch.equal(objective.projection_weight, other.projection_weight)


@pytest.mark.parametrize(
    "name, params",
    [
        ("draft", {"alpha": 1.5}),
        ("draft", {"temperature": 0.0}),
        ("draft", {"gamma": 0.0}),
        ("draft", {"projection_channels": 0}),
        ("flow_kd", {"alpha": -0.1}),
        ("flow_kd", {"gamma": 1.2}),
    ],
)
def test_params_reject_invalid_values(name, params):
    with pytest.raises(ValueError):
        make_params(load_method(f"baselines.{name}"), params)
