"""Turn a training run into a served artifact: calibrate, evaluate, export, manifest.

    python3 -m pctrain.package --run runs/baseline-seed1 --name baseline --version 1 \
        --out ../models/baseline/1

Temperature and reference distributions come from the validation split; the
evaluation is on the official test set and informs no choice.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import shutil
from pathlib import Path

import numpy as np
import torch

from . import data as fdata
from .calibration import expected_calibration_error, fit_temperature, softmax_np
from .export import INPUT_NAME, OPSET, OUTPUT_NAME, export_onnx, export_tfjs
from .dendrites import dendrite_counts
from .metrics import evaluation_report, reference_distributions
from .nets import count_macs, count_params
from .train import predict_logits, to_tensor

SCHEMA_VERSION = 1
PARITY_IMAGES = 1024
PARITY_FILE = "parity/reference.json"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_run(run: Path):
    """The best checkpoint of a run, rebuilt as the network class it was trained as."""
    from .checkpoints import best_checkpoint, load_model

    meta = json.loads((run / "config.json").read_text())
    ck = best_checkpoint(run)
    model = load_model(meta, ck)
    return model.eval(), meta, ck


def package(run: Path, name: str, version: str, out: Path, data_dir: str | None = None,
            reproduce: str | None = None) -> dict:
    model, meta, ck = load_run(run)
    train_cfg = meta["train"]
    mean, std = meta["normalization"]["mean"], meta["normalization"]["std"]
    ds = fdata.load(data_dir or train_cfg.get("data_dir"), train_cfg["val_per_class"], train_cfg["split_seed"])

    val_logits = predict_logits(model, to_tensor(ds.val.images, mean, std))
    temperature = fit_temperature(val_logits, ds.val.labels)
    val_raw = softmax_np(val_logits.numpy())
    val_cal = softmax_np(val_logits.numpy(), temperature)

    test_logits = predict_logits(model, to_tensor(ds.test.images, mean, std)).numpy()
    test_raw = softmax_np(test_logits)
    test_cal = softmax_np(test_logits, temperature)
    evaluation = evaluation_report(test_cal, ds.test.labels)
    evaluation.update({
        "dataset": "Fashion-MNIST official test set (t10k, 10,000 images)",
        "eceUncalibrated": round(expected_calibration_error(test_raw, ds.test.labels), 6),
    })

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    export_onnx(model, out / "model.onnx")
    files = ["model.onnx"] + export_tfjs(model, out / "tfjs")
    (out / "parity").mkdir()
    (out / PARITY_FILE).write_text(json.dumps({
        "source": "PyTorch float32, calibrated probabilities (softmax(logits / temperature))",
        "dataset": "t10k", "indices": list(range(PARITY_IMAGES)),
        "probabilities": np.round(test_cal[:PARITY_IMAGES], 7).tolist(),
    }))
    files.append(PARITY_FILE)

    counts = dendrite_counts(model)
    extra = {**(meta.get("dendrites") or {}), "layers": list(counts), "perLayer": counts} if counts else None
    manifest = {
        "schemaVersion": SCHEMA_VERSION,
        "name": name,
        "version": str(version),
        "kind": meta.get("kind", "baseline"),
        "description": meta.get("description", "Compact CNN (conv-bn-relu x4, 2 max pools, dense 256) trained from scratch"),
        "createdAt": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "labels": fdata.LABELS,
        "input": {
            "name": INPUT_NAME, "dtype": "float32", "shape": [-1, 1, 28, 28], "layout": "NCHW",
            "normalization": {"formula": "x = (pixel / 255 - mean) / std", "mean": mean, "std": std},
            "pixels": "28x28 grayscale, 0..255, white item on black background (Fashion-MNIST polarity)",
        },
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [-1, 10], "kind": "logits",
                   "temperature": round(temperature, 6),
                   "calibrated": "softmax(logits / temperature)"},
        "formats": {
            "onnx": {"path": "model.onnx", "opset": OPSET, "inputLayout": "NCHW", "inputShape": [-1, 1, 28, 28]},
            "tfjs": {"path": "tfjs/model.json", "inputLayout": "NHWC", "inputShape": [-1, 28, 28, 1]},
        },
        "files": {f: sha256_file(out / f) for f in files},
        "parameters": count_params(model),
        "macsPerImage": count_macs(model),
        "architecture": meta["train"]["net"] | ({"dendrites": extra} if extra else {}),
        "training": {
            "config": train_cfg,
            "seed": train_cfg["seed"],
            "epochsRun": ck["epoch"],
            "bestValidationAccuracy": round(ck["best_val"], 6),
            "wallSeconds": round(meta.get("wall_seconds", ck["train_seconds"]), 1),
            "history": ck["history"],
            "torch": torch.__version__, "python": platform.python_version(),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
            "dataset": {"source": "Debian dataset-fashion-mnist (official release)",
                        "sha256": {k: v[1] for k, v in fdata.FILES.items()},
                        "validation": f"{train_cfg['val_per_class']} per class held out of train, split seed {train_cfg['split_seed']}"},
            "reproduce": reproduce,
            **({"dendriteSchedule": meta["schedule"]} if "schedule" in meta else {}),
        },
        "calibration": {
            "method": "temperature scaling", "split": "validation", "temperature": round(temperature, 6),
            "eceBefore": round(expected_calibration_error(val_raw, ds.val.labels), 6),
            "eceAfter": round(expected_calibration_error(val_cal, ds.val.labels), 6),
            "eceBins": 15,
        },
        "evaluation": evaluation,
        "reference": {"split": "validation", **reference_distributions(val_cal)},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, type=Path)
    p.add_argument("--name", required=True)
    p.add_argument("--version", required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--reproduce", default=None, help="the command that reproduces this artifact (recorded)")
    a = p.parse_args(argv)
    m = package(a.run, a.name, a.version, a.out, a.data_dir, a.reproduce)
    ev = m["evaluation"]
    print(json.dumps({"artifact": str(a.out), "testAccuracy": ev["accuracy"], "ece": ev["ece"],
                      "temperature": m["output"]["temperature"], "parameters": m["parameters"]}))


if __name__ == "__main__":
    main()
