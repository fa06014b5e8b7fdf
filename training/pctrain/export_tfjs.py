"""Write a TF.js Layers model (model.json + one weight shard) without TensorFlow.

TF.js is channels-last (NHWC) where PyTorch is NCHW: conv kernels go from
[out,in,kh,kw] to [kh,kw,in,out], and the first dense layer after a flatten
has its input rows reordered from (c,h,w) to (h,w,c). For one input channel,
an NCHW [N,1,28,28] buffer and an NHWC [N,28,28,1] buffer are the same bytes,
so the service feeds both runtimes one tensor.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

SHARD = "group1-shard1of1.bin"


class KerasGraph:
    """A Keras functional-model topology built layer by layer, with its weights."""

    def __init__(self, name: str):
        self.name = name
        self.layers: list[dict] = []
        self.weights: list[tuple[str, np.ndarray]] = []
        self.inputs: list[str] = []
        self.output: str | None = None

    def add(self, class_name: str, name: str, inputs: list[str], config: dict,
            weights: dict[str, np.ndarray] | None = None) -> str:
        self.layers.append({
            "class_name": class_name, "name": name,
            "config": {"name": name, "trainable": False, "dtype": "float32", **config},
            "inbound_nodes": [[[i, 0, 0, {}] for i in inputs]] if inputs else [],
        })
        for wname, value in (weights or {}).items():
            self.weights.append((f"{name}/{wname}", np.ascontiguousarray(value, dtype=np.float32)))
        return name

    # ---- layers used by the project's networks -------------------------
    def input(self, name: str, shape: list[int]) -> str:
        self.inputs.append(name)
        return self.add("InputLayer", name, [], {"batch_input_shape": [None, *shape], "sparse": False})

    def conv2d(self, name: str, x: str, w_oihw: np.ndarray, b: np.ndarray, activation: str = "linear") -> str:
        out, _, kh, kw = w_oihw.shape
        return self.add("Conv2D", name, [x], {
            "filters": int(out), "kernel_size": [int(kh), int(kw)], "strides": [1, 1], "padding": "same",
            "data_format": "channels_last", "dilation_rate": [1, 1], "activation": activation, "use_bias": True,
        }, {"kernel": w_oihw.transpose(2, 3, 1, 0), "bias": b})

    def dense(self, name: str, x: str, w_oi: np.ndarray, b: np.ndarray, activation: str = "linear") -> str:
        return self.add("Dense", name, [x], {"units": int(w_oi.shape[0]), "activation": activation, "use_bias": True},
                        {"kernel": w_oi.T, "bias": b})

    def channel_scale(self, name: str, x: str, scale: np.ndarray) -> str:
        """Multiply each channel by a constant: a 1x1 depthwise conv without bias (NHWC)."""
        c = scale.shape[0]
        return self.add("DepthwiseConv2D", name, [x], {
            "kernel_size": [1, 1], "strides": [1, 1], "padding": "valid", "depth_multiplier": 1,
            "data_format": "channels_last", "dilation_rate": [1, 1], "activation": "linear", "use_bias": False,
        }, {"depthwise_kernel": scale.reshape(1, 1, c, 1)})

    def maxpool(self, name: str, x: str) -> str:
        return self.add("MaxPooling2D", name, [x], {
            "pool_size": [2, 2], "strides": [2, 2], "padding": "valid", "data_format": "channels_last"})

    def flatten(self, name: str, x: str) -> str:
        return self.add("Flatten", name, [x], {"data_format": "channels_last"})

    def reshape(self, name: str, x: str, target: list[int]) -> str:
        return self.add("Reshape", name, [x], {"target_shape": target})

    def activation(self, name: str, x: str, fn: str) -> str:
        return self.add("Activation", name, [x], {"activation": fn})

    def add_tensors(self, name: str, xs: list[str]) -> str:
        return self.add("Add", name, xs, {})

    # ---- writing ------------------------------------------------------
    def write(self, directory: Path) -> list[str]:
        directory.mkdir(parents=True, exist_ok=True)
        assert self.output is not None, "set graph.output before writing"
        blob = b"".join(w.astype("<f4").tobytes() for _, w in self.weights)
        (directory / SHARD).write_bytes(blob)
        topology = {
            "class_name": "Functional",
            "config": {
                "name": self.name, "layers": self.layers,
                "input_layers": [[i, 0, 0] for i in self.inputs],
                "output_layers": [[self.output, 0, 0]],
            },
            "keras_version": "2.13.1", "backend": "tensorflow",
        }
        model_json = {
            "format": "layers-model", "generatedBy": "product-classifier pctrain", "convertedBy": None,
            "modelTopology": topology,
            "weightsManifest": [{
                "paths": [SHARD],
                "weights": [{"name": n, "shape": list(w.shape), "dtype": "float32"} for n, w in self.weights],
            }],
        }
        (directory / "model.json").write_text(json.dumps(model_json))
        return ["model.json", SHARD]


def dense_after_flatten(w_oi: np.ndarray, c: int, h: int, w: int) -> np.ndarray:
    """Reorder a dense layer's inputs from PyTorch's (c,h,w) flatten to Keras's (h,w,c)."""
    out = w_oi.shape[0]
    return w_oi.reshape(out, c, h, w).transpose(0, 2, 3, 1).reshape(out, c * h * w)
