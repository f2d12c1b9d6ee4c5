"""The speed switches of a training stage (hkt.schedule.Schedule: sync_every, loader_workers,
channels_last, bf16, compile): each trains the same model as the default path, within the tolerance stated
here. `make bench` measures what each one buys (results/bench/)."""

import copy
import shutil

import pytest
import torch
from conftest import train_run
from test_training import NAN_METHOD

from hkt import config as C

STEPS = 8


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def with_switches(cfg, **switches):
    cfg = copy.deepcopy(cfg)
    for key in ("train", "finetune"):
        cfg["tasks"]["cifar10"]["child"][key].update(steps=STEPS, eval_every=STEPS, checkpoint_every=4, **switches)
    return C.validate(cfg)


def train_with(cfg, tmp_path, name, **switches):
    cfg = with_switches(cfg, **switches)
    out = tmp_path / name
    shutil.rmtree(out, ignore_errors=True)
    return weights(train_run(cfg, "alone", "default", 0, out)), out


def max_relative_difference(a: dict, b: dict) -> float:
    """||a - b|| / ||b|| over all weights and statistics, flattened into one vector."""
    keys = [k for k in b if b[k].is_floating_point()]
    flat_a, flat_b = (torch.cat([w[k].float().flatten() for k in keys]) for w in (a, b))
    return float(torch.linalg.norm(flat_a - flat_b) / torch.linalg.norm(flat_b))


def test_reading_the_loss_every_k_steps_trains_bit_identically(cfg, tmp_path):
    base, _ = train_with(cfg, tmp_path, "base")
    deferred, _ = train_with(cfg, tmp_path, "deferred", sync_every=3)
    assert all(torch.equal(base[k], deferred[k]) for k in base)


def test_batches_built_ahead_by_worker_processes_train_bit_identically(cfg, tmp_path):
    """loader_workers: batches are still batches(step), a pure function of (seed, step)."""
    base, _ = train_with(cfg, tmp_path, "base")
    ahead, _ = train_with(cfg, tmp_path, "ahead", loader_workers=2)
    assert all(torch.equal(base[k], ahead[k]) for k in base)


def test_channels_last_trains_the_same_model_within_float_rounding(cfg, tmp_path):
    base, _ = train_with(cfg, tmp_path, "base")
    nhwc, _ = train_with(cfg, tmp_path, "nhwc", channels_last=True)
    assert max_relative_difference(nhwc, base) < 1e-4  # convolution kernels sum in another order


def test_bf16_autocast_stays_close_to_float32(cfg, tmp_path):
    base, _ = train_with(cfg, tmp_path, "base")
    half, _ = train_with(cfg, tmp_path, "bf16", bf16=True)
    # bf16 keeps 8 bits of mantissa: after 8 SGD steps the weights agree to a few percent (measured 1.2 %)
    assert max_relative_difference(half, base) < 0.05


@pytest.mark.slow
def test_torch_compile_trains_the_same_model_within_float_rounding(cfg, tmp_path):
    base, _ = train_with(cfg, tmp_path, "base")
    try:
        compiled, _ = train_with(cfg, tmp_path, "compiled", compile=True)
    except Exception as err:  # noqa: BLE001 - inductor needs a C++ compiler on a CPU
        if "compiler" in str(err).lower() or "InductorError" in type(err).__name__:
            pytest.skip(f"torch.compile cannot build kernels here: {type(err).__name__}")
        raise
    assert max_relative_difference(compiled, base) < 1e-4  # fused kernels round differently


def test_a_nan_found_at_a_deferred_read_still_stops_the_run_and_names_the_steps(cfg, tmp_path, user_module):
    cfg = copy.deepcopy(cfg)
    cfg["methods"]["broken"] = {"module": user_module("user_broken2", NAN_METHOD), "variants": {"default": {}}}
    cfg["tasks"]["cifar10"]["child"]["train"].update(sync_every=3, eval_every=6)
    with pytest.raises(FloatingPointError, match=r"non-finite loss in steps 0-2"):
        train_run(cfg, "broken", "default", 0, tmp_path / "broken")
    assert not (tmp_path / "broken" / "child.pt").exists()


TRAIN_IN_A_PROCESS = """
import sys, torch, yaml
sys.path.insert(0, {tests!r})
from conftest import train_run
torch.set_num_threads(1)  # as the test process (a job sets its configured threads)
train_run(yaml.safe_load(open({config!r})), "alone", "default", 0, {out!r})
"""


def test_runs_trained_at_once_in_separate_processes_equal_a_run_trained_alone(cfg, tmp_path):
    """The moonshot's packing (several runs at a time on one device, `bench.concurrent`) changes
    nothing in what each run computes: two copies trained at once end with the weights of the run
    trained alone (bitwise here; on a GPU as far as `deterministic: true` makes its kernels so)."""
    import subprocess
    import sys

    import yaml
    from conftest import REPO

    alone, _ = train_with(cfg, tmp_path, "alone")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(with_switches(cfg)))
    outs = [tmp_path / f"copy{i}" for i in range(2)]
    code = [TRAIN_IN_A_PROCESS.format(tests=str(REPO / "tests"), config=str(config), out=str(out)) for out in outs]
    procs = [subprocess.Popen([sys.executable, "-c", c], stderr=subprocess.PIPE, text=True) for c in code]
    for proc in procs:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()[-3000:]
    for out in outs:
        copy = weights(out / "child.pt")
        assert all(torch.equal(alone[k], copy[k]) for k in alone)


def test_bf16_autocast_trains_a_raft_as_float32_does_within_its_tolerance():
    """flow's paper stages train under bf16 autocast (RAFT's train_standard.sh: --mixed_precision):
    the suite's sequence loss and RAFT's ops (correlation, grid_sample lookups, upsampling) run in
    bf16 on a CPU, and 8 AdamW steps end within a few percent of float32's weights."""
    from test_flow_baselines import UPDATES, batch, tiny_raft

    from hkt.tasks.flow.metrics import sequence_loss

    def train(bf16: bool):
        torch.manual_seed(0)
        model = tiny_raft("child")
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4, eps=1e-8)
        losses = []
        for step in range(STEPS):
            images, (flow, valid) = batch(step)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = sequence_loss(model(*images, num_flow_updates=UPDATES), (flow, valid))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        return model.state_dict(), losses

    (base, base_losses), (half, half_losses) = train(False), train(True)
    # measured on an AVX-512 Xeon: losses 0.07 % apart at most, weights 0.05 %
    assert max(abs(h - b) / b for h, b in zip(half_losses, base_losses, strict=True)) < 0.01
    assert max_relative_difference(half, base) < 0.01
