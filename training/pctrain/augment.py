"""Batch augmentation that suits Fashion-MNIST: small shifts and left-right
flips, random erasing, and Mixup or CutMix.

No vertical flips (a shoe upside down is not a catalog photo). Vectorised on
the whole batch so augmentation costs little next to the forward pass.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def shift_and_flip(x: torch.Tensor, max_shift: int, flip_p: float, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to `max_shift` pixels (zero fill) and horizontal flip."""
    n, c, h, w = x.shape
    if max_shift > 0:
        padded = F.pad(x, (max_shift,) * 4)
        dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
        dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
        rows = (dy[:, None] + torch.arange(h)[None, :])  # [n, h]
        cols = (dx[:, None] + torch.arange(w)[None, :])  # [n, w]
        batch = torch.arange(n)[:, None, None]
        x = padded[:, 0][batch, rows[:, :, None], cols[:, None, :]].unsqueeze(1) if c == 1 else torch.stack(
            [padded[:, ch][batch, rows[:, :, None], cols[:, None, :]] for ch in range(c)], 1
        )
    if flip_p > 0:
        flip = torch.rand(n, generator=gen) < flip_p
        x = torch.where(flip[:, None, None, None], x.flip(3), x)
    return x


def random_erase(x: torch.Tensor, p: float, gen: torch.Generator,
                 area: tuple[float, float] = (0.02, 0.25), ratio: tuple[float, float] = (0.3, 3.3)) -> torch.Tensor:
    """Random erasing (Zhong et al. 2020): with probability `p` per image, one
    rectangle of `area` (fraction of the image) and aspect `ratio` is filled
    with N(0, 1) noise, which is noise at the scale of the normalized input."""
    n, _, h, w = x.shape
    if p <= 0:
        return x
    apply = torch.rand(n, generator=gen) < p
    frac = area[0] + (area[1] - area[0]) * torch.rand(n, generator=gen)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, generator=gen))
    eh = torch.sqrt(frac * h * w * aspect).round().clamp(1, h).long()
    ew = torch.sqrt(frac * h * w / aspect).round().clamp(1, w).long()
    top = (torch.rand(n, generator=gen) * (h - eh + 1)).floor().long()
    left = (torch.rand(n, generator=gen) * (w - ew + 1)).floor().long()
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & apply[:, None, None]).unsqueeze(1)
    return torch.where(mask, torch.randn(x.shape, generator=gen), x)


def beta(alpha: float, gen: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw that follows `gen`, so runs stay reproducible."""
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mix(x: torch.Tensor, kind: str, alpha: float, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup or CutMix of a batch with a permutation of itself.

    Returns the mixed batch, the partner of each image and `lam`, the weight
    of each image's own label (for CutMix, the share of its pixels kept).
    """
    n, _, h, w = x.shape
    lam = beta(alpha, gen)
    partner = torch.randperm(n, generator=gen)
    if kind == "mixup":
        return lam * x + (1 - lam) * x[partner], partner, lam
    if kind != "cutmix":
        raise ValueError(f"unknown mix {kind!r}: mixup or cutmix")
    cut = math.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (1,), generator=gen))
    cx = int(torch.randint(0, w, (1,), generator=gen))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[:, :, y0:y1, x0:x1] = x[partner, :, y0:y1, x0:x1]
    return out, partner, 1 - (y1 - y0) * (x1 - x0) / (h * w)
