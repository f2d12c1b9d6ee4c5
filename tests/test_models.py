"""CIFAR ResNets and loading of the public checkpoints (strict keys, weights_only)."""

import pytest
import torch

from hkt import models
from hkt.models import count_parameters, load_checkpoint
from hkt.tasks.cifar10 import models as cifar_models
from hkt.tasks.cifar10.models import resnet20, resnet110


def test_parameter_counts_match_the_paper_and_the_public_release():
    assert count_parameters(resnet20()) == 269_722  # "0.27M"
    assert count_parameters(resnet110()) == 1_727_962  # "1.7M"


def test_two_aligned_blocks_compose_to_the_forward_pass():
    net = resnet20().eval()
    x = torch.randn(2, 3, 32, 32)
    features, head = net.blocks()
    assert features(x).shape == (2, 64)
    torch.testing.assert_close(head(features(x)), net(x))


def _public_release_file(model, path, *, with_nbt: bool):
    """A checkpoint written the way the akamaster release was: DataParallel keys, and (before
    PyTorch 0.4.1) no BatchNorm num_batches_tracked buffers."""
    state = {
        f"module.{k}": v for k, v in model.state_dict().items() if with_nbt or not k.endswith("num_batches_tracked")
    }
    torch.save({"state_dict": state, "best_prec1": 91.78}, path)


@pytest.mark.parametrize("with_nbt", [False, True])
def test_public_release_layout_loads_strictly(tmp_path, with_nbt):
    source = resnet20()
    _public_release_file(source, tmp_path / "resnet20.th", with_nbt=with_nbt)
    target = resnet20()
    extra = load_checkpoint(target, tmp_path / "resnet20.th")
    assert extra == {"best_prec1": 91.78}
    for k, v in source.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            assert torch.equal(target.state_dict()[k], v), k


def test_key_or_shape_mismatch_is_an_error_naming_the_keys(tmp_path):
    _public_release_file(resnet110(), tmp_path / "resnet110.th", with_nbt=True)
    with pytest.raises(ValueError, match=r"missing keys \[\], unexpected keys \['layer1\.1"):
        load_checkpoint(resnet20(), tmp_path / "resnet110.th")
    state = resnet20().state_dict()
    state["linear.weight"] = torch.zeros(7, 64)
    torch.save(state, tmp_path / "bad_shape.pt")
    with pytest.raises(ValueError, match="size mismatch"):
        load_checkpoint(resnet20(), tmp_path / "bad_shape.pt")
    state = resnet20().state_dict()
    del state["layer2.0.conv1.weight"]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing keys \['layer2\.0\.conv1\.weight'\]"):
        load_checkpoint(resnet20(), tmp_path / "missing.pt")


class Payload:
    def __reduce__(self):
        return (print, ("code ran while loading",))


def test_checkpoints_load_with_weights_only_and_refuse_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": resnet20().state_dict(), "payload": Payload()}, path)
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(resnet20(), path)
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "evil.pt").read_bytes()[:100])
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(resnet20(), tmp_path / "truncated.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(resnet20(), tmp_path / "absent.pt")


def test_save_then_load_round_trip(tmp_path):
    net = resnet20()
    models.save_checkpoint(net, tmp_path / "child.pt", arch="resnet20")
    again = resnet20()
    assert load_checkpoint(again, tmp_path / "child.pt") == {"arch": "resnet20"}
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(again.eval()(x), net.eval()(x))


def test_unknown_architecture_is_named():
    with pytest.raises(ValueError, match="unknown CIFAR ResNet 'resnet21'"):
        cifar_models.build("resnet21")


@pytest.mark.parametrize("mode", [True, False])
def test_a_scoring_pass_runs_in_eval_mode_and_restores_the_mode_even_when_it_fails(mode):
    model = resnet20().train(mode)
    with models.evaluating(model):
        assert not model.training and not model.bn1.training
    assert model.training is mode and model.bn1.training is mode
    with pytest.raises(RuntimeError), models.evaluating(model):
        raise RuntimeError("a failing validation pass")
    assert model.training is mode
