"""The dendrite study's pieces: the growth schedule's fairer options (a
cycle judged only once its learning-rate decay has run out, a warm-up, a
separate learning rate for dendrites, no weight decay on dendrites and 1-D
parameters), the continued-training control, and results/study.json."""
import json
import math

import torch

from pctrain.dendrites import ADD, CONTINUE, RETRY, STOP, DendriteSchedule, ScheduleConfig, add_dendrites, make_dendritic
from pctrain.grow import NewDendrites, grow
from pctrain.nets import Cnn, CnnConfig
from pctrain.train import TrainConfig, Trainer, is_dendrite_parameter, train

SMALL = CnnConfig(conv_channels=(4, 4, 8, 8), dense=16)


def run(cfg, scores):
    s = DendriteSchedule(cfg)
    actions = [s.start(scores[0])]
    for v in scores[1:]:
        actions.append(s.observe(v))
        if actions[-1] == STOP:
            break
    return actions, s.s


def test_judge_at_end_lets_a_cycle_run_out_its_decay_before_judging():
    early = ScheduleConfig(patience=2, cycle_epochs=4, max_additions=2, max_retries=0)
    fair = ScheduleConfig(patience=2, cycle_epochs=4, max_additions=2, max_retries=0, judge_at_end=True)
    # Two stale epochs, then the decayed end of the cycle beats the base.
    scores = [0.90, 0.89, 0.895, 0.899, 0.91]
    assert run(early, scores)[0] == [ADD, CONTINUE, STOP]  # cut at patience with the LR still high
    actions, st = run(fair, scores)
    assert actions == [ADD, CONTINUE, CONTINUE, CONTINUE, ADD]
    assert st.best == 0.91 and st.additions == 2


def test_judge_at_end_still_retries_a_cycle_that_never_improved():
    cfg = ScheduleConfig(patience=1, cycle_epochs=2, max_additions=3, max_retries=1, judge_at_end=True)
    actions, st = run(cfg, [0.90, 0.89, 0.89, 0.88, 0.895])
    assert actions == [ADD, CONTINUE, RETRY, CONTINUE, STOP]
    assert st.additions == 0


class _Data:
    """Enough of FashionMnist for a Trainer: 64 random images."""

    def __init__(self):
        import numpy as np

        from pctrain.data import Split

        rng = np.random.default_rng(0)
        split = Split(rng.integers(0, 256, (64, 28, 28), dtype=np.uint8), rng.integers(0, 10, 64).astype(np.int64))
        self.train = self.val = self.test = split


def dendritic_trainer(tmp_path, **over):
    model = make_dendritic(Cnn(SMALL), ["conv2", "fc1"])
    add_dendrites(model)
    cfg = TrainConfig(epochs=2, batch_size=16, max_lr=1e-3, lr_schedule="cosine", threads=1, **over)
    return Trainer(cfg, tmp_path, model, _Data(), 0.28, 0.35, log=lambda *_: None)


def test_dendrite_parameters_are_recognised_by_name():
    model = make_dendritic(Cnn(SMALL), ["conv2"])
    add_dendrites(model)
    names = {n for n, _ in model.named_parameters() if is_dendrite_parameter(n)}
    assert names and all(".dendrites." in n or n.endswith((".u.0", ".v.0")) for n in names)
    assert not any(is_dendrite_parameter(n) for n, _ in Cnn(SMALL).named_parameters())


def test_param_groups_give_dendrites_their_rate_and_no_decay(tmp_path):
    t = dendritic_trainer(tmp_path, dendrite_lr_scale=3.0, decay_norm_and_dendrites=False, weight_decay=0.05)
    named = dict(t.model.named_parameters())
    group_of = {id(p): g for g in t.opt.param_groups for p in g["params"]}
    for name, p in named.items():
        g = group_of[id(p)]
        if is_dendrite_parameter(name):
            assert (g["weight_decay"], g["initial_lr"]) == (0.0, 3e-3), name
        elif p.ndim <= 1:
            assert (g["weight_decay"], g["initial_lr"]) == (0.0, 1e-3), name
        else:
            assert (g["weight_decay"], g["initial_lr"]) == (0.05, 1e-3), name
    # The defaults keep the old single behaviour: one rate, every parameter decayed.
    plain = dendritic_trainer(tmp_path)
    assert {(g["weight_decay"], g["initial_lr"]) for g in plain.opt.param_groups} == {(0.05, 1e-3)}


def test_warmup_ramps_then_anneals_to_zero(tmp_path):
    t = dendritic_trainer(tmp_path, warmup_epochs=1.0)
    steps = 2 * t.steps_per_epoch
    lrs = []
    for _ in range(steps):
        lrs.append(t.sched.get_last_lr()[0])
        t.opt.step()
        t.sched.step()
    warm = t.steps_per_epoch
    assert lrs[0] == 1e-3 / warm and math.isclose(lrs[warm - 1], 1e-3)
    assert all(a < b for a, b in zip(lrs[: warm - 1], lrs[1:warm]))
    assert all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1 :]))
    assert lrs[-1] < 0.2e-3


def test_a_growth_run_records_and_uses_the_fair_options(tmp_path):
    base = tmp_path / "baseline-seed1"
    train(TrainConfig(seed=3, epochs=1, train_limit=200, batch_size=32, net=SMALL.to_dict(), threads=1), base, log=lambda *_: None)
    sched = ScheduleConfig(patience=1, cycle_epochs=2, max_additions=1, max_retries=0, judge_at_end=True)
    over = {"warmup_epochs": 0.5, "dendrite_lr_scale": 2.0, "decay_norm_and_dendrites": False}
    grow(base, tmp_path / "dendritic-seed1", sched, ["conv2"], seed=3, log=lambda *_: None, train_overrides=over)
    meta = json.loads((tmp_path / "dendritic-seed1" / "config.json").read_text())
    assert meta["schedule"]["judge_at_end"] is True
    assert {k: meta["train"][k] for k in over} == over
    history = json.loads((tmp_path / "dendritic-seed1" / "history.json").read_text())
    cycle1 = [r for r in history if r.get("cycle") == 1]
    assert len(cycle1) == 2, "a judged-at-end cycle runs its whole length"
    assert torch.load(tmp_path / "dendritic-seed1" / "final.pt")["best_val"] >= history[0]["val_acc"]


def test_a_dendrite_norm_scale_keeps_the_new_dendrite_small_after_normalization():
    x = torch.randn(32, 4, 28, 28)
    reset, scaled = (make_dendritic(Cnn(SMALL), ["conv2"]) for _ in range(2))
    add_dendrites(reset)
    add_dendrites(scaled, bn_scale=0.01)
    pre = []
    for m in (reset, scaled):
        d = m.neurons["conv2"].dendrites[0].train()
        pre.append(d(x).std().item())
    assert 0.8 < pre[0] < 1.2, "with the norm's scale reset to 1 the 0.01 weights are normalized away"
    assert 0.005 < pre[1] < 0.015, "a norm scale of 0.01 keeps the dendrite's input to its sigmoid small"


def test_one_addition_can_give_each_neuron_several_dendrites(tmp_path):
    base = tmp_path / "baseline-seed1"
    train(TrainConfig(seed=3, epochs=1, train_limit=200, batch_size=32, net=SMALL.to_dict(), threads=1), base, log=lambda *_: None)
    sched = ScheduleConfig(cycle_epochs=1, max_additions=1, max_retries=0, judge_at_end=True)
    out = tmp_path / "dendritic-4"
    result = grow(base, out, sched, ["conv2", "fc1"], seed=3, log=lambda *_: None, new=NewDendrites(4, 0.05))
    meta = json.loads((out / "config.json").read_text())
    assert (meta["dendrites"]["per_addition"], meta["dendrites"]["bn_scale"]) == (4, 0.05)
    history = json.loads((out / "history.json").read_text())
    assert [r["dendrites"] for r in history if "cycle" in r] == [4], "the one cycle trained four dendrites a neuron"
    kept = history[1]["val_acc"] > history[0]["val_acc"]
    assert meta["dendrites"]["perLayer"] == ({"conv2": 4, "fc1": 4} if kept else {"conv2": 0, "fc1": 0})
    assert result["dendrites"] == meta["dendrites"]["perLayer"]
    import pytest

    with pytest.raises(ValueError, match="one new dendrite"):
        from pctrain.grow import CandidateConfig

        grow(base, tmp_path / "pb", sched, ["conv2"], seed=3, log=lambda *_: None,
             candidates=CandidateConfig(), new=NewDendrites(2))


def test_the_continued_control_runs_the_same_cycles_without_dendrites(tmp_path):
    base = tmp_path / "baseline-seed1"
    train(TrainConfig(seed=4, epochs=1, train_limit=200, batch_size=32, net=SMALL.to_dict(), threads=1), base, log=lambda *_: None)
    sched = ScheduleConfig(patience=1, cycle_epochs=2, max_additions=2, max_retries=0, judge_at_end=True)
    result = grow(base, tmp_path / "continued-seed1", sched, ["conv2"], seed=4, log=lambda *_: None, continued=True)
    meta = json.loads((tmp_path / "continued-seed1" / "config.json").read_text())
    assert meta["kind"] == "continued" and meta["dendrites"]["method"] == "none"
    assert result["dendrites"] == {}
    history = json.loads((tmp_path / "continued-seed1" / "history.json").read_text())
    assert all(r["dendrites"] == 0 for r in history)
    cycles = [r["cycle"] for r in history if "cycle" in r]
    assert cycles[:2] == [1, 1], "each cycle runs its whole length, as the dendritic runs' do"
    # The kept model is the plain network, same parameter count as the base.
    from pctrain.checkpoints import load_model
    from pctrain.nets import count_params

    ck = torch.load(tmp_path / "continued-seed1" / "final.pt")
    assert count_params(load_model(meta, ck)) == count_params(Cnn(SMALL))


def test_the_study_file_holds_one_object_per_run(tmp_path):
    import pytest

    from pctrain import data as fdata
    from pctrain.compare import PREDICTIONS
    from pctrain.study import entry, record

    base = tmp_path / "small-seed1"
    train(TrainConfig(seed=5, epochs=1, train_limit=200, batch_size=32, net=SMALL.to_dict(), threads=1), base, log=lambda *_: None)
    ds = fdata.load()
    row = entry(base, "frontier", "plain", 1, ds, width=0.5)
    assert row["experiment"] == "frontier" and row["width"] == 0.5 and "dataFraction" not in row
    assert row["dendritesPerNeuron"] == 0 and row["parameters"] == sum(p.numel() for p in Cnn(SMALL).parameters())
    assert 0.0 <= row["testAccuracy"] <= 1.0 and row["run"] == "small-seed1"
    assert (base / PREDICTIONS).exists(), "test predictions cached beside the run"
    study = tmp_path / "results" / "study.json"
    record(study, row)
    record(study, {**row, "seed": 2, "run": "other"})
    rows = record(study, {**row, "testAccuracy": 0.5})  # the same run again: replaced, not added
    assert [(r["run"], r["testAccuracy"]) for r in rows] == [("other", row["testAccuracy"]), ("small-seed1", 0.5)]
    assert json.loads(study.read_text()) == rows
    with pytest.raises(ValueError, match="kind"):
        entry(base, "frontier", "bigger", 1, ds, width=1.0)
    with pytest.raises(ValueError, match="width"):
        entry(base, "shipped-base", "plain", 1, ds, width=1.0)
    with pytest.raises(ValueError, match="dataFraction"):
        entry(base, "limited-data", "base", 1, ds)


def test_limited_data_runs_share_one_fixed_class_balanced_subset():
    import numpy as np

    from pctrain.train import training_data

    a = training_data(TrainConfig(seed=1, data_fraction=0.05))
    b = training_data(TrainConfig(seed=2, data_fraction=0.05))
    full = training_data(TrainConfig(seed=1))
    assert len(a.train.labels) == 2750 and np.bincount(a.train.labels).tolist() == [275] * 10
    assert np.array_equal(a.train.images, b.train.images), "every seed and arm trains on the same images"
    assert np.array_equal(a.val.labels, full.val.labels) and len(a.test.labels) == 10_000, "validation and test are never cut"
    ten = training_data(TrainConfig(seed=1, data_fraction=0.10))
    assert len(ten.train.labels) == 5500
    # Smoke slices still follow the run's seed.
    s1, s2 = training_data(TrainConfig(seed=1, train_limit=200)), training_data(TrainConfig(seed=2, train_limit=200))
    assert not np.array_equal(s1.train.images, s2.train.images)
