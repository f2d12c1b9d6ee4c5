"""The child (or the parent) trained alone on the task loss: no transfer of any kind."""

from __future__ import annotations

from dataclasses import dataclass

from hkt.methods import Method

NEEDS_PARENT = False


@dataclass(frozen=True)
class Params:
    pass


class Alone(Method):
    def loss(self, x, y):
        loss = self.task.task_loss(self.task.forward(self.child, x), y)
        return loss, {"task": loss}


def build(child, parent, task, params: Params, sample) -> Alone:
    return Alone(child, None, task)
