"""Optical flow (the paper's Table 1, the ablation study, Figures 3 and 4): RAFT -> RAFT-S.

The task contract (hkt.tasks.Task) for flow: torchvision's RAFT models and their three aligned
blocks (hkt.tasks.flow.models), the five datasets read through torchvision's own classes
(hkt.tasks.flow.data; generated in their real on-disk formats by hkt.tasks.flow.scenes for the
embedded default), RAFT's sequence loss, selection on the end-point error of held-out Sintel
scenes (lower is better), scoring on Sintel clean/final and KITTI-2015 (EPE, Fl-all), and the
tables and figures of hkt.tasks.flow.tables.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial

import torch

from hkt.models import evaluating
from hkt.tasks import BenchData, EvaluationData, Task, TrainingData
from hkt.tasks.flow import data as D
from hkt.tasks.flow import metrics as M
from hkt.tasks.flow import models
from hkt.tasks.flow.data import DataConfig


@dataclass(frozen=True)
class EvalConfig:
    timing: dict  # {warmup, repeats, size: [H, W]}: the timed pair (Sintel: 436x1024, padded as RAFT pads)
    sintel_updates: int = 32  # RAFT's evaluation: 32 updates on Sintel, 24 on KITTI
    kitti_updates: int = 24
    max_pairs: int | None = None  # at most this many pairs per evaluation set (None: all)
    published: tuple = ()

    def __post_init__(self):
        size = self.timing.get("size")
        if not size or len(size) != 2 or min(size) < 64:
            raise ValueError(f"timing.size must be [H, W] of at least 64 px, got {size}")


def sequence_loss(predictions, target, gamma: float = 0.8):
    return M.sequence_loss(predictions, target, gamma=gamma)


def _suffix(data: DataConfig) -> str:
    return "-generated" if data.source == "generated" else ""


@torch.no_grad()
def _epe_on(model, pairs, updates: int, device) -> dict:
    """Pixel-pooled EPE of `model` over (image1, image2, flow, valid) pairs, one at a time."""
    meter = M.FlowMeter()
    with evaluating(model):
        for a, b, flow, valid in pairs:
            meter.update(_infer(model, a, b, updates, device)[None], flow[None], valid[None])
    return {"epe": meter.result()["epe"]}


def _infer(model, a, b, updates: int, device, mode: str = "sintel") -> torch.Tensor:
    """The final flow for one pair, padded to a multiple of 8 as RAFT's InputPadder does."""
    batch, pads = M.pad_to_multiple(torch.stack([a, b]).to(device), mode=mode)
    flow = models.run(model, (batch[:1], batch[1:]), updates)[-1]
    return M.unpad(flow, pads)[0].cpu()


def stage_task(data: DataConfig):
    """The task as a training stage runs it: the stage's update count and loss decay."""
    loss = partial(sequence_loss, gamma=data.gamma)
    return dataclasses.replace(
        TASK,
        forward=lambda model, x: models.run(model, x, data.train_updates),
        blocks=lambda model: models.blocks(model, data.train_updates),
        task_loss=loss,
        inherit_losses={"sequence": loss},
    )


def training(data: DataConfig, *, batch_size: int, seed: int, device) -> TrainingData:
    batches = D.Batches(data, batch_size=batch_size, seed=seed)
    val = D.sintel_pairs(data.root, pass_name="clean", scenes=data.val_scenes, keep=True)[: data.val_max_pairs]
    (a, b), _ = batches(0)
    return TrainingData(
        batches=batches,
        validate=lambda child: _epe_on(child, val, data.val_updates, device),
        sample=(a[:2], b[:2]),
        task=stage_task(data),
    )


def _random_pair(batch: int, h: int, w: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    return tuple(torch.rand(batch, 3, h, w, generator=generator) * 2 - 1 for _ in range(2))


def _timing_infer(model, pair, *, updates: int):
    """What evaluation times: one pair, padded as RAFT pads, at the Sintel update count."""
    a, b = pair
    return _infer(model, a, b, updates, a.device)


def benchmark(data: DataConfig, ev: EvalConfig, batch_size: int, generator) -> BenchData:
    """A training batch at the stage's crop (random images, flow and a dense valid mask) and the
    timed evaluation pair at `timing.size`: step time does not depend on the pixel values."""
    h, w = data.crop
    flow = torch.randn(batch_size, 2, h, w, generator=generator) * 4
    valid = torch.ones(batch_size, h, w, dtype=torch.bool)
    th, tw = ev.timing["size"]
    a, b = _random_pair(1, th, tw, generator)
    return BenchData(
        batch=(_random_pair(batch_size, h, w, generator), (flow, valid)),
        task=stage_task(data),
        infer_input=(a[0], b[0]),
        infer=partial(_timing_infer, updates=ev.sintel_updates),
        infer_batch=1,
    )


def evaluation(data: DataConfig, ev: EvalConfig, device) -> EvaluationData:
    """Sintel-train clean and final (the validation scenes excluded) and KITTI-2015 train, as
    the paper's columns; the timed inference is one pair at `timing.size`."""
    suffix = _suffix(data)
    sets = {
        f"sintel-clean{suffix}": D.sintel_pairs(data.root, pass_name="clean", scenes=data.val_scenes, keep=False),
        f"sintel-final{suffix}": D.sintel_pairs(data.root, pass_name="final", scenes=data.val_scenes, keep=False),
        f"kitti-2015{suffix}": D.all_pairs(data.root, "kitti"),
    }
    if ev.max_pairs:
        sets = {k: v[: ev.max_pairs] for k, v in sets.items()}

    def score(model) -> list[dict]:
        rows = []
        for name, pairs in sets.items():
            updates = ev.kitti_updates if name.startswith("kitti") else ev.sintel_updates
            meter = M.FlowMeter()
            was = model.training
            model.eval()
            with torch.no_grad():
                for a, b, flow, valid in pairs:
                    mode = "kitti" if name.startswith("kitti") else "sintel"
                    meter.update(_infer(model, a, b, updates, device, mode)[None], flow[None], valid[None])
            model.train(was)
            result = meter.result(kitti=name.startswith("kitti"))
            rows.append({"dataset": name, "split": "train", "metric": "epe", "value": result["epe"]})
            if name.startswith("kitti"):
                rows.append({"dataset": name, "split": "train", "metric": "fl_all", "value": result["fl_all"]})
        return rows

    h, w = ev.timing["size"]
    g = torch.Generator().manual_seed(0)
    example = (torch.rand(1, 3, h, w, generator=g) * 2 - 1, torch.rand(1, 3, h, w, generator=g) * 2 - 1)

    def infer(model):
        return _infer(model, example[0][0], example[1][0], ev.sintel_updates, device)

    return EvaluationData(score=score, infer=infer, batch_size=1)


def kitti_test(model, data: DataConfig, ev: EvalConfig, out_dir, device) -> dict:
    """KITTI-2015 test-set predictions as the benchmark takes them: `flow/NNNNNN_10.png`, 16-bit
    PNGs of every pixel (formats.write_kitti_flow), at RAFT's KITTI padding and update count.
    Zip the `flow` folder to submit it to the KITTI server; the test set has no public ground truth."""
    from pathlib import Path

    from hkt.tasks.flow import formats

    dataset = D.open_dataset(data.root, "kitti", split="test")
    if not len(dataset):
        raise ValueError(f"{data.root}: KittiFlow/testing/image_2 holds no frame pairs to predict")
    out = Path(out_dir) / "flow"
    names = []
    for k in range(len(dataset)):
        first, second = dataset._image_list[k]
        a, b = (D.image_tensor(image) for image in dataset[k][:2])  # test items carry no flow
        if a.shape != b.shape:
            formats.check_pair(first, second)
        flow = _infer(model, a, b, ev.kitti_updates, device, mode="kitti")
        name = Path(first).name  # NNNNNN_10.png, the benchmark's naming
        formats.write_kitti_flow(out / name, flow.numpy())
        names.append(name)
    return {"dataset": "kitti-2015", "split": "test", "files": names, "updates": ev.kitti_updates}


def prepare_data(data: DataConfig, *, part: str = "all", allow_network: bool = True) -> dict:
    from hkt.tasks.flow import prepare

    return prepare.prepare(data, part=part, allow_network=allow_network)


def stand_in(data: dict, root: str) -> dict:
    from hkt.tasks.flow import prepare

    return prepare.stand_in(data, root)


def data_parts(stages: list[DataConfig]) -> list[str]:
    from hkt.tasks.flow import prepare

    return prepare.data_parts(stages)


def downloads(data: DataConfig, part: str) -> list:
    from hkt.tasks.flow import prepare

    return prepare.downloads(data, part)


def _tables():
    from hkt.tasks.flow import tables  # matplotlib: imported by report jobs only

    return tables


TASK = Task(
    name="flow",
    build_model=models.build,
    blocks=partial(models.blocks, updates=12),
    forward=partial(models.run, updates=12),
    task_loss=sequence_loss,
    # The paper's L1/L3 "MAE against G_T" is RAFT's L1 sequence loss against the ground truth.
    inherit_losses={"sequence": sequence_loss},
    max_stages=3,
    mixed_leaves=models.mixed_leaves,
    # RAFT's two encoders (torchvision's module names, on every RAFT of the suite)
    feature_points=lambda model: {"features": "feature_encoder", "context": "context_encoder"},
    data_config=DataConfig,
    eval_config=EvalConfig,
    prepare_data=prepare_data,
    data_parts=data_parts,
    downloads=downloads,
    stand_in=stand_in,
    training=training,
    evaluation=evaluation,
    select=("epe", "min"),
    metrics={"epe": "min", "fl_all": "min"},
    headline=("epe", "fl_all"),
    benchmark=benchmark,
    exports={"kitti_test": kitti_test},
    tables={
        "table1": lambda inp, outs: _tables().table1(inp, outs),
        "ablation": lambda inp, outs: _tables().ablation(inp, outs),
        "comparisons": lambda inp, outs: _tables().comparisons(inp, outs),
    },
    figures={
        "figure3_mu": lambda inp, path: _tables().figure3_mu(inp, path),
        "figure4_qualitative": lambda inp, path: _tables().figure4_qualitative(inp, path),
    },
)
