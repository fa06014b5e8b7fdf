"""Dendritic neurons, their schedule, growth from a base run, and export parity."""
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from pctrain.dendrites import (ADD, CONTINUE, RETRY, STOP, DendriteSchedule, DendriticNeuron, ScheduleConfig,
                               add_dendrites, add_dendrites_from_state, candidate_objective, candidate_step,
                               dendrite_counts, dendritic_neurons, freeze_dendrites, make_dendritic)
from pctrain import data as fdata
from pctrain.compare import PREDICTIONS, compare, markdown, mcnemar
from pctrain.grow import CandidateConfig, grow
from pctrain.plot import plot
from pctrain.nets import Cnn, CnnConfig, count_params
from pctrain.package import package
from pctrain.train import TrainConfig, train
from perturb import perturbed
from service_parity import service_parity

SMALL = CnnConfig(conv_channels=(8, 8, 16, 16), dense=32)
ALL = ["conv1", "conv2", "conv3", "conv4", "fc1"]


def batch(n=6, seed=1):
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_adding_a_dendrite_leaves_the_outputs_unchanged():
    torch.manual_seed(0)
    model = make_dendritic(perturbed(Cnn(SMALL)), ALL).eval()
    x = batch()
    before = model(x)
    add_dendrites(model)
    perturbed(model, seed=5)  # now the first dendrites (and everything else) are non-trivial
    model.eval()
    mid = model(x)
    assert not torch.allclose(before, mid)
    add_dendrites(model)  # a second, cascaded dendrite: its u and v start at zero
    assert dendrite_counts(model) == {n: 2 for n in ALL}
    assert torch.equal(model(x), mid)


def grads_after_one_loss(model):
    model.train()
    model.zero_grad(set_to_none=True)
    y = torch.arange(6) % 10
    torch.nn.functional.cross_entropy(model(batch()), y).backward()
    # v[0] is an empty [0,C] tensor (the first dendrite has no earlier ones)
    return {n: (p.grad is not None and bool(p.grad.abs().sum() > 0))
            for n, p in model.named_parameters() if p.numel() > 0}


def test_gradients_reach_exactly_the_parameters_that_should_train():
    torch.manual_seed(0)
    model = make_dendritic(Cnn(SMALL), ALL)
    add_dendrites(model)
    got = grads_after_one_loss(model)
    # Fresh dendrites: u = 0, so only u learns on the first step; the dendrite's
    # own weights (and cascade v) receive gradient once u has moved.
    for name, has_grad in got.items():
        if ".dendrites." in name:
            assert not has_grad, name
        elif name.endswith(tuple(f".u.{k}" for k in range(3))):
            assert has_grad, name
        elif ".v." not in name:
            assert has_grad, name
    with torch.no_grad():
        for n in model.neurons.values():
            for u in n.u:
                u.fill_(0.5)
    add_dendrites(model)  # second dendrite: its v gets gradient only after its u moves
    for n in model.neurons.values():
        with torch.no_grad():
            n.u[1].fill_(0.5)
    got = grads_after_one_loss(model)
    assert all(got.values()), [n for n, ok in got.items() if not ok]
    assert sum(1 for n in got if ".v." in n) == len(ALL)  # v[1]: dendrite 1 -> dendrite 2


def test_candidate_objective_is_the_summed_per_channel_covariance_magnitude():
    g = torch.Generator().manual_seed(3)
    d, e = torch.rand(5, 3, 4, 4, generator=g), torch.randn(5, 3, 4, 4, generator=g)
    dn, en = d.numpy(), e.numpy()
    expected = sum(abs(np.mean((dn[:, c] - dn[:, c].mean()) * (en[:, c] - en[:, c].mean()))) for c in range(3))
    assert candidate_objective(d, e).item() == pytest.approx(expected, rel=1e-5)
    assert candidate_objective(d, -e).item() == pytest.approx(expected, rel=1e-5)  # magnitude: either sign helps
    flat_d, flat_e = d[:, :, 0, 0], e[:, :, 0, 0]  # [N,C] for dense neurons
    assert candidate_objective(flat_d, flat_e).item() > 0


def labelled_batch(n=16, seed=1):
    return batch(n, seed), torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(seed))


def test_perforated_dendrite_phase_trains_only_the_candidates_and_keeps_the_function():
    torch.manual_seed(0)
    model = make_dendritic(perturbed(Cnn(SMALL)), ["conv2", "fc1"])
    add_dendrites(model)
    with torch.no_grad():  # an older dendrite that matters, then frozen
        for n in dendritic_neurons(model).values():
            n.u[0].fill_(0.5)
    freeze_dendrites(model)
    add_dendrites(model)  # the candidates
    x, y = labelled_batch()
    model.eval()
    for n in dendritic_neurons(model).values():
        n.dendrites[-1].train()
    before_out = model(x).detach()
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    candidates = {id(p) for n in dendritic_neurons(model).values() for p in n.candidate_parameters()}
    names = {id(p): k for k, p in model.named_parameters()}
    assert {names[i] for i in candidates} == {f"neurons.{n}.{part}" for n in ("conv2", "fc1") for part in (
        "dendrites.1.op.weight", "dendrites.1.bn.weight", "dendrites.1.bn.bias", "v.1")}
    opt = torch.optim.Adam([p for n in dendritic_neurons(model).values() for p in n.candidate_parameters()], lr=1e-2)
    loss_fn = torch.nn.CrossEntropyLoss()
    objectives = [candidate_step(model, x, y, loss_fn, opt) for _ in range(15)]
    assert objectives[-1] > 2 * objectives[0], objectives  # the covariance grows
    after = model.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    # Only the candidates moved (weights, v, and their batch-norm statistics);
    # the network, the frozen dendrite and every u are as they were.
    assert changed and all(".dendrites.1." in k or ".v.1" in k for k in changed), changed
    assert {k for k in changed if ".v.1" in k} == {"neurons.conv2.v.1", "neurons.fc1.v.1"}
    model.eval()
    assert torch.allclose(model(x), before_out, atol=1e-6)  # u = 0: the candidates change nothing yet


def test_perforated_network_phase_leaves_frozen_dendrites_alone():
    torch.manual_seed(0)
    model = make_dendritic(perturbed(Cnn(SMALL)), ["conv2", "fc1"])
    add_dendrites(model)
    freeze_dendrites(model)
    x, y = labelled_batch()
    model.train()
    assert all(not n.dendrites[0].training for n in dendritic_neurons(model).values())
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with torch.no_grad():
        for n in dendritic_neurons(model).values():
            n.u[0].fill_(0.5)  # so the dendrites' weights would get gradient if they were trainable
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.nn.CrossEntropyLoss()(model(x), y).backward()
    opt.step()
    after = model.state_dict()
    for k in after:
        moved = not torch.equal(after[k], before[k])
        if ".dendrites." in k or ".v." in k:
            assert not moved, k  # weights and batch-norm statistics of a frozen dendrite
        elif k.endswith((".u.0", "op.weight")) or "running_mean" in k:
            assert moved, k


def test_state_dict_round_trip_rebuilds_the_dendrite_structure():
    model = make_dendritic(Cnn(SMALL), ["conv2", "fc1"])
    add_dendrites(model)
    add_dendrites(model)
    perturbed(model)
    fresh = add_dendrites_from_state(Cnn(SMALL), model.state_dict())
    fresh.load_state_dict(model.state_dict())
    assert dendrite_counts(fresh) == {"conv2": 2, "fc1": 2}
    x = batch()
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def run_schedule(cfg, scores, start=0.90):
    s = DendriteSchedule(cfg)
    actions = [s.start(start)]
    for v in scores:
        actions.append(s.observe(v))
        if actions[-1] == STOP:
            break
    return actions, s.s


def test_schedule_adds_after_patience_and_stops_at_the_addition_limit():
    cfg = ScheduleConfig(patience=2, cycle_epochs=10, max_additions=2, max_retries=1)
    actions, st = run_schedule(cfg, [0.91, 0.905, 0.90, 0.92, 0.915, 0.91])
    assert actions == [ADD, CONTINUE, CONTINUE, ADD, CONTINUE, CONTINUE, STOP]
    assert st.additions == 2 and st.best == 0.92 and st.done


def test_schedule_ends_a_cycle_at_its_epoch_budget():
    cfg = ScheduleConfig(patience=5, cycle_epochs=3, max_additions=3)
    actions, st = run_schedule(cfg, [0.91, 0.92, 0.93, 0.94])
    assert actions == [ADD, CONTINUE, CONTINUE, ADD, CONTINUE]
    assert st.cycle == 2 and st.cycle_epoch == 1


def test_schedule_retries_fresh_dendrites_then_stops_with_the_best():
    cfg = ScheduleConfig(patience=2, cycle_epochs=10, max_additions=5, max_retries=2)
    # cycle 1 improves; cycle 2 fails -> retry; retry fails -> retry; fails -> stop
    scores = [0.91, 0.90, 0.90, 0.90, 0.905, 0.89, 0.909, 0.90, 0.90]
    actions, st = run_schedule(cfg, scores)
    assert actions == [ADD, CONTINUE, CONTINUE, ADD, CONTINUE, RETRY, CONTINUE, RETRY, CONTINUE, STOP]
    assert st.additions == 1  # the best checkpoint has the first dendrite only
    assert st.best == 0.91


def test_schedule_retry_that_improves_resets_the_retry_budget():
    cfg = ScheduleConfig(patience=1, cycle_epochs=10, max_additions=3, max_retries=1)
    actions, st = run_schedule(cfg, [0.89, 0.91, 0.90, 0.89])
    # start->add; 0.89 no gain -> retry; 0.91 gain, 0.90 stale -> add (retries reset); 0.89 -> retry
    assert actions == [ADD, RETRY, CONTINUE, ADD, RETRY]
    assert st.retries == 1 and st.additions == 2


def test_schedule_min_delta_and_state_round_trip():
    cfg = ScheduleConfig(patience=1, cycle_epochs=10, max_additions=3, max_retries=0, min_delta=0.01)
    s = DendriteSchedule(cfg)
    s.start(0.90)
    restored = DendriteSchedule.from_state(cfg, json.loads(json.dumps(s.state_dict())))
    assert restored.observe(0.905) == STOP  # not better by more than min_delta, no retries left
    assert restored.s.additions == 0


@pytest.fixture(scope="module")
def tiny_growth(tmp_path_factory):
    root = tmp_path_factory.mktemp("grow")
    base_cfg = TrainConfig(seed=2, epochs=1, train_limit=300, batch_size=32, max_lr=2e-3, net=SMALL.to_dict())
    train(base_cfg, root / "baseline-seed1", log=lambda *_: None)
    sched = ScheduleConfig(patience=1, cycle_epochs=1, max_additions=2, max_retries=1)
    logs = []
    result = grow(root / "baseline-seed1", root / "dendritic-seed1", sched, ["conv2", "conv4", "fc1"], seed=2, log=logs.append)
    return root, sched, result, logs


def test_growth_run_follows_the_schedule_and_resumes(tiny_growth):
    root, sched, result, logs = tiny_growth
    history = json.loads((root / "dendritic-seed1" / "history.json").read_text())
    assert history[0]["event"] == "base" and history[0]["dendrites"] == 0
    assert history[1]["dendrites"] == 1  # the first epoch trains the first dendrites
    assert history[-1]["after"] == "stop"
    assert set(result["dendrites"]) == {"conv2", "conv4", "fc1"}
    meta = json.loads((root / "dendritic-seed1" / "config.json").read_text())
    assert meta["kind"] == "dendritic" and meta["dendrites"]["perLayer"] == result["dendrites"]
    assert (root / "dendritic-seed1" / "final.pt").exists()
    finished = grow(root / "baseline-seed1", root / "dendritic-seed1", sched, ["conv2", "conv4", "fc1"], seed=2)
    assert finished["finished"] and finished["dendrites"] == result["dendrites"]
    (root / "dendritic-seed1" / "final.pt").unlink()  # as if stopped after its last epoch: resume from last.pt
    again = grow(root / "baseline-seed1", root / "dendritic-seed1", sched, ["conv2", "conv4", "fc1"], seed=2, log=logs.append)
    assert "finished" not in again and again["best_val"] == result["best_val"]
    assert any(str(line).startswith("resumed") for line in logs)
    assert json.loads((root / "dendritic-seed1" / "history.json").read_text()) == history


def write_run(run: Path, model, like: Path) -> None:
    """A run directory holding `model` as its best checkpoint, with `like`'s config."""
    run.mkdir(parents=True)
    meta = json.loads((like / "config.json").read_text())
    meta["kind"] = "dendritic"
    (run / "config.json").write_text(json.dumps(meta))
    torch.save({"model": model.state_dict(), "epoch": 1, "best_val": 0.5, "train_seconds": 1.0,
                "history": []}, run / "best.pt")


def test_dendritic_export_is_plain_operators_and_matches_pytorch(tiny_growth, tmp_path):
    root, *_ = tiny_growth
    torch.manual_seed(4)
    model = Cnn(SMALL)
    model.load_state_dict(torch.load(root / "baseline-seed1" / "best.pt")["model"])  # trained: a sane temperature
    make_dendritic(model, ALL)
    add_dendrites(model)
    add_dendrites(model)  # two dendrites: the cascade weight v is exported too
    g = torch.Generator().manual_seed(9)
    with torch.no_grad():  # make every dendrite, u and v matter
        for neuron in model.neurons.values():
            for p in neuron.dendrite_parameters():
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    write_run(tmp_path / "run", model, root / "dendritic-seed1")
    out = tmp_path / "dendritic" / "1"
    manifest = package(tmp_path / "run", "dendritic", "1", out)
    assert manifest["parameters"] == count_params(model)
    ops = {n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node}
    assert {"Conv", "Sigmoid", "Mul", "Add"} <= ops
    assert ops <= {"Conv", "Gemm", "MatMul", "Sigmoid", "Mul", "Add", "Relu", "MaxPool", "Flatten", "Reshape",
                   "Constant", "Unsqueeze", "Identity"}, ops
    service_parity(out)


def test_dendritic_neuron_is_a_drop_in_for_its_neuron():
    torch.manual_seed(0)
    plain = perturbed(Cnn(SMALL)).eval()
    x = batch()
    expected = plain(x)
    wrapped = make_dendritic(plain, ["conv1"])
    assert isinstance(wrapped.neurons["conv1"], DendriticNeuron)
    assert torch.equal(wrapped(x), expected)
    with pytest.raises(ValueError, match="no neuron named 'conv9'"):
        make_dendritic(Cnn(SMALL), ["conv9"])


def test_mcnemar_exact_p_value():
    a = [True] * 8 + [False] * 2 + [True] * 90
    b = [False] * 8 + [True] * 2 + [True] * 90
    r = mcnemar(a, b)
    assert (r["aRightBWrong"], r["aWrongBRight"], r["discordant"]) == (8, 2, 10)
    assert r["pValue"] == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar(a, a)["pValue"] == 1.0
    assert mcnemar([True] * 500 + [False] * 500, [False] * 500 + [True] * 500)["pValue"] == 1.0


def test_perforated_growth_run(tiny_growth, tmp_path):
    root, sched, *_ = tiny_growth
    out = tmp_path / "dendritic-pb-seed1"
    result = grow(root / "baseline-seed1", out, sched, ["conv2", "fc1"], seed=2, log=lambda *_: None,
                  candidates=CandidateConfig(epochs=2))
    meta = json.loads((out / "config.json").read_text())
    assert meta["dendrites"]["method"] == "perforated" and meta["dendrites"]["candidates"]["epochs"] == 2
    history = json.loads((out / "history.json").read_text())
    phase = history[0]["candidates"]  # the first dendrite phase ran before epoch 1
    assert phase["objective"] > 0 and phase["firstSteps"] > 0
    assert len(phase["perEpoch"]) == 2 and phase["objective"] == phase["perEpoch"][-1]
    assert history[-1]["after"] == "stop" and set(result["dendrites"]) == {"conv2", "fc1"}
    assert (out / "final.pt").exists()
    # Both methods grow on the same base runs: the plot gives each its own panel.
    png = tmp_path / "growth.png"
    panels = plot([out, root / "dendritic-seed1"], png, {"seed1": root / "baseline-seed1"})
    assert panels == ["gradient-descent dendrites", "perforated dendrite phase"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_comparison_and_plot_from_runs(tiny_growth, tmp_path):
    root, *_ = tiny_growth
    result = compare(root)
    assert set(result["summary"]) == {"baseline", "dendritic"}
    d = result["summary"]["dendritic"]
    assert d["parameters"]["mean"] > result["summary"]["baseline"]["parameters"]["mean"]
    assert 0 <= d["testAccuracy"]["mean"] <= 1 and d["testAccuracy"]["n"] == 1
    assert set(result["mcnemar"]) == {"baseline vs dendritic"} and set(result["mcnemar"]["baseline vs dendritic"]) == {"1"}
    assert "| Dendritic CNN | 1 |" in markdown(result)
    assert "| dendritic-seed1 |" in markdown(result) and "| baseline-seed1 |" in markdown(result)
    # Test predictions are cached in the run, keyed by the weights: a second
    # comparison reads them back (a doctored cache shows through), and a cache
    # for other weights is ignored and rewritten.
    cache = root / "baseline-seed1" / PREDICTIONS
    saved = json.loads(cache.read_text())
    assert len(saved["predictions"]) == 10_000
    labels = fdata.load().test.labels
    cache.write_text(json.dumps({**saved, "predictions": labels.tolist()}))
    assert compare(root)["summary"]["baseline"]["testAccuracy"]["mean"] == 1.0
    cache.write_text(json.dumps({**saved, "modelSha256": "0" * 64, "predictions": labels.tolist()}))
    again = compare(root)["summary"]["baseline"]
    assert again["testAccuracy"]["mean"] == result["summary"]["baseline"]["testAccuracy"]["mean"]
    assert json.loads(cache.read_text()) == saved
    out = tmp_path / "growth.png"
    assert plot([root / "dendritic-seed1"], out, {"seed1": root / "baseline-seed1"}) == [  # a control draws as any trained run
        "gradient-descent dendrites"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
