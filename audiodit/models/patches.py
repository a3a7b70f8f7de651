"""Spacetime patches: cut a latent sequence `(B, C, T)` into tokens and put it back together.

A patch spans `patch_frames` latent frames (time) x `patch_channels` latent channels. With
`G = C / patch_channels` channel groups and `P = ceil(T / patch_frames)` time patches there are
`N = P * G` tokens of width `patch_frames * patch_channels`, ordered time-major: token `p * G + g`
holds time patch `p` of channel group `g` (so the G tokens of one moment sit side by side).

Padding rule: T is padded on the right with zeros up to `P * patch_frames`. A token is *real* when
at least one of its frames is real; a token made only of padding (possible only when the caller
passes a `frame_mask` marking right-padded frames of a batch) is masked out of attention.
`unpatchify` is the exact inverse of `patchify`: it drops the padding and returns `(B, C, T)`.

Each token has a time position in latent frames: the centre of its patch,
`p * patch_frames + (patch_frames - 1) / 2`, which feeds the rotary embedding (ViT-style patch
embedding, Dosovitskiy et al. 2021; spacetime patches as in Sora's technical report).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PatchGrid:
    """How latents of `channels` channels are cut into `patch_frames` x `patch_channels` patches."""

    channels: int  # latent channels C
    patch_frames: int  # latent frames per patch
    patch_channels: int  # latent channels per patch (C when patches span all channels)

    def __post_init__(self):
        if self.patch_frames < 1:
            raise ValueError(f"patch_frames must be >= 1, got {self.patch_frames}")
        if self.patch_channels < 1 or self.channels % self.patch_channels:
            raise ValueError(f"patch_channels ({self.patch_channels}) must divide the latent "
                             f"channels ({self.channels})")

    @property
    def groups(self) -> int:
        """Channel groups G = C / patch_channels (tokens per time patch)."""
        return self.channels // self.patch_channels

    @property
    def token_dim(self) -> int:
        """Values per token: patch_frames * patch_channels."""
        return self.patch_frames * self.patch_channels

    def time_patches(self, frames: int) -> int:
        """P = ceil(frames / patch_frames)."""
        return -(-frames // self.patch_frames)

    def num_tokens(self, frames: int) -> int:
        """N = P * G tokens for a clip of `frames` latent frames."""
        return self.time_patches(frames) * self.groups

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """`(B, C, T)` latents -> `(B, N, patch_frames * patch_channels)` tokens (zero-padded in T).

        Inside a token the values are ordered frame-major: index `f * patch_channels + c`.
        """
        if latents.ndim != 3 or latents.shape[1] != self.channels:
            raise ValueError(f"patchify expects (B, {self.channels}, T) latents, got "
                             f"{tuple(latents.shape)}")
        batch, _, frames = latents.shape
        patches = self.time_patches(frames)
        padded = F.pad(latents, (0, patches * self.patch_frames - frames))  # (B, C, P*pf)
        grid = padded.view(batch, self.groups, self.patch_channels, patches, self.patch_frames)
        tokens = grid.permute(0, 3, 1, 4, 2)  # (B, P, G, pf, pc)
        return tokens.reshape(batch, patches * self.groups, self.token_dim)  # (B, N, pf*pc)

    def unpatchify(self, tokens: torch.Tensor, frames: int) -> torch.Tensor:
        """`(B, N, patch_frames * patch_channels)` tokens -> `(B, C, frames)`: inverse of `patchify`."""
        patches = self.time_patches(frames)
        if tokens.ndim != 3 or tokens.shape[1:] != (patches * self.groups, self.token_dim):
            raise ValueError(f"unpatchify expects (B, {patches * self.groups}, {self.token_dim}) "
                             f"tokens for {frames} frames, got {tuple(tokens.shape)}")
        batch = tokens.shape[0]
        grid = tokens.reshape(batch, patches, self.groups, self.patch_frames, self.patch_channels)
        latents = grid.permute(0, 2, 4, 1, 3)  # (B, G, pc, P, pf)
        latents = latents.reshape(batch, self.channels, patches * self.patch_frames)  # (B, C, P*pf)
        return latents[:, :, :frames]  # (B, C, T)

    def token_mask(self, frame_mask: torch.Tensor) -> torch.Tensor:
        """`(B, T)` bool real-frame mask -> `(B, N)` bool: True where a token holds a real frame."""
        batch, frames = frame_mask.shape
        patches = self.time_patches(frames)
        padded = F.pad(frame_mask, (0, patches * self.patch_frames - frames), value=False)
        real = padded.view(batch, patches, self.patch_frames).any(dim=2)  # (B, P)
        return real.repeat_interleave(self.groups, dim=1)  # (B, N)

    def positions(self, frames: int, device: torch.device | None = None):
        """Per-token time positions `(N,)` float (centre frame) and channel-group ids `(N,)` long."""
        patches = self.time_patches(frames)
        centre = torch.arange(patches, device=device, dtype=torch.float32) * self.patch_frames
        centre = centre + (self.patch_frames - 1) / 2
        time = centre.repeat_interleave(self.groups)  # (N,)
        group = torch.arange(self.groups, device=device).repeat(patches)  # (N,)
        return time, group
