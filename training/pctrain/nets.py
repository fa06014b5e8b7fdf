"""The CNN family served by product-classifier.

Every weight layer is a `Neuron`: a conv or linear op grouped with the batch
norm that follows it. That grouping is the unit dendritic optimization wraps
(see dendrites.py) and the unit the exporters fold into one Conv/Gemm.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn


@dataclass(frozen=True)
class CnnConfig:
    """Shape of the network; stored in every checkpoint and manifest."""

    conv_channels: tuple[int, ...] = (32, 32, 64, 64)
    pool_after: tuple[int, ...] = (1, 3)  # indices into conv_channels
    dense: int = 256
    dropout: float = 0.3
    num_classes: int = 10
    in_channels: int = 1
    image_size: int = 28

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "CnnConfig":
        d = dict(d)
        d["conv_channels"] = tuple(d["conv_channels"])
        d["pool_after"] = tuple(d["pool_after"])
        return CnnConfig(**d)


class Neuron(nn.Module):
    """A weight layer and its batch norm: y = bn(op(x))."""

    def __init__(self, op: nn.Module, bn: nn.Module):
        super().__init__()
        self.op = op
        self.bn = bn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.op(x))


def conv_neuron(cin: int, cout: int) -> Neuron:
    return Neuron(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout))


def dense_neuron(fin: int, fout: int) -> Neuron:
    return Neuron(nn.Linear(fin, fout, bias=False), nn.BatchNorm1d(fout))


class Cnn(nn.Module):
    """conv-bn-relu blocks with 2x2 max pools, then dense-bn-relu and a linear head.

    `neurons` maps a stable name (conv1.., fc1) to each Neuron, in order.
    """

    def __init__(self, cfg: CnnConfig):
        super().__init__()
        self.cfg = cfg
        self.neurons = nn.ModuleDict()
        cin, size = cfg.in_channels, cfg.image_size
        for i, cout in enumerate(cfg.conv_channels):
            self.neurons[f"conv{i + 1}"] = conv_neuron(cin, cout)
            cin = cout
            if i in cfg.pool_after:
                size //= 2
        self.flat_features = cin * size * size
        self.neurons["fc1"] = dense_neuron(self.flat_features, cfg.dense)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.dense, cfg.num_classes)
        self.pool = nn.MaxPool2d(2)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(len(self.cfg.conv_channels)):
            x = self.act(self.neurons[f"conv{i + 1}"](x))
            if i in self.cfg.pool_after:
                x = self.pool(x)
        x = torch.flatten(x, 1)
        x = self.act(self.neurons["fc1"](self.drop(x)))
        return self.head(self.drop(x))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, image_size: int = 28, in_channels: int = 1) -> int:
    """Multiply-accumulates per image of every Conv2d and Linear, by forward hooks."""
    total = 0

    def hook(mod, _inp, out):
        nonlocal total
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            total += out[0].numel() * k
        elif isinstance(mod, nn.Linear):
            total += mod.in_features * mod.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, in_channels, image_size, image_size))
    model.train(was_training)
    for h in handles:
        h.remove()
    return total
