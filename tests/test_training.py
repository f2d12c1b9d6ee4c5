"""Training runs: exact resume after a kill, pre-emption, the NaN guard, standalone export and
adding a method through the registry alone."""

import json
import re
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
import torch
from conftest import REPO, parent_spec, quiet, run_spec, train_run

from hkt import config as C
from hkt import pipeline
from hkt.models import load_checkpoint
from hkt.signals import PREEMPTED_EXIT_CODE
from hkt.tasks.cifar10.models import build as build_cifar_resnet
from hkt.train import CHECKPOINT

DRIVER = textwrap.dedent("""
    import os, signal, sys
    from hkt import signals
    signals.catch()    # as the workflow's job scripts do, first
    cfg_path, out, parent, init, kill_at, how = sys.argv[1:7]
    if kill_at == "start":   # the warning arrives while the job is still starting
        os.kill(os.getpid(), getattr(signal, how))
    import yaml
    from hkt import config as C, pipeline
    from hkt.signals import PREEMPTED_EXIT_CODE, Preempted
    spec = C.run_specs(yaml.safe_load(open(cfg_path)), "cifar10", "hkt", "default", 0)[-1]

    def log(msg):
        print(msg, flush=True)
        if kill_at != "none" and f"step={kill_at} " in msg:
            os.kill(os.getpid(), getattr(signal, how))

    try:
        pipeline.train_stage(spec, out, parent_path=parent, init_path=init, log=log)
    except Preempted as stop:
        print(stop)
        sys.exit(PREEMPTED_EXIT_CODE)
""")


def drive(trained, out, *, kill_at="none", how="SIGKILL"):
    cfg, cfg_path, parent, init = trained
    return subprocess.run(
        [sys.executable, "-c", DRIVER, str(cfg_path), str(out), str(parent), str(init), str(kill_at), how],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def same_run(a, b):
    sa = torch.load(a / "child.pt", weights_only=True)["state_dict"]
    sb = torch.load(b / "child.pt", weights_only=True)["state_dict"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    pd.testing.assert_frame_equal(pd.read_csv(a / "curve.csv"), pd.read_csv(b / "curve.csv"))


def test_a_killed_run_resumes_and_ends_exactly_like_an_uninterrupted_one(trained, tmp_path):
    assert drive(trained, tmp_path / "whole").returncode == 0
    killed = drive(trained, tmp_path / "killed", kill_at=8, how="SIGKILL")
    assert killed.returncode == -9
    assert (tmp_path / "killed" / CHECKPOINT).exists()  # the step-4 checkpoint survived
    assert not (tmp_path / "killed" / "child.pt").exists()  # nothing was marked complete
    resumed = drive(trained, tmp_path / "killed")
    assert resumed.returncode == 0 and "resumed at step 4/12 from" in resumed.stdout
    same_run(tmp_path / "whole", tmp_path / "killed")
    assert not (tmp_path / "killed" / CHECKPOINT).exists()  # training state removed once done


@pytest.mark.parametrize("how", ["SIGTERM", "SIGUSR1", "SIGURG"])
def test_a_stop_signal_saves_a_checkpoint_and_exits_for_a_retry_that_resumes(trained, tmp_path, how):
    # SIGTERM: scancel, pre-emption, requeue; SIGURG: the pre-timeout warning the workflow asks for
    assert drive(trained, tmp_path / "whole").returncode == 0
    stopped = drive(trained, tmp_path / "stopped", kill_at=8, how=how)
    assert stopped.returncode == PREEMPTED_EXIT_CODE, stopped.stderr
    assert f"stop requested by signal {how}; checkpoint saved at step 8" in stopped.stdout
    resumed = drive(trained, tmp_path / "stopped")
    assert resumed.returncode == 0 and "at step 8" in resumed.stdout
    same_run(tmp_path / "whole", tmp_path / "stopped")


def test_a_warning_that_arrives_during_start_up_is_not_lost(trained, tmp_path):
    # SIGURG is ignored by default; caught from the first line, it stops the run after step 1.
    stopped = drive(trained, tmp_path / "early", kill_at="start", how="SIGURG")
    assert stopped.returncode == PREEMPTED_EXIT_CODE, stopped.stderr
    assert "stop requested by signal SIGURG; checkpoint saved at step 1" in stopped.stdout
    assert drive(trained, tmp_path / "early").returncode == 0


def test_a_checkpoint_from_another_configuration_is_refused(trained, tmp_path):
    cfg, cfg_path, parent, init = trained
    assert drive(trained, tmp_path / "run", kill_at=8).returncode == -9
    other = dict(
        cfg,
        methods={
            **cfg["methods"],
            "hkt": {**cfg["methods"]["hkt"], "params": {**cfg["methods"]["hkt"]["params"], "lambda": 0.3}},
        },
    )
    with pytest.raises(ValueError, match="belongs to a run with config hash"):
        train_run(other, "hkt", "default", 0, tmp_path / "run", parent=parent, init=init)


def test_the_deployed_child_is_a_plain_child_that_runs_without_the_parent(trained, tmp_path):
    cfg, _, parent, init = trained
    train_run(cfg, "hkt", "default", 0, tmp_path / "hkt", parent=parent, init=init)
    bare = build_cifar_resnet(cfg["tasks"]["cifar10"]["child"]["arch"])
    load_checkpoint(bare, tmp_path / "hkt" / "child.pt")  # strict: no transfer or parent keys
    saved = torch.load(tmp_path / "hkt" / "child.pt", weights_only=True)["state_dict"]
    assert set(saved) == set(bare.state_dict())
    assert bare.eval()(torch.randn(2, 3, 8, 8)).shape == (2, 10)
    meta = json.loads((tmp_path / "hkt" / "meta.json").read_text())
    assert meta["selected"]["step"] in pd.read_csv(tmp_path / "hkt" / "curve.csv")["step"].tolist()
    for key in ("commit", "config_hash", "torch", "torchvision", "python", "device", "seed"):
        assert key in meta


def test_evaluation_reads_children_alone_and_writes_long_format_rows(trained, tmp_path):
    cfg, _, parent, init = trained
    models = {
        ("parent", "default", 0): (parent.parent, parent_spec(cfg)),
        ("alone", "default", 0): (init, run_spec(cfg, "alone", "default")),
    }
    out = pipeline.evaluate(C.evaluation_spec(cfg, "cifar10"), models, tmp_path / "metrics.csv", log=quiet)
    assert list(out.columns) == pipeline.RESULT_COLUMNS
    assert set(out.metric) == {"top1_acc", "top1_err", "params_m", "inference_ms", "extra_params_m"}
    assert (out[out.metric == "extra_params_m"]["value"] == 0).all()  # trained alone: nothing beside the child
    assert set(out.split) == {"val", "test", "-"}
    assert (out.scale == "smoke").all()
    acc = out[(out.metric == "top1_acc") & (out.split == "test")].set_index("method")["value"]
    err = out[(out.metric == "top1_err")].set_index("method")["value"]
    assert (acc + err).round(6).eq(100).all()


def test_a_stage_that_freezes_batchnorm_trains_its_weights_and_keeps_its_running_statistics(cfg, tmp_path):
    """Anchor: RAFT's train.py calls `model.module.freeze_bn()` in every stage but chairs (again after
    each validation), and core/raft.py's freeze_bn puts every BatchNorm2d in eval mode: running
    statistics stay, weights train. torchvision's recipe: --freeze-batch-norm from things on."""
    import itertools

    from hkt.methods import load_method
    from hkt.models import evaluating
    from hkt.schedule import Schedule
    from hkt.tasks import get_task
    from hkt.train import train

    task = get_task("cifar10")
    data = task.training(
        C.task_config(task, cfg["tasks"]["cifar10"]["data"], "data"), batch_size=16, seed=0, device="cpu"
    )
    arch = cfg["tasks"]["cifar10"]["child"]["arch"]
    fresh = task.build_model(arch).state_dict()
    for freeze in (True, False):
        alone = load_method("baselines.alone")
        method = alone.build(task.build_model(arch), None, task, alone.Params(), data.sample)
        later = itertools.count()  # every validation scores higher: the last step is the one kept

        def validate(child, later=later):
            with evaluating(child):  # as every task's validation: eval mode, then train mode restored
                return {"score": next(later)}

        schedule = Schedule(steps=12, batch_size=16, lr=0.05, freeze_bn=freeze, eval_every=4, checkpoint_every=100)
        result = train(
            method,
            data.batches,
            validate,
            schedule,
            tmp_path / str(freeze),
            select=("score", "max"),
            config_hash="-",
            log=quiet,
        )
        state = {k.removeprefix("child."): v for k, v in result.best_state.items()}
        stats = [k for k in fresh if k.endswith(("running_mean", "running_var"))]
        weights = [k for k in fresh if k.endswith("bn1.weight")]
        assert result.best["step"] == 12 and stats and weights
        assert all(not torch.equal(state[k], fresh[k]) for k in weights)
        assert all(torch.equal(state[k], fresh[k]) for k in stats) == freeze


def test_a_long_stage_reports_its_step_rate_eta_scores_and_memory_and_says_where_it_resumed(cfg, tmp_path):
    """A researcher tailing the log sees, every log_every steps: the stage, step/total, steps/s, ETA,
    loss, latest and best validation score, lr and peak memory; after a resume, from which step."""
    from hkt.methods import load_method
    from hkt.schedule import Schedule
    from hkt.tasks import get_task
    from hkt.train import train

    task = get_task("cifar10")
    data = task.training(
        C.task_config(task, cfg["tasks"]["cifar10"]["data"], "data"), batch_size=16, seed=0, device="cpu"
    )
    arch = cfg["tasks"]["cifar10"]["child"]["arch"]
    alone = load_method("baselines.alone")

    def run(steps, lines):
        method = alone.build(task.build_model(arch), None, task, alone.Params(), data.sample)
        schedule = Schedule(steps=steps, batch_size=16, lr=0.05, eval_every=4, checkpoint_every=4, log_every=3)
        return train(
            method,
            data.batches,
            data.validate,
            schedule,
            tmp_path / "run",
            select=task.select,
            config_hash="-",
            log=lines.append,
            label="cifar10 alone/default seed 0 stage 'main'",
        )

    lines = []
    run(8, lines)
    progress = [line for line in lines if "steps/s" in line]
    assert [re.search(r"step (\d+)/8", line).group(1) for line in progress] == ["3", "6", "8"]
    last = progress[-1]
    for part in ("stage 'main'", "(100.0%)", "eta 0:00:00", "loss ", "val top1_acc ", "(best ", "lr ", "peak rss "):
        assert part in last, (part, last)
    again = []
    run(8, again)  # the checkpoint of step 4 is still there: the stage resumes from it
    assert (
        again[0]
        == f"cifar10 alone/default seed 0 stage 'main': resumed at step 4/8 from {tmp_path / 'run' / 'checkpoint.pt'}"
    )
    assert [re.search(r"step (\d+)/8", line).group(1) for line in again if "steps/s" in line] == ["6", "8"]


NEW_METHOD = textwrap.dedent('''
    """A method added by a user: label smoothing on the child alone."""
    from dataclasses import dataclass
    import torch.nn.functional as F
    from hkt.methods import Method

    NEEDS_PARENT = False

    @dataclass(frozen=True)
    class Params:
        smoothing: float = 0.1

    class Smooth(Method):
        def __init__(self, child, task, params):
            super().__init__(child, None, task)
            self.params = params

        def loss(self, x, y):
            loss = F.cross_entropy(self.child(x), y, label_smoothing=self.params.smoothing)
            return loss, {"task": loss}

    def build(child, parent, task, params, sample):
        return Smooth(child, task, params)
''')

NAN_METHOD = textwrap.dedent("""
    from dataclasses import dataclass
    from hkt.methods import Method
    NEEDS_PARENT = False

    @dataclass(frozen=True)
    class Params:
        pass

    class Broken(Method):
        def loss(self, x, y):
            loss = self.task.task_loss(self.child(x), y) * float("nan")
            return loss, {"task": loss}

    def build(child, parent, task, params, sample):
        return Broken(child, None, task)
""")


def test_a_new_method_is_one_module_plus_one_config_entry(cfg, user_module, tmp_path):
    cfg["methods"]["smooth"] = {
        "module": user_module("user_smooth", NEW_METHOD),
        "params": {"smoothing": 0.2},
        "variants": {"default": {}},
    }
    cfg["tasks"]["cifar10"]["runs"].append("smooth/default")
    C.validate(cfg)
    train_run(cfg, "smooth", "default", 0, tmp_path / "smooth")
    out = pipeline.evaluate(
        C.evaluation_spec(cfg, "cifar10"),
        {("smooth", "default", 0): (tmp_path / "smooth", run_spec(cfg, "smooth", "default"))},
        tmp_path / "m.csv",
        log=quiet,
    )
    assert set(out.method) == {"smooth"}
    cfg["methods"]["smooth"]["params"] = {"smoothnes": 0.2}
    with pytest.raises(ValueError, match=r"methods\.smooth\.variants\.default\.params\.smoothnes: unknown"):
        C.validate(cfg)


def test_a_nan_loss_stops_the_run_with_a_clear_error_and_writes_no_result(cfg, user_module, tmp_path):
    cfg["methods"]["broken"] = {"module": user_module("user_broken", NAN_METHOD), "variants": {"default": {}}}
    with pytest.raises(FloatingPointError, match=r"non-finite loss in steps 0-0 \(last: nan, task=nan\)"):
        train_run(cfg, "broken", "default", 0, tmp_path / "broken")
    assert not (tmp_path / "broken" / "child.pt").exists() and not (tmp_path / "broken" / "meta.json").exists()


def _release(tmp_path, cfg, *, corrupt=False):
    """A published parent release on local disk, and a manifest entry naming it."""
    import hashlib

    from hkt.models import save_checkpoint

    model = build_cifar_resnet(cfg["tasks"]["cifar10"]["parent"]["arch"])
    path = tmp_path / "release.th"
    save_checkpoint({f"module.{k}": v for k, v in model.state_dict().items()}, path, best_prec1=50.0)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if corrupt:
        path.write_bytes(path.read_bytes()[:-10])
    entry = {
        "url": "https://example.invalid/release.th",
        "sha256": digest,
        "arch": cfg["tasks"]["cifar10"]["parent"]["arch"],
        "place_at": str(path),
    }
    return model, {"checkpoints": {"release": entry}}


def test_the_parent_comes_from_a_published_checkpoint_when_present_and_verified(cfg, tmp_path):
    model, manifest = _release(tmp_path, cfg)
    cfg["tasks"]["cifar10"]["parent"].update(source="published", published="release")
    pipeline.obtain_parent(parent_spec(cfg, manifest=manifest), tmp_path / "parent", log=quiet)
    meta = json.loads((tmp_path / "parent" / "meta.json").read_text())
    assert meta["parent_source"] == "published"
    # figure jobs read every model's curve: a published parent's is a table with no rows (the first
    # rehearsal to reach the figures of a published-parent block failed on an empty file here)
    assert pd.read_csv(tmp_path / "parent" / "curve.csv").empty
    saved = torch.load(tmp_path / "parent" / "parent.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_a_published_checkpoint_failing_its_checksum_is_refused_not_replaced_by_training(cfg, tmp_path):
    _, manifest = _release(tmp_path, cfg, corrupt=True)
    cfg["tasks"]["cifar10"]["parent"].update(source="published", published="release")
    with pytest.raises(ValueError, match=r"release\.th: sha256 .* does not match"):
        pipeline.obtain_parent(parent_spec(cfg, manifest=manifest), tmp_path / "parent", log=quiet)
    assert not (tmp_path / "parent" / "parent.pt").exists()


def test_the_parent_source_is_what_the_config_says_whatever_is_on_disk_and_a_missing_release_says_where_to_get_it(
    cfg, tmp_path
):
    _, manifest = _release(tmp_path, cfg)
    cfg["tasks"]["cifar10"]["parent"].update(source="train", published="release")
    assert parent_spec(cfg, manifest=manifest)["source"] == "train"  # the release is on disk: still trained
    (tmp_path / "release.th").unlink()
    cfg["tasks"]["cifar10"]["parent"]["source"] = "published"
    assert parent_spec(cfg, manifest=manifest)["source"] == "published"  # and absent: still published
    with pytest.raises(FileNotFoundError, match=r"download https://example\.invalid/release\.th and place it at"):
        pipeline.obtain_parent(
            parent_spec(cfg, manifest=manifest), tmp_path / "offline", log=quiet, allow_network=False
        )
    cfg["tasks"]["cifar10"]["parent"]["source"] = "auto"  # chose by the disk: gone
    with pytest.raises(ValueError, match=r"auto"):
        C.validate(cfg)


def test_published_checkpoints_are_scored_as_they_are_beside_the_runs(cfg, trained, tmp_path):
    model, manifest = _release(tmp_path, cfg)
    cfg["tasks"]["cifar10"]["evaluation"]["published"] = ["release"]
    _, _, parent, _ = trained
    out = pipeline.evaluate(
        C.evaluation_spec(cfg, "cifar10", manifest),
        {("parent", "default", 0): (parent.parent, parent_spec(cfg))},
        tmp_path / "m.csv",
        log=quiet,
    )
    published = out[out.method == "published"]
    assert set(published.variant) == {"release"} and set(published.split) == {"val", "test", "-"}
    assert published.query("metric == 'params_m'")["value"].iloc[0] == pytest.approx(
        sum(p.numel() for p in model.parameters()) / 1e6
    )


def test_an_unreachable_release_says_where_to_get_it_and_where_to_put_it(cfg, tmp_path):
    _, manifest = _release(tmp_path, cfg)
    (tmp_path / "release.th").unlink()
    manifest["checkpoints"]["release"]["url"] = (tmp_path / "nowhere.th").as_uri()
    with pytest.raises(FileNotFoundError, match=r"download file://.*nowhere\.th and place it at .*release\.th"):
        pipeline.published_checkpoint("release", manifest["checkpoints"]["release"], allow_network=True)
    assert not (tmp_path / "release.th").exists()
