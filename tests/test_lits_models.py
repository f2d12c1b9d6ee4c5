"""LiTS parent (H-DenseUNet) and child (PocketNet): shapes, aligned blocks, parameter counts, training."""

from collections import Counter

import pytest
import torch

from hkt.inheritance import build_inheritance, merge_blocks, mixing_plans
from hkt.tasks.lits import models

SMOKE = ["pocketnet_smoke", "hdenseunet_smoke"]
PATCH = (2, 1, 8, 64, 64)


def _patch(shape=PATCH) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(0))


def _boundaries(model, x):
    signals = []
    for block in models.blocks(model)[:-1]:
        x = block(x)
        signals.append(x)
    return signals


@pytest.mark.parametrize("arch", SMOKE)
def test_smoke_models_map_a_ct_patch_to_three_class_logits_of_its_size(arch):
    with torch.no_grad():
        out = models.build(arch).eval()(_patch((2, 1, 3, 64, 96)))
    assert out.shape == (2, 3, 3, 64, 96) and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", SMOKE)
def test_the_three_blocks_compose_exactly_to_forward(arch):
    torch.manual_seed(0)
    model, x = models.build(arch).eval(), _patch()
    with torch.no_grad():
        signal = x
        for block in models.blocks(model):
            signal = block(signal)
        assert torch.equal(signal, model(x))


@pytest.mark.parametrize("arch", SMOKE)
def test_leaf_zero_of_each_boundary_is_a_5d_map_with_the_batch_and_depth(arch):
    with torch.no_grad():
        signals = _boundaries(models.build(arch).eval(), _patch())
    assert len(signals) == 2
    for signal in signals:
        assert isinstance(signal, tuple) and len(signal) == 2  # (feature, carry) for both networks
        assert signal[0].dim() == 5 and signal[0].shape[0] == 2 and signal[0].shape[2] == 8


def test_boundaries_sit_at_the_bottleneck_and_the_quarter_resolution_decoder():
    with torch.no_grad():
        (p1, _), (p2, _) = _boundaries(models.build("hdenseunet_smoke").eval(), _patch())
        (c1, _), (c2, _) = _boundaries(models.build("pocketnet_smoke").eval(), _patch())
    assert p1.shape[-2:] == (2, 2) and p2.shape[-2:] == (16, 16)  # 1/32 and 1/4 of 64
    assert c1.shape[-2:] == (16, 16) and c2.shape[-2:] == (32, 32)  # depth 3: bottleneck 1/4, decoder 1/2


def test_mixed_leaves_are_the_feature_maps_only():
    assert models.mixed_leaves(3) == [[0], [0]] and models.mixed_leaves(2) == [[0]]


@pytest.mark.parametrize("stages", [2, 3])
def test_inheritance_builds_and_runs_on_the_smoke_pair(stages):
    torch.manual_seed(0)
    child, parent = models.build("pocketnet_smoke"), models.build("hdenseunet_smoke").eval()
    cb, pb = merge_blocks(models.blocks(child), stages), merge_blocks(models.blocks(parent), stages)
    x = _patch((1, 1, 3, 64, 64))
    inheritance = build_inheritance(cb, pb, x, leaves=models.mixed_leaves(stages))
    out = inheritance(cb, pb, x)
    assert out.inherited.shape == out.native.shape == out.head.shape == (1, 3, 3, 64, 64)


@pytest.mark.parametrize("stages", [2, 3])
def test_the_authors_head_path_runs_with_the_parents_own_skip_connections(stages):
    """head_query: child hands the parent head the child's mixed map; the carried skips (leaf 1)
    must stay the parent's own, whose widths the parent decoder unpacks."""
    from hkt.methods import load_method, make_params
    from hkt.tasks.lits import TASK

    module = load_method("hkt.hereditary")
    params = make_params(module, {"stages": stages, "inherit_loss": "segmentation", "head_query": "child"})
    torch.manual_seed(0)
    x = _patch((1, 1, 3, 64, 64))
    objective = module.build(models.build("pocketnet_smoke"), models.build("hdenseunet_smoke"), TASK, params, x)
    loss, parts = objective.loss(x, torch.randint(0, 3, (1, 3, 64, 64)))
    assert torch.isfinite(loss) and set(parts) == {"L1", "L2", "L3"}


def test_on_the_paper_pair_2hkt_and_3hkt_mix_at_different_points():
    """The decoder reads the bottleneck: 3HKT's first mixing point is one 2HKT lacks."""
    child, parent = models.build("pocketnet").eval(), models.build("hdenseunet").eval()
    plans = mixing_plans(models.blocks(child), models.blocks(parent), _patch((1, 1, 2, 32, 32)), models.mixed_leaves)
    assert plans[3] == Counter({(1, 0): 1, (2, 0): 1}) and plans[2] == Counter({(2, 0): 1})


def test_paper_scale_parameter_counts():
    with torch.device("meta"):  # no memory, no initialisation cost, no forward pass
        pocket, hdense = models.build("pocketnet"), models.build("hdenseunet")
    assert models.count_parameters(pocket) == models.PAPER_PARAMETERS["pocketnet"] == 721_219
    assert abs(models.count_parameters(pocket) - 800_000) <= 0.15 * 800_000
    assert models.count_parameters(hdense) == models.PAPER_PARAMETERS["hdenseunet"] == 65_964_022


def test_smoke_parent_stays_small():
    assert models.count_parameters(models.build("hdenseunet_smoke")) < 300_000


def test_a_smoke_childs_state_dict_loads_strictly_into_a_fresh_build_and_runs_alone():
    torch.manual_seed(0)
    trained = models.build("pocketnet_smoke").train()
    with torch.no_grad():
        trained(_patch())  # moves the norms' running statistics, which the state_dict must carry too
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    fresh = models.build("pocketnet_smoke")
    fresh.load_state_dict(trained.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(_patch()), trained.eval()(_patch()))


@pytest.mark.parametrize("arch", SMOKE)
def test_one_sgd_step_on_a_smoke_patch_changes_the_weights(arch):
    torch.manual_seed(0)
    model = models.build(arch).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimiser = torch.optim.SGD(model.parameters(), lr=0.01)
    target = torch.randint(0, 3, (2, 8, 64, 64))
    loss = torch.nn.functional.cross_entropy(model(_patch()), target)
    loss.backward()
    optimiser.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters())
    assert any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_unknown_arch_raises_value_error_naming_the_known_ones():
    with pytest.raises(ValueError, match="pocketnet_smoke"):
        models.build("unet")


@pytest.mark.parametrize("arch", SMOKE)
def test_an_in_plane_size_the_poolings_cannot_halve_exactly_is_refused(arch):
    with pytest.raises(ValueError, match="multiples"):
        models.build(arch)(_patch((1, 1, 3, 64, 62)))
