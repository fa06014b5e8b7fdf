"""Shared by the training tests: a network with every weight and batch-norm statistic moved off its initial value."""
import torch


def perturbed(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Every parameter and batch-norm statistic moved off its initial value (the model's mode unchanged)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(0.5 + torch.rand(b.shape, generator=g))
            elif name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn(b.shape, generator=g))
    return model
