"""1-D ConvNeXt blocks (Liu et al. 2022, as Vocos uses them) on (B, D, T) sequences, the VAE's layers."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) -> LayerNorm -> MLP -> layer-scaled residual (ConvNeXt, 1-D)."""

    def __init__(self, dim: int, mlp_ratio: int, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, mlp_ratio * dim)
        self.fc2 = nn.Linear(mlp_ratio * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x).transpose(1, 2)  # (B, T, D)
        h = self.fc2(F.gelu(self.fc1(self.norm(h))))  # (B, T, D)
        return x + (self.gamma * h).transpose(1, 2)  # (B, D, T)


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a (B, D, T) tensor."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def convnext_stack(dim: int, depth: int, mlp_ratio: int, layer_scale: float) -> nn.Sequential:
    """`depth` ConvNeXt blocks of width `dim` in sequence, each residual scaled by `layer_scale` at start."""
    return nn.Sequential(*[ConvNeXtBlock(dim, mlp_ratio, layer_scale) for _ in range(depth)])
