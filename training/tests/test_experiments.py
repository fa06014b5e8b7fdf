"""The dendrite study's plan (pctrain.experiments): the steps of a setting,
a tiny setting run end to end through real pctrain.train / pctrain.grow
child processes and recorded in study.json, resuming without retraining,
and the count sweep's setting chosen on validation alone."""
import json
import subprocess
from dataclasses import replace

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

    def runner(cmd, check):
        commands.append(cmd)
        return subprocess.run(cmd, check=check, cwd=ex.Path(__file__).resolve().parents[1],
                              stdout=subprocess.DEVNULL)

    steps = ex.setting_steps(TINY, runs, seeds=(1,))
    ex.run_steps(steps, runs, study, say=lambda *_: None, runner=runner)
    return runs, study, steps, commands


def test_a_tiny_setting_trains_and_records_every_arm(tiny_study):
    runs, study, steps, commands = tiny_study
    assert len(commands) == 6 and all(s.finished for s in steps)
    rows = {r["run"]: r for r in json.loads(study.read_text())}
    assert set(rows) == {s.out.relative_to(runs).as_posix() for s in steps}
    for s in steps:
        r = rows[s.out.relative_to(runs).as_posix()]
        assert (r["experiment"], r["kind"], r["seed"]) == ("frontier", s.kind, 1)
        assert 0 <= r["testAccuracy"] <= 1 and r["parameters"] > 0 and r["macs"] > 0
    dendritic = rows["study/tiny/dendritic-seed1"]
    for kind, measure in (("param-matched", "parameters"), ("mac-matched", "macs")):
        control = rows[f"study/tiny/dendritic-seed1-{kind}"]
        assert control["dendritesPerNeuron"] == 0 and control["width"] != 1.0
        assert abs(control[measure] - dendritic[measure]) / dendritic[measure] < 0.25
    # The matched controls train the dendritic model's whole epoch budget: base + growth epochs.
    grown = json.loads((runs / "study/tiny/dendritic-seed1/history.json").read_text())
    matched = json.loads((runs / "study/tiny/dendritic-seed1-param-matched/config.json").read_text())
    assert matched["train"]["epochs"] == TINY.base_epochs + max(r["epoch"] for r in grown)


def test_running_again_trains_nothing_and_records_nothing_twice(tiny_study):
    runs, study, steps, _ = tiny_study
    before = study.read_text()
    again = []
    fresh = ex.setting_steps(TINY, runs, seeds=(1,))
    ex.run_steps(fresh, runs, study, say=lambda *_: None, runner=lambda cmd, check: again.append(cmd))
    assert again == [] and study.read_text() == before
    lines = ex.plan_lines(fresh, runs, study)
    assert len(lines) == 6 and all(line.startswith("recorded") for line in lines)


def _history(run, best):
    run.mkdir(parents=True)
    (run / "final.pt").write_bytes(b"")
    (run / "history.json").write_text(json.dumps([{"epoch": 0, "val_acc": 0.5}, {"epoch": 1, "val_acc": best}]))


def test_the_count_sweep_goes_where_dendrites_gained_most_on_validation(tmp_path, monkeypatch):
    settings = tuple(replace(s, name=n) for s, n in zip(ex.SETTINGS[:3], ex.SWEEP_FROM)) + ex.SETTINGS[3:]
    monkeypatch.setattr(ex, "SETTINGS", settings)
    gains = {"frontier": (0.90, 0.89), "limited-10": (0.80, 0.81), "limited-5": (0.70, 0.70)}
    for i, (name, (dend, cont)) in enumerate(gains.items()):
        for seed in (1, 2):
            _history(tmp_path / "study" / name / f"dendritic-seed{seed}", dend)
            if name != "limited-5" or seed == 1:
                _history(tmp_path / "study" / name / f"continued-seed{seed}", cont)
    chosen, line = ex.sweep_line(tmp_path, seeds=(1, 2))
    assert chosen is None and "limited-5 not yet run" in line and "frontier +1.00 points" in line
    _history(tmp_path / "study" / "limited-5" / "continued-seed2", 0.70)
    chosen, line = ex.sweep_line(tmp_path, seeds=(1, 2))
    assert chosen.name == "frontier" and line.startswith("dendrite-count: on frontier")
    steps = ex.sweep_steps(chosen, tmp_path, seeds=(1,))
    assert [s.out.name for s in steps] == ["dendritic-k1-seed1", "dendritic-k2-seed1", "dendritic-k4-seed1",
                                           "dendritic-k8-seed1", "continued-seed1"]
    assert all(s.experiment == "dendrite-count" and s.record["width"] == 1.0 for s in steps)
    k4 = steps[2].command
    assert k4[k4.index("--per-addition") + 1] == "4" and k4[k4.index("--max-additions") + 1] == "1"


def test_the_shipped_training_queue_names_modules_that_exist():
    import importlib

    from pctrain.queue import read_queue

    cmds = read_queue(ex.Path(__file__).resolve().parents[1] / "queue.txt")
    assert [c.argv[c.argv.index("-m") + 1] for c in cmds] == ["pctrain.recipe", "pctrain.experiments"]
    for c in cmds:
        importlib.import_module(c.argv[c.argv.index("-m") + 1])
