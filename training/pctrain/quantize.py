"""A statically quantized (int8, QDQ) copy of a packaged ONNX model.

    cd training && python3 -m pctrain.quantize ../models/baseline/1 [--calibration-images 2000]

Reads the version's float graph (`model.onnx`, written by pctrain.export with
every batch norm folded) and writes `model.int8.onnx` beside it, then adds
`formats.onnx.int8` and the file's sha256 to its manifest.json (nothing else
in the manifest changes). The int8 graph is in QDQ form: the float graph with
QuantizeLinear/DequantizeLinear pairs, laid out so ONNX Runtime fuses every
Conv into QLinearConv and every Gemm into QGemm (U8S8):

- weights of Conv and Gemm/MatMul: int8, per output channel, symmetric
  (zero point 0), with 7-bit magnitudes by default (scale max|w| / 64, as
  ONNX Runtime's `reduce_range`): x86 CPUs without VNNI multiply uint8 by
  int8 in pairs summed into int16 with saturation (vpmaddubsw); with
  |q| <= 64 no pair can saturate, so every x86 CPU computes the same
  integers and the recorded test-set gate holds wherever it is re-measured
  (`--weight-bits 8` uses the full |q| <= 127);
- biases: int32 with scale input scale x weight scale (zero point 0);
- activations: uint8, per tensor, asymmetric; the model input over the
  exact normalized range of pixels 0..255; every other range calibrated on
  images of the validation split (never the test set), by default the
  99.999th percentile of each tensor's values over 2,000 images, by running
  the float ONNX graph itself with PyTorch operators (`GraphRunner`, below);
- a Relu right after a Conv/Gemm is folded into its output quantization
  (range [0, max], zero point 0), as ONNX Runtime's own quantizer does;
  MaxPool/Flatten/Reshape share their input's parameters, so the runtime
  runs them on uint8 without requantizing;
- the graph output (logits) stays float: the last Gemm becomes a QGemm with
  a float output.

After writing the model the validation split is run through the QDQ graph
(the same PyTorch evaluator, simulating Q and DQ exactly as the ONNX spec
defines them) and the float/int8 accuracy and top-1 agreement are recorded
under `formats.onnx.int8.validation`. The test-set gate is measured in
Node with the serving runtime (`npm run evaluate -- <dir> --precision int8
--json`) and recorded with `--record-evaluation` (or automatically, when
`dist/src/tools/evaluate.js` is built and `--no-evaluate` is not given); see
docs/model-artifacts.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F

INT8_FILE = "model.int8.onnx"
DEFAULT_IMAGES = 2000
DEFAULT_METHOD = "percentile:99.999"
CALIBRATION_SEED = 20260301
HIST_BINS = 4096
REPO = Path(__file__).resolve().parents[2]
EVALUATE_JS = REPO / "dist" / "src" / "tools" / "evaluate.js"

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
# Ops that only move or select values: their output is quantized with their input's parameters,
# so ONNX Runtime drops the Q/DQ pair around them and runs them on uint8.
PASS_THROUGH_OPS = ("MaxPool", "Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose")

U8 = (0, 255)
# Weight magnitudes: 7-bit (|q| <= 64, ONNX Runtime's reduce_range) by default, so that no pair of uint8 x int8
# products can exceed int16 (255 * 64 * 2 = 32640): x86 CPUs without VNNI sum such pairs with saturation
# (vpmaddubsw); with 64 every x86 CPU computes the same integers. 127 (full int8) is --weight-bits 8.
WEIGHT_MAX = {7: 64, 8: 127}
DEFAULT_WEIGHT_BITS = 7


class QuantizeError(RuntimeError):
    """The graph holds something this quantizer does not handle."""


# ---------------------------------------------------------------------------
# A small ONNX evaluator on PyTorch operators (float graph and QDQ graph).
# ---------------------------------------------------------------------------


def _attrs(node) -> dict:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _axis_shape(t: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
    """Reshape a per-axis parameter so it broadcasts along `axis` of x."""
    if t.dim() == 0 or t.numel() == 1:
        return t.reshape(())
    shape = [1] * x.dim()
    shape[axis % x.dim()] = -1
    return t.reshape(shape)


_INT_RANGES = {torch.uint8: (0, 255), torch.int8: (-128, 127), torch.int32: (-(2**31), 2**31 - 1)}


class GraphRunner:
    """Runs an ONNX graph (the ops our exports use, plus QuantizeLinear and
    DequantizeLinear) with PyTorch, float32, in topological order as stored."""

    def __init__(self, model):
        from onnx import numpy_helper

        self.graph = model.graph
        self.consts: dict[str, torch.Tensor] = {
            i.name: torch.from_numpy(np.array(numpy_helper.to_array(i))) for i in self.graph.initializer
        }
        for node in self.graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = torch.from_numpy(np.array(numpy_helper.to_array(_attrs(node)["value"])))

    @torch.no_grad()
    def run(self, feeds: dict[str, torch.Tensor], visit: Callable[[str, torch.Tensor], None] | None = None,
            outputs: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        env: dict[str, torch.Tensor] = dict(self.consts)
        env.update(feeds)
        for node in self.graph.node:
            if node.op_type == "Constant":
                continue
            args = [env[i] if i else None for i in node.input]
            results = self._op(node, args)
            for name, value in zip(node.output, results):
                env[name] = value
                if visit is not None:
                    visit(name, value)
        wanted = list(outputs) if outputs is not None else [o.name for o in self.graph.output]
        return {k: env[k] for k in wanted}

    def _op(self, node, a: list) -> list[torch.Tensor]:
        op, at = node.op_type, _attrs(node)
        if op == "Conv":
            if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
                raise QuantizeError(f"{node.name}: Conv auto_pad is not supported")
            pads = list(at.get("pads", [0] * 4))
            x = a[0]
            n = len(pads) // 2
            if pads[:n] != pads[n:]:
                x = F.pad(x, [p for i in reversed(range(n)) for p in (pads[i], pads[i + n])])
                pads = [0] * (2 * n)
            return [F.conv2d(x, a[1], a[2] if len(a) > 2 else None, stride=tuple(at.get("strides", [1, 1])),
                             padding=tuple(pads[:n]), dilation=tuple(at.get("dilations", [1, 1])),
                             groups=at.get("group", 1))]
        if op == "Relu":
            return [torch.relu(a[0])]
        if op == "Sigmoid":
            return [torch.sigmoid(a[0])]
        if op == "Add":
            return [a[0] + a[1]]
        if op == "Sub":
            return [a[0] - a[1]]
        if op == "Mul":
            return [a[0] * a[1]]
        if op == "Identity":
            return [a[0]]
        if op == "MaxPool":
            pads = list(at.get("pads", [0, 0, 0, 0]))
            if pads[:2] != pads[2:]:
                raise QuantizeError(f"{node.name}: asymmetric MaxPool pads are not supported")
            return [F.max_pool2d(a[0], tuple(at["kernel_shape"]), stride=tuple(at.get("strides", at["kernel_shape"])),
                                 padding=tuple(pads[:2]), dilation=tuple(at.get("dilations", [1, 1])),
                                 ceil_mode=bool(at.get("ceil_mode", 0)))]
        if op == "Flatten":
            axis = at.get("axis", 1) % max(a[0].dim(), 1)
            return [a[0].reshape(int(np.prod(a[0].shape[:axis])), -1)]
        if op == "Reshape":
            shape = [int(s) for s in a[1].tolist()]
            shape = [a[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            return [a[0].reshape(shape)]
        if op == "Gemm":
            x, w = a[0], a[1]
            if at.get("transA", 0):
                x = x.t()
            if at.get("transB", 0):
                w = w.t()
            y = at.get("alpha", 1.0) * (x @ w)
            if len(a) > 2 and a[2] is not None:
                y = y + at.get("beta", 1.0) * a[2]
            return [y]
        if op == "MatMul":
            return [a[0] @ a[1]]
        if op == "QuantizeLinear":
            x, scale = a[0], a[1]
            zp = a[2] if len(a) > 2 and a[2] is not None else torch.tensor(0, dtype=torch.uint8)
            axis = at.get("axis", 1)
            lo, hi = _INT_RANGES[zp.dtype]
            q = torch.round(x / _axis_shape(scale, x, axis)) + _axis_shape(zp, x, axis).float()
            return [q.clamp(lo, hi).to(zp.dtype)]
        if op == "DequantizeLinear":
            q, scale = a[0], a[1]
            zp = a[2] if len(a) > 2 and a[2] is not None else torch.tensor(0, dtype=q.dtype)
            axis = at.get("axis", 1)
            centered = q.to(torch.float64) - _axis_shape(zp, q, axis).to(torch.float64)
            return [(centered.float() * _axis_shape(scale, q, axis)).float()]
        raise QuantizeError(f"operator {op} ({node.name}) is not supported by the quantizer's evaluator")


# ---------------------------------------------------------------------------
# Calibration: activation ranges of the float graph on validation images.
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Method:
    kind: str  # "minmax", "percentile" or "mse"
    percentile: float = 100.0

    @staticmethod
    def parse(text: str) -> "Method":
        if text in ("minmax", "mse"):
            return Method(text)
        if text.startswith("percentile:"):
            p = float(text.split(":", 1)[1])
            if not 50.0 < p <= 100.0:
                raise ValueError(f"percentile must be in (50, 100], got {p}")
            return Method("percentile", p)
        raise ValueError(f"unknown calibration method {text!r} (minmax, mse or percentile:P)")

    def describe(self) -> str:
        if self.kind == "minmax":
            return "min/max of each activation tensor over the calibration images"
        if self.kind == "mse":
            return (f"mse: each activation tensor's [min, max] over the calibration images shrunk by the factor "
                    f"that minimizes the expected squared uint8 quantization error of its values ({HIST_BINS}-bin histogram)")
        return (f"percentile {self.percentile:g}: each activation tensor's range clipped at the "
                f"{self.percentile:g}th percentile of its values over the calibration images "
                f"(and at the {100 - self.percentile:g}th below when it goes negative), from a {HIST_BINS}-bin histogram")

    def __str__(self) -> str:
        return self.kind if self.kind != "percentile" else f"percentile:{self.percentile:g}"


def _batches(x: torch.Tensor, size: int):
    for i in range(0, x.shape[0], size):
        yield x[i : i + size]


def calibrate(model, images: torch.Tensor, tensors: Iterable[str], method: Method,
              input_name: str, batch: int = 250) -> dict[str, tuple[float, float]]:
    """[lo, hi] of each named tensor of the float graph over `images` (normalized NCHW)."""
    runner = GraphRunner(model)
    wanted = set(tensors)
    lo = defaultdict(lambda: float("inf"))
    hi = defaultdict(lambda: float("-inf"))

    def minmax(name, value):
        if name in wanted:
            lo[name] = min(lo[name], float(value.min()))
            hi[name] = max(hi[name], float(value.max()))

    for xb in _batches(images, batch):
        minmax(input_name, xb)
        runner.run({input_name: xb}, visit=minmax)
    missing = wanted - set(lo)
    if missing:
        raise QuantizeError(f"calibration never saw tensors {sorted(missing)}")
    ranges = {k: (lo[k], hi[k]) for k in wanted}
    if method.kind == "minmax":
        return ranges

    hists = {k: torch.zeros(HIST_BINS, dtype=torch.float64) for k in wanted}

    def histogram(name, value):
        if name in wanted:
            a, b = ranges[name]
            if b > a:
                hists[name] += torch.histc(value.float().flatten(), HIST_BINS, a, b).double()

    for xb in _batches(images, batch):
        histogram(input_name, xb)
        runner.run({input_name: xb}, visit=histogram)
    out = {}
    q = method.percentile / 100.0
    for k, (a, b) in ranges.items():
        h = hists[k]
        total = float(h.sum())
        if b <= a or total == 0:
            out[k] = (a, b)
            continue
        if method.kind == "mse":
            out[k] = mse_range(h.numpy(), a, b)
            continue
        cdf = torch.cumsum(h, 0) / total
        width = (b - a) / HIST_BINS
        top = a + width * (int(torch.searchsorted(cdf, torch.tensor(q, dtype=torch.float64))) + 1)
        new_hi = min(b, top)
        new_lo = a
        if a < 0:
            bottom = a + width * int(torch.searchsorted(cdf, torch.tensor(1 - q, dtype=torch.float64)))
            new_lo = max(a, min(bottom, 0.0))
        out[k] = (new_lo, max(new_hi, 0.0))
    return out


def mse_range(hist: np.ndarray, a: float, b: float, steps: int = 200) -> tuple[float, float]:
    """The range [a*s, b*s] (s in (0, 1]) with the least expected squared uint8 quantization error.

    Inside the range a value's rounding error averages step^2 / 12; outside it is clipped to the edge."""
    a, b = min(a, 0.0), max(b, 0.0)
    centers = a + (np.arange(hist.size) + 0.5) * (b - a) / hist.size
    best, best_s = np.inf, 1.0
    for s in np.linspace(1.0, 0.05, steps):
        lo, hi = a * s, b * s
        step = (hi - lo) / 255
        clipped = np.clip(centers, lo, hi)
        inside = (centers >= lo) & (centers <= hi)
        err = float((hist * inside).sum()) * step * step / 12 + float((hist * (centers - clipped) ** 2).sum())
        if err < best:
            best, best_s = err, s
    return a * best_s, b * best_s


# ---------------------------------------------------------------------------
# The QDQ graph.
# ---------------------------------------------------------------------------


def activation_params(lo: float, hi: float) -> tuple[np.float32, np.uint8]:
    """uint8 asymmetric scale and zero point covering [lo, hi] (0 always representable)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 1e-12:
        return np.float32(1.0), np.uint8(0)
    scale = np.float32((hi - lo) / (U8[1] - U8[0]))
    zp = int(np.clip(round(-lo / float(scale)), U8[0], U8[1]))
    return scale, np.uint8(zp)


def weight_params(w: np.ndarray, axis: int, qmax: int = WEIGHT_MAX[DEFAULT_WEIGHT_BITS]) -> tuple[np.ndarray, np.ndarray]:
    """int8 symmetric per-channel quantization of w along `axis` to [-qmax, qmax]: (q, scale)."""
    moved = np.moveaxis(w.astype(np.float64), axis, 0).reshape(w.shape[axis], -1)
    amax = np.abs(moved).max(axis=1)
    scale = np.where(amax > 0, amax / qmax, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.reshape(shape)), -qmax, qmax).astype(np.int8)
    return q, scale


@dataclass
class Plan:
    """What gets quantized: compute nodes, their fused Relus, and activation tensors."""

    compute: list  # nodes quantized (Conv, Gemm, MatMul with constant weights)
    fused_relu: dict  # relu node name -> compute node name whose output takes the relu's place
    effective_output: dict  # compute node name -> the tensor its output becomes (relu output when fused)
    tensors: set  # activation tensors to quantize
    group: dict  # tensor -> representative tensor whose parameters it shares (pass-through chains)
    kept_float: list = field(default_factory=list)


def _name_nodes(model) -> None:
    seen = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}"
        seen.add(node.name)


def _weight_axis(node, at: dict) -> int:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        return 0 if at.get("transB", 0) else 1
    return 1  # MatMul: B is [K, N], output channels on axis 1


def plan_quantization(model, keep_float: Iterable[str] = ()) -> Plan:
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    graph_outputs = {o.name for o in graph.output}
    consumers = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                consumers[name].append(node)
    keep = set(keep_float)
    unknown = keep - {n.name for n in graph.node}
    if unknown:
        raise QuantizeError(f"--keep-float names no node of the graph: {sorted(unknown)}")

    compute, kept = [], []
    for node in graph.node:
        if node.op_type not in COMPUTE_OPS:
            continue
        at = _attrs(node)
        ok = len(node.input) >= 2 and node.input[1] in inits and node.input[0] not in inits
        if node.op_type == "Gemm":
            ok = ok and not at.get("transA", 0) and at.get("alpha", 1.0) == 1.0 and at.get("beta", 1.0) == 1.0
        if len(node.input) > 2 and node.input[2]:
            ok = ok and node.input[2] in inits
        if node.name in keep or not ok:
            kept.append(node.name)
            continue
        compute.append(node)

    fused_relu, effective = {}, {}
    for node in compute:
        out = node.output[0]
        users = consumers[out]
        if (len(users) == 1 and users[0].op_type == "Relu" and out not in graph_outputs
                and users[0].output[0] not in graph_outputs):
            fused_relu[users[0].name] = node.name
            effective[node.name] = users[0].output[0]
        else:
            effective[node.name] = out

    tensors = set()
    for node in compute:
        tensors.add(node.input[0])
        if node.op_type == "Conv" and effective[node.name] not in graph_outputs:
            tensors.add(effective[node.name])  # QLinearConv needs a quantized output

    # Pass-through chains share one set of parameters (union-find over input <-> output).
    parent: dict[str, str] = {}

    def find(t):
        parent.setdefault(t, t)
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for node in graph.node:
        if node.op_type in PASS_THROUGH_OPS and node.output[0] not in graph_outputs:
            parent[find(node.output[0])] = find(node.input[0])
    members = defaultdict(set)
    for t in list(parent):
        members[find(t)].add(t)
    for root, group in members.items():
        if group & tensors:
            tensors |= group
    group = {t: find(t) for t in tensors}
    return Plan(compute, fused_relu, effective, tensors, group, kept)


def calibration_targets(plan: Plan) -> set[str]:
    return set(plan.tensors)


def group_ranges(plan: Plan, ranges: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Every tensor of a pass-through chain gets the union of the chain's ranges."""
    union: dict[str, tuple[float, float]] = {}
    for t in plan.tensors:
        root = plan.group[t]
        lo, hi = ranges[t]
        a, b = union.get(root, (lo, hi))
        union[root] = (min(a, lo), max(b, hi))
    return {t: union[plan.group[t]] for t in plan.tensors}


def build_qdq(model, plan: Plan, ranges: dict[str, tuple[float, float]], weight_bits: int = DEFAULT_WEIGHT_BITS):
    """The QDQ model: Q after each quantized tensor's producer, one DQ per consumer."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    ranges = group_ranges(plan, ranges)
    params = {t: activation_params(*ranges[t]) for t in plan.tensors}
    compute_names = {n.name for n in plan.compute}
    new_inits: list = []
    used_float_inits: set[str] = set()

    def const(name, array):
        new_inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    qname = {t: f"{t}_quantized" for t in plan.tensors}
    for t in sorted(plan.tensors):  # sorted: the same bytes on every run (set order varies with hash seeds)
        scale, zp = params[t]
        const(f"{t}_scale", np.array(scale, dtype=np.float32))
        const(f"{t}_zero_point", np.array(zp, dtype=np.uint8))

    nodes: list = []
    dq_count = defaultdict(int)

    def q_node(t):
        nodes.append(helper.make_node("QuantizeLinear", [t, f"{t}_scale", f"{t}_zero_point"], [qname[t]],
                                      name=f"{t}_QuantizeLinear"))

    def dq_input(t, consumer):
        """A DequantizeLinear of t's quantized form owned by `consumer` alone."""
        k = dq_count[t]
        dq_count[t] += 1
        out = f"{t}_dequantized_{k}"
        nodes.append(helper.make_node("DequantizeLinear", [qname[t], f"{t}_scale", f"{t}_zero_point"], [out],
                                      name=f"{t}_DequantizeLinear_{k}"))
        return out

    for inp in graph.input:
        if inp.name in plan.tensors:
            q_node(inp.name)

    # A Relu is folded into the quantization of its producer's output only when that output is quantized
    # (zero point 0 clamps at 0); otherwise it stays.
    fused = {r: c for r, c in plan.fused_relu.items() if plan.effective_output[c] in plan.tensors}
    fused_into = set(fused.values())
    for node in graph.node:
        if node.name in fused:
            continue
        new = onnx.NodeProto()
        new.CopyFrom(node)
        if node.name in fused_into:
            new.output[0] = plan.effective_output[node.name]
        for i, name in enumerate(list(new.input)):
            if name in plan.tensors:
                new.input[i] = dq_input(name, new)
        if node.name in compute_names:
            at = _attrs(node)
            axis = _weight_axis(node, at)
            w = inits[node.input[1]]
            wq, ws = weight_params(w, axis, WEIGHT_MAX[weight_bits])
            base = node.input[1]
            const(f"{base}_quantized", wq)
            const(f"{base}_scale", ws)
            const(f"{base}_zero_point", np.zeros_like(ws, dtype=np.int8))
            nodes.append(helper.make_node("DequantizeLinear", [f"{base}_quantized", f"{base}_scale", f"{base}_zero_point"],
                                          [f"{base}_dequantized"], name=f"{base}_DequantizeLinear", axis=axis))
            new.input[1] = f"{base}_dequantized"
            if len(node.input) > 2 and node.input[2] and node.input[0] not in params:
                used_float_inits.add(node.input[2])  # a float input (only in studies): the bias stays float
            elif len(node.input) > 2 and node.input[2]:
                b = inits[node.input[2]]
                in_scale = params[node.input[0]][0]
                bs = (np.float32(in_scale) * ws).astype(np.float32)
                if b.shape != bs.shape:
                    raise QuantizeError(f"{node.name}: bias shape {b.shape} does not match {bs.shape} output channels")
                bq = np.round(b.astype(np.float64) / bs.astype(np.float64))
                if np.abs(bq).max(initial=0) >= 2**31:
                    raise QuantizeError(f"{node.name}: bias overflows int32 at scale input x weight")
                bname = node.input[2]
                const(f"{bname}_quantized", bq.astype(np.int32))
                const(f"{bname}_scale", bs)
                const(f"{bname}_zero_point", np.zeros(bs.shape, dtype=np.int32))
                nodes.append(helper.make_node("DequantizeLinear", [f"{bname}_quantized", f"{bname}_scale", f"{bname}_zero_point"],
                                              [f"{bname}_dequantized"], name=f"{bname}_DequantizeLinear", axis=0))
                new.input[2] = f"{bname}_dequantized"
        else:
            used_float_inits.update(i for i in node.input if i in inits)
        nodes.append(new)
        for out in new.output:
            if out in plan.tensors:
                q_node(out)

    kept_inits = [i for i in graph.initializer if i.name in used_float_inits]
    out_graph = helper.make_graph(nodes, graph.name, list(graph.input), list(graph.output), kept_inits + new_inits)
    out = helper.make_model(out_graph, opset_imports=list(model.opset_import), producer_name="pctrain.quantize",
                            producer_version="1")
    out.ir_version = model.ir_version
    onnx.checker.check_model(out)
    return out


def quantize_graph(model, images: torch.Tensor, method: Method, keep_float: Iterable[str] = (),
                   weight_bits: int = DEFAULT_WEIGHT_BITS, input_range: tuple[float, float] | None = None):
    """Plan, calibrate on `images` and build; returns (qdq model, plan, ranges).

    `input_range`, when given, is the graph input's range (known exactly from the normalization:
    pixels 0..255) instead of a calibrated one."""
    import copy

    model = copy.deepcopy(model)
    _name_nodes(model)
    plan = plan_quantization(model, keep_float)
    input_name = model.graph.input[0].name
    ranges = calibrate(model, images, calibration_targets(plan), method, input_name)
    if input_range is not None and input_name in ranges:
        ranges[input_name] = input_range
    return build_qdq(model, plan, ranges, weight_bits), plan, ranges


# ---------------------------------------------------------------------------
# The artifact: images, manifest, evaluation.
# ---------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixel_range(manifest: dict) -> tuple[float, float]:
    """The normalized values of pixels 0 and 255: the model input's exact range."""
    norm = manifest["input"]["normalization"]
    return (0.0 - norm["mean"]) / norm["std"], (1.0 - norm["mean"]) / norm["std"]


def normalize(images: np.ndarray, manifest: dict) -> torch.Tensor:
    norm = manifest["input"]["normalization"]
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((x - norm["mean"]) / norm["std"]).unsqueeze(1)


def validation_split(manifest: dict, data_dir: str | None = None):
    """The manifest's validation split (its training config's rules, data.load)."""
    from . import data as fdata

    cfg = (manifest.get("training") or {}).get("config") or {}
    return fdata.load(data_dir or cfg.get("data_dir"), cfg.get("val_per_class", 500), cfg.get("split_seed", 20260101)).val


def calibration_images(val, n: int, seed: int = CALIBRATION_SEED):
    """A class-balanced draw of n validation images (all of them when n >= the split)."""
    from . import data as fdata

    if n >= val.labels.size:
        return val
    return fdata.subset(val, n, seed)


@torch.no_grad()
def predict(model, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    runner = GraphRunner(model)
    inp, out = model.graph.input[0].name, model.graph.output[0].name
    return torch.cat([runner.run({inp: xb})[out] for xb in _batches(x, batch)])


def compare(float_model, int8_model, x: torch.Tensor, labels: np.ndarray) -> dict:
    f = predict(float_model, x).argmax(1).numpy()
    q = predict(int8_model, x).argmax(1).numpy()
    return {"images": int(labels.size), "float32Accuracy": round(float((f == labels).mean()), 6),
            "accuracy": round(float((q == labels).mean()), 6), "agreement": round(float((f == q).mean()), 6)}


def float_op_types(qmodel) -> list[str]:
    """Operator types the int8 graph computes in float on dequantized values (besides kept-float nodes).

    A Relu is not one: folded into a Q (zero point 0), or fused with the Q after it by ONNX Runtime."""
    quantized = {"QuantizeLinear", "DequantizeLinear", "Relu", *COMPUTE_OPS, *PASS_THROUGH_OPS}
    return sorted({n.op_type for n in qmodel.graph.node} - quantized)


def int8_block(manifest: dict, plan: Plan, method: Method, images: int, source_sha: str, validation: dict,
               keep_float: list[str], weight_bits: int, float_ops: list[str]) -> dict:
    cfg = (manifest.get("training") or {}).get("config") or {}
    return {
        "path": INT8_FILE,
        "scheme": "QDQ (QuantizeLinear/DequantizeLinear pairs), static, U8S8: ONNX Runtime fuses each Conv into "
                  "QLinearConv and each Gemm into QGemm",
        "activations": "uint8 per-tensor, asymmetric; the model input over the normalized pixel range 0..255; a Relu "
                       "after a Conv/Gemm folded into its output range ([0, max], zero point 0); MaxPool/Flatten sharing "
                       "their input's parameters; the logits stay float32 (the last Gemm has a float output)",
        "weights": f"int8 per-channel symmetric (per output channel, zero point 0, scale max|w|/{WEIGHT_MAX[weight_bits]}"
                   + ("; 7-bit magnitudes |q| <= 64 so no uint8 x int8 pair sum exceeds int16: the same integers on "
                      "x86 CPUs with or without VNNI)" if weight_bits == 7 else ")"),
        "biases": "int32, scale = input scale x weight scale, zero point 0",
        "keptFloat": sorted(plan.kept_float),
        "floatOps": float_ops,
        "quantizedFrom": {"path": manifest["formats"]["onnx"]["path"], "sha256": source_sha},
        "calibration": {
            "split": "validation",
            "images": images,
            "method": str(method),
            "description": method.describe(),
            "draw": f"class-balanced, seed {CALIBRATION_SEED}, from the validation split "
                    f"({cfg.get('val_per_class', 500)} per class held out of train, split seed {cfg.get('split_seed', 20260101)})",
            "evaluator": "the float ONNX graph run with PyTorch operators (pctrain.quantize.GraphRunner)",
        },
        "validation": {**validation, "split": "validation (every image, the calibration images among them)",
                       "runtime": f"pctrain.quantize reference evaluator (QDQ simulated per the ONNX spec, torch {torch.__version__})"},
        "tool": f"python3 -m pctrain.quantize <version dir> --calibration-images {images} --method {method} "
                f"--weight-bits {weight_bits}" + (f" --keep-float {' '.join(keep_float)}" if keep_float else ""),
    }


def write_manifest(path: Path, manifest: dict) -> None:
    path.write_text(json.dumps(manifest, indent=1) + "\n")


def quantize_artifact(version_dir: Path, n_images: int = DEFAULT_IMAGES, method: Method | None = None,
                      keep_float: Iterable[str] = (), data_dir: str | None = None, val=None,
                      weight_bits: int = DEFAULT_WEIGHT_BITS) -> dict:
    """Write model.int8.onnx and the manifest's int8 block; returns the block.

    `val` (a data.Split) replaces the manifest's validation split (tests)."""
    import onnx

    method = method or Method.parse(DEFAULT_METHOD)
    keep_float = list(keep_float)
    mpath = version_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    onnx_entry = manifest["formats"]["onnx"]
    src = version_dir / onnx_entry["path"]
    source_sha = sha256_file(src)
    if manifest["files"].get(onnx_entry["path"]) != source_sha:
        raise QuantizeError(f"{src} does not match its sha256 in manifest.json")
    model = onnx.load(str(src))
    val = val if val is not None else validation_split(manifest, data_dir)
    calib = calibration_images(val, n_images)
    qmodel, plan, _ = quantize_graph(model, normalize(calib.images, manifest), method, keep_float, weight_bits,
                                     pixel_range(manifest))
    validation = compare(model, qmodel, normalize(val.images, manifest), val.labels)
    onnx.save(qmodel, str(version_dir / INT8_FILE))

    block = int8_block(manifest, plan, method, int(calib.labels.size), source_sha, validation, keep_float, weight_bits,
                       float_op_types(qmodel))
    manifest = json.loads(mpath.read_text())
    manifest["formats"]["onnx"]["int8"] = block
    manifest["files"][INT8_FILE] = sha256_file(version_dir / INT8_FILE)
    write_manifest(mpath, manifest)
    return block


def record_evaluation(version_dir: Path, report: dict) -> dict:
    """Store a Node evaluation report (evaluate --precision int8 --json) as formats.onnx.int8.evaluation."""
    mpath = version_dir / "manifest.json"
    manifest = json.loads(mpath.read_text())
    block = manifest["formats"]["onnx"].get("int8")
    if block is None:
        raise QuantizeError(f"{mpath} has no formats.onnx.int8 block: quantize first")
    if report.get("precision") != "int8":
        raise QuantizeError("the report is not an int8 evaluation (evaluate --precision int8 --json)")
    if report.get("int8Sha256") not in (None, manifest["files"].get(block["path"])):
        raise QuantizeError("the report was made on another int8 file than the one in the manifest")
    block["evaluation"] = {
        "accuracy": report["accuracy"],
        "float32Accuracy": report["float32Accuracy"],
        "agreement": report["agreement"],
        "samples": report["samples"],
        "dataset": "Fashion-MNIST official test set (t10k, 10,000 images)" if report["samples"] == 10000 else "t10k",
        "runtime": report["runtime"],
        **({"machine": report["machine"]} if report.get("machine") else {}),
        "command": "npm run evaluate -- <version dir> --precision int8 --json",
    }
    write_manifest(mpath, manifest)
    return block["evaluation"]


def node_evaluation(version_dir: Path) -> dict:
    """Run the serving runtime's evaluator (Node, onnxruntime-node) on the test set, int8 vs float32."""
    proc = subprocess.run(["node", str(EVALUATE_JS), str(version_dir.resolve()), "--precision", "int8", "--json"],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise QuantizeError(f"evaluate failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("version_dir", type=Path, help="a packaged version, e.g. ../models/baseline/1")
    p.add_argument("--calibration-images", type=int, default=DEFAULT_IMAGES)
    p.add_argument("--method", default=DEFAULT_METHOD, help="minmax, mse or percentile:P (default %(default)s)")
    p.add_argument("--weight-bits", type=int, choices=sorted(WEIGHT_MAX), default=DEFAULT_WEIGHT_BITS,
                   help="weight magnitudes: 7 (|q| <= 64, no int16 saturation on CPUs without VNNI) or 8 (|q| <= 127)")
    p.add_argument("--keep-float", nargs="*", default=[], metavar="NODE",
                   help="ONNX node names left in float (e.g. /conv1/op/Conv)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-evaluate", action="store_true",
                   help="do not run the Node evaluator on the test set afterwards")
    p.add_argument("--record-evaluation", type=Path, metavar="REPORT.json",
                   help="only record a saved `evaluate --precision int8 --json` report into the manifest")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.record_evaluation:
        ev = record_evaluation(a.version_dir, json.loads(a.record_evaluation.read_text().strip().splitlines()[-1]))
        print(json.dumps({"artifact": str(a.version_dir), "evaluation": ev}))
        return
    block = quantize_artifact(a.version_dir, a.calibration_images, Method.parse(a.method), a.keep_float, a.data_dir,
                              weight_bits=a.weight_bits)
    print(json.dumps({"artifact": str(a.version_dir), "int8": block["path"], "validation": block["validation"]}))
    if a.no_evaluate:
        return
    if not EVALUATE_JS.exists():
        print(f"{EVALUATE_JS} is not built: run `npm run build`, then `npm run evaluate -- {a.version_dir} "
              f"--precision int8 --json > report.json` and `python3 -m pctrain.quantize {a.version_dir} "
              f"--record-evaluation report.json`")
        return
    ev = record_evaluation(a.version_dir, node_evaluation(a.version_dir))
    print(json.dumps({"artifact": str(a.version_dir), "evaluation": ev, "machine": platform.machine()}))


if __name__ == "__main__":
    main()
