"""The search for a better baseline recipe (models/baseline/2), on the
validation split only, one training at a time, resumable.

    python3 -m pctrain.recipe --runs runs            # run or resume the whole ladder
    python3 -m pctrain.recipe --runs runs --plan     # print the decisions so far

A greedy ladder, each rung one change against the best recipe so far, kept
only when its best validation accuracy beats that recipe's (seed 1, every
rung the same epochs, so the comparison is one change at a time):

  arch      the current 4-conv network widened (48-48-96-96) against a
            deeper 6-conv one (40-40-80-80-160-160, three pools)
  erase     + random erasing (p 0.5)
  ema       + an EMA of the weights (decay 0.999), batch norm recomputed
  cutmix    + CutMix on half the batches
  distill   + distillation from the ensemble of the rungs above (arch x2, erase, ema, cutmix)
  long      the recipe so far, trained for `--long-epochs` instead
then the final recipe for seeds 1-3 (`runs/baseline2-seedN`; seed 1 is
the chosen rung's own run, so it is not trained twice). Every run's choice and validation figure is
written to `results/recipe.json` and `results/recipe.md`. The test set is
never read here: `pctrain.compare` reads it once per final model.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PY = sys.executable
WIDE = ["--channels", "48", "48", "96", "96", "--pool-after", "1", "3", "--dense", "256"]
DEEP = ["--channels", "40", "40", "80", "80", "160", "160", "--pool-after", "1", "3", "5", "--dense", "256"]
COMMON = ["--bf16"]
# The distillation teachers: the ladder's own runs before the distill rung (two shapes, 94.8-95.0% on
# validation each). The first study's twelve runs (93.9-94.8%) would teach a student already above them.
TEACHER_FILE = "ensemble-recipe5.pt"
TEACHERS = ["recipe-arch-wide", "recipe-arch-deep", "recipe-erase", "recipe-ema", "recipe-cutmix"]


@dataclass
class Rung:
    name: str
    change: str
    args: list[str]
    alternatives: dict[str, list[str]] = field(default_factory=dict)  # first rung: pick one of these


def ladder(teacher_file: str) -> list[Rung]:
    return [
        Rung("arch", "network shape", [], {"wide": WIDE, "deep": DEEP}),
        Rung("erase", "random erasing p 0.5", ["--erase-p", "0.5"]),
        Rung("ema", "EMA of weights 0.999, batch norm recomputed", ["--ema", "0.999"]),
        Rung("cutmix", "CutMix (alpha 1) on half the batches", ["--mix", "cutmix", "--mix-p", "0.5"]),
        Rung("distill", "distillation (alpha 0.5, T 2) from the ensemble of the 5 runs above", ["--distill", teacher_file]),
    ]


def best_val(run: Path) -> float:
    ck_cfg = json.loads((run / "config.json").read_text())
    hist = json.loads((run / "history.json").read_text())
    bn = ck_cfg.get("bn_recomputed")
    if bn and bn["kept"]:
        return bn["val_after"]
    return max(r["val_acc"] for r in hist)


def train(run: Path, args: list[str], seed: int, epochs: int) -> float:
    if not (run / "final.pt").exists():
        cmd = [PY, "-m", "pctrain.train", "--out", str(run), "--seed", str(seed), "--epochs", str(epochs),
               *COMMON, *args]
        print("==", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return best_val(run)


def teachers(runs: Path, out: Path) -> None:
    if not out.exists():
        cmd = [PY, "-m", "pctrain.distill", "--out", str(out), "--teachers", *(str(runs / t) for t in TEACHERS)]
        print("==", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)


def run_ladder(runs: Path, epochs: int, long_epochs: int, seeds: list[int], results: Path, plan: bool) -> list[dict]:
    teacher_file = runs / "teachers" / TEACHER_FILE
    rows: list[dict] = []
    best_args: list[str] = []
    best_run = ""
    best = -1.0

    def step(name: str, args: list[str], change: str, ep: int) -> float | None:
        run = runs / f"recipe-{name}"
        if plan and not (run / "final.pt").exists():
            rows.append({"run": run.name, "change": change, "epochs": ep, "val": None})
            return None
        val = train(run, args, 1, ep)
        rows.append({"run": run.name, "change": change, "epochs": ep, "val": val, "args": args})
        return val

    for rung in ladder(str(teacher_file)):
        if rung.name == "distill" and not plan:
            teachers(runs, teacher_file)
        if rung.alternatives:
            for alt, args in rung.alternatives.items():
                val = step(f"{rung.name}-{alt}", args, f"{rung.change}: {alt}", epochs)
                if val is None:
                    return finish(rows, results)
                if val > best:
                    best, best_args, best_run = val, args, f"recipe-{rung.name}-{alt}"
            for r in rows:
                r["chosen"] = r.get("args") == best_args
            continue
        args = best_args + rung.args
        val = step(rung.name, args, rung.change, epochs)
        if val is None:
            return finish(rows, results)
        rows[-1]["kept"] = val > best
        if val > best:
            best, best_args, best_run = val, args, f"recipe-{rung.name}"
    val = step("long", best_args, f"the recipe so far at {long_epochs} epochs", long_epochs)
    if val is None:
        return finish(rows, results)
    rows[-1]["kept"] = val > best
    if val > best:
        best, best_run = val, "recipe-long"
    final_epochs = long_epochs if best_run == "recipe-long" else epochs
    for seed in seeds:
        run = runs / f"baseline2-seed{seed}"
        if seed == 1:  # the chosen rung's own run is seed 1 of the final recipe: no identical rerun
            if not plan and not run.exists():
                runs.mkdir(parents=True, exist_ok=True)
                run.symlink_to(best_run)  # relative: the link works in any checkout
            rows.append({"run": run.name, "final": True, "same_as": best_run, "seed": 1,
                         "val": best, "epochs": final_epochs})
            continue
        if plan and not (run / "final.pt").exists():
            rows.append({"run": run.name, "final": True, "seed": seed, "val": None, "epochs": final_epochs})
            continue
        rows.append({"run": run.name, "final": True, "seed": seed, "epochs": final_epochs,
                     "val": train(run, best_args, seed, final_epochs), "args": best_args})
    return finish(rows, results)


def finish(rows: list[dict], results: Path) -> list[dict]:
    results.mkdir(parents=True, exist_ok=True)
    (results / "recipe.json").write_text(json.dumps(rows, indent=1))
    lines = ["| run | change | epochs | best validation accuracy | decision |", "|---|---|---|---|---|"]
    for r in rows:
        val = "not run yet" if r["val"] is None else f"{100 * r['val']:.2f}%"
        decision = ("final, seed %d" % r["seed"] if r.get("final") else
                    "chosen" if r.get("chosen") else "kept" if r.get("kept") else
                    "not kept" if "kept" in r or "chosen" in r else "")
        lines.append(f"| {r['run']} | {r.get('change', 'final recipe')} | {r['epochs']} | {val} | {decision} |")
    (results / "recipe.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--results", type=Path, default=Path("results"))
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--long-epochs", type=int, default=60)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--plan", action="store_true", help="train nothing; show the decisions of the runs finished")
    a = p.parse_args(argv)
    run_ladder(a.runs, a.epochs, a.long_epochs, a.seeds, a.results, a.plan)


if __name__ == "__main__":
    main()
