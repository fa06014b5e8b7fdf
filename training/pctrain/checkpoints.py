"""Rebuild a network from a run's config and checkpoint, whatever kind it is."""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .nets import Cnn, CnnConfig


def load_model(meta: dict, ck: dict) -> nn.Module:
    model = Cnn(CnnConfig.from_dict(meta["train"]["net"]))
    if meta.get("kind") == "dendritic":
        from .dendrites import add_dendrites_from_state

        add_dendrites_from_state(model, ck["model"])
    model.load_state_dict(ck["model"])
    return model


def replace_atomically(path: Path, write) -> None:
    """Write `path` through `write(temporary path)` and a rename, so a process
    killed mid-write leaves the old file (or none), never half of one: every
    checkpoint, history and record a stopped run resumes from is written so."""
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_atomic(obj, path: Path) -> None:
    replace_atomically(path, lambda p: torch.save(obj, p))


def write_text_atomic(path: Path, text: str) -> None:
    replace_atomically(path, lambda p: p.write_text(text))


SLIM_KEYS = ("config", "model", "epoch", "history", "best_val", "train_seconds", "schedule", "bn_recomputed")


def write_final(run: Path) -> Path:
    """Save the best checkpoint without optimizer state as `final.pt`.

    `final.pt` (about 4 MB) is committed with the run's logs; `best.pt` and
    `last.pt` carry optimizer and RNG state for resuming and stay local.
    """
    ck = torch.load(run / "best.pt")
    final = run / "final.pt"
    save_atomic({k: ck[k] for k in SLIM_KEYS if k in ck}, final)
    return final


def best_checkpoint(run: Path) -> dict:
    """A finished or running run's best model: `best.pt`, else the committed `final.pt`."""
    for name in ("best.pt", "final.pt"):
        if (run / name).exists():
            return torch.load(run / name)
    raise FileNotFoundError(f"{run} has neither best.pt nor final.pt: train it first")


def find_base(run: Path, base_run: str) -> Path:
    """The base run a grown run records (`base_run`, a path relative to training/ where
    pctrain.grow ran), looked up from the current directory, then from each directory
    above `run`, then beside `run`."""
    rec = Path(base_run)
    for cand in (rec, *(up / rec for up in run.resolve().parents), run.parent / rec.name):
        if (cand / "config.json").exists():
            return cand
    raise FileNotFoundError(f"the base run {base_run!r} of {run} has no config.json here or beside the run")
