"""The dendrite study's machine-readable results: one object per run and arm
in `results/study.json` (an array), so every comparison can be recomputed.

    python3 -m pctrain.study --run runs/study/frontier/plain-w0.5-seed1 --experiment frontier \
        --kind plain --seed 1 --width 0.5

(`python3 -m pctrain.experiments` records every run of the study this way.)
Each object: experiment, kind, seed, width (frontier), dataFraction
(limited data), dendritesPerNeuron, parameters, macs, validationAccuracy,
testAccuracy and run (the path of a directory under training/runs/ holding
the run's config, history and test predictions, e.g.
`study/frontier/dendritic-seed1`). The model recorded is the run's
validation-chosen best checkpoint; its test predictions are computed once
and cached beside its weights (`test-predictions.json`), so recording a run
again reads the test set no second time. A run recorded again as the same
kind replaces its earlier object.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from . import data as fdata
from .checkpoints import write_text_atomic
from .compare import test_predictions
from .dendrites import dendrite_counts
from .nets import count_macs, count_params
from .package import load_run

EXPERIMENTS = ("shipped-base", "frontier", "limited-data", "dendrite-count")
KINDS = ("dendritic", "dendritic-pb", "continued", "param-matched", "mac-matched", "plain", "base")


def run_name(run: Path, runs: Path | None = None) -> str:
    """The run's directory as a path under `runs` (training/runs/), else its own name."""
    if runs is not None:
        try:
            return run.resolve().relative_to(runs.resolve()).as_posix()
        except ValueError:
            pass
    return run.name


def entry(run: Path, experiment: str, kind: str, seed: int, ds: fdata.FashionMnist,
          width: float | None = None, data_fraction: float | None = None, runs: Path | None = None) -> dict:
    """`run`'s study object. width: required in the frontier experiment; dataFraction: in the
    limited-data one; the dendrite-count sweep carries whichever its setting has."""
    if experiment not in EXPERIMENTS:
        raise ValueError(f"experiment {experiment!r} is not one of {', '.join(EXPERIMENTS)}")
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    sweep = experiment == "dendrite-count"
    if (experiment == "frontier") != (width is not None) and not sweep:
        raise ValueError("width is given for the frontier experiment (or the dendrite-count sweep), and only there")
    if (experiment == "limited-data") != (data_fraction is not None) and not sweep:
        raise ValueError("dataFraction is given for the limited-data experiment (or the dendrite-count sweep), "
                         "and only there")
    model, meta, ck = load_run(run)
    pred = test_predictions(run, model, meta, ck, ds)
    return {
        "experiment": experiment, "kind": kind, "seed": seed,
        **({"width": width} if width is not None else {}),
        **({"dataFraction": data_fraction} if data_fraction is not None else {}),
        "dendritesPerNeuron": max(dendrite_counts(model).values(), default=0),
        "parameters": count_params(model), "macs": count_macs(model),
        "validationAccuracy": float(ck["best_val"]), "testAccuracy": float((pred == ds.test.labels).mean()),
        "run": run_name(run, runs),
    }


def record(study: Path, row: dict) -> list[dict]:
    """Add `row` to the study file, replacing an earlier object of the same run and kind (one
    run may stand for two arms: both matched controls, when growth kept no dendrites)."""
    rows = json.loads(study.read_text()) if study.exists() else []
    rows = [r for r in rows if (r["run"], r["kind"]) != (row["run"], row["kind"])] + [row]
    study.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(study, json.dumps(rows, indent=1) + "\n")
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True)
    p.add_argument("--experiment", choices=EXPERIMENTS, required=True)
    p.add_argument("--kind", choices=KINDS, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--width", type=float, default=None)
    p.add_argument("--data-fraction", type=float, default=None)
    p.add_argument("--study", type=Path, default=Path("results/study.json"))
    p.add_argument("--runs", type=Path, default=Path("runs"), help="run names are recorded relative to this")
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    row = entry(a.run, a.experiment, a.kind, a.seed, fdata.load(a.data_dir), a.width, a.data_fraction, a.runs)
    record(a.study, row)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
