"""Out-of-distribution scores the service can compute from 10 logits and 784 pixels.

    cd training && /usr/bin/python3 -m pctrain.ood --models ../models --out results

For every served model (models/<name>/<version>/manifest.json, with the
PyTorch run it was packaged from) this module:

  1. rebuilds the network from the run's checkpoint and checks that its
     calibrated probabilities match the artifact's parity/reference.json
     (within 1e-4), so what is measured is what the service serves;
  2. computes candidate scores (higher = more unusual): negated max softmax
     probability, negated max logit, energy, Mahalanobis distance of the
     logits, Gaussian models of a 13-number vector of pixel statistics, their
     combinations (z-scores of two components, then max or sum), and, as a
     reference only, Mahalanobis distance on the 256 penultimate features
     (which the ONNX/TF.js artifacts do not export);
  3. fits every parameter on the training split only (in-distribution, no
     OOD data), and the threshold at the validation split's (1 - rate)
     quantile, `rate` being the in-distribution false-flag rate (5%);
  4. chooses ONE method for all models on the validation split and the dev
     generation of OOD sets (oodsets.DEV_SEED): highest worst-case far-OOD
     AUROC (mean over models), ties broken by the mean near-OOD AUROC;
  5. evaluates that method once on the test split (as in-distribution) and
     the report generation (oodsets.REPORT_SEED): AUROC, FPR at 95% TPR, the
     fraction flagged at the threshold, and risk-coverage curves;
  6. writes results/ood.json, results/ood.md, results/ood-risk-coverage.png,
     results/ood-manifest-<model>.json (the block for the manifest's "ood"
     key) and results/ood-vectors.json (pixels, logits and expected scores
     for a parity test of the Node implementation).
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data as fdata
from . import oodsets

FALSE_FLAG_RATE = 0.05
GUARD_Z = 1.645  # one-sided 95%: the threshold is fitted this many binomial standard errors below the target rate
TARGET_AUROC = 0.95  # worst far-OOD AUROC a method must reach (dev) to be chosen
TARGET_ACCURACY_AT_90 = 0.975  # accuracy of the answered at 90% coverage, abstaining by the score (validation)
TRAIN_FIT_PER_CLASS = 1000  # training images per class the model-based parameters are fitted on
DEV_N = 1000
REPORT_N = 2000
VECTORS_PER_SET = 20
PARITY_CHECK = 512
PARITY_TOL = 1e-4

# ---- pixel statistics -------------------------------------------------------
DARK, BRIGHT = 25, 204  # pixel levels: <= DARK is background-dark, > BRIGHT is bright
PIXEL_FEATURES = [
    "mean", "std", "fracDark", "fracBright", "fracLow", "fracMid", "borderMean",
    "gradient", "laplacian", "rowsOn", "colsOn", "centroidOffset", "centerMean",
]
PIXEL_FEATURES_FORMULA = """p = pixel / 255 for the 784 pixels (row-major 28x28, row r, column c, 0-based); all means are plain arithmetic means.
mean = mean(p); std = sqrt(mean((p - mean)^2)) (population);
fracDark = fraction of pixels <= 25; fracBright = fraction of pixels > 204;
fracLow = fraction of pixels in 26..101; fracMid = fraction of pixels in 102..153;
borderMean = mean(p) over the 2-pixel frame (r < 2 or r > 25 or c < 2 or c > 25; 208 pixels);
gradient = (mean over r, c<27 of |p[r][c+1]-p[r][c]| + mean over r<27, c of |p[r+1][c]-p[r][c]|) / 2;
laplacian = mean over 1<=r<=26, 1<=c<=26 of |p[r][c] - (p[r-1][c]+p[r+1][c]+p[r][c-1]+p[r][c+1])/4|;
rowsOn = fraction of the 28 rows holding a pixel > 25; colsOn = same for the 28 columns;
centroidOffset = sqrt((cy-13.5)^2 + (cx-13.5)^2) / 28 with cy = sum(p*r)/sum(p), cx = sum(p*c)/sum(p) (0 when sum(p) == 0);
centerMean = mean(p) over the central 14x14 block (7 <= r < 21 and 7 <= c < 21)."""


def pixel_features(images: np.ndarray) -> np.ndarray:
    """The 13 statistics of PIXEL_FEATURES for uint8 images [N, 28, 28] -> float64 [N, 13]."""
    x = images.astype(np.int64)
    p = x.astype(np.float64) / 255.0
    n = len(p)
    flat = p.reshape(n, -1)
    mean = flat.mean(1)
    std = np.sqrt(((flat - mean[:, None]) ** 2).mean(1))
    xf = x.reshape(n, -1)
    frac_dark = (xf <= DARK).mean(1)
    frac_bright = (xf > BRIGHT).mean(1)
    frac_low = ((xf > DARK) & (xf <= 101)).mean(1)
    frac_mid = ((xf > 101) & (xf <= 153)).mean(1)
    frame = np.ones((28, 28), dtype=bool)
    frame[2:26, 2:26] = False
    border = p[:, frame].mean(1)
    grad = (np.abs(np.diff(p, axis=2)).reshape(n, -1).mean(1) + np.abs(np.diff(p, axis=1)).reshape(n, -1).mean(1)) / 2
    nb = (p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]) / 4
    lap = np.abs(p[:, 1:-1, 1:-1] - nb).reshape(n, -1).mean(1)
    on = x > DARK
    rows_on = on.any(2).mean(1)
    cols_on = on.any(1).mean(1)
    total = p.sum((1, 2))
    r = np.arange(28, dtype=np.float64)
    safe = np.where(total > 0, total, 1.0)
    cy = (p.sum(2) * r).sum(1) / safe
    cx = (p.sum(1) * r).sum(1) / safe
    offset = np.where(total > 0, np.sqrt((cy - 13.5) ** 2 + (cx - 13.5) ** 2) / 28, 0.0)
    center = p[:, 7:21, 7:21].reshape(n, -1).mean(1)
    return np.stack([mean, std, frac_dark, frac_bright, frac_low, frac_mid, border, grad, lap,
                     rows_on, cols_on, offset, center], axis=1)


# ---- logit scores -------------------------------------------------------------
def logsumexp(z: np.ndarray) -> np.ndarray:
    m = z.max(1)
    return m + np.log(np.exp(z - m[:, None]).sum(1))


def msp_score(logits: np.ndarray, temperature: float) -> np.ndarray:
    """-max softmax(z / T)."""
    z = logits / temperature
    return -np.exp(z.max(1) - logsumexp(z))


def maxlogit_score(logits: np.ndarray) -> np.ndarray:
    return -logits.max(1)


def energy_score(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Energy -T * logsumexp(z / T): higher for less confident, lower-magnitude logits."""
    return -temperature * logsumexp(logits / temperature)


# ---- Gaussian models ----------------------------------------------------------
SIGNIFICANT = 10  # digits kept of every fitted number; Python scores with the rounded numbers the manifest holds


def sig(a, digits: int = SIGNIFICANT):
    """Round to `digits` significant digits (arrays elementwise)."""
    if np.isscalar(a):
        return float(f"{float(a):.{digits}g}")
    return np.vectorize(lambda x: float(f"{x:.{digits}g}"))(np.asarray(a, dtype=np.float64)).reshape(np.shape(a))
@dataclass
class Gaussian:
    """Class-conditional means with one shared covariance (one class: a single Gaussian)."""
    means: np.ndarray       # [K, d]
    precision: np.ndarray   # [d, d], inverse of the shared covariance
    center: np.ndarray      # [d] subtracted before everything (numerical hygiene only)
    scale: np.ndarray       # [d] divided by before everything

    @staticmethod
    def fit(x: np.ndarray, labels: np.ndarray | None = None, ridge: float = 1e-6) -> "Gaussian":
        center, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 0, scale, 1.0)
        u = (x - center) / scale
        labels = np.zeros(len(u), dtype=np.int64) if labels is None else labels
        classes = np.unique(labels)
        means = np.stack([u[labels == c].mean(0) for c in classes])
        resid = u - means[np.searchsorted(classes, labels)]
        cov = resid.T @ resid / len(u)
        cov += ridge * np.trace(cov) / len(cov) * np.eye(len(cov))
        return Gaussian(means, np.linalg.inv(cov), center, scale)

    def d2(self, x: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to every class mean: [N, K]."""
        u = (x - self.center) / self.scale
        up = u @ self.precision
        mm = ((self.means @ self.precision) * self.means).sum(1)
        return (up * u).sum(1)[:, None] - 2.0 * up @ self.means.T + mm[None, :]

    def distance(self, x: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
        """sqrt of the squared distance to the nearest mean (or to `classes`' means)."""
        d2 = self.d2(x)
        d2 = d2.min(1) if classes is None else d2[np.arange(len(d2)), classes]
        return np.sqrt(np.maximum(d2, 0.0))

    def rounded(self) -> "Gaussian":
        """The same model with every number at SIGNIFICANT digits, as the manifest stores it."""
        return Gaussian(sig(self.means), sig(self.precision), sig(self.center), sig(self.scale))

    def params(self) -> dict:
        return {"center": sig(self.center).tolist(), "scale": sig(self.scale).tolist(),
                "means": sig(self.means).tolist(), "precision": sig(self.precision).tolist()}


# ---- inputs of one model on one image set ---------------------------------------
@dataclass
class Signals:
    logits: np.ndarray     # float32 [N, 10]
    features: np.ndarray   # float32 [N, 256] penultimate (reference only)
    pixels: np.ndarray     # float64 [N, 13]


@dataclass
class Fitted:
    """Everything fitted on the training split for one model."""
    temperature: float
    pixel_gauss: Gaussian
    pixel_cc: Gaussian
    logit_cc: Gaussian
    feature_cc: Gaussian
    stats: dict  # component -> (mean, std) on the training split


COMPONENTS = ["msp", "maxlogit", "energy", "energyT", "logitMaha", "pixGauss", "pixClass", "pixPred", "featMaha"]
LOGIT_COMPONENTS = ["msp", "maxlogit", "energy", "energyT", "logitMaha"]
PIXEL_COMPONENTS = ["pixGauss", "pixClass"]


def components(fit: Fitted, s: Signals, with_features: bool = True) -> dict[str, np.ndarray]:
    z = s.logits.astype(np.float64)
    out = {
        "msp": msp_score(z, fit.temperature),
        "maxlogit": maxlogit_score(z),
        "energy": energy_score(z, 1.0),
        "energyT": energy_score(z, fit.temperature),
        "logitMaha": fit.logit_cc.distance(z),
        "pixGauss": fit.pixel_gauss.distance(s.pixels),
        "pixClass": fit.pixel_cc.distance(s.pixels),
        "pixPred": fit.pixel_cc.distance(s.pixels, z.argmax(1)),
    }
    if with_features:
        out["featMaha"] = fit.feature_cc.distance(s.features.astype(np.float64))
    return out


def candidate_names() -> list[str]:
    names = list(COMPONENTS)
    for a in LOGIT_COMPONENTS:
        for b in PIXEL_COMPONENTS + ["pixPred"]:
            for op in ("max", "sum"):
                names.append(f"{op}z({a},{b})")
    for op in ("max", "sum"):
        names.append(f"{op}z(featMaha,pixClass)")  # reference: if features were exported
        names.append(f"{op}z(energy,logitMaha,pixClass)")
    return names


def parse_combo(name: str) -> tuple[str, list[str]] | None:
    if "z(" not in name:
        return None
    op, rest = name.split("z(", 1)
    return op, rest.rstrip(")").split(",")


def score(fit: Fitted, comps: dict[str, np.ndarray], name: str) -> np.ndarray:
    combo = parse_combo(name)
    if combo is None:
        return comps[name]
    op, parts = combo
    zs = np.stack([(comps[p] - fit.stats[p][0]) / fit.stats[p][1] for p in parts])
    return zs.max(0) if op == "max" else zs.sum(0)


def fit_model(temperature: float, train: Signals, labels: np.ndarray) -> Fitted:
    fit = Fitted(
        temperature=temperature,
        pixel_gauss=Gaussian.fit(train.pixels).rounded(),
        pixel_cc=Gaussian.fit(train.pixels, labels).rounded(),
        logit_cc=Gaussian.fit(train.logits.astype(np.float64), labels).rounded(),
        feature_cc=Gaussian.fit(train.features.astype(np.float64), labels, ridge=1e-4),
        stats={},
    )
    comps = components(fit, train)
    fit.stats = {k: (sig(v.mean()), sig(v.std() or 1.0)) for k, v in comps.items()}
    return fit


# ---- thresholds and metrics -------------------------------------------------------
def guarded_rate(rate: float, n: int, z: float = GUARD_Z) -> float:
    """The rate to fit at on n validation images so that the flag rate on new in-distribution images
    stays at or under `rate` with ~95% confidence: rate - z * sqrt(rate * (1 - rate) / n)."""
    return max(rate - z * math.sqrt(rate * (1 - rate) / n), 0.0) if z > 0 else rate


def fit_threshold(scores: np.ndarray, rate: float = FALSE_FLAG_RATE) -> float:
    """The smallest observed score t with at most `rate` of `scores` strictly above it (flag: score > t)."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    k = int(np.ceil((1.0 - rate) * len(s))) - 1
    return float(s[min(max(k, 0), len(s) - 1)])


def auroc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(score of an OOD image > score of an in-distribution one), ties counted half (Mann-Whitney)."""
    allv = np.concatenate([neg, pos])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv), dtype=np.float64)
    sorted_v = allv[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    rp = ranks[len(neg):].sum()
    return float((rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def fpr_at_tpr(neg: np.ndarray, pos: np.ndarray, tpr: float = 0.95) -> float:
    """Fraction of in-distribution images flagged at the threshold that flags `tpr` of the OOD set."""
    t = np.quantile(pos, 1.0 - tpr)
    return float((neg >= t).mean())


def risk_coverage(order_key: np.ndarray, correct: np.ndarray, points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy of the answered predictions when the `coverage` fraction with the lowest key is answered."""
    order = np.argsort(order_key, kind="mergesort")
    c = correct[order].astype(np.float64)
    cum = np.cumsum(c) / np.arange(1, len(c) + 1)
    cov = np.linspace(0.01, 1.0, points - 1)
    idx = np.maximum(np.ceil(cov * len(c)).astype(int) - 1, 0)
    return cov, cum[idx]


def joint_key(msp: np.ndarray, ood_score: np.ndarray, threshold: float) -> np.ndarray:
    """Abstention order of the joint rule: flagged images first out, then the least confident
    (msp is the negated max softmax probability, in [-1, 0])."""
    return msp + 2.0 * (ood_score > threshold)


def accuracy_at_coverage(order_key: np.ndarray, correct: np.ndarray, coverage: float = 0.9) -> float:
    order = np.argsort(order_key, kind="mergesort")
    k = int(np.ceil(coverage * len(order)))
    return float(correct[order[:k]].mean())


# ---- models ----------------------------------------------------------------------
def model_dirs(models: Path) -> list[Path]:
    """Every models/<name>/<version>/ with a manifest (the highest version of each name)."""
    out = []
    for name_dir in sorted(p for p in models.iterdir() if p.is_dir()):
        versions = sorted((p for p in name_dir.iterdir() if (p / "manifest.json").is_file()),
                          key=lambda p: int(p.name) if p.name.isdigit() else p.name)
        if versions:
            out.append(versions[-1])
    return out


def run_for(manifest: dict, runs: Path) -> Path:
    """The run a manifest was packaged from: runs/<name>-seed<seed>, confirmed by its epochs and best
    validation accuracy (parity then confirms the weights)."""
    import torch

    t = manifest["training"]
    run = runs / f"{manifest['name']}-seed{t['seed']}"
    ck_path = next((run / n for n in ("best.pt", "final.pt") if (run / n).exists()), None)
    if ck_path is None:
        raise FileNotFoundError(f"{run} has no checkpoint; pass --run {manifest['name']}=<run dir>")
    ck = torch.load(ck_path, map_location="cpu")
    if ck["epoch"] != t["epochsRun"] or round(ck["best_val"], 6) != t["bestValidationAccuracy"]:
        raise ValueError(f"{run} (epoch {ck['epoch']}, best {ck['best_val']}) is not the run of {manifest['name']} "
                         f"(epochsRun {t['epochsRun']}, best {t['bestValidationAccuracy']})")
    return run


class Model:
    def __init__(self, artifact: Path, run: Path):
        import torch

        from .package import load_run

        self.artifact = artifact
        self.manifest = json.loads((artifact / "manifest.json").read_text())
        self.name = self.manifest["name"]
        self.version = self.manifest["version"]
        self.run = run
        self.net, self.meta, _ = load_run(run)
        self.net.eval()
        norm = self.manifest["input"]["normalization"]
        self.mean, self.std = norm["mean"], norm["std"]
        self.temperature = float(self.manifest["output"]["temperature"])
        self._captured: list = []
        self.net.head.register_forward_hook(lambda _m, inp, _out: self._captured.append(inp[0].detach()))
        self.key = hashlib.sha256((run / "final.pt").read_bytes() if (run / "final.pt").exists() else run.name.encode()).hexdigest()[:16]
        self.torch = torch

    def signals(self, images: np.ndarray, cache: Path | None = None) -> Signals:
        digest = hashlib.sha256(images.tobytes()).hexdigest()[:16]
        path = cache / f"{self.name}-{self.key}-{digest}.npz" if cache else None
        if path and path.exists():
            d = np.load(path)
            return Signals(d["logits"], d["features"], pixel_features(images))
        torch = self.torch
        logits, feats = [], []
        with torch.no_grad():
            for i in range(0, len(images), 1000):
                x = torch.from_numpy(images[i:i + 1000].astype(np.float32) / 255.0)
                x = ((x - self.mean) / self.std).unsqueeze(1)
                self._captured.clear()
                logits.append(self.net(x).numpy())
                feats.append(self._captured[-1].numpy())
        s = Signals(np.concatenate(logits).astype(np.float32), np.concatenate(feats).astype(np.float32), pixel_features(images))
        if path:
            np.savez(path, logits=s.logits, features=s.features)
        return s

    def parity(self, test_images: np.ndarray, n: int = PARITY_CHECK) -> float:
        """Largest |p - p_ref| over the first n test images of parity/reference.json."""
        ref = json.loads((self.artifact / "parity" / "reference.json").read_text())
        idx = np.array(ref["indices"][:n])
        probs_ref = np.array(ref["probabilities"][:n])
        s = self.signals(test_images[idx])
        z = s.logits.astype(np.float64) / self.temperature
        probs = np.exp(z - logsumexp(z)[:, None])
        return float(np.abs(probs - probs_ref).max())


# ---- the evaluation ------------------------------------------------------------------
def evaluate(fit: Fitted, id_comps: dict, id_logits: np.ndarray, id_labels: np.ndarray, ood: dict[str, tuple[str, dict]],
             name: str, threshold: float) -> dict:
    """Metrics of score `name` with in-distribution components `id_comps` against each OOD set's components."""
    id_score = score(fit, id_comps, name)
    correct = id_logits.argmax(1) == id_labels
    per_set = {}
    for set_name, (kind, comps) in ood.items():
        s = score(fit, comps, name)
        per_set[set_name] = {
            "kind": kind, "n": int(len(s)),
            "auroc": round(auroc(id_score, s), 4),
            "fprAt95Tpr": round(fpr_at_tpr(id_score, s), 4),
            "flaggedAtThreshold": round(float((s > threshold).mean()), 4),
        }
    return {
        "inDistribution": {
            "n": int(len(id_score)),
            "flaggedAtThreshold": round(float((id_score > threshold).mean()), 4),
            "accuracy": round(float(correct.mean()), 4),
            "accuracyAt90CoverageByConfidence": round(accuracy_at_coverage(id_comps["msp"], correct), 4),
            "accuracyAt90CoverageByOodScore": round(accuracy_at_coverage(id_score, correct), 4),
            "accuracyAt90CoverageJoint": round(accuracy_at_coverage(joint_key(id_comps["msp"], id_score, threshold), correct), 4),
            "accuracyOfUnflagged": round(float(correct[id_score <= threshold].mean()), 4),
        },
        "sets": per_set,
    }


def summarize(ev: dict) -> dict:
    far = [v["auroc"] for v in ev["sets"].values() if v["kind"] == "far"]
    near = [v["auroc"] for v in ev["sets"].values() if v["kind"] == "near"]
    return {"minFarAuroc": min(far) if far else None, "meanFarAuroc": float(np.mean(far)) if far else None,
            "meanNearAuroc": float(np.mean(near)) if near else None}


# ---- what the service needs ------------------------------------------------------------
def manifest_block(fit: Fitted, name: str, threshold: float, rate: float, model: "Model | None" = None,
                   fitted_on: str = "", fit_rate: float | None = None) -> dict:
    combo = parse_combo(name)
    parts = combo[1] if combo else [name]
    params: dict = {"temperature": fit.temperature}
    formulas = []
    for p in parts:
        if p == "energy":
            formulas.append("energy = -logsumexp(z) with z the 10 raw logits (ONNX output), logsumexp(z) = m + ln(sum_k exp(z_k - m)), m = max(z)")
        elif p == "energyT":
            formulas.append("energyT = -T * logsumexp(z / T), T = params.temperature")
        elif p == "msp":
            formulas.append("msp = -max_k softmax(z / T)_k, T = params.temperature")
        elif p == "maxlogit":
            formulas.append("maxlogit = -max_k z_k")
        elif p == "logitMaha":
            params["logitGaussian"] = fit.logit_cc.params()
            formulas.append("logitMaha = sqrt(min_k (u - means[k])^T precision (u - means[k])), u_i = (z_i - center_i) / scale_i, over params.logitGaussian (means: 10 class means of u, shared precision matrix)")
        elif p in ("pixGauss", "pixClass", "pixPred"):
            g = fit.pixel_gauss if p == "pixGauss" else fit.pixel_cc
            params["pixelGaussian"] = g.params()
            params["pixelFeatures"] = PIXEL_FEATURES
            rule = {"pixGauss": "(u - means[0])^T precision (u - means[0])",
                    "pixClass": "min_k (u - means[k])^T precision (u - means[k])",
                    "pixPred": "(u - means[argmax z])^T precision (u - means[argmax z])"}[p]
            formulas.append(f"{p} = sqrt({rule}), u_i = (f_i - center_i) / scale_i with f the 13 pixel statistics "
                            f"params.pixelFeatures (see pixelFeaturesFormula), over params.pixelGaussian")
        elif p == "featMaha":
            raise ValueError("featMaha needs penultimate features the artifacts do not export")
    if combo:
        params["standardize"] = {p: {"mean": fit.stats[p][0], "std": fit.stats[p][1]} for p in parts}
        op = "max" if combo[0] == "max" else "sum"
        formulas.append(f"score = {op}(" + ", ".join(f"({p} - standardize.{p}.mean) / standardize.{p}.std" for p in parts) + ")")
    else:
        formulas.append(f"score = {name}")
    fit_rate = rate if fit_rate is None else fit_rate
    formulas.append(f"flagged = score > threshold (threshold: the validation split's {1 - fit_rate:.2%} quantile)")
    block = {
        "score": name,
        "description": describe(name),
        "formula": "; ".join(formulas),
        "threshold": threshold,
        "falseFlagRate": rate,
        "validationFlagRate": round(fit_rate, 6),
        "higherIsMoreUnusual": True,
        "inputs": "the 784 pixels the model is given (0..255, after the photo pipeline) and its 10 raw logits",
        "fittedOn": fitted_on,
        "params": params,
    }
    if any(p.startswith("pix") for p in parts):
        block["pixelFeaturesFormula"] = PIXEL_FEATURES_FORMULA
    return block


def describe(name: str) -> str:
    words = {
        "msp": "negated calibrated max softmax probability", "maxlogit": "negated max logit",
        "energy": "energy of the logits (-logsumexp)", "energyT": "energy at the calibration temperature",
        "logitMaha": "Mahalanobis distance of the logits to the nearest class mean",
        "pixGauss": "Mahalanobis distance of 13 pixel statistics to their training mean",
        "pixClass": "Mahalanobis distance of 13 pixel statistics to the nearest class mean",
        "pixPred": "Mahalanobis distance of 13 pixel statistics to the predicted class's mean",
        "featMaha": "Mahalanobis distance of the penultimate features (reference only)",
    }
    combo = parse_combo(name)
    if not combo:
        return words[name]
    op, parts = combo
    how = "the larger" if op == "max" else "the sum"
    return (f"{how} of two standardized scores (z-scores on the training split): " if len(parts) == 2 else f"{how} of standardized scores: ") + \
        "; ".join(words[p] for p in parts)


# ---- the CLI ------------------------------------------------------------------------------
def load_data(data_dir: str | None = None):
    return fdata.load(data_dir)


def train_fit_subset(ds, per_class: int = TRAIN_FIT_PER_CLASS, seed: int = 7) -> fdata.Split:
    idx = fdata.stratified_holdout(ds.train.labels, per_class, seed)
    return fdata.Split(ds.train.images[idx], ds.train.labels[idx])


def run(models: Path, out: Path, runs: Path, rate: float = FALSE_FLAG_RATE, dev_n: int = DEV_N, report_n: int = REPORT_N,
        guard_z: float = GUARD_Z,
        train_per_class: int = TRAIN_FIT_PER_CLASS, cache: Path | None = None, data_dir: str | None = None,
        run_overrides: dict[str, Path] | None = None, log=print) -> dict:
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
        (cache / ".gitignore").write_text("*\n")
    ds = load_data(data_dir)
    fit_split = train_fit_subset(ds, train_per_class)
    fit_rate = guarded_rate(rate, len(ds.val.labels), guard_z)
    log(f"data: fit on {len(fit_split.labels)} training images, threshold on {len(ds.val.labels)} validation, "
        f"report on {len(ds.test.labels)} test")
    dev_sets = oodsets.make_sets(oodsets.DEV_SEED, dev_n, ds.val.images)
    rep_sets = oodsets.make_sets(oodsets.REPORT_SEED, report_n, ds.test.images)
    log(f"OOD sets made ({time.time() - t0:.0f}s): dev {[s.name for s in dev_sets]}, report n={report_n}")

    per_model = {}
    for art in model_dirs(models):
        manifest = json.loads((art / "manifest.json").read_text())
        run_dir = (run_overrides or {}).get(manifest["name"]) or run_for(manifest, runs)
        m = Model(art, run_dir)
        parity = m.parity(ds.test.images)
        if parity > PARITY_TOL:
            raise AssertionError(f"{m.name}: PyTorch probabilities differ from {art}/parity/reference.json by {parity:.2e}")
        log(f"{m.name}: run {run_dir}, parity max |dp| {parity:.2e} on {PARITY_CHECK} test images")
        train_sig = m.signals(fit_split.images, cache)
        fit = fit_model(m.temperature, train_sig, fit_split.labels)
        val_sig = m.signals(ds.val.images, cache)
        test_sig = m.signals(ds.test.images, cache)
        dev = {s.name: (s.kind, m.signals(s.images, cache)) for s in dev_sets}
        rep = {s.name: (s.kind, m.signals(s.images, cache)) for s in rep_sets}
        log(f"{m.name}: signals computed ({time.time() - t0:.0f}s)")
        per_model[m.name] = dict(
            model=m, fit=fit, val=val_sig, test=test_sig,
            val_c=components(fit, val_sig), test_c=components(fit, test_sig),
            dev={k: (kind, components(fit, sig)) for k, (kind, sig) in dev.items()},
            rep={k: (kind, components(fit, sig)) for k, (kind, sig) in rep.items()})

    # ---- choose on validation + dev --------------------------------------------------
    candidates = {}
    for name in candidate_names():
        entry = {}
        for mname, d in per_model.items():
            thr = fit_threshold(score(d["fit"], d["val_c"], name), fit_rate)
            ev = evaluate(d["fit"], d["val_c"], d["val"].logits, ds.val.labels, d["dev"], name, thr)
            entry[mname] = {"threshold": thr, **summarize(ev), "sets": {k: v["auroc"] for k, v in ev["sets"].items()},
                            "accuracyAt90CoverageByOodScore": ev["inDistribution"]["accuracyAt90CoverageByOodScore"],
                            "accuracyAt90CoverageByConfidence": ev["inDistribution"]["accuracyAt90CoverageByConfidence"]}
        entry["selectable"] = "featMaha" not in name
        entry["minFarAuroc"] = float(np.mean([entry[k]["minFarAuroc"] for k in per_model]))
        entry["meanNearAuroc"] = float(np.mean([entry[k]["meanNearAuroc"] for k in per_model]))
        candidates[name] = entry
    def feasible(n: str) -> bool:
        return all(candidates[n][m]["minFarAuroc"] >= TARGET_AUROC and
                   candidates[n][m]["accuracyAt90CoverageByOodScore"] >= TARGET_ACCURACY_AT_90 for m in per_model)

    for n in candidates:
        candidates[n]["meetsTargets"] = feasible(n)
    pool = [n for n in candidates if candidates[n]["selectable"] and candidates[n]["meetsTargets"]] or \
        [n for n in candidates if candidates[n]["selectable"]]
    ranked = sorted(pool, key=lambda n: (round(candidates[n]["minFarAuroc"], 3), candidates[n]["meanNearAuroc"]), reverse=True)
    chosen = ranked[0]
    log(f"chosen on dev: {chosen} (worst far-OOD AUROC {candidates[chosen]['minFarAuroc']:.4f}, "
        f"meets the dev targets: {candidates[chosen]['meetsTargets']})")

    # ---- report once on test + report sets ----------------------------------------------
    report, blocks, curves = {}, {}, {}
    references = ["msp", "energy", "featMaha", "maxz(featMaha,pixClass)"]
    for mname, d in per_model.items():
        fit = d["fit"]
        val_score = score(fit, d["val_c"], chosen)
        thr = fit_threshold(val_score, fit_rate)
        report[mname] = evaluate(fit, d["test_c"], d["test"].logits, ds.test.labels, d["rep"], chosen, thr)
        report[mname]["threshold"] = thr
        report[mname]["validationFlagged"] = round(float((val_score > thr).mean()), 4)
        report[mname]["references"] = {}
        for ref in references:
            rthr = fit_threshold(score(fit, d["val_c"], ref), fit_rate)
            report[mname]["references"][ref] = evaluate(fit, d["test_c"], d["test"].logits, ds.test.labels, d["rep"], ref, rthr)
        fitted_on = (f"parameters: {len(fit_split.labels)} training-split images ({train_per_class} per class, seed 7); "
                     f"threshold: the {len(ds.val.labels)} validation-split images (500 per class, split seed 20260101); "
                     f"method chosen on validation + dev OOD sets (pctrain.ood, oodsets seed {oodsets.DEV_SEED}); no OOD image fitted")
        blocks[mname] = manifest_block(fit, chosen, thr, rate, d["model"], fitted_on, fit_rate)
        (out / f"ood-manifest-{mname}.json").write_text(json.dumps(blocks[mname], indent=1) + "\n")
        id_score = score(fit, d["test_c"], chosen)
        correct = d["test"].logits.argmax(1) == ds.test.labels
        curves[mname] = {"confidence": risk_coverage(d["test_c"]["msp"], correct), "ood": risk_coverage(id_score, correct),
                         "joint": risk_coverage(joint_key(d["test_c"]["msp"], id_score, thr), correct)}

    vectors = make_vectors(per_model, chosen, fit_rate, ds, dev_sets, rep_sets)
    (out / "ood-vectors.json").write_text(json.dumps(vectors) + "\n")
    result = {
        "command": "cd training && /usr/bin/python3 -m pctrain.ood --models ../models --out results",
        "falseFlagRate": rate, "validationFlagRate": fit_rate, "guardZ": guard_z, "chosen": chosen,
        "selection": (f"among the methods that meet, for every model, worst far-OOD AUROC >= {TARGET_AUROC} on the dev sets and "
                      f"accuracy >= {TARGET_ACCURACY_AT_90} of the answered at 90% coverage abstaining by the score (validation): "
                      "the highest worst-case far-OOD AUROC (mean over models), ties by mean near-OOD AUROC"),
        "dev": {"seed": oodsets.DEV_SEED, "n": dev_n, "inDistribution": "validation split", "candidates": candidates},
        "report": {"seed": oodsets.REPORT_SEED, "n": report_n, "inDistribution": "test split", "models": report},
        "models": {mname: {"artifact": str(d["model"].artifact), "run": str(d["model"].run),
                           "temperature": d["model"].temperature} for mname, d in per_model.items()},
        "sets": {s.name: {"kind": s.kind, "description": s.description} for s in rep_sets},
        "manifestBlocks": {mname: f"ood-manifest-{mname}.json" for mname in blocks},
        "seconds": round(time.time() - t0, 1),
        "logitsCached": cache is not None,
    }
    (out / "ood.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "ood.md").write_text(markdown(result))
    plot_curves(curves, out / "ood-risk-coverage.png", chosen)
    log(f"wrote {out}/ood.json, ood.md, ood-risk-coverage.png, ood-vectors.json, ood-manifest-*.json ({time.time() - t0:.0f}s)")
    return result


def make_vectors(per_model: dict, chosen: str, rate: float, ds, dev_sets, rep_sets, k: int = VECTORS_PER_SET) -> dict:
    """k fixed images per set (validation, test, each report OOD set) with each model's logits and score."""
    rng = np.random.default_rng(31)
    groups = {"validation": ds.val.images, "test": ds.test.images, **{s.name: s.images for s in rep_sets}}
    out = {"description": ("Parity vectors for the Node OOD score: pixels (base64 of the 784 uint8 pixels, row-major), "
                           "each model's raw float32 logits (PyTorch), the pixel statistics, the score components and the "
                           "expected score and flag. Recompute the score from pixels + logits with the manifest block (float64): expect |diff| < 1e-9."),
           "score": chosen, "models": {}, "sets": {}}
    for mname, d in per_model.items():
        out["models"][mname] = {"threshold": fit_threshold(score(d["fit"], d["val_c"], chosen), rate)}
    for gname, imgs in groups.items():
        idx = np.sort(rng.choice(len(imgs), size=min(k, len(imgs)), replace=False))
        sel = imgs[idx]
        rows = []
        feats = pixel_features(sel)
        per = {}
        for mname, d in per_model.items():
            sig = d["model"].signals(sel)
            comps = components(d["fit"], sig, with_features=False)
            sc = score(d["fit"], comps, chosen)
            parts = (parse_combo(chosen) or ("", [chosen]))[1]
            per[mname] = (sig.logits, sc, {p: comps[p] for p in parts})
        for i in range(len(sel)):
            rows.append({
                "pixels": base64.b64encode(sel[i].astype(np.uint8).tobytes()).decode(),
                "pixelFeatures": [float(v) for v in feats[i]],
                "models": {mname: {"logits": [float(v) for v in per[mname][0][i]],
                                   "components": {p: float(c[i]) for p, c in per[mname][2].items()},
                                   "score": float(per[mname][1][i]),
                                   "flagged": bool(per[mname][1][i] > out["models"][mname]["threshold"])}
                           for mname in per},
            })
        out["sets"][gname] = rows
    return out


def markdown(r: dict) -> str:
    lines = [f"# OOD score: `{r['chosen']}`", "",
             f"Reproduce: `{r['command']}` (this run {r['seconds']:.0f} s"
             f"{', logits read from a --cache of an earlier run' if r.get('logitsCached') else ''}). Target in-distribution false-flag rate {r['falseFlagRate']:.0%}: "
             f"the threshold is the validation split's {1 - r['validationFlagRate']:.2%} quantile ({r['validationFlagRate']:.2%} flagged there, "
             f"{r['guardZ']} binomial standard errors under the target, so new in-distribution data stays under it).", "",
             f"Selection: {r['selection']}.", ""]
    models = list(r["report"]["models"])
    lines += ["## Report (test split as in-distribution, report OOD sets, seed %d, %d images per set)" % (r["report"]["seed"], r["report"]["n"]), ""]
    for m in models:
        ev = r["report"]["models"][m]
        idd = ev["inDistribution"]
        lines += [f"### {m}", "",
                  f"Threshold {ev['threshold']:.4f}; flagged: validation {ev['validationFlagged']:.2%}, test {idd['flaggedAtThreshold']:.2%}. "
                  f"Test accuracy {idd['accuracy']:.2%}; at 90% coverage: {idd['accuracyAt90CoverageByConfidence']:.2%} by confidence, "
                  f"{idd['accuracyAt90CoverageByOodScore']:.2%} by the OOD score, {idd['accuracyAt90CoverageJoint']:.2%} by the joint rule "
                  f"(flagged images out first, then the least confident); accuracy of the unflagged {idd['accuracyOfUnflagged']:.2%}.", "",
                  "| set | kind | AUROC | FPR@95TPR | flagged at threshold | " + " | ".join(f"AUROC {k}" for k in ev["references"]) + " |",
                  "|---|---|---|---|---|" + "---|" * len(ev["references"])]
        for s, v in ev["sets"].items():
            refs = " | ".join(f"{ev['references'][k]['sets'][s]['auroc']:.4f}" for k in ev["references"])
            lines.append(f"| {s} | {v['kind']} | {v['auroc']:.4f} | {v['fprAt95Tpr']:.4f} | {v['flaggedAtThreshold']:.2%} | {refs} |")
        lines.append("")
    lines += ["## Selection (validation as in-distribution, dev OOD sets, seed %d)" % r["dev"]["seed"], "",
              "Worst far-OOD AUROC and mean near-OOD AUROC, mean over models; per-model worst far AUROC; accuracy at 90% coverage by the score (validation). "
              "`featMaha` needs the penultimate features (not exported): reference only. ✗: misses a dev target for some model "
              "(listed after the methods that meet them).", "",
              "| candidate | worst far AUROC | mean near AUROC | " + " | ".join(f"{m} worst far | {m} acc@90 by score" for m in models) + " |",
              "|---|---|---|" + "---|---|" * len(models)]
    cands = r["dev"]["candidates"]
    for n in sorted(cands, key=lambda n: (not cands[n]["meetsTargets"], -round(cands[n]["minFarAuroc"], 3), -cands[n]["meanNearAuroc"])):
        c = cands[n]
        mark = " (chosen)" if n == r["chosen"] else ("" if c["selectable"] else " (reference)")
        mark += "" if c["meetsTargets"] else " ✗"
        lines.append(f"| `{n}`{mark} | {c['minFarAuroc']:.4f} | {c['meanNearAuroc']:.4f} | " +
                     " | ".join(f"{c[m]['minFarAuroc']:.4f} | {c[m]['accuracyAt90CoverageByOodScore']:.4f}" for m in models) + " |")
    lines += ["", "Per-set dev AUROC of the chosen score:", "", "| set | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for s in cands[r["chosen"]][models[0]]["sets"]:
        lines.append(f"| {s} | " + " | ".join(f"{cands[r['chosen']][m]['sets'][s]:.4f}" for m in models) + " |")
    return "\n".join(lines) + "\n"


def plot_curves(curves: dict, path: Path, chosen: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(curves), figsize=(5.5 * len(curves), 4.2), squeeze=False)
    for ax, (mname, c) in zip(axes[0], curves.items()):
        for key, label, style in (("confidence", "by confidence (max softmax)", "-"), ("ood", f"by OOD score ({chosen})", "--"),
                                  ("joint", "flagged first, then by confidence", ":")):
            cov, acc = c[key]
            ax.plot(cov, acc, style, label=label)
        ax.axvline(0.9, color="grey", lw=0.8, ls=":")
        ax.axhline(0.975, color="red", lw=0.8, ls=":", label="target 97.5% at 90% coverage")
        ax.set_title(f"{mname}: Fashion-MNIST test")
        ax.set_xlabel("coverage (fraction answered)")
        ax.set_ylabel("accuracy of the answered")
        ax.set_ylim(0.9, 1.001)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_manifest_blocks(models: Path, out: Path) -> list[Path]:
    """Put each fitted block (out/ood-manifest-<name>.json) under "ood" in the manifest of the version it was
    fitted for (the highest of each name, as run() evaluates), keeping the manifest's one-space indent."""
    written = []
    for d in model_dirs(models):
        path = d / "manifest.json"
        manifest = json.loads(path.read_text())
        block = out / f"ood-manifest-{manifest['name']}.json"
        if not block.is_file():
            continue
        manifest["ood"] = json.loads(block.read_text())
        path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        written.append(path)
    return written


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=Path("../models"))
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--run", action="append", default=[], metavar="NAME=DIR", help="the run a model was packaged from (default runs/<name>-seed<seed>)")
    p.add_argument("--rate", type=float, default=FALSE_FLAG_RATE, help="target in-distribution false-flag rate")
    p.add_argument("--guard-z", type=float, default=GUARD_Z,
                   help="fit the threshold at rate - z * binomial s.e. on validation, so new data stays under rate (0: no guard)")
    p.add_argument("--dev-n", type=int, default=DEV_N)
    p.add_argument("--report-n", type=int, default=REPORT_N)
    p.add_argument("--train-per-class", type=int, default=TRAIN_FIT_PER_CLASS)
    p.add_argument("--cache", type=Path, default=None, help="directory to keep logits and features in between runs")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--write-manifests", action="store_true",
                   help="also put each fitted block under \"ood\" in its model's manifest.json (what a new version ships)")
    a = p.parse_args(argv)
    overrides = dict((k, Path(v)) for k, v in (s.split("=", 1) for s in a.run))
    r = run(a.models, a.out, a.runs, a.rate, a.dev_n, a.report_n, a.guard_z, a.train_per_class, a.cache, a.data_dir, overrides)
    print(json.dumps({"chosen": r["chosen"], "models": {m: {"threshold": v["threshold"], "testFlagged": v["inDistribution"]["flaggedAtThreshold"],
                      "minFarAuroc": summarize(v)["minFarAuroc"]} for m, v in r["report"]["models"].items()}}))
    if a.write_manifests:
        for path in write_manifest_blocks(a.models, a.out):
            print(f"wrote the ood block into {path}")


if __name__ == "__main__":
    main()
