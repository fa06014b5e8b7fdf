"""Evaluation report and the reference distributions drift detection compares to."""
from __future__ import annotations

import numpy as np

from .calibration import expected_calibration_error, nll

# Decile edges of the validation confidence make PSI bins of equal reference
# mass; the quantile grid lets the service run a KS test against the
# reference CDF without shipping every validation sample.
REFERENCE_BINS = 10
QUANTILE_GRID = 101


def evaluation_report(probs: np.ndarray, labels: np.ndarray, num_classes: int = 10) -> dict:
    pred = probs.argmax(axis=1)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, pred), 1)
    per_class = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "samples": int(len(labels)),
        "accuracy": round(float((pred == labels).mean()), 6),
        "perClassAccuracy": [round(float(a), 6) for a in per_class],
        "confusionMatrix": confusion.tolist(),
        "ece": round(expected_calibration_error(probs, labels), 6),
        "nll": round(nll(probs, labels), 6),
        "meanConfidence": round(float(probs.max(axis=1).mean()), 6),
    }


def reference_distributions(probs: np.ndarray, num_classes: int = 10) -> dict:
    conf = probs.max(axis=1)
    inner = np.quantile(conf, np.linspace(0, 1, REFERENCE_BINS + 1)[1:-1])
    edges = np.unique(np.round(np.concatenate([[0.0], inner, [1.0]]), 6))
    counts, _ = np.histogram(conf, bins=edges)
    pred = probs.argmax(axis=1)
    class_counts = np.bincount(pred, minlength=num_classes)
    return {
        "samples": int(len(conf)),
        "confidence": {
            "binEdges": [float(e) for e in edges],
            "counts": counts.astype(int).tolist(),
            "quantiles": [round(float(q), 6) for q in np.quantile(conf, np.linspace(0, 1, QUANTILE_GRID))],
            "mean": round(float(conf.mean()), 6),
        },
        "predictedClass": {
            "counts": class_counts.astype(int).tolist(),
            "frequencies": [round(float(c) / len(pred), 6) for c in class_counts],
        },
    }
