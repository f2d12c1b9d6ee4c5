"""RAFT parent and child, their three aligned blocks, and HKT (2 and 3 stages) on RAFT's tuple signals."""

import dataclasses
from collections import Counter

import pytest
import torch

from hkt.inheritance import merge_blocks, mixing_plans
from hkt.methods import load_method, make_params
from hkt.models import load_checkpoint, save_checkpoint
from hkt.tasks.flow import TASK, models

PAIR = (torch.rand(2, 3, 128, 128) * 2 - 1, torch.rand(2, 3, 128, 128) * 2 - 1)


def test_paper_architectures_have_the_papers_parameter_counts():
    for arch, count in models.PAPER_PARAMETERS.items():
        assert sum(p.numel() for p in models.build(arch).parameters()) == count


@pytest.mark.parametrize("arch", ["raft_smoke_small", "raft_smoke_large"])
def test_the_three_blocks_compose_to_torchvisions_forward(arch):
    model = models.build(arch).eval()
    with torch.no_grad():
        signal = PAIR
        for block in models.blocks(model, updates=3):
            signal = block(signal)
        plain = model(*PAIR, num_flow_updates=3)
    assert len(signal) == len(plain) == 3
    for a, b in zip(signal, plain, strict=True):
        torch.testing.assert_close(a, b)


def test_mixed_leaves_name_feature_maps_then_hidden_and_context():
    model = models.build("raft_smoke_small").eval()
    blocks = models.blocks(model, updates=2)
    with torch.no_grad():
        first = blocks[0](PAIR)
        second = blocks[1](first)
    assert [t.shape[1] for t in first] == [32, 32, 3] and models.mixed_leaves(3)[0] == [0, 1]
    assert [t.shape[1] for t in second] == [32, 32, 24, 16] and models.mixed_leaves(3)[1] == [2, 3]
    assert models.mixed_leaves(2) == [[0, 1]]  # 2HKT: the feature maps only (raft-stages)


# RAFT's own wiring (torchvision raft.py, RAFT.forward): the context encoder reads image1 only, so
# the feature maps pass it by. At 128x128 both paper models run on the CPU in a second.
PAPER_PAIR = (torch.rand(1, 3, 128, 128) * 2 - 1, torch.rand(1, 3, 128, 128) * 2 - 1)


def _paper_hkt(stages: int, leaves=None, **extra):
    module = load_method("hkt.hereditary")
    params = make_params(module, {"stages": stages, "inherit_loss": "sequence", "extractor": "conv", **extra})
    torch.manual_seed(0)
    child, parent = models.build("raft_small"), models.build("raft_large")
    task = TASK if leaves is None else dataclasses.replace(TASK, mixed_leaves=leaves)
    return module.build(child, parent, task, params, PAPER_PAIR)


def _copy_units(three, two):
    """Give the 2-stage objective the 3-stage one's child weights and, leaf for leaf, its ETM units."""
    two.child.load_state_dict(three.child.state_dict())
    for direction in ("to_child", "to_parent"):
        merged = getattr(two.inheritance, direction)[0].units
        for boundary in getattr(three.inheritance, direction):
            for key, unit in boundary.units.items():
                if key in merged:
                    merged[key].load_state_dict(unit.state_dict())


def test_on_raft_2hkt_and_3hkt_compute_different_losses_at_equal_weights():
    """Anchor: torchvision's RAFT.forward runs the context encoder on image1 alone. Mixing all four
    leaves at 2HKT's one boundary would equal 3HKT exactly; 2HKT mixes the feature maps only."""
    three, two = _paper_hkt(3), _paper_hkt(2)
    _copy_units(three, two)
    target = (torch.randn(1, 2, 128, 128), torch.ones(1, 128, 128, dtype=torch.bool))
    three.eval(), two.eval()
    with torch.no_grad():
        _, a = three.loss(PAPER_PAIR, target)
        _, b = two.loss(PAPER_PAIR, target)
    torch.testing.assert_close(a["L2"], b["L2"])  # the plain child: same weights, same output
    assert not torch.isclose(a["L1"], b["L1"]) and not torch.isclose(a["L3"], b["L3"])
    extra = {n: sum(p.numel() for p in o.inheritance.parameters()) for n, o in (("3", three), ("2", two))}
    assert extra["3"] > extra["2"] > 0  # 3HKT's context-encoder units are its own


def test_hkt_refuses_a_stage_count_whose_mixing_plan_equals_another():
    """The former RAFT plan (2HKT mixing feature maps, hidden state and context at once) is 3HKT."""
    with pytest.raises(ValueError, match=r"stages = 2 and stages = 3 mix the same signals"):
        _paper_hkt(2, leaves=lambda s: [[0, 1], [2, 3]] if s == 3 else [[0, 1, 2, 3]])
    plans = mixing_plans(
        models.blocks(models.build("raft_small").eval(), 2),
        models.blocks(models.build("raft_large").eval(), 2),
        PAPER_PAIR,
        models.mixed_leaves,
    )
    # (boundary, leaf): the feature maps settle after the context encoder, which passes them by
    assert plans[3] == Counter({(2, 0): 1, (2, 1): 1, (2, 2): 1, (2, 3): 1}) and plans[2] == Counter(
        {(2, 0): 1, (2, 1): 1}
    )


def test_the_authors_head_path_keeps_the_parents_own_feature_maps_where_nothing_is_mixed():
    """head_query: child at 3HKT: the second boundary mixes hidden state and context; the parent's
    flow block must still build its correlation pyramid on the parent's (256-channel) feature maps."""
    objective = _paper_hkt(3, head_query="child")
    seen = []
    parent_blocks = objective.parent_blocks()
    last = parent_blocks[-1]
    parent_blocks[-1] = lambda signal: seen.append([t.shape[1] for t in signal]) or last(signal)
    target = (torch.randn(1, 2, 128, 128), torch.ones(1, 128, 128, dtype=torch.bool))
    with torch.no_grad():
        out = objective.inheritance(objective.child_blocks(), parent_blocks, PAPER_PAIR)
    assert seen == [[256, 256, 128, 128]] and torch.isfinite(objective.inherit_loss(out.head, target))


def _hkt(stages: int, **extra):
    module = load_method("hkt.hereditary")
    params = make_params(module, {"stages": stages, "inherit_loss": "sequence", "lambda": 0.6, **extra})
    torch.manual_seed(0)
    child, parent = models.build("raft_smoke_small"), models.build("raft_smoke_large")
    return module.build(child, parent, TASK, params, (PAIR[0][:1], PAIR[1][:1])), parent


@pytest.mark.parametrize("stages", [2, 3])
def test_hkt_on_raft_trains_the_child_and_transfers_never_the_parent(stages):
    objective, parent = _hkt(stages, extractor="conv")
    frozen = {k: v.clone() for k, v in parent.state_dict().items()}
    target = (torch.randn(2, 2, 128, 128), torch.ones(2, 128, 128, dtype=torch.bool))
    loss, parts = objective.loss(PAIR, target)
    assert set(parts) == {"L1", "L2", "L3"} and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None for p in parent.parameters())
    transfers = [m for m in objective.inheritance.modules() if isinstance(m, torch.nn.Conv2d)]
    assert transfers and all(m.weight.grad is not None for m in transfers)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in objective.child.parameters())
    assert all(torch.equal(v, frozen[k]) for k, v in parent.state_dict().items())
    units = len(objective.inheritance.to_child[0].units) + (
        len(objective.inheritance.to_child[1].units) if stages == 3 else 0
    )
    assert units == 2 * (stages - 1)  # fmap1, fmap2 (2HKT); + hidden, context (3HKT)


def test_head_inheritance_feeds_child_mixed_signals_through_the_frozen_parents_flow_block():
    objective, _ = _hkt(3)
    out = objective.inheritance(objective.child_blocks(), objective.parent_blocks(), PAIR)
    assert out.head is not None and len(out.head) == 12 and out.head[-1].shape == (2, 2, 128, 128)
    assert out.native[-1].shape == out.inherited[-1].shape == (2, 2, 128, 128)


def test_the_deployed_child_is_a_plain_torchvision_raft_that_runs_alone(tmp_path):
    objective, _ = _hkt(3)
    save_checkpoint(objective.child, tmp_path / "child.pt")
    bare = models.build("raft_smoke_small")
    load_checkpoint(bare, tmp_path / "child.pt")  # strict: no transfer or parent keys
    flows = bare.eval()(*PAIR, num_flow_updates=2)
    assert flows[-1].shape == (2, 2, 128, 128)
    paper_child = models.build("raft_small")
    save_checkpoint(paper_child, tmp_path / "raft_small.pt")
    from torchvision.models.optical_flow import raft_small

    load_checkpoint(raft_small(), tmp_path / "raft_small.pt")


def test_merged_blocks_for_two_stages_still_compute_the_plain_forward():
    model = models.build("raft_smoke_small").eval()
    with torch.no_grad():
        signal = PAIR
        for block in merge_blocks(models.blocks(model, 2), 2):
            signal = block(signal)
        torch.testing.assert_close(signal[-1], model(*PAIR, num_flow_updates=2)[-1])


def test_the_correlation_stays_float32_under_bf16_autocast_as_rafts_mixed_precision_and_float32_is_unchanged():
    """princeton-vl/RAFT raft.py: fmap1.float(), fmap2.float() before CorrBlock, lookups outside autocast."""
    from torchvision.models.optical_flow import raft_small

    from hkt.tasks.flow.models import build

    torch.manual_seed(0)
    ours = build("raft_small")
    plain = raft_small(weights=None)
    plain.load_state_dict(ours.state_dict(), strict=True)  # no key added: deployed children still load strictly
    ours.eval(), plain.eval()
    g = torch.Generator().manual_seed(1)
    a, b = (torch.rand(1, 3, 128, 128, generator=g) * 2 - 1 for _ in range(2))
    with torch.no_grad():
        assert torch.equal(ours(a, b, num_flow_updates=3)[-1], plain(a, b, num_flow_updates=3)[-1])  # float32
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = ours(a, b, num_flow_updates=3)[-1]
    assert all(level.dtype == torch.float32 for level in ours.corr_block.corr_pyramid)
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
