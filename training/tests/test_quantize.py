"""pctrain.quantize on tiny networks (no dataset): the QDQ layout ONNX Runtime
fuses, the reference evaluator, calibration, and the manifest block."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

import perturb

from pctrain import data as fdata
from pctrain import quantize as Q
from pctrain.dendrites import add_dendrites, make_dendritic
from pctrain.export import export_onnx, folded_model
from pctrain.nets import Cnn, CnnConfig

TINY = CnnConfig(conv_channels=(4, 4, 8, 8), dense=16)
MEAN, STD = 0.2862121019316825, 0.3531549099684519
REPO = Path(__file__).resolve().parents[2]


def perturbed(model, seed=0):
    return perturb.perturbed(model, seed).eval()


def images(n=200, seed=3):
    """Fake 28x28 'items': a bright blob of random size and place on black, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:28, 0:28]
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(8, 20), rng.uniform(8, 20), rng.uniform(3, 10)
        blob = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) + rng.normal(0, 20, (28, 28))
        out[i] = np.clip(blob, 0, 255).astype(np.uint8)
    return fdata.Split(out, rng.integers(0, 10, n).astype(np.int64))


def artifact(tmp_path: Path, model) -> Path:
    """A version directory with model.onnx and a manifest holding what pctrain.quantize reads."""
    d = tmp_path / "tiny" / "1"
    d.mkdir(parents=True)
    export_onnx(model, d / "model.onnx")
    manifest = {
        "schemaVersion": 1, "name": "tiny", "version": "1",
        "input": {"name": "input", "normalization": {"mean": MEAN, "std": STD}},
        "formats": {"onnx": {"path": "model.onnx", "opset": 13, "inputLayout": "NCHW", "inputShape": [-1, 1, 28, 28]}},
        "files": {"model.onnx": Q.sha256_file(d / "model.onnx")},
        "reference": {"confidence": {"binEdges": [0.0, 0.5, 1.0]}},
        "training": {"config": {"val_per_class": 500, "split_seed": 20260101}},
    }
    (d / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return d


def x_of(split):
    return Q.normalize(split.images, {"input": {"normalization": {"mean": MEAN, "std": STD}}})


@pytest.fixture(scope="module")
def plain():
    torch.manual_seed(0)
    return perturbed(Cnn(TINY))


@pytest.fixture(scope="module")
def dendritic():
    torch.manual_seed(1)
    model = make_dendritic(perturbed(Cnn(TINY)), ["conv1", "conv2", "conv3", "conv4", "fc1"])
    add_dendrites(model)
    add_dendrites(model)
    return perturbed(model, seed=4)


@pytest.mark.parametrize("which", ["plain", "dendritic"])
def test_the_reference_evaluator_runs_the_float_graph_as_pytorch_does(tmp_path, which, request):
    model = request.getfixturevalue(which)
    d = artifact(tmp_path, model)
    x = x_of(images(16))
    got = Q.predict(onnx.load(str(d / "model.onnx")), x)
    with torch.no_grad():
        want = folded_model(model)(x)
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4)


def nodes_by_output(model):
    return {o: n for n in model.graph.node for o in n.output}


@pytest.mark.parametrize("which", ["plain", "dendritic"])
def test_the_qdq_layout_is_the_one_onnx_runtime_fuses(tmp_path, which, request):
    model = request.getfixturevalue(which)
    d = artifact(tmp_path, model)
    q, plan, _ = Q.quantize_graph(onnx.load(str(d / "model.onnx")), x_of(images(64)), Q.Method.parse("percentile:99.99"),
                                  input_range=Q.pixel_range({"input": {"normalization": {"mean": MEAN, "std": STD}}}))
    onnx.checker.check_model(q)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    producer = nodes_by_output(q)
    consumers = {}
    for n in q.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    computes = [n for n in q.graph.node if n.op_type in ("Conv", "Gemm")]
    assert len(computes) == len(plan.compute) and plan.kept_float == []
    for n in computes:
        x, w, b = (producer.get(i) for i in n.input)
        assert x.op_type == w.op_type == b.op_type == "DequantizeLinear", n.name
        assert inits[x.input[0]].dtype == np.uint8 if x.input[0] in inits else True
        wq, ws = inits[w.input[0]], inits[w.input[1]]
        assert wq.dtype == np.int8 and np.abs(wq.astype(int)).max() <= 64, "7-bit weight magnitudes"
        assert ws.shape == (wq.shape[0],) and onnx.helper.get_attribute_value(w.attribute[0]) == 0  # axis 0
        assert not inits[w.input[2]].any(), "symmetric: zero points 0"
        bq, bs = inits[b.input[0]], inits[b.input[1]]
        assert bq.dtype == np.int32
        x_scale = inits[x.input[1]]
        assert np.allclose(bs, np.float32(x_scale) * ws), "bias scale = input scale x weight scale"
        # Each DQ feeds its node alone (ONNX Runtime groups DQ -> op -> Q only then).
        for dq in (x, w, b):
            assert [c.name for c in consumers[dq.output[0]]] == [n.name]
        if n.op_type == "Conv":
            users = consumers[n.output[0]]
            assert [u.op_type for u in users] == ["QuantizeLinear"], "a Conv's output goes to its Q alone"
            assert inits[users[0].input[2]].dtype == np.uint8
    # No Relu is left right after a Conv or Gemm: folded into the output's zero point 0.
    for n in q.graph.node:
        if n.op_type == "Relu":
            assert producer[n.input[0]].op_type not in ("Conv", "Gemm")
    # The logits stay float: the graph output is produced by a Gemm, not a DequantizeLinear.
    assert producer[q.graph.output[0].name].op_type == "Gemm"
    # The input's parameters are the normalized pixel range: zero point round(255 * mean).
    qin = consumers["input"][0]
    assert qin.op_type == "QuantizeLinear" and int(inits[qin.input[2]]) == round(255 * MEAN)
    if which == "dendritic":  # the dendrites' elementwise arithmetic stays float
        assert Q.float_op_types(q) == ["Add", "Mul", "Sigmoid"]
    else:
        assert Q.float_op_types(q) == []


def test_max_pool_and_flatten_share_their_input_parameters(tmp_path, plain):
    d = artifact(tmp_path, plain)
    q, plan, _ = Q.quantize_graph(onnx.load(str(d / "model.onnx")), x_of(images(32)), Q.Method.parse("minmax"))
    producer = nodes_by_output(q)
    for n in q.graph.node:
        if n.op_type in ("MaxPool", "Flatten"):
            dq = producer[n.input[0]]
            (qn,) = [m for m in q.graph.node if n.output[0] in m.input]
            assert dq.op_type == "DequantizeLinear" and qn.op_type == "QuantizeLinear"
            inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
            assert inits[dq.input[1]] == inits[qn.input[1]] and inits[dq.input[2]] == inits[qn.input[2]]


@pytest.mark.parametrize("which", ["plain", "dendritic"])
def test_the_int8_graph_stays_close_to_the_float_one(tmp_path, which, request):
    model = request.getfixturevalue(which)
    d = artifact(tmp_path, model)
    f = onnx.load(str(d / "model.onnx"))
    split = images(200)
    q, _, _ = Q.quantize_graph(f, x_of(split), Q.Method.parse(Q.DEFAULT_METHOD))
    x = x_of(images(100, seed=9))
    lf, lq = Q.predict(f, x), Q.predict(q, x)
    spread = float(lf.max(1).values.sub(lf.min(1).values).mean())
    assert float((lf - lq).abs().mean()) < 0.05 * spread
    assert float((lf.argmax(1) == lq.argmax(1)).float().mean()) >= 0.85


def test_calibration_methods():
    assert str(Q.Method.parse("percentile:99.99")) == "percentile:99.99"
    assert Q.Method.parse("mse").kind == "mse" and Q.Method.parse("minmax").kind == "minmax"
    with pytest.raises(ValueError):
        Q.Method.parse("entropy")
    # A long tail: the percentile and mse ranges clip it, min/max keeps it.
    h = np.zeros(Q.HIST_BINS)
    h[: Q.HIST_BINS // 8] = 1000.0
    h[-1] = 1.0
    lo, hi = Q.mse_range(h, 0.0, 8.0)
    assert lo == 0.0 and hi < 8.0
    assert Q.activation_params(0.0, 2.55) == (np.float32(0.01), np.uint8(0))
    scale, zp = Q.activation_params(-1.0, 1.0)
    assert int(zp) in (127, 128) and abs(float(scale) - 2 / 255) < 1e-7
    w = np.array([[0.5, -1.0], [0.0, 0.0]], dtype=np.float32)
    q, s = Q.weight_params(w, 0)
    assert q.tolist() == [[32, -64], [0, 0]] and s[1] == 1.0


def test_quantize_artifact_adds_the_int8_block_and_leaves_the_rest(tmp_path, plain):
    d = artifact(tmp_path, plain)
    before = json.loads((d / "manifest.json").read_text())
    block = Q.quantize_artifact(d, n_images=100, val=images(300))
    after = json.loads((d / "manifest.json").read_text())
    text = (d / "manifest.json").read_text()
    assert text == json.dumps(after, indent=1) + "\n"
    assert after["files"]["model.int8.onnx"] == Q.sha256_file(d / "model.int8.onnx")
    int8 = after["formats"]["onnx"].pop("int8")
    del after["files"]["model.int8.onnx"]
    assert after == before, "nothing else in the manifest changes"
    assert int8 == block and int8["path"] == "model.int8.onnx"
    assert int8["quantizedFrom"] == {"path": "model.onnx", "sha256": before["files"]["model.onnx"]}
    assert int8["calibration"]["split"] == "validation" and int8["calibration"]["images"] == 100
    assert int8["calibration"]["method"] == Q.DEFAULT_METHOD
    assert int8["activations"].startswith("uint8 per-tensor") and int8["weights"].startswith("int8 per-channel symmetric")
    assert int8["validation"]["images"] == 300 and 0 <= int8["validation"]["agreement"] <= 1
    assert int8["keptFloat"] == [] and int8["floatOps"] == []
    # Quantizing again replaces the block (and drops an evaluation made on the old file).
    Q.record_evaluation(d, {"precision": "int8", "accuracy": 0.5, "float32Accuracy": 0.5, "agreement": 1.0,
                            "samples": 10000, "runtime": "test", "int8Sha256": Q.sha256_file(d / "model.int8.onnx")})
    Q.quantize_artifact(d, n_images=50, val=images(300), method=Q.Method.parse("minmax"))
    again = json.loads((d / "manifest.json").read_text())["formats"]["onnx"]["int8"]
    assert "evaluation" not in again and again["calibration"]["images"] == 50


def test_record_evaluation_checks_the_report(tmp_path, plain):
    d = artifact(tmp_path, plain)
    with pytest.raises(Q.QuantizeError, match="quantize first"):
        Q.record_evaluation(d, {"precision": "int8"})
    Q.quantize_artifact(d, n_images=50, val=images(100))
    sha = Q.sha256_file(d / "model.int8.onnx")
    report = {"precision": "int8", "accuracy": 0.9, "float32Accuracy": 0.91, "agreement": 0.996, "samples": 10000,
              "runtime": "onnxruntime-node 1.30.0 cpu", "machine": "x86_64, test CPU", "int8Sha256": sha}
    with pytest.raises(Q.QuantizeError, match="not an int8 evaluation"):
        Q.record_evaluation(d, {**report, "precision": "float32"})
    with pytest.raises(Q.QuantizeError, match="another int8 file"):
        Q.record_evaluation(d, {**report, "int8Sha256": "0" * 64})
    ev = Q.record_evaluation(d, report)
    stored = json.loads((d / "manifest.json").read_text())["formats"]["onnx"]["int8"]["evaluation"]
    assert stored == ev
    assert {k: stored[k] for k in ("accuracy", "float32Accuracy", "agreement", "samples")} == {
        "accuracy": 0.9, "float32Accuracy": 0.91, "agreement": 0.996, "samples": 10000}


def test_refuses_a_float_model_that_does_not_match_its_manifest(tmp_path, plain):
    d = artifact(tmp_path, plain)
    with (d / "model.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(Q.QuantizeError, match="sha256"):
        Q.quantize_artifact(d, n_images=20, val=images(40))


ORT = REPO / "node_modules" / "onnxruntime-node"


@pytest.mark.skipif(shutil.which("node") is None or not ORT.exists(), reason="needs node and npm ci")
@pytest.mark.parametrize("which", ["plain", "dendritic"])
def test_onnx_runtime_fuses_every_conv_and_gemm(tmp_path, which, request):
    """onnxruntime-node loads the int8 file, turns each Conv into QLinearConv and each Gemm into QGemm,
    and its outputs match the reference evaluator's closely."""
    model = request.getfixturevalue(which)
    d = artifact(tmp_path, model)
    Q.quantize_artifact(d, n_images=100, val=images(200))
    x = x_of(images(8, seed=11))
    x.numpy().astype(np.float32).tofile(tmp_path / "x.bin")
    script = f"""
const ort = require({json.dumps(str(ORT))});
const fs = require('fs');
(async () => {{
  const raw = fs.readFileSync({json.dumps(str(tmp_path / 'x.bin'))});
  const x = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const s = await ort.InferenceSession.create({json.dumps(str(d / 'model.int8.onnx'))},
    {{ graphOptimizationLevel: 'all', intraOpNumThreads: 1, optimizedModelFilePath: {json.dumps(str(tmp_path / 'opt.onnx'))} }});
  const out = await s.run({{ input: new ort.Tensor('float32', x, [8, 1, 28, 28]) }});
  fs.writeFileSync({json.dumps(str(tmp_path / 'out.json'))}, JSON.stringify(Array.from(out.logits.data)));
}})().catch((e) => {{ console.error(e); process.exit(1); }});
"""
    proc = subprocess.run(["node", "-e", script], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    ops = [n.op_type for n in onnx.load(str(tmp_path / "opt.onnx")).graph.node]
    assert "Conv" not in ops and "Gemm" not in ops, ops
    assert ops.count("QLinearConv") == sum(1 for n in onnx.load(str(d / "model.onnx")).graph.node if n.op_type == "Conv")
    assert ops.count("QGemm") == 2 + (2 if which == "dendritic" else 0)
    got = np.array(json.loads((tmp_path / "out.json").read_text()), dtype=np.float32).reshape(8, -1)
    want = Q.predict(onnx.load(str(d / "model.int8.onnx")), x).numpy()
    spread = float((want.max(1) - want.min(1)).mean())
    assert np.abs(got - want).max() < 0.02 * spread


def test_the_int8_file_is_the_same_bytes_on_every_run(tmp_path, plain):
    """Initializer order must not follow Python's per-process string hashing."""
    d = artifact(tmp_path, plain)
    code = ("import sys, numpy as np, onnx; sys.path.insert(0, sys.argv[2]); from pctrain import quantize as Q; "
            "from test_quantize import images, x_of; "
            "q, _, _ = Q.quantize_graph(onnx.load(sys.argv[1] + '/model.onnx'), x_of(images(40)), Q.Method.parse('minmax')); "
            "onnx.save(q, sys.argv[1] + '/' + sys.argv[3])")
    tests = str(Path(__file__).resolve().parent)
    for seed in ("1", "2"):
        env = {"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"}
        proc = subprocess.run([sys.executable, "-c", code, str(d), tests, f"q{seed}.onnx"], capture_output=True,
                              text=True, cwd=str(REPO / "training"), env={**env, "PYTHONPATH": str(REPO / "training")})
        assert proc.returncode == 0, proc.stderr
    assert (d / "q1.onnx").read_bytes() == (d / "q2.onnx").read_bytes()
