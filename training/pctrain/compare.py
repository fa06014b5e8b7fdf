"""Baseline vs dendritic vs parameter-matched control, measured on the test set.

    python3 -m pctrain.compare --runs runs --out results

Reads every finished run in `runs/` named `<kind>-seed<N>` (kinds: baseline,
dendritic, dendritic-pb, control), evaluates its best checkpoint on the official test set,
and writes `comparison.json` and `comparison.md`: mean and standard deviation
over seeds of test accuracy, parameters, multiply-accumulates and training
time, plus McNemar's exact test between models of the same seed (`PAIRS`;
seed 1 baseline and dendritic are the shipped pair). The test set informs no choice
here: every model was selected on the validation split before this runs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np

from . import data as fdata
from .checkpoints import write_text_atomic
from .dendrites import dendrite_counts
from .nets import count_macs, count_params
from .train import predict_logits, to_tensor

KINDS = ("baseline", "dendritic", "dendritic-pb", "control", "baseline2")
NAMES = {"baseline": "Baseline CNN", "dendritic": "Dendritic CNN",
         "dendritic-pb": "Dendritic CNN, perforated dendrite phase", "control": "Parameter-matched control",
         "baseline2": "Baseline CNN, second recipe (baseline/2)"}
RUN_NAME = re.compile(r"^(baseline|dendritic|dendritic-pb|control|baseline2)-seed(\d+)$")
# McNemar pairs (A, B), each on the seeds both have: A right and B wrong vs A wrong and B right.
PAIRS = (("baseline", "dendritic"), ("control", "dendritic"), ("baseline", "dendritic-pb"),
         ("dendritic", "dendritic-pb"), ("baseline", "baseline2"))


def mcnemar(a_correct: np.ndarray, b_correct: np.ndarray) -> dict:
    """McNemar's exact (binomial) test on paired right/wrong outcomes.

    b01: A right and B wrong; b10: A wrong and B right. Under the null
    hypothesis (same error rate) the discordant pairs split 50/50.
    """
    a = np.asarray(a_correct, dtype=bool)
    b = np.asarray(b_correct, dtype=bool)
    b01 = int(np.sum(a & ~b))
    b10 = int(np.sum(~a & b))
    n = b01 + b10
    k = min(b01, b10)
    # two-sided exact p = min(1, 2 * P[X <= k]), X ~ Binomial(n, 1/2), in log space
    if n == 0:
        p = 1.0
    else:
        logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
        top = max(logs)
        p = min(1.0, 2 * math.exp(top) * sum(math.exp(x - top) for x in logs))
    return {"aRightBWrong": b01, "aWrongBRight": b10, "discordant": n, "pValue": p}


def mean_std(values: list[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def model_digest(meta: dict, ck: dict) -> str:
    """SHA-256 of a model's weights and input normalization: the same for `best.pt` and the slim `final.pt`."""
    h = hashlib.sha256(json.dumps(meta["normalization"], sort_keys=True).encode())
    for name, t in sorted(ck["model"].items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


PREDICTIONS = "test-predictions.json"


def test_predictions(run: Path, model, meta: dict, ck: dict, ds: fdata.FashionMnist) -> np.ndarray:
    """The run's predicted class for each test image, cached in the run beside its weights.

    The cache (`test-predictions.json`, committed with the run) is keyed by
    `model_digest`, so changed weights are evaluated again; it lets anyone
    recompute the McNemar tables without the checkpoints, and lets this
    script re-run in seconds once a run has been evaluated.
    """
    digest = model_digest(meta, ck)
    cache = run / PREDICTIONS
    if cache.exists():
        try:
            saved = json.loads(cache.read_text())
        except ValueError:  # unreadable (a write cut short before writes were atomic): computed again
            saved = {}
        if saved.get("modelSha256") == digest and len(saved["predictions"]) == len(ds.test.labels):
            return np.asarray(saved["predictions"], dtype=np.int64)
    mean, std = meta["normalization"]["mean"], meta["normalization"]["std"]
    pred = predict_logits(model, to_tensor(ds.test.images, mean, std)).argmax(1).numpy()
    write_text_atomic(cache, json.dumps({"modelSha256": digest, "testSet": "Fashion-MNIST t10k",
                                         "predictions": pred.tolist()}, separators=(",", ":")) + "\n")
    return pred


def evaluate_run(run: Path, ds: fdata.FashionMnist) -> dict:
    from .package import load_run

    model, meta, ck = load_run(run)
    pred = test_predictions(run, model, meta, ck, ds)
    # The whole run, not just up to its best epoch: a growth run goes on past
    # its best to know it is the best. A dendritic run adds its base's time.
    seconds = meta.get("wall_seconds", ck["train_seconds"]) + meta.get("base_train_seconds", 0.0)
    return {
        "run": run.name, "correct": pred == ds.test.labels,
        "testAccuracy": float((pred == ds.test.labels).mean()), "validationAccuracy": float(ck["best_val"]),
        "parameters": count_params(model), "macs": count_macs(model), "trainSeconds": float(seconds),
        "epochs": int(ck["epoch"]), "dendrites": dendrite_counts(model),
    }


def compare(runs: Path, data_dir: str | None = None) -> dict:
    found: dict[str, dict[int, Path]] = {k: {} for k in KINDS}
    for d in sorted(runs.iterdir()):
        m = RUN_NAME.match(d.name)
        if m and (d / "final.pt").exists() and (d / "config.json").exists():  # finished runs only
            found[m.group(1)][int(m.group(2))] = d
    ds = fdata.load(data_dir)
    evaluated = {k: {s: evaluate_run(p, ds) for s, p in sorted(v.items())} for k, v in found.items()}
    summary = {}
    for kind, by_seed in evaluated.items():
        if not by_seed:
            continue
        rows = list(by_seed.values())
        summary[kind] = {
            "seeds": sorted(by_seed),
            **{f: mean_std([r[f] for r in rows]) for f in ("testAccuracy", "parameters", "macs", "trainSeconds")},
            "runs": [{k: v for k, v in r.items() if k != "correct"} for r in rows],
        }

    def paired(a: str, b: str) -> dict:
        seeds = sorted(set(evaluated[a]) & set(evaluated[b]))
        return {str(s): mcnemar(evaluated[a][s]["correct"], evaluated[b][s]["correct"]) for s in seeds}

    mcnemars = {f"{a} vs {b}": paired(a, b) for a, b in PAIRS}
    return {"testSet": "Fashion-MNIST t10k (10,000 images)", "summary": summary,
            "mcnemar": {k: v for k, v in mcnemars.items() if v}}


def markdown(result: dict) -> str:
    lines = ["| model | seeds | test accuracy (mean ± std) | parameters | MACs / image | training time |",
             "|---|---|---|---|---|---|"]
    for kind, s in result["summary"].items():
        acc, p, m, t = s["testAccuracy"], s["parameters"], s["macs"], s["trainSeconds"]
        lines.append(f"| {NAMES[kind]} | {', '.join(map(str, s['seeds']))} | {100 * acc['mean']:.2f}% ± {100 * acc['std']:.2f} "
                     f"| {p['mean']:,.0f} | {m['mean'] / 1e6:.1f} M | {t['mean'] / 60:.0f} ± {t['std'] / 60:.0f} min |")
    lines += ["", "| run | test accuracy | validation accuracy | dendrites per wrapped layer | parameters | epochs to best | training time |",
              "|---|---|---|---|---|---|---|"]
    for s in result["summary"].values():
        for r in s["runs"]:
            counts = r.get("dendrites") or {}
            dend = (f"{next(iter(set(counts.values())))} on {', '.join(counts)}" if len(set(counts.values())) == 1
                    else ", ".join(f"{k}: {v}" for k, v in counts.items())) if counts else "none"
            lines.append(f"| {r['run']} | {100 * r['testAccuracy']:.2f}% | {100 * r['validationAccuracy']:.2f}% | {dend} "
                         f"| {r['parameters']:,} | {r['epochs']} | {r['trainSeconds'] / 60:.0f} min |")
    for pair, by_seed in result["mcnemar"].items():
        a, b = pair.split(" vs ")
        lines += ["", f"| seed | {a} right, {b} wrong | {a} wrong, {b} right | McNemar exact p |", "|---|---|---|---|"]
        for seed, r in by_seed.items():
            lines.append(f"| {seed} | {r['aRightBWrong']} | {r['aWrongBRight']} | {r['pValue']:.3g} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--out", type=Path, default=Path("results"))
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    result = compare(a.runs, a.data_dir)
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "comparison.json").write_text(json.dumps(result, indent=1) + "\n")
    (a.out / "comparison.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
