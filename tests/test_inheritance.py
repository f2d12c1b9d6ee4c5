"""ETM (eq. 3) and Algorithm 1 on arbitrary aligned block lists."""

import pytest
import torch
import torch.nn as nn

from hkt import ETM, Mixture, Transfer, build_inheritance, merge_blocks
from hkt.methods import freeze


def test_transfer_is_identity_for_equal_shapes_and_projects_otherwise():
    same = Transfer((16, 8, 8), (16, 8, 8))
    assert sum(p.numel() for p in same.parameters()) == 0
    x = torch.randn(2, 16, 8, 8)
    assert same(x) is not None and torch.equal(same(x), x)
    down = Transfer((32, 16, 16), (8, 4, 4))
    assert down(torch.randn(2, 32, 16, 16)).shape == (2, 8, 4, 4)
    assert Transfer((6, 4, 5, 5), (3, 8, 10, 10))(torch.randn(1, 6, 4, 5, 5)).shape == (1, 3, 8, 10, 10)
    assert Transfer((64,), (32,))(torch.randn(3, 64)).shape == (3, 32)


def test_lambda_zero_leaves_the_receiver_unchanged():
    receiver, tau = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    for mode in ("ga", "add"):
        out, _ = Mixture(mode, lam=0.0)(receiver, tau)
        assert torch.equal(out, receiver)


def test_mixture_modes():
    receiver, tau = torch.randn(3, 16), torch.randn(3, 16)
    added, none = Mixture("add", lam=0.5)(receiver, tau)
    torch.testing.assert_close(added, receiver + 0.5 * tau)
    assert none is None
    kept, align = Mixture("mse", lam=0.5)(receiver, tau)
    assert torch.equal(kept, receiver)  # footnote 1: no injection ...
    torch.testing.assert_close(align, ((tau - receiver) ** 2).mean())  # ... an MSE alignment instead
    for bad in (-0.1, 1.1):
        with pytest.raises(ValueError, match=r"lambda must lie in \[0, 1\]"):
            Mixture("ga", lam=bad)


class ToyNet(nn.Module):
    """Three aligned blocks; the middle boundary carries a tuple (like RAFT's feature maps)."""

    def __init__(self, width: int, conv=nn.Conv2d):
        super().__init__()
        self.stem = conv(3, width, 3, padding=1)
        self.mid = conv(width, width, 3, padding=1)
        self.head = nn.Linear(2 * width, 5)

    def blocks(self):
        def first(x):
            return self.stem(x)

        def second(f):
            g = torch.relu(self.mid(f))
            return (g, g.mean(dim=1, keepdim=True))  # a tuple: features and a pass-through map

        def third(sig):
            g, _ = sig
            return self.head(torch.cat([g.flatten(2).mean(-1), g.flatten(2).amax(-1)], 1))

        return [first, second, third]


def _pair(conv=nn.Conv2d, shape=(2, 3, 8, 8)):
    torch.manual_seed(0)
    parent, child = freeze(ToyNet(12, conv)), ToyNet(6, conv)
    x = torch.randn(*shape)
    return parent, child, x


@pytest.mark.parametrize("conv,shape", [(nn.Conv2d, (2, 3, 8, 8)), (nn.Conv3d, (2, 3, 4, 6, 6))])
def test_algorithm1_runs_on_any_aligned_blocks_with_transfers(conv, shape):
    parent, child, x = _pair(conv, shape)
    inh = build_inheritance(child.blocks(), parent.blocks(), x, lam=0.6, leaves=[[0], [0]])
    # widths differ (12 vs 6): transfers are 1x1 convolutions in both directions
    assert any(p.numel() for p in inh.parameters())
    out = inh(child.blocks(), parent.blocks(), x)
    assert out.inherited.shape == out.native.shape == out.head.shape == (2, 5)
    assert not torch.allclose(out.inherited, out.native)


def test_lambda_zero_makes_the_inherited_child_path_the_native_one():
    parent, child, x = _pair()
    inh = build_inheritance(child.blocks(), parent.blocks(), x, lam=0.0, leaves=[[0], [0]])
    out = inh(child.blocks(), parent.blocks(), x)
    assert torch.equal(out.inherited, out.native)


def test_gradients_reach_only_the_child_and_its_transfer_layers_and_the_parent_never_changes():
    parent, child, x = _pair()
    before = {k: v.clone() for k, v in parent.state_dict().items()}
    inh = build_inheritance(child.blocks(), parent.blocks(), x, lam=0.6, leaves=[[0], [0]])
    params = list(child.parameters()) + list(inh.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    for _ in range(3):
        out = inh(child.blocks(), parent.blocks(), x)
        loss = sum(o.square().mean() for o in (out.inherited, out.native, out.head))
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in parent.parameters())
        assert all(p.grad is not None for p in child.parameters())
        assert all(p.grad is not None for p in inh.parameters())
        opt.step()
    assert not parent.training
    for k, v in parent.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_head_path_gradient_flows_through_the_frozen_parent_into_the_child():
    parent, child, x = _pair()
    inh = build_inheritance(child.blocks(), parent.blocks(), x, lam=0.6, leaves=[[0], [0]])
    out = inh(child.blocks(), parent.blocks(), x)
    out.head.sum().backward()  # L3 alone
    assert child.stem.weight.grad is not None and child.stem.weight.grad.abs().sum() > 0


def test_head_false_skips_the_parents_last_block():
    parent, child, x = _pair()
    inh = build_inheritance(child.blocks(), parent.blocks(), x, leaves=[[0], [0]])
    assert inh(child.blocks(), parent.blocks(), x, head=False).head is None


def test_merge_blocks_and_stage_bounds():
    blocks = [lambda x: x + 1, lambda x: x * 2, lambda x: x - 3]
    two = merge_blocks(blocks, 2)
    assert len(two) == 2 and two[1](two[0](1)) == ((1 + 1) * 2) - 3
    with pytest.raises(ValueError, match=r"stages must lie in \[2, 3\]"):
        merge_blocks(blocks, 4)


def test_etm_applies_extractor_then_transfer_then_mixture():
    etm = ETM(Transfer((4,), (4,)), Mixture("add", lam=1.0), extractor=lambda z: 2 * z)
    src, dst = torch.ones(1, 4), torch.zeros(1, 4)
    out, _ = etm(src, dst)
    assert torch.equal(out, torch.full((1, 4), 2.0))
