"""pctrain.matched (plain controls widened to a dendritic run's parameters or
MACs) and pctrain.queue (a stoppable, re-runnable list of training commands)."""
import json
import shlex
import sys
from dataclasses import asdict, replace

import pytest
import torch

import pctrain.train as ptrain
from pctrain import queue as pqueue
from pctrain.dendrites import add_dendrites, make_dendritic
from pctrain.matched import MACS, PARAMS, controls, match_width, plain_macs, plain_params, widen
from pctrain.nets import Cnn, CnnConfig, count_macs, count_params
from pctrain.train import TrainConfig

torch.set_num_threads(1)
SMALL = CnnConfig(conv_channels=(8, 8, 16, 16), dense=32)
MEDIUM = CnnConfig(conv_channels=(16, 16, 32, 32), dense=64)


@pytest.mark.parametrize("net", [SMALL, MEDIUM, CnnConfig(conv_channels=(5, 7, 9), pool_after=(0, 2), dense=11)])
@pytest.mark.parametrize("m", [0.05, 0.5, 1.0, 1.37, 2.0])
def test_closed_form_counts_agree_with_the_networks(net, m):
    cfg = widen(net, m)
    model = Cnn(cfg)
    assert plain_params(cfg) == count_params(model)
    assert plain_macs(cfg) == count_macs(model)


def test_widen_scales_convs_and_dense_rounded_and_at_least_one():
    assert widen(MEDIUM, 1.5).conv_channels == (24, 24, 48, 48) and widen(MEDIUM, 1.5).dense == 96
    tiny = widen(SMALL, 0.01)
    assert tiny.conv_channels == (1, 1, 1, 1) and tiny.dense == 1
    assert widen(SMALL, 1.0) == SMALL


@pytest.mark.parametrize("measure", [PARAMS, MACS])
def test_counts_never_fall_as_the_multiplier_grows(measure):
    count = plain_params if measure == PARAMS else plain_macs
    counts = [count(widen(MEDIUM, k / 100)) for k in range(1, 400)]
    assert all(b >= a for a, b in zip(counts, counts[1:]))
    assert counts[-1] > counts[0]


@pytest.mark.parametrize("measure", [PARAMS, MACS])
@pytest.mark.parametrize("factor", [0.6, 1.15, 1.5, 2.3, 4.0])
def test_match_hits_the_target_within_a_few_percent(measure, factor):
    count = plain_params if measure == PARAMS else plain_macs
    target = int(count(MEDIUM) * factor)
    m = match_width(MEDIUM, target, measure)
    assert m.achieved == count(m.net)
    assert abs(m.relative_error) < 0.03, m
    assert m.relative_error == pytest.approx((m.achieved - target) / target)
    # no multiplier on the grid does better
    for k in range(1, 500):
        assert abs(count(widen(MEDIUM, k / 100)) - target) >= abs(m.achieved - target)


def test_match_of_the_networks_own_count_is_the_network():
    for measure, count in ((PARAMS, plain_params), (MACS, plain_macs)):
        m = match_width(MEDIUM, count(MEDIUM), measure)
        assert m.achieved == count(MEDIUM) and m.net == MEDIUM


def fake_dendritic_run(tmp_path, data_fraction=0.05, grow_bf16=False):
    """A finished base run and a finished dendritic run on it, with no training:
    config.json, history.json and final.pt as pctrain.train / pctrain.grow write them."""
    runs = tmp_path / "runs"
    base, dend = runs / "base-seed7", runs / "dendritic-seed7"
    base.mkdir(parents=True)
    dend.mkdir()
    base_cfg = TrainConfig(seed=7, epochs=5, net=SMALL.to_dict(), data_fraction=data_fraction, weight_decay=0.04)
    norm = {"mean": 0.28, "std": 0.35}
    (base / "config.json").write_text(json.dumps({"train": asdict(base_cfg), "normalization": norm,
                                                  "kind": "baseline"}))
    model = make_dendritic(Cnn(SMALL), ["conv1", "conv2", "conv3", "conv4"])
    add_dendrites(model)
    add_dendrites(model)
    grow_cfg = replace(base_cfg, epochs=4, max_lr=5e-4, lr_schedule="cosine", bf16=grow_bf16)
    (dend / "config.json").write_text(json.dumps({"train": asdict(grow_cfg), "normalization": norm,
                                                  "kind": "dendritic", "base_run": str(base)}))
    history = [{"epoch": 0, "event": "base"}] + [{"epoch": e} for e in range(1, 7)]
    (dend / "history.json").write_text(json.dumps(history))
    torch.save({"model": model.state_dict(), "best_val": 0.5, "epoch": 6, "history": history,
                "train_seconds": 1.0}, dend / "final.pt")
    return dend, model


def parsed(cmd, monkeypatch):
    """The TrainConfig and --out that pctrain.train's own argument parser makes of `cmd`."""
    seen = {}
    monkeypatch.setattr(ptrain, "train", lambda cfg, out: seen.update(cfg=cfg, out=out) or {})
    assert cmd[:3] == [sys.executable, "-m", "pctrain.train"]
    ptrain.main(cmd[3:])
    return seen["cfg"], seen["out"]


def test_controls_of_a_dendritic_run(tmp_path, monkeypatch):
    dend, model = fake_dendritic_run(tmp_path)
    r = controls(dend)
    assert r["targets"] == {PARAMS: count_params(model), MACS: count_macs(model)}
    assert r["epochs"] == {"base": 5, "growth": 6, "total": 11}
    pm, mm = r["controls"]["param-matched"], r["controls"]["mac-matched"]
    assert abs(pm["relativeError"]) < 0.05 and abs(mm["relativeError"]) < 0.05
    assert pm["achieved"] == plain_params(CnnConfig.from_dict(pm["net"]))
    assert mm["achieved"] == plain_macs(CnnConfig.from_dict(mm["net"]))
    # dendrites add more MACs than parameters here, so the MAC-matched control is the wider one
    assert mm["multiplier"] > pm["multiplier"] > 1
    for kind, c in r["controls"].items():
        cfg, out = parsed(c["command"], monkeypatch)
        assert shlex.split(c["commandLine"]) == c["command"]
        assert out == dend.parent / f"dendritic-seed7-{kind}"
        assert cfg.seed == 7 and cfg.epochs == 11
        assert cfg.data_fraction == 0.05 and cfg.subset_seed == TrainConfig().subset_seed
        assert cfg.lr_schedule == "onecycle" and cfg.max_lr == 3e-3 and cfg.weight_decay == 0.04
        assert cfg.net == c["net"] == c["train"]["net"]
        assert asdict(cfg) == c["train"]


def test_controls_train_in_the_precision_the_dendrites_grew_in(tmp_path, monkeypatch):
    # A float32 base grown in bfloat16 (pctrain.grow --bf16): both controls train in bfloat16 too.
    dend, _ = fake_dendritic_run(tmp_path, grow_bf16=True)
    for c in controls(dend)["controls"].values():
        assert "--bf16" in c["command"] and parsed(c["command"], monkeypatch)[0].bf16
    plain, _ = fake_dendritic_run(tmp_path / "fp32")
    assert not any("--bf16" in c["command"] for c in controls(plain)["controls"].values())


def test_controls_refuse_what_a_command_line_cannot_say(tmp_path):
    dend, _ = fake_dendritic_run(tmp_path)
    base = dend.parent / "base-seed7"
    meta = json.loads((base / "config.json").read_text())
    meta["train"]["subset_seed"] = 5
    (base / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="subset_seed"):
        controls(dend)


def test_matched_cli_prints_two_commands(tmp_path, capsys):
    from pctrain.matched import main

    dend, _ = fake_dendritic_run(tmp_path)
    main(["--run", str(dend), "--print-commands"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "param-matched" in lines[0] and "mac-matched" in lines[1]


# ---- the queue ---------------------------------------------------------
def py(code: str, out: str | None = None) -> str:
    """A queue line: python running `code`, with `--out out` passed as arguments."""
    line = shlex.join([sys.executable, "-c", code] + (["--out", out] if out else []))
    return line


WRITE_FINAL = ("import sys, pathlib; o = pathlib.Path(sys.argv[sys.argv.index('--out') + 1]); "
               "o.mkdir(parents=True, exist_ok=True); (o / 'final.pt').write_text('x'); "
               "open('order.txt', 'a').write(o.name + chr(10)); print('wrote', o)")


def test_queue_runs_in_order_skips_finished_and_comments(tmp_path):
    q = tmp_path / "queue.txt"
    (tmp_path / "runs" / "b").mkdir(parents=True)
    (tmp_path / "runs" / "b" / "final.pt").write_text("done")
    q.write_text("\n".join([
        "# the study", "", py(WRITE_FINAL, "runs/a") + "  # first",
        py(WRITE_FINAL, "runs/b"),
        "# " + py(WRITE_FINAL, "runs/commented"),
        py(WRITE_FINAL, "runs/c"),
    ]) + "\n")
    said = []
    done = pqueue.run_queue(q, tmp_path / "runs", cwd=tmp_path, say=said.append)
    assert (tmp_path / "order.txt").read_text().split() == ["a", "c"]
    assert done == {"ran": [3, 6], "skipped": [4]}
    assert not (tmp_path / "runs" / "commented").exists()
    log = (tmp_path / "runs" / "queue.log").read_text()
    assert "wrote runs/a" in log and "wrote runs/c" in log and log.count("exit 0 after") == 2
    assert log.index("queue.txt:3 start") < log.index("wrote runs/a") < log.index("queue.txt:6 start")
    # re-running is safe: everything is finished now
    done = pqueue.run_queue(q, tmp_path / "runs", cwd=tmp_path, say=said.append)
    assert done == {"ran": [], "skipped": [3, 4, 6]}
    assert (tmp_path / "order.txt").read_text().split() == ["a", "c"]


def test_queue_stops_at_the_first_failure_and_goes_on_after_the_fix(tmp_path):
    q = tmp_path / "queue.txt"
    flag = tmp_path / "fixed"
    fail_unless_fixed = ("import sys, pathlib; print('trying'); "
                         f"pathlib.Path({str(flag)!r}).exists() or sys.exit(3)")
    q.write_text("\n".join([py(WRITE_FINAL, "runs/a"), py(fail_unless_fixed + "; " + WRITE_FINAL, "runs/b"),
                            py(WRITE_FINAL, "runs/c")]) + "\n")
    with pytest.raises(pqueue.QueueFailed, match="exit code 3"):
        pqueue.run_queue(q, tmp_path / "runs", cwd=tmp_path, say=lambda s: None)
    assert (tmp_path / "order.txt").read_text().split() == ["a"]
    assert "exit 3 after" in (tmp_path / "runs" / "queue.log").read_text()
    flag.write_text("")
    done = pqueue.run_queue(q, tmp_path / "runs", cwd=tmp_path, say=lambda s: None)
    assert done == {"ran": [2, 3], "skipped": [1]}
    assert (tmp_path / "order.txt").read_text().split() == ["a", "b", "c"]


def test_queue_cli_exits_non_zero_with_a_message(tmp_path, monkeypatch, capsys):
    q = tmp_path / "queue.txt"
    q.write_text(py("import sys; sys.exit(2)") + "\n" + py(WRITE_FINAL, "runs/never") + "\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        pqueue.main(["--file", str(q), "--runs", str(tmp_path / "runs")])
    assert e.value.code == 1
    assert "queue stopped" in capsys.readouterr().err and not (tmp_path / "runs" / "never").exists()
    q.write_text("/no/such/program --out runs/x\n")
    with pytest.raises(SystemExit):
        pqueue.main(["--file", str(q), "--runs", str(tmp_path / "runs")])
    assert "cannot start" in (tmp_path / "runs" / "queue.log").read_text()


def test_queue_commands_get_no_terminal_input(tmp_path):
    q = tmp_path / "queue.txt"
    q.write_text(py("import sys; d = sys.stdin.read(); print('stdin', repr(d))", "runs/s") + "\n")
    pqueue.run_queue(q, tmp_path / "runs", cwd=tmp_path, say=lambda s: None)
    assert "stdin ''" in (tmp_path / "runs" / "queue.log").read_text()


def test_only_one_queue_per_runs_directory(tmp_path):
    import fcntl

    runs = tmp_path / "runs"
    runs.mkdir()
    q = tmp_path / "queue.txt"
    q.write_text(py(WRITE_FINAL, "runs/a") + "\n")
    with open(runs / "queue.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(pqueue.QueueFailed, match="another queue"):
            pqueue.run_queue(q, runs, cwd=tmp_path, say=lambda s: None)
    assert pqueue.run_queue(q, runs, cwd=tmp_path, say=lambda s: None)["ran"] == [1]


def test_out_is_read_in_both_spellings():
    assert pqueue.Command(1, ["x", "--out", "runs/a"]).out.as_posix() == "runs/a"
    assert pqueue.Command(1, ["x", "--out=runs/b"]).out.as_posix() == "runs/b"
    assert pqueue.Command(1, ["x"]).out is None


def test_stopping_the_queue_stops_its_command(tmp_path):
    import signal
    import subprocess
    import time
    from pathlib import Path

    q = tmp_path / "queue.txt"
    started = tmp_path / "started"
    q.write_text(py(f"import pathlib, time; pathlib.Path({str(started)!r}).write_text(''); time.sleep(120)",
                    "runs/slow") + "\n")
    training = Path(ptrain.__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "pctrain.queue", "--file", str(q), "--runs", "runs"],
                            cwd=tmp_path, env={"PYTHONPATH": str(training), "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if started.exists():
                break
            time.sleep(0.05)
        assert started.exists()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "runs" / "queue.log").read_text()
    assert "the queue was stopped (signal 15); the command exited -15" in log
