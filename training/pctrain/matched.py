"""Plain controls for a dendritic run: the baseline CNN widened to the
dendritic model's parameter count, and widened to its MACs per image.

    python3 -m pctrain.matched --run runs/dendritic-seed1 --print-commands

One width multiplier m scales every conv layer's channels and the dense
layer (each rounded to an integer, at least 1); the multiplier is scanned
for the plain network whose count is closest to the target. Parameters and
MACs are counted as `pctrain.study` counts them (`nets.count_params` and
`nets.count_macs` on the run's validation-chosen best checkpoint); the
plain network's counts are computed in closed form here and agree with
those two functions (tests/test_matched_queue.py).

Each control trains from scratch with `pctrain.train` with the dendritic
run's seed (so the same first-epoch data order), the base run's training
options and data options (data_fraction, subset_seed, train_limit), and as
many epochs as the dendritic model had in all: the base run's epochs plus
the growth epochs in the dendritic run's history (the budget of the first
study's parameter-matched controls). Nothing is trained by this module.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from .checkpoints import find_base
from .nets import CnnConfig

PARAMS, MACS = "params", "macs"

# TrainConfig fields `pctrain.train`'s command line cannot set: a base run
# that changed any of them cannot be matched by a command line.
NOT_ON_COMMAND_LINE = ("lr_schedule", "max_shift", "flip_p", "warmup_epochs", "dendrite_lr_scale",
                       "decay_norm_and_dendrites", "subset_seed", "val_per_class", "split_seed")


def widen(net: CnnConfig, m: float) -> CnnConfig:
    """`net` with every conv layer's channels and the dense layer scaled by `m`."""
    w = lambda c: max(1, int(round(c * m)))  # noqa: E731
    return replace(net, conv_channels=tuple(w(c) for c in net.conv_channels), dense=w(net.dense))


def plain_params(net: CnnConfig) -> int:
    """Parameters of `Cnn(net)`: bias-free convs and fc1 with batch norms (2 per channel), a biased head."""
    total, cin, size = 0, net.in_channels, net.image_size
    for i, cout in enumerate(net.conv_channels):
        total += cin * cout * 9 + 2 * cout
        cin = cout
        if i in net.pool_after:
            size //= 2
    flat = cin * size * size
    return total + flat * net.dense + 2 * net.dense + net.dense * net.num_classes + net.num_classes


def plain_macs(net: CnnConfig) -> int:
    """Multiply-accumulates per image of `Cnn(net)`, counted as `nets.count_macs` counts them."""
    total, cin, size = 0, net.in_channels, net.image_size
    for i, cout in enumerate(net.conv_channels):
        total += size * size * cout * 9 * cin  # 3x3, padding 1: the output is size x size
        cin = cout
        if i in net.pool_after:
            size //= 2
    return total + cin * size * size * net.dense + net.dense * net.num_classes


COUNTERS = {PARAMS: plain_params, MACS: plain_macs}


@dataclass(frozen=True)
class Match:
    measure: str        # "params" or "macs"
    target: int
    multiplier: float
    net: CnnConfig
    achieved: int

    @property
    def relative_error(self) -> float:
        return (self.achieved - self.target) / self.target

    def to_dict(self) -> dict:
        return {"measure": self.measure, "target": self.target, "multiplier": self.multiplier,
                "net": self.net.to_dict(), "achieved": self.achieved,
                "relativeError": round(self.relative_error, 6)}


def match_width(net: CnnConfig, target: int, measure: str = PARAMS, step: float = 1e-3,
                max_multiplier: float = 64.0) -> Match:
    """The multiplier (a multiple of `step`) whose widened `net` has the count closest to `target`.

    The count never falls as m grows, so the scan runs from the smallest
    multiplier up to the first one at or above the target, doubling an upper
    bound first; ties go to the narrower network.
    """
    if target <= 0:
        raise ValueError("the target count must be positive")
    count = COUNTERS[measure]
    hi = 1.0
    while count(widen(net, hi)) < target:
        hi *= 2
        if hi > max_multiplier:
            raise ValueError(f"no multiplier up to {max_multiplier} reaches {target} {measure}")
    best: Match | None = None
    k, last = 1, None
    while k * step <= hi + step / 2:
        m = round(k * step, 10)
        cfg = widen(net, m)
        if cfg != last:
            last = cfg
            c = count(cfg)
            if best is None or abs(c - target) < abs(best.achieved - target):
                best = Match(measure, target, m, cfg, c)
            if c >= target:
                break
        k += 1
    return best


# ---- a finished dendritic run ------------------------------------------
def growth_epochs(run: Path, ck: dict) -> int:
    """Epochs the dendritic run trained (rolled-back ones included): its history's last epoch."""
    hist = run / "history.json"
    rows = json.loads(hist.read_text()) if hist.exists() else ck.get("history", [])
    return max((int(r.get("epoch", 0)) for r in rows), default=int(ck.get("epoch", 0)))


def run_targets(run: Path) -> dict:
    """The dendritic run's best model's parameters and MACs, as pctrain.study records them."""
    from .nets import count_macs, count_params
    from .package import load_run

    model, meta, ck = load_run(run)
    net = CnnConfig.from_dict(meta["train"]["net"])
    return {"meta": meta, "ck": ck, PARAMS: count_params(model),
            MACS: count_macs(model, net.image_size, net.in_channels)}


def train_command(cfg, out: Path, python: str = sys.executable) -> list[str]:
    """A `pctrain.train` command line that trains `cfg` (a TrainConfig) into `out`."""
    from .train import TrainConfig

    default = TrainConfig()
    bad = [f for f in NOT_ON_COMMAND_LINE if getattr(cfg, f) != getattr(default, f)]
    if bad:
        raise ValueError(f"pctrain.train's command line cannot set {', '.join(bad)}; the base run changed them")
    net = CnnConfig.from_dict(cfg.net)
    if (net.num_classes, net.in_channels, net.image_size) != (10, 1, 28):
        raise ValueError("pctrain.train's command line builds 10-class 1x28x28 networks only")
    cmd = [python, "-m", "pctrain.train", "--out", str(out), "--seed", str(cfg.seed), "--epochs", str(cfg.epochs),
           "--batch-size", str(cfg.batch_size), "--max-lr", repr(cfg.max_lr),
           "--weight-decay", repr(cfg.weight_decay), "--label-smoothing", repr(cfg.label_smoothing),
           "--channels", *map(str, net.conv_channels), "--dense", str(net.dense), "--dropout", repr(net.dropout),
           "--pool-after", *map(str, net.pool_after), "--erase-p", repr(cfg.erase_p), "--mix", cfg.mix, "--mix-alpha", repr(cfg.mix_alpha),
           "--mix-p", repr(cfg.mix_p), "--ema", repr(cfg.ema_decay), "--threads", str(cfg.threads)]
    if not net.pool_after:
        raise ValueError("pctrain.train's --pool-after needs at least one index")
    if not cfg.bn_recompute:
        cmd.append("--no-bn-recompute")
    if cfg.distill:
        cmd += ["--distill", cfg.distill, "--distill-alpha", repr(cfg.distill_alpha)]
    if cfg.bf16:
        cmd.append("--bf16")
    if cfg.train_limit:
        cmd += ["--train-limit", str(cfg.train_limit)]
    if cfg.data_fraction:
        cmd += ["--data-fraction", repr(cfg.data_fraction)]
    if cfg.data_dir:
        cmd += ["--data-dir", cfg.data_dir]
    return cmd


def controls(run: Path, out_dir: Path | None = None, python: str = sys.executable) -> dict:
    """The param-matched and MAC-matched plain controls of the finished dendritic run `run`."""
    from .train import TrainConfig

    if not (run / "final.pt").exists():
        raise FileNotFoundError(f"{run} has no final.pt: it is not a finished run")
    t = run_targets(run)
    meta, ck = t["meta"], t["ck"]
    if meta.get("kind") != "dendritic":
        raise ValueError(f"{run} is a {meta.get('kind')!r} run, not a dendritic one")
    base = find_base(run, meta["base_run"])
    names = {f.name for f in fields(TrainConfig)}
    base_cfg = TrainConfig(**{k: v for k, v in json.loads((base / "config.json").read_text())["train"].items()
                              if k in names})
    grow_cfg = meta["train"]
    extra = growth_epochs(run, ck)
    net = CnnConfig.from_dict(base_cfg.net)
    out_dir = out_dir or run.parent
    result = {"run": str(run), "base": str(base), "seed": grow_cfg["seed"],
              "epochs": {"base": base_cfg.epochs, "growth": extra, "total": base_cfg.epochs + extra},
              "targets": {PARAMS: t[PARAMS], MACS: t[MACS]},
              "base_counts": {PARAMS: plain_params(net), MACS: plain_macs(net)}, "controls": {}}
    for measure, kind in ((PARAMS, "param-matched"), (MACS, "mac-matched")):
        m = match_width(net, t[measure], measure)
        # The grown run's forward precision (growth may run in bfloat16 on a float32 base): every arm of a seed shares it.
        cfg = replace(base_cfg, seed=grow_cfg["seed"], epochs=base_cfg.epochs + extra, net=m.net.to_dict(),
                      bf16=bool(grow_cfg.get("bf16", base_cfg.bf16)))
        out = out_dir / f"{run.name}-{kind}"
        cmd = train_command(cfg, out, python)
        other = MACS if measure == PARAMS else PARAMS
        result["controls"][kind] = {**m.to_dict(), other: COUNTERS[other](m.net), "out": str(out),
                                    "train": asdict(cfg), "command": cmd, "commandLine": shlex.join(cmd)}
    return result


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, required=True, help="a finished dendritic run directory (pctrain.grow)")
    p.add_argument("--out-dir", type=Path, default=None, help="where the controls' run directories go "
                   "(default: beside the run, named <run>-param-matched and <run>-mac-matched)")
    p.add_argument("--print-commands", action="store_true",
                   help="print only the two pctrain.train command lines, one a line (for a pctrain.queue file)")
    a = p.parse_args(argv)
    r = controls(a.run, a.out_dir)
    if a.print_commands:
        for c in r["controls"].values():
            print(c["commandLine"])
        return
    summary = {k: v for k, v in r.items() if k != "controls"}
    summary["controls"] = {k: {f: c[f] for f in ("multiplier", "achieved", "relativeError", PARAMS if k ==
                                                   "mac-matched" else MACS, "out", "commandLine")}
                           | {"channels": c["net"]["conv_channels"], "dense": c["net"]["dense"]}
                           for k, c in r["controls"].items()}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
