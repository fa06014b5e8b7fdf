"""Temperature scaling and ECE against values worked out by hand."""
import numpy as np
import torch

from pctrain.calibration import expected_calibration_error, fit_temperature, softmax_np
from pctrain.metrics import evaluation_report, reference_distributions


def test_ece_by_hand():
    # Two bins used: conf 0.9 (2 samples, 1 right: |0.5-0.9|) and 0.6 (2 samples, 2 right: |1-0.6|).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    assert abs(expected_calibration_error(probs, labels, bins=10) - (0.5 * 0.4 + 0.5 * 0.4)) < 1e-12


def test_temperature_recovers_a_known_scale():
    # Labels drawn from softmax(z); logits handed over are 3z: the fit must find T close to 3.
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20000, 10, generator=g) * 2
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1)
    t = fit_temperature(z * 3, labels)
    assert abs(t - 3) < 0.1


def test_overconfident_model_is_better_calibrated_after_scaling():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(5000, 10, generator=g)
    labels = torch.multinomial(torch.softmax(z, 1), 1, generator=g).squeeze(1).numpy()
    logits = (z * 4).numpy()
    before = expected_calibration_error(softmax_np(logits), labels)
    t = fit_temperature(torch.from_numpy(logits), labels)
    after = expected_calibration_error(softmax_np(logits, t), labels)
    assert after < before / 3


def test_report_and_reference_shapes():
    rng = np.random.default_rng(0)
    probs = softmax_np(rng.normal(size=(1000, 10)) * 3)
    labels = rng.integers(0, 10, 1000)
    rep = evaluation_report(probs, labels)
    assert np.array(rep["confusionMatrix"]).sum() == 1000
    assert len(rep["perClassAccuracy"]) == 10
    ref = reference_distributions(probs)
    edges = ref["confidence"]["binEdges"]
    assert edges[0] == 0.0 and edges[-1] == 1.0 and all(a < b for a, b in zip(edges, edges[1:]))
    assert sum(ref["confidence"]["counts"]) == 1000
    # decile bins: roughly equal reference mass in each
    assert max(ref["confidence"]["counts"]) <= 110
    assert abs(sum(ref["predictedClass"]["frequencies"]) - 1) < 1e-4
