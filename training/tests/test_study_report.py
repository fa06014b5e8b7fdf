"""The dendrite study's report (pctrain.study_report): its statistics
against closed forms, and a synthetic study with known predictions run
through the tables and figures."""
import json
import math

import numpy as np
import pytest

from pctrain import study_report as sr
from pctrain.compare import PREDICTIONS


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5, 9.0])
def test_paired_t_p_values_match_the_closed_forms(t):
    # df = 1: p = 1 - 2 atan(|t|) / pi; df = 2: p = 1 - |t| / sqrt(2 + t^2)
    df1 = sr.betainc(0.5, 0.5, 1 / (1 + t * t))
    df2 = sr.betainc(1.0, 0.5, 2 / (2 + t * t))
    assert df1 == pytest.approx(1 - 2 * math.atan(t) / math.pi, abs=1e-10)
    assert df2 == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-10)


def test_paired_t_on_three_seeds():
    d = [0.002, 0.004, 0.003]
    r = sr.paired_t(d)
    t = 0.003 / (0.001 / math.sqrt(3))
    assert r["t"] == pytest.approx(t) and r["pValue"] == pytest.approx(1 - t / math.sqrt(2 + t * t))
    assert sr.paired_t([0.01])["pValue"] is None
    assert sr.paired_t([0.0, 0.0])["pValue"] == 1.0
    assert sr.betainc(2.0, 3.0, 0.4) == pytest.approx(0.5248, abs=1e-4)  # tabulated I_0.4(2, 3)


def test_the_plain_curve_is_interpolated_in_log_count():
    assert sr.interpolate_log([100, 400], [0.80, 0.90], 200) == pytest.approx(0.85)
    assert sr.interpolate_log([100, 400], [0.80, 0.90], 50) is None


N = 200
LABELS = np.arange(N) % 10


def _run(runs, rel, experiment, kind, seed, acc, params, macs, width=None, wrong_from=0, history=None, meta=None):
    d = runs / rel
    d.mkdir(parents=True)
    pred = LABELS.copy()
    n_wrong = round((1 - acc) * N)
    idx = (np.arange(n_wrong) + wrong_from) % N
    pred[idx] = (pred[idx] + 1) % 10
    (d / PREDICTIONS).write_text(json.dumps({"predictions": pred.tolist()}))
    if history is not None:
        (d / "history.json").write_text(json.dumps(history))
        (d / "config.json").write_text(json.dumps(meta or {}))
    row = {"experiment": experiment, "kind": kind, "seed": seed, "dendritesPerNeuron": 2 if kind == "dendritic" else 0,
           "parameters": params, "macs": macs, "validationAccuracy": acc + 0.005, "testAccuracy": acc, "run": rel}
    if width is not None:
        row["width"] = width
    return row


@pytest.fixture()
def synthetic(tmp_path):
    runs = tmp_path / "runs"
    rows = []
    for seed in (1, 2):
        base = f"study/frontier/base-seed{seed}"
        hist = [{"epoch": e, "val_acc": 0.80 + 0.01 * e} for e in range(1, 4)]
        rows.append(_run(runs, base, "frontier", "base", seed, 0.85, 1000, 10_000, 1.0, history=hist))
        for w, acc, p in ((0.5, 0.80, 300), (2.0, 0.90, 4000)):
            rows.append(_run(runs, f"study/frontier/plain-w{w:g}-seed{seed}", "frontier", "plain", seed, acc, p, p * 10, w))
        grow = [{"epoch": 0, "val_acc": 0.83}, {"epoch": 1, "val_acc": 0.84, "after": "add"},
                {"epoch": 2, "val_acc": 0.845, "after": "stop"}]
        meta = {"kind": "dendritic", "base_run": f"runs/{base}"}
        rows.append(_run(runs, f"study/frontier/dendritic-seed{seed}", "frontier", "dendritic", seed, 0.88, 2000, 50_000,
                         1.0, wrong_from=seed, history=grow, meta=meta))
        rows.append(_run(runs, f"study/frontier/continued-seed{seed}", "frontier", "continued", seed, 0.86, 1000, 10_000,
                         1.0, history=grow, meta={**meta, "kind": "continued"}))
        rows.append(_run(runs, f"study/frontier/dendritic-seed{seed}-param-matched", "frontier", "param-matched", seed,
                         0.87, 2000, 20_000, 1.4))
    for k in (1, 2):
        rows.append(_run(runs, f"study/count-frontier/dendritic-k{k}-seed1", "dendrite-count", "dendritic", 1,
                         0.86 + 0.01 * k, 1500, 20_000, 1.0))
    study = tmp_path / "study.json"
    study.write_text(json.dumps(rows))
    return tmp_path, runs, study, rows


def test_a_synthetic_study_gives_the_expected_tables(synthetic):
    tmp_path, runs, study, rows = synthetic
    report = sr.summarize(rows, runs, LABELS)
    assert set(report) == {"frontier", "count-frontier"}
    arms = {a["arm"]: a for a in report["frontier"]["arms"]}
    assert set(arms) == {"base", "plain x0.5", "plain x2", "dendritic", "continued", "param-matched"}
    assert arms["dendritic"]["test"]["mean"] == pytest.approx(0.88) and arms["dendritic"]["seeds"] == [1, 2]
    comps = {c["control"]: c for c in report["frontier"]["comparisons"]}
    assert set(comps) == {"base", "continued", "param-matched"}
    s1 = comps["base"]["perSeed"][0]
    # dendritic seed 1 is wrong on images 1..24, the base on 0..29: right on 0 and 25..29, wrong on none the base gets
    assert (s1["dendriticRightControlWrong"], s1["dendriticWrongControlRight"]) == (6, 0)
    assert comps["base"]["pairedT"]["meanDifference"] == pytest.approx(0.03)
    curve = report["frontier"]["againstPlainCurve"]
    # plain curve: (300, .80), (1000, .85), (4000, .90); at 2000 parameters: .85 + .05 * log(2)/log(4)
    assert curve[0]["plainAtSameParameters"] == pytest.approx(0.875)
    assert curve[0]["liftAtSameParameters"] == pytest.approx(0.005)
    assert curve[0]["plainAtSameMacs"] is None  # 50,000 MACs is beyond the plain family's range
    count = {a["arm"] for a in report["count-frontier"]["arms"]}
    assert count == {"dendritic, 1 per neuron", "dendritic, 2 per neuron"}


def test_build_writes_the_report_and_figures(synthetic):
    tmp_path, runs, study, _ = synthetic
    out = tmp_path / "results"
    result = sr.build(study, runs, out, LABELS)
    assert result["figures"] == {"frontier": True, "growth": ["frontier"], "count": True}
    for png in ("study-frontier.png", "study-growth.png", "study-count.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "study.md").read_text()
    assert "## frontier (frontier)" in md and "| dendritic vs continued |" in md
    assert json.loads((out / "study-report.json").read_text())["frontier"]["experiment"] == "frontier"


def test_growth_series_puts_the_growth_after_the_base(synthetic):
    _, runs, _, _ = synthetic
    xs, ys, marks = sr.growth_series(runs / "study/frontier/dendritic-seed1")
    assert xs == [1, 2, 3, 4, 5] and ys[-1] == 0.845
    assert marks == [(3, "add"), (4, "add")]
    _, _, none = sr.growth_series(runs / "study/frontier/continued-seed1")
    assert none == []
