"""Intermediate outputs of a model at named layers, for methods that read feature maps (FitNets
hints, attention maps, ...), on any task, with no change to the core when a method is added.

A layer is named either by one of the task's feature points (`Task.feature_points(model)`: a name
such as "stage3" that the task maps to a module path of each of its architectures) or directly by
a module path as `model.named_modules()` names it. `FeatureTap` records the outputs of those modules
during a forward pass through forward hooks, so the model runs exactly as it does alone:

    with FeatureTap(child, ["stage1", "stage2"], task.feature_points(child)) as tap:
        logits = task.forward(child, x)
        stage1, stage2 = tap.take()   # the two groups' outputs of that pass, in the order asked

A method that reads layers throughout training keeps its taps open (see
the feature-map baselines in baselines/); hooks live on the module objects, never in their state_dict,
so the deployed child's checkpoint is that of a plain model.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn


def module_path(model: nn.Module, layer: str, points: Mapping[str, str]) -> str:
    """The module path a layer name stands for: a feature point of the task, or a path itself."""
    path = points.get(layer, layer)
    names = dict(model.named_modules())
    if path not in names or path == "":
        known = sorted(points) + [n for n in names if n]
        close = difflib.get_close_matches(layer, known, n=3)
        raise ValueError(
            f"{type(model).__name__} has no layer {layer!r}"
            + (f" (the task maps it to {path!r})" if layer in points else "")
            + f"; feature points: {sorted(points) or 'none'}"
            + (f"; did you mean {close}?" if close else "")
        )
    return path


class FeatureTap:
    """Forward hooks that keep the outputs of `layers` of `model` from its latest forward pass."""

    def __init__(self, model: nn.Module, layers: Sequence[str], points: Mapping[str, str] | None = None):
        points = dict(points or {})
        modules = dict(model.named_modules())
        self.layers = list(layers)
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = [
            modules[module_path(model, layer, points)].register_forward_hook(self._keeper(layer))
            for layer in self.layers
        ]

    def _keeper(self, layer: str):
        def keep(module, args, output):
            self.outputs[layer] = output

        return keep

    def take(self) -> list[torch.Tensor]:
        """The recorded outputs in the order of `layers`, then forgotten (a missing one is an error:
        the forward pass did not reach that layer)."""
        missing = [layer for layer in self.layers if layer not in self.outputs]
        if missing:
            raise RuntimeError(f"the forward pass did not run the layers {missing}")
        out = [self.outputs[layer] for layer in self.layers]
        self.outputs = {}
        return out

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def __enter__(self) -> FeatureTap:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
