"""Export a trained network to ONNX and TF.js Layers from its folded form."""
from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from .export_tfjs import KerasGraph, dense_after_flatten
from .fold import fold_bn, folded_conv, folded_linear
from .nets import Cnn, Neuron

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 13


def fold_neuron(neuron: nn.Module) -> nn.Module:
    """The inference form of one neuron; dendritic neurons fold themselves."""
    if hasattr(neuron, "folded"):
        return neuron.folded()
    op = folded_conv(neuron.op, neuron.bn) if isinstance(neuron.op, nn.Conv2d) else folded_linear(neuron.op, neuron.bn)
    return Neuron(op, nn.Identity())


def folded_model(model: Cnn) -> Cnn:
    m = copy.deepcopy(model).eval()
    for name in list(m.neurons.keys()):
        m.neurons[name] = fold_neuron(m.neurons[name])
    return m


def export_onnx(model: Cnn, path: Path) -> None:
    m = folded_model(model)
    size = model.cfg.image_size
    dummy = torch.zeros(2, model.cfg.in_channels, size, size)
    torch.onnx.export(
        m, dummy, str(path), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], opset_version=OPSET,
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}, do_constant_folding=True,
    )
    import onnx

    onnx.checker.check_model(onnx.load(str(path)))


def emit_neuron(g: KerasGraph, neuron: nn.Module, name: str, x: str, activation: str,
                flatten_chw: tuple[int, int, int] | None = None) -> str:
    """Emit one neuron (and its activation) into the Keras graph; returns the output tensor."""
    if hasattr(neuron, "emit_keras"):
        return neuron.emit_keras(g, name, x, activation, flatten_chw)
    w, b = fold_bn(neuron.op, neuron.bn)
    if isinstance(neuron.op, nn.Conv2d):
        return g.conv2d(name, x, w, b, activation)
    if flatten_chw is not None:
        w = dense_after_flatten(w, *flatten_chw)
    return g.dense(name, x, w, b, activation)


def export_tfjs(model: Cnn, directory: Path) -> list[str]:
    cfg = model.cfg
    model = model.eval()
    g = KerasGraph("product_classifier_cnn")
    x = g.input(INPUT_NAME, [cfg.image_size, cfg.image_size, cfg.in_channels])
    size = cfg.image_size
    for i, channels in enumerate(cfg.conv_channels):
        x = emit_neuron(g, model.neurons[f"conv{i + 1}"], f"conv{i + 1}", x, "relu")
        if i in cfg.pool_after:
            x = g.maxpool(f"pool{i + 1}", x)
            size //= 2
    x = g.flatten("flatten", x)
    x = emit_neuron(g, model.neurons["fc1"], "fc1", x, "relu", (cfg.conv_channels[-1], size, size))
    head_w = model.head.weight.detach().numpy()
    head_b = model.head.bias.detach().numpy()
    g.output = g.dense(OUTPUT_NAME, x, head_w, head_b)
    return [f"tfjs/{f}" for f in g.write(directory)]
