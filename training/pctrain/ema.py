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
    (unbiased) variance of its inputs over all of `x` (training images, no
    augmentation), summed over the whole pass rather than averaged per batch."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    totals: dict[nn.Module, tuple[int, torch.Tensor, torch.Tensor]] = {}

    def accumulate(m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        v = inputs[0].detach().double().transpose(0, 1).reshape(inputs[0].shape[1], -1)
        n, s, ss = totals.get(m, (0, torch.zeros(v.shape[0], dtype=torch.float64), torch.zeros(v.shape[0], dtype=torch.float64)))
        totals[m] = (n + v.shape[1], s + v.sum(1), ss + (v * v).sum(1))

    handles = [m.register_forward_pre_hook(accumulate) for m in norms]
    was_training = model.training
    try:
        model.eval()  # dropout off
        for m in norms:
            m.train()  # each batch norm normalises with its batch's statistics, as in training (overwritten below)
        for i in range(0, x.shape[0], batch):
            model(x[i : i + batch])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    for m in norms:
        n, s, ss = totals[m]
        mean = s / n
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(((ss - n * mean * mean) / (n - 1)).to(m.running_var.dtype))
