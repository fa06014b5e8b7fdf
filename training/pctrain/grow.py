"""Grow dendrites on a trained baseline run, checkpointing every epoch.

    python3 -m pctrain.grow --base runs/baseline-seed1 --out runs/dendritic-seed1 --seed 1

The run starts from the base run's best checkpoint, asks `DendriteSchedule`
what to do after every epoch, and rolls back / adds dendrites / rebuilds the
optimizer and learning-rate schedule as it says. With `--method perforated`
each new set of dendrites first goes through the Perforated Backpropagation
dendrite phase (`--candidate-epochs` of covariance training with the
network frozen, see dendrites.py) and is then frozen; the epochs the
schedule counts train the network's own weights and u. `best.pt` is always the best
validation checkpoint (the one packaged), `last.pt` the resume point:
re-running the same command continues where it stopped. The test set is never
looked at here.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from . import data as fdata
from .checkpoints import best_checkpoint, load_model, save_atomic, write_final, write_text_atomic
from .augment import shift_and_flip
from .dendrites import (ADD, DENDRITE_INIT_STD, RETRY, STOP, DendriteSchedule, ScheduleConfig, add_dendrites, candidate_step,
                        dendrite_counts, dendritic_neurons, freeze_dendrites, make_dendritic)
from .nets import count_params
from .train import TrainConfig, Trainer, accuracy, predict_logits, set_determinism, training_data

DEFAULT_LAYERS = ("conv1", "conv2", "conv3", "conv4")
DEFAULT_MAX_LR = 5e-4
FIRST_STEPS = 20  # the candidate objective's starting level: its mean over the phase's first steps
GRADIENT, PERFORATED = "gradient", "perforated"


@dataclass(frozen=True)
class CandidateConfig:
    """The Perforated Backpropagation dendrite phase (method "perforated")."""

    epochs: int = 1       # passes over the training set per new dendrite set
    lr: float = 1e-3      # Adam, constant


@dataclass(frozen=True)
class NewDendrites:
    """What one addition gives every wrapped neuron."""

    per_addition: int = 1            # dendrites added at once (the dendrite-count sweep adds 1, 2, 4 or 8)
    bn_scale: float | None = None    # the new dendrite's norm scale (`fresh_dendrite`); None: 1


class Grower:
    """The dendritic training loop around a `Trainer` (data, epochs, optimizer)."""

    def __init__(self, out: Path, meta: dict, cfg: TrainConfig, schedule: DendriteSchedule,
                 layers: list[str], ds: fdata.FashionMnist, log=print, candidates: CandidateConfig | None = None,
                 new: NewDendrites = NewDendrites()):
        self.out, self.meta, self.cfg, self.schedule, self.layers, self.log = out, meta, cfg, schedule, layers, log
        norm = meta["normalization"]
        self.ds, self.mean, self.std = ds, norm["mean"], norm["std"]
        self.candidates = candidates  # None: gradient-descent dendrites
        self.new = new
        self.trainer: Trainer | None = None

    @property
    def adds_dendrites(self) -> bool:
        """False for the continued-training control: the same cycles, no dendrites."""
        return self.meta["kind"] == "dendritic"

    def model_from(self, ck: dict) -> torch.nn.Module:
        if not self.adds_dendrites:
            return load_model(self.meta, ck)
        model = make_dendritic(load_model(self.meta, ck), self.layers)
        if self.candidates is not None:
            freeze_dendrites(model)  # perforated: a dendrite, once trained as a candidate, stays fixed
        return model

    def train_candidates(self, model: torch.nn.Module) -> dict:
        """The dendrite phase: train each neuron's newest dendrite to covary with the neuron's error.

        The network is frozen (inference mode, no updates) and every u is
        still zero, so the loss and its gradients are the network's own; only
        the candidates' weights, batch norms and cascade weights v change.
        The objective is logged as its mean over the first steps and over
        each epoch, so a phase too short to improve it shows as such.
        """
        t, cc = self.trainer, self.candidates
        neurons = list(dendritic_neurons(model).values())
        params = [p for n in neurons for p in n.candidate_parameters()]
        opt = torch.optim.Adam(params, lr=cc.lr)
        model.eval()
        for n in neurons:
            n.dendrites[-1].train()
        t0, first, per_epoch = time.time(), [], []
        for _ in range(cc.epochs):
            perm = torch.randperm(len(t.y_train), generator=t.gen)
            total, steps = 0.0, 0
            for i in range(0, len(perm), self.cfg.batch_size):
                idx = perm[i : i + self.cfg.batch_size]
                if len(idx) < 2:  # the candidates' batch norms need two samples
                    continue
                x = shift_and_flip(t.x_train[idx], self.cfg.max_shift, self.cfg.flip_p, t.gen)
                value = candidate_step(model, x, t.y_train[idx], t.loss_fn, opt)
                if len(first) < FIRST_STEPS:
                    first.append(value)
                total += value
                steps += 1
            per_epoch.append(round(total / max(steps, 1), 8))
        seconds = time.time() - t0
        t.train_seconds += seconds
        return {"objective": per_epoch[-1], "perEpoch": per_epoch,
                "firstSteps": round(sum(first) / max(len(first), 1), 8), "seconds": round(seconds, 1)}

    def attach(self, model: torch.nn.Module) -> None:
        """Train `model` from here on, with a fresh optimizer and LR schedule."""
        if self.trainer is None:
            self.trainer = Trainer(self.cfg, self.out, model, self.ds, self.mean, self.std, self.log)
        else:
            self.trainer.model = model
            self.trainer.opt, self.trainer.sched = self.trainer.make_optimizer(self.cfg.epochs)

    def checkpoint(self, name: str) -> None:
        t = self.trainer
        save_atomic({**t.state(), "schedule": self.schedule.state_dict()}, self.out / name)

    def grow_from_best(self, event: str) -> dict:
        """Roll back to the best checkpoint and add one dendrite per wrapped neuron
        (the continued-training control only rolls back and restarts the cycle)."""
        best = torch.load(self.out / "best.pt")
        model = self.model_from(best)
        if self.adds_dendrites:
            add_dendrites(model, self.new.per_addition, self.new.bn_scale)
        row = {"event": event, "dendrites": dendrite_counts(model), "params": count_params(model)}
        if self.candidates is not None:
            row["candidates"] = self.train_candidates(model)
            freeze_dendrites(model)
        self.attach(model)
        self.log(json.dumps(row))
        return row

    def start(self, base_ck: dict) -> None:
        model = self.model_from(base_ck)
        self.attach(model)
        t = self.trainer
        t.train_seconds = 0.0
        val = accuracy(predict_logits(model, t.x_val), t.y_val)
        t.best_val = val
        t.history = [{"epoch": 0, "val_acc": round(val, 5), "dendrites": 0, "event": "base"}]
        self.log(json.dumps(t.history[0]))
        self.checkpoint("best.pt")
        action = self.schedule.start(val)
        assert action == ADD
        added = self.grow_from_best("add")
        if "candidates" in added:
            t.history[0]["candidates"] = added["candidates"]
        self.checkpoint("last.pt")

    def resume(self, ck: dict) -> None:
        self.attach(self.model_from(ck))
        self.trainer.restore(ck)

    def run(self) -> dict:
        t = self.trainer
        while not self.schedule.s.done:
            t0 = time.time()
            loss = t.train_epoch()
            val = accuracy(predict_logits(t.model, t.x_val), t.y_val)
            t.train_seconds += time.time() - t0
            t.epoch += 1
            best_before, cycle = self.schedule.s.best, self.schedule.s.cycle
            action = self.schedule.observe(val)
            improved = self.schedule.s.best > best_before
            row = {"epoch": t.epoch, "cycle": cycle,
                   "dendrites": max(dendrite_counts(t.model).values(), default=0), "train_loss": round(loss, 5),
                   "val_acc": round(val, 5), "lr": t.sched.get_last_lr()[0], "seconds": round(time.time() - t0, 1)}
            t.history.append(row)
            self.log(json.dumps(row))
            if improved:
                t.best_val = val
                self.checkpoint("best.pt")
            if action in (ADD, RETRY):
                added = self.grow_from_best(action)
                t.history[-1]["after"] = action
                if "candidates" in added:
                    t.history[-1]["candidates"] = added["candidates"]
            elif action == STOP:
                t.history[-1]["after"] = "stop"
            self.checkpoint("last.pt")
            write_text_atomic(self.out / "history.json", json.dumps(t.history, indent=1))
        best = torch.load(self.out / "best.pt")
        return {"best_val": best["best_val"], "train_seconds": t.train_seconds,
                "dendrites": dendrite_counts(self.model_from(best))}


def grow(base: Path, out: Path, sched: ScheduleConfig, layers: list[str], seed: int,
         max_lr: float = DEFAULT_MAX_LR, data_dir: str | None = None, log=print,
         candidates: CandidateConfig | None = None, train_overrides: dict | None = None,
         continued: bool = False, new: NewDendrites = NewDendrites()) -> dict:
    """Grow (or resume growing) dendrites on `base`'s best checkpoint into `out`.

    `candidates` set: perforated training (each new dendrite set goes through
    the dendrite phase, then is frozen); None: gradient-descent dendrites.
    A finished run (one with `final.pt`) is left as it is.
    """
    if new.per_addition > 1 and candidates is not None:
        raise ValueError("the perforated dendrite phase trains one new dendrite per neuron at a time")
    if (out / "final.pt").exists():
        ck = torch.load(out / "final.pt")
        return {"best_val": ck["best_val"], "train_seconds": ck["train_seconds"], "finished": True,
                "dendrites": dendrite_counts(load_model(json.loads((out / "config.json").read_text()), ck))}
    out.mkdir(parents=True, exist_ok=True)
    base_meta = json.loads((base / "config.json").read_text())
    base_cfg = TrainConfig(**base_meta["train"])
    # train_overrides: how each cycle trains (warm-up, the dendrites' learning rate, weight decay), recorded in config.json.
    cfg = replace(base_cfg, seed=seed, epochs=sched.cycle_epochs, max_lr=max_lr, lr_schedule="cosine",
                  data_dir=data_dir or base_cfg.data_dir, **(train_overrides or {}))
    set_determinism(cfg.seed, cfg.threads)
    base_ck = best_checkpoint(base)
    meta = {"train": asdict(cfg), "normalization": base_meta["normalization"],
            "kind": "continued" if continued else "dendritic",
            "description": ("The continued-training control: the base trained on for the same cycles and schedule as "
                            "its dendritic runs, with no dendrites added" if continued else
                            "The baseline CNN with gradient-descent dendrites grown on " if candidates is None else
                            "The baseline CNN with dendrites trained by the Perforated Backpropagation dendrite phase on ")
                           + ("" if continued else ", ".join(layers)),
            "base_run": str(base), "base_train_seconds": base_meta.get("wall_seconds", base_ck["train_seconds"]),
            "dendrites": {"layers": [], "method": "none"} if continued else
                         {"layers": list(layers), "init_std": DENDRITE_INIT_STD, "per_addition": new.per_addition,
                          "bn_scale": new.bn_scale,
                          "method": GRADIENT if candidates is None else PERFORATED,
                          **({"candidates": asdict(candidates)} if candidates is not None else {})},
            "schedule": asdict(sched)}
    ds = training_data(cfg)  # a limited-data base grows on the same images it was trained on
    write_text_atomic(out / "config.json", json.dumps(meta, indent=1))
    grower = Grower(out, meta, cfg, DendriteSchedule(sched), list(layers), ds, log, candidates, new)
    if (out / "last.pt").exists():
        ck = torch.load(out / "last.pt")
        grower.schedule = DendriteSchedule.from_state(sched, ck["schedule"])
        grower.resume(ck)
        log(f"resumed {out} at epoch {ck['epoch']}")
    else:
        grower.start(base_ck)
    result = grower.run()
    write_final(out)
    meta["dendrites"]["perLayer"] = result["dendrites"]
    meta["wall_seconds"] = result["train_seconds"]
    write_text_atomic(out / "config.json", json.dumps(meta, indent=1))
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, type=Path, help="a finished baseline run directory")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--layers", nargs="+", default=list(DEFAULT_LAYERS))
    p.add_argument("--patience", type=int, default=ScheduleConfig.patience)
    p.add_argument("--cycle-epochs", type=int, default=ScheduleConfig.cycle_epochs)
    p.add_argument("--max-additions", type=int, default=ScheduleConfig.max_additions)
    p.add_argument("--max-retries", type=int, default=ScheduleConfig.max_retries)
    p.add_argument("--min-delta", type=float, default=ScheduleConfig.min_delta)
    p.add_argument("--max-lr", type=float, default=DEFAULT_MAX_LR,
                   help="each cycle anneals from this to 0 (cosine) over --cycle-epochs")
    p.add_argument("--method", choices=[GRADIENT, PERFORATED], default=GRADIENT,
                   help="gradient: dendrites train with the network; perforated: the dendrite phase, then frozen")
    p.add_argument("--candidate-epochs", type=int, default=CandidateConfig.epochs)
    p.add_argument("--candidate-lr", type=float, default=CandidateConfig.lr)
    p.add_argument("--continued", action="store_true",
                   help="the continued-training control: run the same cycles and schedule without adding dendrites")
    p.add_argument("--judge-at-end", action="store_true",
                   help="no early stop inside a cycle: judge it once its learning-rate decay has run out")
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up at the start of each cycle")
    p.add_argument("--dendrite-lr-scale", type=float, default=1.0, help="dendrites train at --max-lr times this")
    p.add_argument("--no-decay-norm-dendrites", action="store_true",
                   help="no weight decay on dendrites, norm scales and shifts, or biases")
    p.add_argument("--per-addition", type=int, default=1,
                   help="dendrites each addition gives every wrapped neuron (gradient method only)")
    p.add_argument("--dendrite-bn-scale", type=float, default=None,
                   help="a new dendrite's norm scale, so its small start survives normalization (default 1)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast in the forward pass during growth (default: as the base was trained)")
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    if a.per_addition < 1:
        p.error("--per-addition must be at least 1")
    sched = ScheduleConfig(patience=a.patience, cycle_epochs=a.cycle_epochs, max_additions=a.max_additions,
                           max_retries=a.max_retries, min_delta=a.min_delta, judge_at_end=a.judge_at_end)
    candidates = CandidateConfig(a.candidate_epochs, a.candidate_lr) if a.method == PERFORATED else None
    overrides = {"warmup_epochs": a.warmup_epochs, "dendrite_lr_scale": a.dendrite_lr_scale,
                 "decay_norm_and_dendrites": not a.no_decay_norm_dendrites, **({"bf16": True} if a.bf16 else {})}
    print(json.dumps(grow(a.base, a.out, sched, a.layers, a.seed, a.max_lr, a.data_dir, candidates=candidates,
                          train_overrides=overrides, continued=a.continued,
                          new=NewDendrites(a.per_addition, a.dendrite_bn_scale))))


if __name__ == "__main__":
    main()
