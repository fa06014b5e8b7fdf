"""OOD sets and scores: deterministic generators, the pipeline port, score functions by hand,
the threshold's false-flag rate, the manifest block recomputed from its own numbers, and a
tiny end-to-end run on an untrained network."""
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from pctrain import ood, oodsets
from pctrain.nets import Cnn, CnnConfig

REPO = Path(__file__).resolve().parents[2]
needs_fonts = pytest.mark.skipif(not any(oodsets.FONT_DIR.glob("DejaVu*.ttf")) if oodsets.FONT_DIR.is_dir() else True,
                                 reason=f"needs Debian's {oodsets.FONT_PACKAGE} (text and symbol sets)")


# ---- set generators ----------------------------------------------------------------
@pytest.mark.parametrize("fn", [oodsets.uniform_noise, oodsets.gaussian_noise, oodsets.blank,
                                pytest.param(oodsets.text_images, marks=needs_fonts),
                                pytest.param(oodsets.symbol_images, marks=needs_fonts)])
def test_generators_are_deterministic_and_shaped(fn):
    a = fn(6, np.random.default_rng(5))
    b = fn(6, np.random.default_rng(5))
    c = fn(6, np.random.default_rng(6))
    assert a.shape == (6, 28, 28) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_photo_crops_from_any_picture(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pic = (rng.random((300, 400, 3)) * 255).astype(np.uint8)
    Image.fromarray(pic).save(tmp_path / "p.png")
    a = oodsets.photo_crops(5, np.random.default_rng(1), [tmp_path / "p.png"])
    b = oodsets.photo_crops(5, np.random.default_rng(1), [tmp_path / "p.png"])
    assert a.shape == (5, 28, 28) and np.array_equal(a, b)


def test_missing_wallpapers_name_the_packages(tmp_path):
    with pytest.raises(oodsets.MissingSource, match="mate-backgrounds"):
        oodsets.photo_paths(tmp_path)


def test_near_sets_derive_from_the_given_images():
    src = np.zeros((30, 28, 28), dtype=np.uint8)
    src[:, 4:24, 8:20] = 200
    sets = {s.name: s for s in oodsets.make_sets(3, 10, src, names=oodsets.NEAR_SETS)}
    assert set(sets) == set(oodsets.NEAR_SETS)
    assert np.all(sets["inverted"].images[:, 0, 0] == 255)
    assert all(s.kind == "near" and s.images.shape == (10, 28, 28) for s in sets.values())
    again = {s.name: s for s in oodsets.make_sets(3, 10, src, names=oodsets.NEAR_SETS)}
    assert all(np.array_equal(sets[k].images, again[k].images) for k in sets)


# ---- the pipeline port ------------------------------------------------------------------
def test_pipeline_negates_a_light_background_and_centres_the_item():
    img = np.full((60, 40), 240, dtype=np.uint8)
    img[10:50, 15:25] = 20  # a dark bar, 40 high and 10 wide
    out = oodsets.service_pipeline(img)
    assert out.shape == (28, 28)
    assert out[0, 0] == 255 - 240  # background negated
    cols = np.flatnonzero((out > 128).any(0))
    assert out[:, 14].min() > 128 and cols.size == 7 and 10 <= cols[0] <= 11  # 10 px wide -> 7 px, centred


def test_pipeline_passes_a_dark_28x28_image_through_and_keeps_a_blank_one_blank():
    img = (np.arange(784) % 256).astype(np.uint8).reshape(28, 28)
    img[0, 0] = img[0, -1] = img[-1, 0] = img[-1, -1] = 0
    assert np.array_equal(oodsets.service_pipeline(img), img)
    assert np.all(oodsets.service_pipeline(np.full((50, 70), 90, np.uint8)) == 90)
    assert np.all(oodsets.service_pipeline(np.full((50, 70), 200, np.uint8)) == 55)


def test_nearest_sampling_matches_libvips_steps():
    # Recorded from sharp 0.35 (libvips 8.18): resize(28, 1, nearest) of a 0..w-1 ramp.
    assert oodsets._nearest_index(32, 28).tolist()[:6] == [0, 1, 2, 3, 5, 6]
    assert oodsets._nearest_index(112, 28).tolist()[:3] == [2, 6, 10]
    assert oodsets._nearest_index(50, 28).tolist()[:6] == [0, 2, 4, 6, 8, 9]


NODE_CONVERT = r"""
const fs = require('fs');
const { toFashionMnist } = require(process.argv[1]);
(async () => {
  const items = JSON.parse(fs.readFileSync(0, 'utf8')); const out = [];
  for (const it of items) out.push(Array.from((await toFashionMnist({ data: Uint8Array.from(it.data), width: it.w, height: it.h }, 28, 28)).data));
  process.stdout.write(JSON.stringify(out));
})();
"""


def test_pipeline_port_agrees_with_the_service():
    """The service's own conversion (sharp) on gray images up to 112 px: within 1 gray level."""
    module = REPO / "dist" / "src" / "preprocess" / "fashion-convert.js"
    if shutil.which("node") is None or not module.exists():
        pytest.skip("needs node and the built service (npm run build)")
    rng = np.random.default_rng(4)
    imgs = []
    for h, w in [(40, 30), (97, 64), (112, 80), (28, 50), (70, 112)]:
        img = np.full((h, w), int(rng.integers(150, 256)), dtype=np.uint8)
        y0, x0 = int(rng.integers(0, h // 4)), int(rng.integers(0, w // 4))
        blob = (rng.random((h - 2 * y0, w - 2 * x0)) * 180).astype(np.uint8)
        img[y0:h - y0, x0:w - x0] = blob
        imgs.append(img)
    items = [{"w": i.shape[1], "h": i.shape[0], "data": i.ravel().tolist()} for i in imgs]
    proc = subprocess.run(["node", "-e", NODE_CONVERT, str(module)], input=json.dumps(items),
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    node = np.array(json.loads(proc.stdout)).reshape(-1, 28, 28)
    ours = np.stack([oodsets.to_fashion_mnist(i) for i in imgs]).astype(np.int64)
    assert np.abs(node - ours).max() <= 1


# ---- score functions -----------------------------------------------------------------------
def test_logit_scores_by_hand():
    z = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    e = np.exp(2.0)
    assert np.allclose(ood.msp_score(z, 1.0), [-e / (e + 2), -1 / 3])
    assert np.allclose(ood.maxlogit_score(z), [-2.0, 0.0])
    assert np.allclose(ood.energy_score(z), [-math.log(e + 2), -math.log(3)])
    assert np.allclose(ood.energy_score(z, 2.0), [-2 * math.log(math.e + 2), -2 * math.log(3)])


def test_pixel_features_by_hand():
    img = np.zeros((2, 28, 28), dtype=np.uint8)
    img[1, 7:21, 7:21] = 255  # a centred white square
    f = dict(zip(ood.PIXEL_FEATURES, ood.pixel_features(img).T))
    assert np.allclose(f["mean"], [0, 196 / 784]) and np.allclose(f["fracDark"], [1, 1 - 196 / 784])
    assert np.allclose(f["fracBright"], [0, 196 / 784]) and np.allclose(f["centerMean"], [0, 1])
    assert np.allclose(f["rowsOn"], [0, 0.5]) and np.allclose(f["centroidOffset"], [0, 0])
    assert np.allclose(f["borderMean"], [0, 0]) and np.allclose(f["std"], [0, math.sqrt(0.25 * 0.75)])
    # gradient: 14 rows x 2 edges of 1.0 out of 28 x 27 horizontal pairs, the same vertically
    assert np.allclose(f["gradient"], [0, 28 / (28 * 27)])


def test_gaussian_distance_is_mahalanobis():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4000, 3)) * [1.0, 2.0, 0.5] + [5, -1, 2]
    labels = (rng.random(4000) < 0.5).astype(int)
    x[labels == 1] += [3, 0, 0]
    g = ood.Gaussian.fit(x, labels)
    cov = np.cov(np.concatenate([x[labels == 0] - x[labels == 0].mean(0), x[labels == 1] - x[labels == 1].mean(0)]).T, bias=True)
    p = np.array([[5.0, -1.0, 2.0], [20.0, 0.0, 0.0]])
    want = [min(float((p[i] - x[labels == c].mean(0)) @ np.linalg.inv(cov) @ (p[i] - x[labels == c].mean(0))) for c in (0, 1)) for i in range(2)]
    assert np.allclose(g.distance(p) ** 2, want, rtol=1e-4)
    assert np.all(g.distance(p, np.array([1, 1])) >= g.distance(p) - 1e-9)  # the nearest mean is never farther


def test_guard_band_keeps_new_data_under_the_rate():
    # A threshold fitted at the guarded rate on 5,000 draws has a population flag rate (here exact: the
    # normal tail) at or under 5% in about 95% of trials, where the plain 5% fit is over in about half.
    rng = np.random.default_rng(9)
    tail = lambda t: 0.5 * math.erfc(t / math.sqrt(2))  # noqa: E731
    guarded = [tail(ood.fit_threshold(rng.standard_normal(5000), ood.guarded_rate(0.05, 5000))) for _ in range(400)]
    plain = [tail(ood.fit_threshold(rng.standard_normal(5000), 0.05)) for _ in range(400)]
    assert np.mean(np.array(guarded) > 0.05) < 0.08 and np.mean(np.array(plain) > 0.05) > 0.3
    assert ood.guarded_rate(0.05, 5000, z=0) == 0.05


@pytest.mark.parametrize("n,rate", [(5000, 0.05), (1000, 0.1), (333, 0.05)])
def test_threshold_hits_its_false_flag_rate(n, rate):
    s = np.random.default_rng(n).standard_normal(n)
    t = ood.fit_threshold(s, rate)
    flagged = (s > t).mean()
    assert flagged <= rate and flagged > rate - 1.0 / n


def test_auroc_fpr_and_risk_coverage():
    neg, pos = np.array([0.0, 1.0, 2.0, 3.0]), np.array([2.0, 4.0, 5.0, 6.0])
    assert ood.auroc(neg, pos) == pytest.approx((2.5 + 4 + 4 + 4) / 16)  # pos 2 beats 0 and 1, ties 2, loses to 3
    assert ood.auroc(np.zeros(5), np.zeros(7)) == 0.5
    assert ood.fpr_at_tpr(np.arange(100.0), np.arange(100.0) + 1000) == 0.0
    correct = np.array([1, 1, 1, 0, 1, 1, 1, 1, 1, 0], dtype=bool)
    key = np.arange(10.0)
    assert ood.accuracy_at_coverage(key, correct, 0.9) == pytest.approx(8 / 9)
    cov, acc = ood.risk_coverage(key, correct, points=11)
    assert acc[-1] == pytest.approx(0.8) and acc[2] == pytest.approx(1.0)


# ---- the manifest block is enough to recompute the score ----------------------------------------
def score_from_block(block: dict, pixels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """An independent implementation from the block's numbers alone, as the Node service will do it."""
    p = block["params"]
    comps = {}
    z = logits.astype(np.float64)
    m = z.max(1)
    lse = m + np.log(np.exp(z - m[:, None]).sum(1))
    t = p["temperature"]
    comps["energy"] = -lse
    zt = z / t
    mt = zt.max(1)
    lset = mt + np.log(np.exp(zt - mt[:, None]).sum(1))
    comps["energyT"] = -t * lset
    comps["msp"] = -np.exp(mt - lset)
    comps["maxlogit"] = -m

    def maha(g, x, which):
        u = (x - np.array(g["center"])) / np.array(g["scale"])
        means, prec = np.array(g["means"]), np.array(g["precision"])
        d2 = np.array([[(ui - mk) @ prec @ (ui - mk) for mk in means] for ui in u])
        return np.sqrt(d2.min(1) if which is None else d2[np.arange(len(u)), which])

    if "logitGaussian" in p:
        comps["logitMaha"] = maha(p["logitGaussian"], z, None)
    if "pixelGaussian" in p:
        f = ood.pixel_features(pixels)
        comps["pixGauss"] = comps["pixClass"] = maha(p["pixelGaussian"], f, None)
        if len(p["pixelGaussian"]["means"]) > 1:
            comps["pixPred"] = maha(p["pixelGaussian"], f, z.argmax(1))
    combo = ood.parse_combo(block["score"])
    if combo is None:
        return comps[block["score"]]
    op, parts = combo
    zs = np.stack([(comps[k] - p["standardize"][k]["mean"]) / p["standardize"][k]["std"] for k in parts])
    return zs.max(0) if op == "max" else zs.sum(0)


def toy_signals(n, rng, shift=0.0):
    logits = rng.standard_normal((n, 10)).astype(np.float32) * 3 + shift
    pixels = (rng.random((n, 28, 28)) * 255 * (rng.random((n, 1, 1)) < 0.5)).astype(np.uint8)
    return ood.Signals(logits, rng.standard_normal((n, 16)).astype(np.float32), ood.pixel_features(pixels)), pixels


@pytest.mark.parametrize("name", ["energy", "msp", "maxz(energy,pixClass)", "sumz(logitMaha,pixGauss)", "maxz(msp,pixPred)"])
def test_manifest_block_recomputes_the_score(name):
    rng = np.random.default_rng(2)
    train, _ = toy_signals(400, rng)
    labels = rng.integers(0, 10, 400)
    fit = ood.fit_model(0.7, train, labels)
    val, _ = toy_signals(200, rng)
    thr = ood.fit_threshold(ood.score(fit, ood.components(fit, val), name))
    block = ood.manifest_block(fit, name, thr, 0.05)
    block = json.loads(json.dumps(block))  # what the manifest holds
    other, pixels = toy_signals(30, rng, shift=1.0)
    want = ood.score(fit, ood.components(fit, other), name)
    got = score_from_block(block, pixels, other.logits)
    assert np.abs(got - want).max() < 1e-8, np.abs(got - want).max()
    assert len(json.dumps(block)) < 12000 and block["threshold"] == pytest.approx(thr)


# ---- a tiny end-to-end run -----------------------------------------------------------------------
def tiny_artifact(tmp_path: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    cfg = CnnConfig(conv_channels=(4, 4), pool_after=(0, 1), dense=16)
    net = Cnn(cfg).eval()
    run = tmp_path / "runs" / "tiny-seed1"
    run.mkdir(parents=True)
    norm = {"mean": 0.2862, "std": 0.3532}
    (run / "config.json").write_text(json.dumps({"train": {"net": cfg.to_dict(), "seed": 1}, "normalization": norm, "kind": "baseline"}))
    torch.save({"model": net.state_dict(), "epoch": 1, "best_val": 0.5, "history": [], "train_seconds": 1.0}, run / "final.pt")
    art = tmp_path / "models" / "tiny" / "1"
    (art / "parity").mkdir(parents=True)
    from pctrain import data as fdata

    _, test = fdata.load_official()
    x = torch.from_numpy(test.images[:64].astype(np.float32) / 255.0)
    with torch.no_grad():
        z = net(((x - norm["mean"]) / norm["std"]).unsqueeze(1)).numpy().astype(np.float64)
    t = 1.3
    probs = np.exp(z / t - ood.logsumexp(z / t)[:, None])
    (art / "parity" / "reference.json").write_text(json.dumps({"indices": list(range(64)), "probabilities": probs.tolist()}))
    (art / "manifest.json").write_text(json.dumps({
        "name": "tiny", "version": "1", "input": {"normalization": norm}, "output": {"temperature": t},
        "training": {"seed": 1, "epochsRun": 1, "bestValidationAccuracy": 0.5}}))
    return tmp_path / "models", tmp_path / "runs"


@needs_fonts
def test_tiny_end_to_end(tmp_path, monkeypatch):
    models, runs = tiny_artifact(tmp_path)
    monkeypatch.setattr(ood, "PARITY_CHECK", 64)
    try:
        oodsets.photo_paths()
    except oodsets.MissingSource:  # CI without the wallpapers: crops of a made-up picture instead
        from PIL import Image

        Image.fromarray((np.random.default_rng(0).random((200, 300, 3)) * 255).astype(np.uint8)).save(tmp_path / "pic.png")
        monkeypatch.setattr(oodsets, "photo_paths", lambda base=None: [tmp_path / "pic.png"])
    out = tmp_path / "results"
    r = ood.run(models, out, runs, dev_n=12, report_n=12, train_per_class=20, log=lambda *_: None)
    assert r["chosen"] in ood.candidate_names() and "featMaha" not in r["chosen"]
    rep = r["report"]["models"]["tiny"]
    fit_rate = ood.guarded_rate(0.05, 5000)
    assert r["validationFlagRate"] == pytest.approx(fit_rate) and 0.044 < fit_rate < 0.046
    assert fit_rate - 1 / 5000 < rep["validationFlagged"] <= fit_rate
    assert set(rep["sets"]) == set(oodsets.FAR_SETS + oodsets.NEAR_SETS)
    for f in ("ood.json", "ood.md", "ood-risk-coverage.png", "ood-vectors.json", "ood-manifest-tiny.json"):
        assert (out / f).exists(), f
    block = json.loads((out / "ood-manifest-tiny.json").read_text())
    vectors = json.loads((out / "ood-vectors.json").read_text())
    import base64

    row = vectors["sets"]["photos"][0]
    pixels = np.frombuffer(base64.b64decode(row["pixels"]), dtype=np.uint8).reshape(1, 28, 28)
    logits = np.array([row["models"]["tiny"]["logits"]], dtype=np.float32)
    assert score_from_block(block, pixels, logits)[0] == pytest.approx(row["models"]["tiny"]["score"], rel=1e-5, abs=1e-6)


def test_write_manifest_blocks_puts_each_block_in_the_highest_version(tmp_path):
    from pctrain.ood import write_manifest_blocks
    models, out = tmp_path / "models", tmp_path / "results"
    for version in ("1", "2"):
        d = models / "baseline" / version
        d.mkdir(parents=True)
        (d / "manifest.json").write_text(json.dumps({"name": "baseline", "version": version}, indent=1) + "\n")
    (models / "other" / "1").mkdir(parents=True)
    (models / "other" / "1" / "manifest.json").write_text(json.dumps({"name": "other", "version": "1"}) + "\n")
    out.mkdir()
    (out / "ood-manifest-baseline.json").write_text(json.dumps({"score": "sumz(msp,pixClass)", "threshold": 3.5}))
    written = write_manifest_blocks(models, out)
    assert written == [models / "baseline" / "2" / "manifest.json"]
    assert json.loads(written[0].read_text())["ood"]["threshold"] == 3.5
    assert "ood" not in json.loads((models / "baseline" / "1" / "manifest.json").read_text())
    assert "ood" not in json.loads((models / "other" / "1" / "manifest.json").read_text())
