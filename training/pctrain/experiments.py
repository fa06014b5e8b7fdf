"""The dendrite study as one resumable plan: every arm of its four
experiments, trained one at a time and recorded in `results/study.json`.

    python3 -m pctrain.experiments --runs runs                    # run or resume it all
    python3 -m pctrain.experiments --runs runs --only frontier    # one setting (see SETTINGS)
    python3 -m pctrain.experiments --runs runs --plan             # list the steps, train nothing

A *setting* is a base network on a share of the data; on each seed of a
setting the plan trains (or, for the shipped base, reuses) the base, grows
dendrites on it with the fair schedule (`GROWTH`), runs the
continued-training control (the same cycles, no dendrites), then trains
the plain network widened to the dendritic model's parameters and to its
MACs (`pctrain.matched`, the dendritic model's whole epoch budget). The
frontier setting also trains the plain family at every width of `WIDTHS`.
The dendrite-count sweep comes after the other settings: it grows 1, 2, 4
and 8 dendrites per neuron in one addition on the setting whose dendrites
gained most over their continued control on *validation* (mean over
seeds), so the test set chooses nothing.

Every step is a `pctrain.train` or `pctrain.grow` command run as a child
process (output appended to the terminal or log this runs under); a step
whose directory holds `final.pt` is finished and skipped, and a stopped one
resumes from its `last.pt`, so re-running this command after any stop goes
on where it was. Each finished run is recorded at once (`pctrain.study`:
its test predictions are computed once and cached beside it). Runs live
under `runs/study/<setting>/`.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .matched import controls, widen
from .nets import CnnConfig

PY = sys.executable
STUDY_DIR = "study"
SEEDS = (1, 2, 3)
# The frontier's plain family beside the base (width 1); x3 so the curve reaches past a fully grown
# model (3 dendrites a neuron: 469k parameters and 18.9 M MACs, just above x2's 468k and 18.7 M).
WIDTHS = (0.5, 0.75, 1.5, 2.0, 3.0)
COUNTS = (1, 2, 4, 8)            # dendrites per neuron in the count sweep
LAYERS = ("conv1", "conv2", "conv3", "conv4", "fc1")  # convolutional and linear neurons
ONE_CYCLE = ("--max-retries", "0")  # the count sweep: after GROWTH's retry option, so it wins

# The fair growth schedule, fixed before any run of this study (docs/dendrites.md says why each):
# a cycle is judged once its learning-rate decay has run out, a new best must gain 0.1 point of
# validation accuracy, each cycle warms up for one epoch and anneals from 1e-3, no weight decay on
# dendrites and normalization parameters, new dendrites start small behind a norm scale of 0.1,
# one retry with fresh dendrites after a cycle that failed.
GROWTH = ["--judge-at-end", "--warmup-epochs", "1", "--min-delta", "0.001", "--max-lr", "1e-3",
          "--max-retries", "1", "--no-decay-norm-dendrites", "--dendrite-bn-scale", "0.1"]


@dataclass(frozen=True)
class Setting:
    """A base network and data share that dendrites are grown on."""

    name: str                  # directory under runs/study/
    experiment: str            # study.json's experiment
    net: CnnConfig
    base_epochs: int
    cycle_epochs: int
    max_additions: int
    data_fraction: float | None = None
    widths: tuple[float, ...] = ()
    shipped_base: bool = False  # the bases are runs/baseline-seedN, already trained
    train_args: tuple[str, ...] = ("--bf16",)
    # Extra pctrain.grow options. The shipped bases were trained in float32; their growth, the continued
    # control and (through pctrain.matched) the matched controls all run in bfloat16, about 3.5 times
    # faster per multiply-accumulate on these cores.
    grow_args: tuple[str, ...] = ()

    def base_run(self, runs: Path, seed: int) -> Path:
        return runs / f"baseline-seed{seed}" if self.shipped_base else self.dir(runs) / f"base-seed{seed}"

    def dir(self, runs: Path) -> Path:
        return runs / STUDY_DIR / self.name

    def record_fields(self, width: float | None = 1.0) -> dict:
        """The width / dataFraction fields study.json wants for this setting's experiment."""
        return {"width": width if self.experiment == "frontier" else None,
                "data_fraction": self.data_fraction if self.experiment == "limited-data" else None}


SMALL = CnnConfig(conv_channels=(16, 16, 32, 32), dense=64)  # about 117k parameters, 4.7 M MACs
SHIPPED = CnnConfig()                                          # baseline/1's network
SETTINGS = (
    Setting("frontier", "frontier", SMALL, base_epochs=15, cycle_epochs=5, max_additions=3, widths=WIDTHS),
    Setting("limited-10", "limited-data", SHIPPED, base_epochs=40, cycle_epochs=10, max_additions=3,
            data_fraction=0.10),
    Setting("limited-5", "limited-data", SHIPPED, base_epochs=40, cycle_epochs=10, max_additions=3,
            data_fraction=0.05),
    Setting("shipped-base", "shipped-base", SHIPPED, base_epochs=15, cycle_epochs=5, max_additions=3,
            shipped_base=True, grow_args=("--bf16",)),
)
SWEEP_FROM = ("frontier", "limited-10", "limited-5")  # the count sweep runs on the best of these


@dataclass
class Step:
    out: Path
    kind: str
    seed: int
    command: list[str] | None    # None: made when the step comes up (it needs a finished run)
    record: dict = field(default_factory=dict)   # width / data_fraction for study.json
    experiment: str = ""
    note: str = ""

    @property
    def finished(self) -> bool:
        return (self.out / "final.pt").exists()


def train_args(net: CnnConfig, epochs: int, seed: int, out: Path, s: Setting) -> list[str]:
    cmd = [PY, "-m", "pctrain.train", "--out", str(out), "--seed", str(seed), "--epochs", str(epochs),
           "--channels", *map(str, net.conv_channels), "--dense", str(net.dense),
           "--pool-after", *map(str, net.pool_after), *s.train_args]
    if s.data_fraction:
        cmd += ["--data-fraction", repr(s.data_fraction)]
    return cmd


def grow_args(base: Path, out: Path, seed: int, s: Setting, *extra: str, additions: int | None = None) -> list[str]:
    return [PY, "-m", "pctrain.grow", "--base", str(base), "--out", str(out), "--seed", str(seed),
            "--layers", *LAYERS, "--cycle-epochs", str(s.cycle_epochs),
            "--max-additions", str(additions or s.max_additions), *GROWTH, *s.grow_args, *extra]


def setting_steps(s: Setting, runs: Path, seeds=SEEDS) -> list[Step]:
    d, rec = s.dir(runs), s.record_fields()
    steps: list[Step] = []
    for seed in seeds:
        base = s.base_run(runs, seed)
        steps.append(Step(base, "base", seed, None if s.shipped_base else
                          train_args(s.net, s.base_epochs, seed, base, s), rec, s.experiment,
                          "trained before this study" if s.shipped_base else ""))
        for w in s.widths:
            out = d / f"plain-w{w:g}-seed{seed}"
            steps.append(Step(out, "plain", seed, train_args(widen(s.net, w), s.base_epochs, seed, out, s),
                              s.record_fields(w), s.experiment))
        dendritic = d / f"dendritic-seed{seed}"
        steps.append(Step(dendritic, "dendritic", seed, grow_args(base, dendritic, seed, s), rec, s.experiment))
        continued = d / f"continued-seed{seed}"
        steps.append(Step(continued, "continued", seed, grow_args(base, continued, seed, s, "--continued"), rec,
                          s.experiment))
        for kind in ("param-matched", "mac-matched"):
            steps.append(Step(d / f"dendritic-seed{seed}-{kind}", kind, seed, None, rec, s.experiment,
                              f"after {dendritic.name}: {kind.split('-')[0]}s of the grown model"))
    return steps


def validation_lift(s: Setting, study: Path, seeds=SEEDS) -> float | None:
    """Mean over seeds of the kept dendritic model's validation accuracy minus the kept continued
    control's, as study.json records them (the models the report shows); None until all are recorded."""
    rows = {(r["run"], r["kind"]): r for r in (json.loads(study.read_text()) if study.exists() else [])}
    lifts = []
    for seed in seeds:
        pair = [rows.get((f"{STUDY_DIR}/{s.name}/{k}-seed{seed}", k)) for k in ("dendritic", "continued")]
        if None in pair:
            return None
        lifts.append(pair[0]["validationAccuracy"] - pair[1]["validationAccuracy"])
    return sum(lifts) / len(lifts)


def sweep_setting(study: Path, seeds=SEEDS) -> tuple[Setting | None, dict]:
    lifts = {s.name: validation_lift(s, study, seeds) for s in SETTINGS if s.name in SWEEP_FROM}
    if any(v is None for v in lifts.values()):
        return None, lifts
    best = max(lifts, key=lifts.get)
    return next(s for s in SETTINGS if s.name == best), lifts


def sweep_steps(s: Setting, runs: Path, seeds=SEEDS) -> list[Step]:
    """k dendrites per neuron in one addition, and the one-cycle continued control, on `s`'s bases
    (one cycle each: no retry, so every arm trains exactly one cycle)."""
    d = runs / STUDY_DIR / f"count-{s.name}"
    rec = {"width": 1.0 if s.experiment == "frontier" else None, "data_fraction": s.data_fraction}
    steps = []
    for seed in seeds:
        base = s.base_run(runs, seed)
        for k in COUNTS:
            out = d / f"dendritic-k{k}-seed{seed}"
            steps.append(Step(out, "dendritic", seed, grow_args(base, out, seed, s, *ONE_CYCLE, "--per-addition",
                                                                str(k), additions=1), rec, "dendrite-count"))
        out = d / f"continued-seed{seed}"
        steps.append(Step(out, "continued", seed, grow_args(base, out, seed, s, *ONE_CYCLE, "--continued",
                                                            additions=1), rec, "dendrite-count"))
    return steps


MATCHED = ("param-matched", "mac-matched")


def grown_run(step: Step) -> Path:
    """The dendritic run a matched control is matched to (its directory name without the kind)."""
    return step.out.parent / step.out.name.removesuffix(f"-{step.kind}")


def resolve(step: Step) -> Step:
    """A matched control's command and width, from its finished dendritic run (others are complete).

    When both controls come out as one network (growth kept no dendrites, so both targets are the
    base's), the MAC-matched step points at the parameter-matched run: trained once, recorded as both.
    """
    if step.kind not in MATCHED or step.command is not None:
        return step
    both = controls(grown_run(step), step.out.parent, PY)
    c, first = both["controls"][step.kind], both["controls"][MATCHED[0]]
    if step.kind == MATCHED[1] and c["net"] == first["net"]:
        step.out, c = Path(first["out"]), first
        step.note = "the same network as the param-matched control: trained once, recorded as both"
    step.command = c["command"]
    if step.record.get("width") is not None:
        base_net = CnnConfig.from_dict(json.loads((Path(both["base"]) / "config.json").read_text())["train"]["net"])
        step.record = {**step.record, "width": 1.0 if CnnConfig.from_dict(c["net"]) == base_net else c["multiplier"]}
    return step


def record_step(step: Step, study: Path, runs: Path, ds) -> dict:
    from .study import entry, record

    row = entry(step.out, step.experiment, step.kind, step.seed, ds, step.record.get("width"),
                step.record.get("data_fraction"), runs)
    record(study, row)
    return row


def recorded(study: Path) -> set[tuple[str, str]]:
    """The (run, kind) pairs study.json holds."""
    return {(r["run"], r["kind"]) for r in json.loads(study.read_text())} if study.exists() else set()


def run_steps(steps: list[Step], runs: Path, study: Path, say=print, runner=subprocess.run) -> None:
    """Train each unfinished step in order, then record every finished one not yet in `study`."""
    from . import data as fdata
    from .study import run_name

    ds = None
    for step in steps:
        if step.kind in MATCHED:
            resolve(step)  # its dendritic run came before it: the control is known now, and may be another's run
        if not step.finished:
            if step.command is None:
                raise FileNotFoundError(f"{step.out} has no final.pt, and this study does not train it ({step.note})")
            say("== " + " ".join(step.command))
            runner(step.command, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # its log lines as they come
        if (run_name(step.out, runs), step.kind) not in recorded(study):
            ds = ds or fdata.load()
            say(json.dumps(record_step(step, study, runs, ds)))


def plan_lines(steps: list[Step], runs: Path, study: Path) -> list[str]:
    from .study import run_name

    done = recorded(study)
    lines = []
    for step in steps:
        if step.kind in MATCHED and (grown_run(step) / "final.pt").exists():
            resolve(step)
        name = run_name(step.out, runs)
        state = "recorded" if (name, step.kind) in done else "trained" if step.finished else "to train"
        what = step.note or (" ".join(step.command[3:]) if step.command else "")
        lines.append(f"{state:9} {step.experiment:13} {step.kind:13} {name}  {what}")
    return lines


def selected(names: list[str] | None) -> tuple[list[Setting], bool, list[Setting]]:
    """The settings before the count sweep, whether the sweep runs, and the settings after it."""
    keep = [s for s in SETTINGS if not names or s.name in names]
    return ([s for s in keep if s.name in SWEEP_FROM], not names or "dendrite-count" in names,
            [s for s in keep if s.name not in SWEEP_FROM])


def sweep_line(study: Path, seeds=SEEDS) -> tuple[Setting | None, str]:
    chosen, lifts = sweep_setting(study, seeds)
    shown = ", ".join(f"{k} {'not yet run' if v is None else f'{100 * v:+.2f} points'}" for k, v in lifts.items())
    if chosen is None:
        return None, f"dendrite-count: waits for {', '.join(SWEEP_FROM)} (validation lift over continued: {shown})"
    return chosen, f"dendrite-count: on {chosen.name} (validation lift over continued: {shown})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=Path, default=Path("runs"))
    p.add_argument("--study", type=Path, default=Path("results/study.json"))
    p.add_argument("--only", nargs="+", choices=[s.name for s in SETTINGS] + ["dendrite-count"], default=None)
    p.add_argument("--plan", action="store_true", help="list the steps and their state; train nothing")
    a = p.parse_args(argv)
    before, sweep, after = selected(a.only)
    first = [st for s in before for st in setting_steps(s, a.runs)]
    last = [st for s in after for st in setting_steps(s, a.runs)]
    if a.plan:
        chosen, line = sweep_line(a.study)
        middle = sweep_steps(chosen, a.runs) if sweep and chosen else []
        print("\n".join(plan_lines(first + middle, a.runs, a.study) + ([line] if sweep else []) +
                        plan_lines(last, a.runs, a.study)))
        return
    run_steps(first, a.runs, a.study)
    if sweep:
        chosen, line = sweep_line(a.study)
        print(line, flush=True)
        if chosen is None:
            raise SystemExit("the dendrite-count sweep needs " + ", ".join(SWEEP_FROM) + " finished first")
        run_steps(sweep_steps(chosen, a.runs), a.runs, a.study)
    run_steps(last, a.runs, a.study)


if __name__ == "__main__":
    main()
