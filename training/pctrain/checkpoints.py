"""Rebuild a network from a run's config and checkpoint, whatever kind it is."""
from __future__ import annotations

from torch import nn

from .nets import Cnn, CnnConfig


def load_model(meta: dict, ck: dict) -> nn.Module:
    model = Cnn(CnnConfig.from_dict(meta["train"]["net"]))
    if meta.get("kind") == "dendritic":
        from .dendrites import add_dendrites_from_state

        add_dendrites_from_state(model, ck["model"])
    model.load_state_dict(ck["model"])
    return model
