"""A tiny end-to-end run: train a few hundred images for one epoch, package,
and check the artifact the way the service loads it (manifest schema,
checksums, ONNX Runtime and TF.js parity with PyTorch)."""
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from pctrain import data as fdata
from pctrain.nets import Cnn, CnnConfig, count_macs, count_params
from pctrain.package import package
from pctrain.train import TrainConfig, to_tensor, train
from service_parity import service_parity

REPO = Path(__file__).resolve().parents[2]
PARITY = REPO / "dist" / "src" / "tools" / "parity.js"


def slice_loss(run: Path, ckpt: str | None, n=300) -> float:
    meta = json.loads((run / "config.json").read_text())
    model = Cnn(CnnConfig.from_dict(meta["train"]["net"]))
    if ckpt:
        model.load_state_dict(torch.load(run / ckpt)["model"])
    else:
        torch.manual_seed(meta["train"]["seed"])
        model = Cnn(CnnConfig.from_dict(meta["train"]["net"]))
    ds = fdata.load()
    part = fdata.subset(ds.train, n, meta["train"]["seed"])
    x = to_tensor(part.images, meta["normalization"]["mean"], meta["normalization"]["std"])
    model.eval()
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(model(x), torch.from_numpy(part.labels)).item()


def test_network_size():
    m = Cnn(CnnConfig())
    assert count_params(m) < 2_000_000
    assert count_macs(m) > 0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("tiny-run")
    cfg = TrainConfig(seed=3, epochs=1, train_limit=400, batch_size=32, max_lr=2e-3)
    result = train(cfg, run, log=lambda *_: None)
    return run, result


def test_tiny_training_lowers_the_loss(tiny_run):
    run, result = tiny_run
    assert slice_loss(run, "last.pt") < slice_loss(run, None)
    assert (run / "history.json").exists() and result["train_seconds"] > 0


def test_training_resumes_from_its_checkpoint(tiny_run, tmp_path):
    run, _ = tiny_run
    history = json.loads((run / "history.json").read_text())
    cfg = TrainConfig(seed=3, epochs=1, train_limit=400, batch_size=32, max_lr=2e-3)
    assert train(cfg, run)["finished"]  # final.pt: a finished run is left alone
    (run / "final.pt").unlink()
    logs = []
    train(cfg, run, log=logs.append)  # resumes from last.pt at epoch 1 of 1: nothing more to do
    assert logs and logs[0].startswith("resumed")
    assert json.loads((run / "history.json").read_text()) == history
    assert (run / "final.pt").exists()


def test_package_exports_and_passes_parity(tiny_run, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "tiny" / "1"
    manifest = package(run, "tiny", "1", out)
    assert manifest["evaluation"]["samples"] == 10000
    assert set(manifest["files"]) == {"model.onnx", "tfjs/model.json", "tfjs/group1-shard1of1.bin", "parity/reference.json"}
    assert manifest["output"]["temperature"] > 0
    assert len(manifest["reference"]["confidence"]["binEdges"]) >= 2
    service_parity(out)


def test_a_tampered_artifact_is_refused(tiny_run, tmp_path):
    run, _ = tiny_run
    out = tmp_path / "tampered" / "1"
    package(run, "tampered", "1", out)
    blob = bytearray((out / "model.onnx").read_bytes())
    blob[-1] ^= 0xFF
    (out / "model.onnx").write_bytes(bytes(blob))
    proc = subprocess.run(["node", str(PARITY), str(out)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode != 0
    assert "does not match its sha256" in proc.stderr


def test_the_deep_recipe_shape_packages_and_passes_parity(tmp_path):
    """baseline/2's shape (six convolutions, three pools: 28 -> 14 -> 7 -> 3)
    goes through the same export, manifest and parity as baseline/1's."""
    net = CnnConfig(conv_channels=(4, 4, 8, 8, 16, 16), pool_after=(1, 3, 5), dense=16)
    cfg = TrainConfig(seed=3, epochs=1, train_limit=200, batch_size=32, max_lr=2e-3, net=net.to_dict(),
                      erase_p=0.5, bf16=True)
    train(cfg, tmp_path / "run", log=lambda *_: None)
    out = tmp_path / "deep" / "1"
    manifest = package(tmp_path / "run", "deep", "1", out)
    assert manifest["evaluation"]["samples"] == 10000
    assert manifest["parameters"] == count_params(Cnn(net))
    service_parity(out)
