"""RAFT parent and child, their three aligned blocks, and HKT (2 and 3 stages) on RAFT's tuple signals."""

import pytest
import torch

from hkt.inheritance import merge_blocks
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
    assert models.mixed_leaves(2) == [[0, 1, 2, 3]]


def _hkt(stages: int, **extra):
    module = load_method("hkt.method")
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
    assert units == 4  # fmap1, fmap2 (+ hidden, context): 4 mixed leaves either way


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
