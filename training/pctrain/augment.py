"""Batch augmentation that suits Fashion-MNIST: small shifts and left-right flips.

No vertical flips (a shoe upside down is not a catalog photo). Vectorised on
the whole batch so augmentation costs little next to the forward pass.
"""
from __future__ import annotations

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
