"""Train a CNN on the official split, checkpointing every epoch.

    python3 -m pctrain.train --out runs/baseline-seed1 --seed 1 --epochs 15

A run directory holds `last.pt` (resume point: model, optimizer, schedule,
RNG state, history), `best.pt` (best validation accuracy so far, the model
that gets packaged), `history.json` and `config.json`. Re-running the same
command resumes from `last.pt`. The test set is never looked at here.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import data as fdata
from .augment import mix, random_erase, shift_and_flip
from .checkpoints import save_atomic, write_final, write_text_atomic
from .ema import Ema, recompute_bn
from .nets import Cnn, CnnConfig, count_params


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    epochs: int = 15
    batch_size: int = 128
    max_lr: float = 3e-3
    lr_schedule: str = "onecycle"  # or "cosine": start at max_lr, anneal to 0 (dendrite cycles)
    weight_decay: float = 0.05
    label_smoothing: float = 0.05
    max_shift: int = 2
    flip_p: float = 0.5
    erase_p: float = 0.0  # random erasing, per image
    mix: str = "none"  # "mixup" or "cutmix", applied to a batch with probability mix_p
    mix_alpha: float = 1.0
    mix_p: float = 0.5
    ema_decay: float = 0.0  # >0: evaluate, select and export an EMA of the weights
    bn_recompute: bool = True  # with EMA: measure batch-norm statistics again at the end, kept if validation agrees
    distill: str | None = None  # soft targets from pctrain.distill
    distill_alpha: float = 0.5  # weight of the distillation term; 1 - alpha on the labels
    bf16: bool = False  # bfloat16 autocast for the forward pass (AMX/AVX-512 BF16 CPUs train about 2x faster)
    warmup_epochs: float = 0.0  # cosine schedule: a linear warm-up from 0 over this many epochs first
    dendrite_lr_scale: float = 1.0  # dendrite weights (and their u, v) train at max_lr times this
    decay_norm_and_dendrites: bool = True  # False: no weight decay on 1-D parameters (norms, biases) or dendrites
    threads: int = 2
    train_limit: int = 0  # >0: a class-balanced slice of the training split (smoke runs)
    data_fraction: float = 0.0  # >0: a fixed class-balanced share of the training split (limited-data runs)
    subset_seed: int = 20260102  # draws that share: the same images for every run and training seed
    val_per_class: int = 500
    split_seed: int = 20260101
    data_dir: str | None = None
    net: dict = field(default_factory=lambda: CnnConfig().to_dict())


def is_dendrite_parameter(name: str) -> bool:
    """A dendrite's weights and norm, or its u / v scalars (see dendrites.DendriticNeuron):
    "neurons.conv1.dendrites.0.op.weight", "neurons.conv1.u.0", "neurons.conv1.v.1"."""
    return any(seg in ("dendrites", "u", "v") for seg in name.split(".")[:-1])


def training_data(cfg: TrainConfig) -> fdata.FashionMnist:
    """The splits a run trains on: the official split with the fixed
    validation hold-out, its training part cut to a class-balanced slice for
    smoke runs (`train_limit`, drawn with the run's seed) or to a fixed share
    for limited-data runs (`data_fraction`, drawn with `subset_seed`, so every
    arm and seed of an experiment sees the same images). Validation and test
    are never cut."""
    ds = fdata.load(cfg.data_dir, cfg.val_per_class, cfg.split_seed)
    if cfg.train_limit:
        return fdata.FashionMnist(fdata.subset(ds.train, cfg.train_limit, cfg.seed), ds.val, ds.test, ds.source_dir)
    if cfg.data_fraction:
        n = round(cfg.data_fraction * len(ds.train.labels))
        return fdata.FashionMnist(fdata.subset(ds.train, n, cfg.subset_seed), ds.val, ds.test, ds.source_dir)
    return ds


def set_determinism(seed: int, threads: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


def to_tensor(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    """uint8 [N,28,28] -> float32 [N,1,28,28], x = (pixel/255 - mean) / std."""
    x = torch.from_numpy(images.astype(np.float32) / 255.0)
    return ((x - mean) / std).unsqueeze(1)


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i : i + batch]) for i in range(0, x.shape[0], batch)])


def accuracy(logits: torch.Tensor, labels: np.ndarray | torch.Tensor) -> float:
    labels = torch.as_tensor(labels)
    return (logits.argmax(1) == labels).float().mean().item()


def normalization(train_images: np.ndarray) -> tuple[float, float]:
    x = train_images.astype(np.float64) / 255.0
    return float(x.mean()), float(x.std())


def distillation_loss(logits: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 KL(teacher || softmax(logits / T)), Hinton et al.'s scaling."""
    log_p = torch.log_softmax(logits / temperature, 1)
    return temperature**2 * torch.sum(teacher * (torch.log(teacher.clamp_min(1e-8)) - log_p), 1).mean()


class Trainer:
    """One-cycle AdamW training of `model` with per-epoch checkpoints in `out`."""

    def __init__(self, cfg: TrainConfig, out: Path, model: nn.Module, ds: fdata.FashionMnist,
                 mean: float, std: float, log=print, teacher: dict | None = None):
        self.cfg, self.out, self.model, self.log = cfg, out, model, log
        self.teacher = teacher
        self.ema = Ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.x_train = to_tensor(ds.train.images, mean, std)
        self.y_train = torch.from_numpy(ds.train.labels)
        self.x_val = to_tensor(ds.val.images, mean, std)
        self.y_val = ds.val.labels
        self.steps_per_epoch = math.ceil(len(self.y_train) / cfg.batch_size)
        self.opt, self.sched = self.make_optimizer(cfg.epochs)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.history: list[dict] = []
        self.epoch = 0
        self.best_val = -1.0
        self.train_seconds = 0.0

    def param_groups(self) -> list[dict]:
        """The trainable parameters in groups by learning rate and weight decay:
        dendrites (their weights, batch norms, u and v) may get their own
        learning rate, and with `decay_norm_and_dendrites` off neither they
        nor any 1-D parameter (norm scales and shifts, biases) are decayed."""
        cfg = self.cfg
        groups: dict[tuple[bool, bool], list] = {}
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            dendrite = is_dendrite_parameter(name)
            decay = cfg.decay_norm_and_dendrites or not (dendrite or p.ndim <= 1)
            groups.setdefault((dendrite, decay), []).append(p)
        return [{"params": ps, "lr": cfg.max_lr * (cfg.dendrite_lr_scale if dendrite else 1.0),
                 "weight_decay": cfg.weight_decay if decay else 0.0}
                for (dendrite, decay), ps in sorted(groups.items())]

    def make_optimizer(self, epochs: int):
        groups = self.param_groups()
        opt = torch.optim.AdamW(groups, lr=self.cfg.max_lr, weight_decay=self.cfg.weight_decay)
        total = epochs * self.steps_per_epoch
        if self.cfg.lr_schedule == "cosine" and self.cfg.warmup_epochs > 0:
            warm = max(1, round(self.cfg.warmup_epochs * self.steps_per_epoch))

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        elif self.cfg.lr_schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        else:
            sched = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=[g["lr"] for g in groups], epochs=epochs, steps_per_epoch=self.steps_per_epoch)
        return opt, sched

    @property
    def eval_model(self) -> nn.Module:
        """The network that is evaluated, selected and exported: the EMA copy when there is one."""
        return self.ema.model if self.ema else self.model

    def state(self) -> dict:
        return {
            "config": asdict(self.cfg), "model": self.eval_model.state_dict(), "opt": self.opt.state_dict(),
            **({"live_model": self.model.state_dict(), "ema_updates": self.ema.updates} if self.ema else {}),
            "sched": self.sched.state_dict(), "gen": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
            "epoch": self.epoch, "history": self.history, "best_val": self.best_val,
            "train_seconds": self.train_seconds,
        }

    def restore(self, ck: dict) -> None:
        if self.ema:
            self.model.load_state_dict(ck["live_model"])
            self.ema.load_state_dict({"model": ck["model"], "updates": ck["ema_updates"]})
        else:
            self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        self.sched.load_state_dict(ck["sched"])
        self.gen.set_state(ck["gen"])
        torch.set_rng_state(ck["torch_rng"])
        self.epoch, self.history = ck["epoch"], ck["history"]
        self.best_val, self.train_seconds = ck["best_val"], ck["train_seconds"]

    def train_epoch(self) -> float:
        self.model.train()
        perm = torch.randperm(len(self.y_train), generator=self.gen)
        total, seen = 0.0, 0
        for i in range(0, len(perm), self.cfg.batch_size):
            idx = perm[i : i + self.cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            x = shift_and_flip(self.x_train[idx], self.cfg.max_shift, self.cfg.flip_p, self.gen)
            x = random_erase(x, self.cfg.erase_p, self.gen)
            partner, lam = None, 1.0
            if self.cfg.mix != "none" and float(torch.rand(1, generator=self.gen)) < self.cfg.mix_p:
                x, partner, lam = mix(x, self.cfg.mix, self.cfg.mix_alpha, self.gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.cfg.bf16):
                logits = self.model(x)
            loss = self.loss(logits.float(), idx, partner, lam)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.sched.step()
            if self.ema:
                self.ema.update(self.model)
            total += loss.item() * len(idx)
            seen += len(idx)
        return total / max(seen, 1)

    def loss(self, logits: torch.Tensor, idx: torch.Tensor, partner: torch.Tensor | None, lam: float) -> torch.Tensor:
        """Label loss, mixed with the partner's when the batch was mixed, plus
        the distillation term on the (equally mixed) teacher targets."""
        y = self.y_train[idx]
        hard = self.loss_fn(logits, y)
        if partner is not None:
            hard = lam * hard + (1 - lam) * self.loss_fn(logits, y[partner])
        if self.teacher is None:
            return hard
        soft = self.teacher["probs"][idx]
        if partner is not None:
            soft = lam * soft + (1 - lam) * soft[partner]
        a = self.cfg.distill_alpha
        return (1 - a) * hard + a * distillation_loss(logits, soft, self.teacher["temperature"])

    def run(self, extra: dict | None = None) -> dict:
        while self.epoch < self.cfg.epochs:
            t0 = time.time()
            loss = self.train_epoch()
            val_acc = accuracy(predict_logits(self.eval_model, self.x_val), self.y_val)
            self.train_seconds += time.time() - t0
            self.epoch += 1
            row = {"epoch": self.epoch, "train_loss": round(loss, 5), "val_acc": round(val_acc, 5),
                   "lr": self.sched.get_last_lr()[0], "seconds": round(time.time() - t0, 1), **(extra or {})}
            self.history.append(row)
            self.log(json.dumps(row))
            if val_acc > self.best_val:
                self.best_val = val_acc
                save_atomic(self.state(), self.out / "best.pt")
            save_atomic(self.state(), self.out / "last.pt")
            write_text_atomic(self.out / "history.json", json.dumps(self.history, indent=1))
        return {"best_val": self.best_val, "train_seconds": self.train_seconds}

    def finish_bn(self) -> dict | None:
        """With EMA: recompute the best checkpoint's batch-norm statistics on the
        clean training images and keep them if validation accuracy does not drop."""
        if not (self.ema and self.cfg.bn_recompute):
            return None
        ck = torch.load(self.out / "best.pt")
        if "bn_recomputed" in ck:
            return ck["bn_recomputed"]
        model = copy.deepcopy(self.eval_model)
        model.load_state_dict(ck["model"])
        before = accuracy(predict_logits(model, self.x_val), self.y_val)
        recompute_bn(model, self.x_train)
        after = accuracy(predict_logits(model, self.x_val), self.y_val)
        result = {"val_before": round(before, 5), "val_after": round(after, 5), "kept": after >= before}
        if result["kept"]:
            ck["model"], ck["best_val"] = model.state_dict(), after
        ck["bn_recomputed"] = result
        save_atomic(ck, self.out / "best.pt")
        self.log(json.dumps({"bn_recomputed": result}))
        return result


def train(cfg: TrainConfig, out: Path, log=print) -> dict:
    """Train (or resume) a baseline CNN run in `out`; a finished run is left as it is."""
    if (out / "final.pt").exists():
        ck = torch.load(out / "final.pt")
        return {"best_val": ck["best_val"], "train_seconds": ck["train_seconds"], "finished": True}
    out.mkdir(parents=True, exist_ok=True)
    set_determinism(cfg.seed, cfg.threads)
    ds = training_data(cfg)
    mean, std = normalization(ds.train.images)
    model = Cnn(CnnConfig.from_dict(cfg.net))
    write_text_atomic(out / "config.json", json.dumps(
        {"train": asdict(cfg), "normalization": {"mean": mean, "std": std},
         "params": count_params(model), "kind": "baseline"}, indent=1))
    teacher = None
    if cfg.distill:
        from .distill import load_targets  # distill builds on this module

        teacher = load_targets(Path(cfg.distill), ds.train.images)
    trainer = Trainer(cfg, out, model, ds, mean, std, log, teacher)
    if (out / "last.pt").exists():
        trainer.restore(torch.load(out / "last.pt"))
        log(f"resumed {out} at epoch {trainer.epoch}")
    result = trainer.run()
    bn = trainer.finish_bn()
    if bn is not None and bn["kept"]:
        result["best_val"] = torch.load(out / "best.pt")["best_val"]
    meta = json.loads((out / "config.json").read_text())
    meta["wall_seconds"] = result["train_seconds"]
    if bn is not None:
        meta["bn_recomputed"] = bn
    write_text_atomic(out / "config.json", json.dumps(meta, indent=1))
    write_final(out)
    return result


def parse_net(args) -> dict:
    net = CnnConfig(conv_channels=tuple(args.channels), pool_after=tuple(args.pool_after), dense=args.dense,
                    dropout=args.dropout)
    return net.to_dict()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--label-smoothing", type=float, default=0.05)
    p.add_argument("--channels", type=int, nargs="+", default=[32, 32, 64, 64])
    p.add_argument("--dense", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--pool-after", type=int, nargs="+", default=[1, 3], help="conv indices followed by a 2x2 max pool")
    p.add_argument("--erase-p", type=float, default=0.0, help="random erasing probability per image")
    p.add_argument("--mix", choices=["none", "mixup", "cutmix"], default="none")
    p.add_argument("--mix-alpha", type=float, default=1.0)
    p.add_argument("--mix-p", type=float, default=0.5, help="share of batches that are mixed")
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay of the weights (0: off)")
    p.add_argument("--no-bn-recompute", action="store_true")
    p.add_argument("--distill", default=None, help="soft targets written by python3 -m pctrain.distill")
    p.add_argument("--distill-alpha", type=float, default=0.5)
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast in the forward pass")
    p.add_argument("--train-limit", type=int, default=0)
    p.add_argument("--data-fraction", type=float, default=0.0,
                   help="train on this fixed class-balanced share of the training split (limited-data runs)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data-dir", default=None)
    a = p.parse_args(argv)
    cfg = TrainConfig(seed=a.seed, epochs=a.epochs, batch_size=a.batch_size, max_lr=a.max_lr,
                      weight_decay=a.weight_decay, label_smoothing=a.label_smoothing, threads=a.threads,
                      train_limit=a.train_limit, data_fraction=a.data_fraction, data_dir=a.data_dir, net=parse_net(a), erase_p=a.erase_p,
                      mix=a.mix, mix_alpha=a.mix_alpha, mix_p=a.mix_p, ema_decay=a.ema,
                      bn_recompute=not a.no_bn_recompute, distill=a.distill, distill_alpha=a.distill_alpha,
                      bf16=a.bf16)
    print(json.dumps(train(cfg, a.out)))


if __name__ == "__main__":
    main()
