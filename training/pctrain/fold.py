"""Fold each Neuron's batch norm into its conv/linear weights (inference form).

Both exporters start from this: ONNX gets one Conv/Gemm per neuron, TF.js one
Conv2D/Dense, and the arithmetic is the same in both.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def fold_bn(op: nn.Module, bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of op followed by bn (eval statistics), as one affine op.

    Returns weights in PyTorch layout (Conv: [out,in,kh,kw], Linear: [out,in]).
    """
    w = op.weight.detach().double()
    b = op.bias.detach().double() if op.bias is not None else torch.zeros(w.shape[0], dtype=torch.float64)
    if bn is None or isinstance(bn, nn.Identity):
        return w.float().numpy(), b.float().numpy()
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shape = (-1,) + (1,) * (w.dim() - 1)
    w_f = w * scale.reshape(shape)
    b_f = (b - bn.running_mean.double()) * scale + bn.bias.detach().double()
    return w_f.float().numpy(), b_f.float().numpy()


def folded_conv(op: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    w, b = fold_bn(op, bn)
    conv = nn.Conv2d(op.in_channels, op.out_channels, op.kernel_size, op.stride, op.padding, bias=True)
    conv.weight.data = torch.from_numpy(w)
    conv.bias.data = torch.from_numpy(b)
    return conv


def folded_linear(op: nn.Linear, bn: nn.Module) -> nn.Linear:
    w, b = fold_bn(op, bn)
    lin = nn.Linear(op.in_features, op.out_features, bias=True)
    lin.weight.data = torch.from_numpy(w)
    lin.bias.data = torch.from_numpy(b)
    return lin
