"""An exponential moving average of a network's weights, and batch-norm
statistics recomputed for it.

The averaged copy is what gets evaluated, selected on validation and
exported; the live network keeps training. Batch-norm running statistics
are averaged with the weights, which only approximates the statistics of
the averaged weights, so `recompute_bn` measures them again on training
images once training is over.
"""
from __future__ import annotations

import copy

import torch
from torch import nn


class Ema:
    """`shadow = decay * shadow + (1 - decay) * live`, with a warm-up so early
    steps (when the shadow is far behind) follow the live network faster."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model)
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, live: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        shadow = self.model.state_dict()
        for name, value in live.state_dict().items():
            if value.dtype.is_floating_point:
                shadow[name].mul_(d).add_(value.detach(), alpha=1 - d)
            else:
                shadow[name].copy_(value)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]


@torch.no_grad()
def recompute_bn(model: nn.Module, x: torch.Tensor, batch: int = 500) -> None:
    """Replace every batch norm's running statistics by the exact mean and
    variance of its inputs over `x` (training images, no augmentation)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the whole pass
    was_training = model.training
    model.eval()
    for m in norms:
        m.train()
    for i in range(0, x.shape[0], batch):
        model(x[i : i + batch])
    for m, (momentum, _) in zip(norms, saved):
        m.momentum = momentum
    model.train(was_training)
