"""Soft targets from an ensemble of this project's own trained runs, for
distilling the ensemble into one network (`pctrain.train --distill`).

    python3 -m pctrain.distill --teachers runs/control-seed1 runs/control-seed2 ... \\
        --out runs/teachers/ensemble.pt

Each teacher's validation-chosen checkpoint predicts every training image and
its mirror image (the left-right flip the training augmentation also uses);
the targets are the mean of those softmax outputs at `--temperature`. The
file records the teachers, the temperature, a digest of the images it was
computed on (training refuses targets made for other images) and the
ensemble's validation accuracy. The test set is never read.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from . import data as fdata
from .checkpoints import best_checkpoint, load_model, save_atomic
from .train import accuracy, predict_logits, to_tensor


def images_digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


@torch.no_grad()
def ensemble_probs(teachers: list[Path], images: np.ndarray, temperature: float) -> torch.Tensor:
    """Mean softmax(logits / T) over teachers and over each image and its mirror."""
    total = torch.zeros(images.shape[0], 10)
    for run in teachers:
        meta = json.loads((run / "config.json").read_text())
        model = load_model(meta, best_checkpoint(run))
        norm = meta["normalization"]
        x = to_tensor(images, norm["mean"], norm["std"])
        for view in (x, x.flip(3)):
            total += torch.softmax(predict_logits(model, view) / temperature, 1)
    return total / (2 * len(teachers))


def build(teachers: list[Path], images: np.ndarray, temperature: float) -> dict:
    return {"probs": ensemble_probs(teachers, images, temperature), "temperature": temperature,
            "teachers": [str(t) for t in teachers], "images_sha256": images_digest(images)}


def load_targets(path: Path, images: np.ndarray) -> dict:
    """Targets for exactly these training images, or a clear error."""
    targets = torch.load(path)
    if targets["images_sha256"] != images_digest(images):
        raise ValueError(f"{path} was computed for other training images (another split or slice); rebuild it "
                         "with python3 -m pctrain.distill for this run's data")
    return targets


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teachers", nargs="+", type=Path, required=True, help="finished run directories")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--temperature", type=float, default=2.0)
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(2)
    ds = fdata.load(a.data_dir)
    targets = build(a.teachers, ds.train.images, a.temperature)
    # The ensemble's own validation score, for the report (temperature 1: argmax is unchanged by T).
    val = ensemble_probs(a.teachers, ds.val.images, 1.0)
    targets["val_acc"] = accuracy(val, ds.val.labels)
    targets["train_agreement"] = accuracy(targets["probs"], ds.train.labels)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(targets, a.out)
    print(json.dumps({k: v for k, v in targets.items() if k != "probs"}))


if __name__ == "__main__":
    main()
