"""The usual Python serving stack, for comparison: Flask under gunicorn,
PyTorch (Debian's python3-torch) running the same trained network as the
shipped model (its training run's final.pt), one torch thread per worker.

    cd training && gunicorn -w 2 -b 127.0.0.1:PORT --chdir ../bench/python 'flask_server:create_app("runs/baseline-seed1")'

POST /v1/classify {"pixels": [784 numbers]} -> {"label", "labelIndex", "confidence"}.
"""
import json
import os
import sys
from pathlib import Path

import torch
from flask import Flask, jsonify, request

TRAINING = Path(__file__).resolve().parents[2] / "training"
sys.path.insert(0, str(TRAINING))

from pctrain.package import load_run  # noqa: E402


def create_app(run: str, manifest: str):
    torch.set_num_threads(1)
    model, meta, _ = load_run(TRAINING / run)
    man = json.loads(Path(manifest).read_text())
    mean, std = man["input"]["normalization"]["mean"], man["input"]["normalization"]["std"]
    temperature = man["output"]["temperature"]
    labels = man["labels"]
    app = Flask(__name__)

    @app.post("/v1/classify")
    def classify():
        pixels = request.get_json(force=True)["pixels"]
        x = (torch.tensor(pixels, dtype=torch.float32).view(1, 1, 28, 28) / 255 - mean) / std
        with torch.no_grad():
            probs = torch.softmax(model(x) / temperature, dim=1)[0]
        k = int(probs.argmax())
        return jsonify(label=labels[k], labelIndex=k, confidence=float(probs[k]))

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok", pid=os.getpid())

    return app
