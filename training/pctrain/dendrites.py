"""Dendritic neurons (gradient-descent dendrites, after Brenner and Itti,
"Perforated Backpropagation", 2025) and the schedule that grows them.

A `DendriticNeuron` wraps a `Neuron` (a conv or linear op with its batch
norm). Dendrite k is a full copy of that neuron, re-initialised with small
weights, whose output enters the neuron before its nonlinearity:

    d_k = sigmoid(f_k(x) + sum_{j<k} v_kj * d_j)
    y   = f(x) + sum_k u_k * d_k

`u_k` and `v_kj` are one scalar per output channel and start at zero, so
adding a dendrite leaves the network's function unchanged at that moment.
Everything here is ordinary Conv/Gemm, Sigmoid, Mul and Add at inference:
the exporters fold each batch norm into its op (`folded`) and write the
cascade with standard TF.js layers (`emit_keras`).

Two ways to train a new dendrite:
  gradient descent  the new dendrite, its u and v and the rest of the
                    network train together on the task loss;
  perforated        the Perforated Backpropagation dendrite phase: with the
                    network frozen and u = 0, the candidate dendrite (its
                    weights and v) is trained to maximise the magnitude of
                    its per-channel covariance with the neuron's error
                    gradient (cascade-correlation style, `candidate_objective`);
                    then it is frozen for good and the network trains its
                    own weights and u with the task loss.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from .fold import fold_bn, folded_conv, folded_linear
from .nets import Neuron

DENDRITE_INIT_STD = 0.01


def _per_channel(p: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a [C] vector over a [N,C] or [N,C,H,W] tensor."""
    return p.view(1, -1, *([1] * (like.dim() - 2)))


def fresh_dendrite(neuron: Neuron, bn_scale: float | None = None) -> Neuron:
    """A copy of the neuron's op and batch norm with small N(0,1)*0.01 weights.

    The batch norm rescales whatever the op computes to unit variance, so the
    small weights alone do not make a small dendrite: with its scale reset
    to 1 the sigmoid's input is N(0, 1) from the first step. `bn_scale` sets
    the norm's scale instead, so the sigmoid starts near its linear middle
    with an input of standard deviation `bn_scale` (an initialization that
    survives normalization); None keeps the scale 1 the first study used.
    """
    d = Neuron(copy.deepcopy(neuron.op), copy.deepcopy(neuron.bn))
    with torch.no_grad():
        d.op.weight.normal_(0.0, 1.0).mul_(DENDRITE_INIT_STD)
        if d.op.bias is not None:
            d.op.bias.zero_()
    if isinstance(d.bn, (nn.BatchNorm1d, nn.BatchNorm2d)):
        d.bn.reset_parameters()  # weight 1, bias 0, running stats reset
        if bn_scale is not None:
            with torch.no_grad():
                d.bn.weight.fill_(bn_scale)
    return d


class DendriticNeuron(nn.Module):
    """A neuron with a cascade of dendrites (see the module docstring)."""

    def __init__(self, neuron: Neuron):
        super().__init__()
        self.op = neuron.op
        self.bn = neuron.bn
        self.dendrites = nn.ModuleList()
        self.u = nn.ParameterList()  # u[k]: [C], dendrite k -> neuron
        self.v = nn.ParameterList()  # v[k]: [k, C], dendrites j<k -> dendrite k
        # Dendrites [0, frozen) are fixed (perforated training): no gradient,
        # and their batch norms stay in inference mode when the model trains.
        self.frozen = 0
        # While a list, forward appends (neuron output, newest dendrite's
        # output) to it: the candidate phase reads both.
        self.record: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @property
    def channels(self) -> int:
        return self.op.weight.shape[0]

    @property
    def count(self) -> int:
        return len(self.dendrites)

    def add_dendrite(self, bn_scale: float | None = None) -> None:
        k, c = self.count, self.channels
        device = self.op.weight.device
        self.dendrites.append(fresh_dendrite(Neuron(self.op, self.bn), bn_scale).to(device))
        self.u.append(nn.Parameter(torch.zeros(c, device=device)))
        self.v.append(nn.Parameter(torch.zeros(k, c, device=device)))

    def dendrite_parameters(self) -> list[nn.Parameter]:
        return [*self.dendrites.parameters(), *self.u, *self.v]

    def candidate_parameters(self) -> list[nn.Parameter]:
        """What the candidate phase trains: the newest dendrite's weights and its cascade v (none for the first)."""
        if not self.count:
            return []
        return [*self.dendrites[-1].parameters(), *([self.v[-1]] if self.count > 1 else [])]

    def freeze(self) -> None:
        """Fix every dendrite and cascade weight as it is now; u stays trainable."""
        for p in [*self.dendrites.parameters(), *self.v]:
            p.requires_grad_(False)
        self.frozen = self.count
        self.train(self.training)

    def train(self, mode: bool = True) -> "DendriticNeuron":
        super().train(mode)
        for d in self.dendrites[: self.frozen]:
            d.eval()
        return self

    def base_parameters(self) -> list[nn.Parameter]:
        return [*self.op.parameters(), *self.bn.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.op(x))
        outs: list[torch.Tensor] = []
        for k, dendrite in enumerate(self.dendrites):
            pre = dendrite(x)
            for j in range(k):
                pre = pre + _per_channel(self.v[k][j], pre) * outs[j]
            d = torch.sigmoid(pre)
            outs.append(d)
            y = y + _per_channel(self.u[k], y) * d
        if self.record is not None and outs:
            self.record.append((y, outs[-1]))
        return y

    # ---- inference forms ----------------------------------------------
    def folded(self) -> "DendriticNeuron":
        """The same function with every batch norm folded into its op."""
        fold = folded_conv if isinstance(self.op, nn.Conv2d) else folded_linear
        m = DendriticNeuron(Neuron(fold(self.op, self.bn), nn.Identity()))
        for k, dendrite in enumerate(self.dendrites):
            m.dendrites.append(Neuron(fold(dendrite.op, dendrite.bn), nn.Identity()))
            m.u.append(nn.Parameter(self.u[k].detach().clone(), requires_grad=False))
            m.v.append(nn.Parameter(self.v[k].detach().clone(), requires_grad=False))
        return m.eval()

    def emit_keras(self, g, name: str, x: str, activation: str,
                   flatten_chw: tuple[int, int, int] | None = None) -> str:
        """Write this neuron into a TF.js Layers graph with standard layers.

        Per-channel scalars are 1x1 DepthwiseConv2D layers; after a dense
        op the [N,C] tensor is reshaped to [N,1,1,C] for them and back.
        """
        from .export_tfjs import dense_after_flatten

        is_conv = isinstance(self.op, nn.Conv2d)

        def affine(op, bn, lname, act="linear"):
            w, b = fold_bn(op, bn)
            if is_conv:
                return g.conv2d(lname, x, w, b, act)
            if flatten_chw is not None:
                w = dense_after_flatten(w, *flatten_chw)
            return g.dense(lname, x, w, b, act)

        def scaled(t: str, scale: np.ndarray, lname: str) -> str:
            if is_conv:
                return g.channel_scale(lname, t, scale)
            c = scale.shape[0]
            t4 = g.reshape(f"{lname}_to4d", t, [1, 1, c])
            return g.reshape(f"{lname}_to2d", g.channel_scale(lname, t4, scale), [c])

        terms = [affine(self.op, self.bn, name)]
        outs: list[str] = []
        for k, dendrite in enumerate(self.dendrites):
            dn = f"{name}_d{k + 1}"
            pre = [affine(dendrite.op, dendrite.bn, f"{dn}_op")]
            for j in range(k):
                pre.append(scaled(outs[j], self.v[k][j].detach().numpy(), f"{dn}_v{j + 1}"))
            summed = pre[0] if len(pre) == 1 else g.add_tensors(f"{dn}_pre", pre)
            d = g.activation(f"{dn}_sigmoid", summed, "sigmoid")
            outs.append(d)
            terms.append(scaled(d, self.u[k].detach().numpy(), f"{dn}_u"))
        total = terms[0] if len(terms) == 1 else g.add_tensors(f"{name}_sum", terms)
        return g.activation(f"{name}_{activation}", total, activation) if activation != "linear" else total


# ---- whole networks ----------------------------------------------------
def make_dendritic(model: nn.Module, layers: list[str]) -> nn.Module:
    """Wrap the named neurons of `model.neurons` (in place); returns the model."""
    for name in layers:
        if name not in model.neurons:
            raise ValueError(f"no neuron named {name!r}; the network has {list(model.neurons)}")
        if not isinstance(model.neurons[name], DendriticNeuron):
            model.neurons[name] = DendriticNeuron(model.neurons[name])
    return model


def dendritic_neurons(model: nn.Module) -> dict[str, DendriticNeuron]:
    return {n: m for n, m in model.neurons.items() if isinstance(m, DendriticNeuron)}


def add_dendrites(model: nn.Module, count: int = 1, bn_scale: float | None = None) -> None:
    """Add `count` fresh dendrites to every wrapped neuron (see `fresh_dendrite` for `bn_scale`)."""
    for neuron in dendritic_neurons(model).values():
        for _ in range(count):
            neuron.add_dendrite(bn_scale)


def freeze_dendrites(model: nn.Module) -> None:
    for neuron in dendritic_neurons(model).values():
        neuron.freeze()


def candidate_objective(d: torch.Tensor, err: torch.Tensor) -> torch.Tensor:
    """sum over channels of |cov(d_c, e_c)|, the covariance taken over batch and positions.

    `d` is a candidate dendrite's output, `err` the gradient of the loss with
    respect to its neuron's output (same shape, [N,C] or [N,C,H,W]). A
    dendrite whose output moves with the neuron's error can, once its u is
    learned, cancel part of that error.
    """
    c = d.shape[1]
    d2 = d.transpose(0, 1).reshape(c, -1)
    e2 = err.transpose(0, 1).reshape(c, -1)
    cov = ((d2 - d2.mean(1, keepdim=True)) * (e2 - e2.mean(1, keepdim=True))).mean(1)
    return cov.abs().sum()


def candidate_step(model: nn.Module, x: torch.Tensor, target: torch.Tensor, loss_fn, opt) -> float:
    """One batch of the dendrite phase; returns the summed objective before the step.

    The error of each wrapped neuron is the gradient of the task loss with
    respect to its output; the newest dendrite of every neuron (whose u is
    still zero, so the network's function and loss are unchanged by it)
    takes one step up its `candidate_objective`. Only candidate parameters
    receive gradients; `opt` should hold exactly those.
    """
    neurons = list(dendritic_neurons(model).values())
    params = [p for n in neurons for p in n.candidate_parameters()]
    for n in neurons:
        n.record = []
    try:
        loss = loss_fn(model(x), target)
        outputs = [n.record[-1][0] for n in neurons]
        errors = torch.autograd.grad(loss, outputs, retain_graph=True)
        objective = sum(candidate_objective(n.record[-1][1], e.detach()) for n, e in zip(neurons, errors))
        grads = torch.autograd.grad(-objective, params)
    finally:
        for n in neurons:
            n.record = None
    for p, g in zip(params, grads):
        p.grad = g
    opt.step()
    return objective.item()


def dendrite_counts(model: nn.Module) -> dict[str, int]:
    return {n: m.count for n, m in dendritic_neurons(model).items()}


def add_dendrites_from_state(model: nn.Module, state: dict) -> nn.Module:
    """Give `model` the dendrite structure a state dict was saved with."""
    counts: dict[str, int] = {}
    for key in state:
        parts = key.split(".")
        if len(parts) > 3 and parts[0] == "neurons" and parts[2] == "u":
            counts[parts[1]] = max(counts.get(parts[1], 0), int(parts[3]) + 1)
        elif len(parts) > 2 and parts[0] == "neurons" and parts[2] == "dendrites":
            counts.setdefault(parts[1], 0)
    make_dendritic(model, sorted(counts))
    for name, n in counts.items():
        while model.neurons[name].count < n:
            model.neurons[name].add_dendrite()
    return model


# ---- the schedule ------------------------------------------------------
@dataclass(frozen=True)
class ScheduleConfig:
    patience: int = 2          # epochs without a new best that end a cycle
    cycle_epochs: int = 4      # longest cycle (its learning-rate schedule spans this)
    max_additions: int = 2     # dendrite additions at most (each adds `per_addition` dendrites per neuron)
    max_retries: int = 1       # fresh-dendrite retries after a cycle without a new best
    min_delta: float = 0.0     # a new best must beat the old one by more than this
    judge_at_end: bool = False  # True: no early stop inside a cycle; it is judged once its LR decay has run out


@dataclass
class ScheduleState:
    best: float = -1.0
    additions: int = 0         # dendrite additions that currently stand
    retries: int = 0           # retries used since the last improving cycle
    cycle: int = 0
    cycle_epoch: int = 0
    stale: int = 0             # epochs since the last new best in this cycle
    improved: bool = False     # has this cycle set a new best
    done: bool = False


CONTINUE, ADD, RETRY, STOP = "continue", "add", "retry", "stop"


class DendriteSchedule:
    """When to add dendrites, retry them, and stop: a pure state machine.

    The caller starts from a trained network with `start(val)`, which asks
    for the first addition. After every epoch it calls `observe(val)` and
    acts on the answer:
      continue  keep training this cycle;
      add       the cycle set a new best: roll back to the best checkpoint,
                add one dendrite per neuron, rebuild optimizer and schedule;
      retry     the cycle set no new best: roll back to the best checkpoint
                (which has one dendrite fewer) and add fresh dendrites;
      stop      keep the best checkpoint.
    """

    def __init__(self, cfg: ScheduleConfig, state: ScheduleState | None = None):
        self.cfg = cfg
        self.s = state or ScheduleState()

    def start(self, val: float) -> str:
        self.s.best = val
        return self._new_cycle(ADD)

    def _new_cycle(self, action: str) -> str:
        if action == ADD and self.s.additions >= self.cfg.max_additions:
            self.s.done = True
            return STOP
        if action == ADD:
            self.s.additions += 1
        self.s.cycle += 1
        self.s.cycle_epoch = self.s.stale = 0
        self.s.improved = False
        return action

    def observe(self, val: float) -> str:
        if self.s.done:
            return STOP
        self.s.cycle_epoch += 1
        if val > self.s.best + self.cfg.min_delta:
            self.s.best, self.s.stale, self.s.improved = val, 0, True
        else:
            self.s.stale += 1
        if self.s.cycle_epoch < self.cfg.cycle_epochs and (self.cfg.judge_at_end or self.s.stale < self.cfg.patience):
            return CONTINUE
        if self.s.improved:
            self.s.retries = 0
            return self._new_cycle(ADD)
        if self.s.retries < self.cfg.max_retries:
            self.s.retries += 1
            return self._new_cycle(RETRY)
        # The last addition never helped: the best checkpoint has one fewer.
        self.s.additions -= 1
        self.s.done = True
        return STOP

    def state_dict(self) -> dict:
        return asdict(self.s)

    @staticmethod
    def from_state(cfg: ScheduleConfig, d: dict) -> "DendriteSchedule":
        return DendriteSchedule(cfg, ScheduleState(**d))
