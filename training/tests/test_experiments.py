"""The dendrite study's plan (pctrain.experiments): the steps of a setting,
a tiny setting run end to end through real pctrain.train / pctrain.grow
child processes and recorded in study.json, resuming without retraining,
and the count sweep's setting chosen on validation alone."""
import json
import subprocess
from dataclasses import asdict, replace

import pytest

from pctrain import experiments as ex
from pctrain.nets import CnnConfig

TINY = ex.Setting("tiny", "frontier", CnnConfig(conv_channels=(4, 4, 8, 8), dense=16), base_epochs=1,
                  cycle_epochs=1, max_additions=1, widths=(0.5,),
                  train_args=("--train-limit", "200", "--batch-size", "32", "--threads", "1"))


def test_a_setting_has_its_arms_in_order_for_every_seed(tmp_path):
    steps = ex.setting_steps(TINY, tmp_path, seeds=(1, 2))
    kinds = ["base", "plain", "dendritic", "continued", "param-matched", "mac-matched"]
    assert [s.kind for s in steps] == kinds * 2
    assert [s.seed for s in steps] == [1] * 6 + [2] * 6
    names = [s.out.relative_to(tmp_path).as_posix() for s in steps[:6]]
    assert names == ["study/tiny/base-seed1", "study/tiny/plain-w0.5-seed1", "study/tiny/dendritic-seed1",
                     "study/tiny/continued-seed1", "study/tiny/dendritic-seed1-param-matched",
                     "study/tiny/dendritic-seed1-mac-matched"]
    grow = steps[2].command
    assert grow[grow.index("--base") + 1] == str(steps[0].out)
    for flag in ("--judge-at-end", "--no-decay-norm-dendrites", "--dendrite-bn-scale", "--warmup-epochs"):
        assert flag in grow
    assert "--continued" in steps[3].command and "--continued" not in grow
    assert steps[1].command[steps[1].command.index("--channels") + 1:][:4] == ["2", "2", "4", "4"]
    assert steps[4].command is None and steps[5].command is None  # made from the finished dendritic run
    assert [s.record["width"] for s in steps[:4]] == [1.0, 0.5, 1.0, 1.0]


def test_the_shipped_base_setting_reuses_the_first_studys_baselines(tmp_path):
    shipped = next(s for s in ex.SETTINGS if s.shipped_base)
    steps = ex.setting_steps(shipped, tmp_path, seeds=(2,))
    base = steps[0]
    assert base.out == tmp_path / "baseline-seed2" and base.command is None
    # float32 bases, grown (and controlled) in bfloat16
    assert all("--bf16" in s.command for s in steps if s.kind in ("dendritic", "continued"))
    with pytest.raises(FileNotFoundError, match="does not train it"):
        ex.run_steps([base], tmp_path, tmp_path / "study.json", say=lambda *_: None)


def test_limited_data_steps_carry_their_share(tmp_path):
    limited = next(s for s in ex.SETTINGS if s.name == "limited-5")
    steps = ex.setting_steps(limited, tmp_path, seeds=(1,))
    base = steps[0].command
    assert base[base.index("--data-fraction") + 1] == "0.05"
    assert all(s.record == {"width": None, "data_fraction": 0.05} for s in steps)


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    study = runs / "study.json"
    commands = []

    def runner(cmd, check, env):
        commands.append(cmd)
        assert env["PYTHONUNBUFFERED"] == "1"
        return subprocess.run(cmd, check=check, cwd=ex.Path(__file__).resolve().parents[1], env=env,
                              stdout=subprocess.DEVNULL)

    steps = ex.setting_steps(TINY, runs, seeds=(1,))
    ex.run_steps(steps, runs, study, say=lambda *_: None, runner=runner)
    return runs, study, steps, commands


def test_a_tiny_setting_trains_and_records_every_arm(tiny_study):
    runs, study, steps, commands = tiny_study
    assert all(s.finished for s in steps)
    rows = {(r["run"], r["kind"]): r for r in json.loads(study.read_text())}
    assert len(rows) == 6 and {k for _, k in rows} == {s.kind for s in steps}
    for s in steps:
        r = rows[(s.out.relative_to(runs).as_posix(), s.kind)]
        assert (r["experiment"], r["seed"]) == ("frontier", 1)
        assert 0 <= r["testAccuracy"] <= 1 and r["parameters"] > 0 and r["macs"] > 0
    dendritic = rows[("study/tiny/dendritic-seed1", "dendritic")]
    param, mac = (next(r for (_, k), r in rows.items() if k == kind) for kind in ex.MATCHED)
    if dendritic["dendritesPerNeuron"]:  # dendrites kept: two controls, each matched to its own count
        assert len(commands) == 6 and param["run"] != mac["run"]
        for control, measure in ((param, "parameters"), (mac, "macs")):
            assert control["dendritesPerNeuron"] == 0 and control["width"] != 1.0
            assert abs(control[measure] - dendritic[measure]) / dendritic[measure] < 0.25
    else:  # none kept: both controls are the base network, trained once
        assert len(commands) == 5 and param["run"] == mac["run"] and param["width"] == mac["width"] == 1.0
    # The matched controls train the dendritic model's whole epoch budget: base + growth epochs.
    grown = json.loads((runs / "study/tiny/dendritic-seed1/history.json").read_text())
    matched = json.loads((runs / param["run"] / "config.json").read_text())
    assert matched["train"]["epochs"] == TINY.base_epochs + max(r["epoch"] for r in grown)


def test_running_again_trains_nothing_and_records_nothing_twice(tiny_study):
    runs, study, steps, _ = tiny_study
    before = study.read_text()
    again = []
    fresh = ex.setting_steps(TINY, runs, seeds=(1,))
    ex.run_steps(fresh, runs, study, say=lambda *_: None, runner=lambda cmd, **_: again.append(cmd))
    assert again == [] and study.read_text() == before
    lines = ex.plan_lines(fresh, runs, study)
    assert len(lines) == 6 and all(line.startswith("recorded") for line in lines), lines


def _row(name, kind, seed, val):
    return {"run": f"study/{name}/{kind}-seed{seed}", "kind": kind, "seed": seed, "validationAccuracy": val}


def test_the_count_sweep_goes_where_dendrites_gained_most_on_validation(tmp_path, monkeypatch):
    settings = tuple(replace(s, name=n) for s, n in zip(ex.SETTINGS[:3], ex.SWEEP_FROM)) + ex.SETTINGS[3:]
    monkeypatch.setattr(ex, "SETTINGS", settings)
    gains = {"frontier": (0.90, 0.89), "limited-10": (0.80, 0.81), "limited-5": (0.70, 0.70)}
    rows = []
    for name, (dend, cont) in gains.items():
        for seed in (1, 2):
            rows.append(_row(name, "dendritic", seed, dend))
            if name != "limited-5" or seed == 1:
                rows.append(_row(name, "continued", seed, cont))
    # a run's history may hold a higher epoch than the kept model (a rolled-back cycle): not what counts
    study = tmp_path / "study.json"
    study.write_text(json.dumps(rows))
    chosen, line = ex.sweep_line(study, seeds=(1, 2))
    assert chosen is None and "limited-5 not yet run" in line and "frontier +1.00 points" in line
    study.write_text(json.dumps(rows + [_row("limited-5", "continued", 2, 0.70)]))
    chosen, line = ex.sweep_line(study, seeds=(1, 2))
    assert chosen.name == "frontier" and line.startswith("dendrite-count: on frontier")
    steps = ex.sweep_steps(chosen, tmp_path, seeds=(1,))
    assert [s.out.name for s in steps] == ["dendritic-k1-seed1", "dendritic-k2-seed1", "dendritic-k4-seed1",
                                           "dendritic-k8-seed1", "continued-seed1"]
    assert all(s.experiment == "dendrite-count" and s.record["width"] == 1.0 for s in steps)
    k4 = steps[2].command
    assert k4[k4.index("--per-addition") + 1] == "4" and k4[k4.index("--max-additions") + 1] == "1"
    for step in steps:  # exactly one cycle: the last --max-retries (the one argparse keeps) is 0
        retries = [step.command[i + 1] for i, a in enumerate(step.command) if a == "--max-retries"]
        assert retries[-1] == "0"


def test_when_growth_keeps_no_dendrites_one_matched_control_stands_for_both(tmp_path, monkeypatch):
    import torch

    from pctrain.nets import Cnn
    from pctrain.train import TrainConfig

    d = tmp_path / "study" / "tiny"
    base, dend = d / "base-seed1", d / "dendritic-seed1"
    for run, kind in ((base, "baseline"), (dend, "dendritic")):
        run.mkdir(parents=True)
        cfg = TrainConfig(seed=1, epochs=2, net=TINY.net.to_dict())
        meta = {"train": asdict(cfg),
                "normalization": {"mean": 0.3, "std": 0.3}, "kind": kind}
        if kind == "dendritic":
            meta["base_run"] = str(base)
        (run / "config.json").write_text(json.dumps(meta))
        (run / "history.json").write_text(json.dumps([{"epoch": 0}, {"epoch": 1}, {"epoch": 2}]))
        # every cycle failed: the kept model is the plain base network, no dendrites
        torch.save({"model": Cnn(TINY.net).state_dict(), "best_val": 0.5, "epoch": 2}, run / "final.pt")
    steps = [st for st in ex.setting_steps(TINY, tmp_path, seeds=(1,)) if st.kind in ex.MATCHED]
    param, mac = (ex.resolve(st) for st in steps)
    assert param.out.name == "dendritic-seed1-param-matched"
    assert mac.out == param.out and mac.command == param.command and "trained once" in mac.note
    assert param.record["width"] == mac.record["width"] == 1.0  # the base network itself


def test_a_write_cut_short_leaves_the_file_it_replaces(tmp_path):
    from pctrain.checkpoints import replace_atomically, write_text_atomic

    target = tmp_path / "history.json"
    write_text_atomic(target, "[1]")

    def dies_half_way(p):
        p.write_text("[1, 2")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(target, dies_half_way)
    assert target.read_text() == "[1]"


def test_an_unreadable_predictions_cache_is_computed_again(tiny_study):
    import numpy as np

    from pctrain import data as fdata
    from pctrain.compare import PREDICTIONS, test_predictions
    from pctrain.package import load_run

    runs, *_ = tiny_study
    run = runs / "study" / "tiny" / "base-seed1"
    good = (run / PREDICTIONS).read_text()
    (run / PREDICTIONS).write_text(good[: len(good) // 2])
    model, meta, ck = load_run(run)
    pred = test_predictions(run, model, meta, ck, fdata.load())
    assert (run / PREDICTIONS).read_text() == good
    assert np.array_equal(pred, json.loads(good)["predictions"])


def test_the_report_refuses_two_runs_in_one_arm_and_seed(tmp_path):
    from pctrain.study_report import summarize

    row = {"experiment": "shipped-base", "kind": "dendritic", "seed": 1, "run": "dendritic-seed1"}
    with pytest.raises(ValueError, match="one run per arm and seed"):
        summarize([row, {**row, "run": "study/shipped-base/dendritic-seed1"}], tmp_path, None)


def test_the_shipped_training_queue_names_modules_that_exist():
    import importlib

    from pctrain.queue import read_queue

    cmds = read_queue(ex.Path(__file__).resolve().parents[1] / "queue.txt")
    assert [c.argv[c.argv.index("-m") + 1] for c in cmds] == ["pctrain.recipe", "pctrain.experiments"]
    for c in cmds:
        importlib.import_module(c.argv[c.argv.index("-m") + 1])
