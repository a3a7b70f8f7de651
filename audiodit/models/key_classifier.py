"""`LatentKeyClassifier`: the key (tonic and mode) of a noisy latent clip, for key classifier guidance.

The DiT keeps less of the stated key than its latents hold: after 3000 steps (10 min on a 2-core
CPU; `python -m audiodit.training.key_classifier`) a 0.3M-parameter convolutional classifier over the
scaled latents names the key of 0.64 and the mode of 0.75 of the 75 valid-split clips of the music21
corpus (`benchmarks/results/key_classifier_train_cpu.json`), where the bundled DiT's generations
come out in the stated key for 0.40 and mode for 0.63 of 192 held-out prompts (MODEL_CARD.md).
Classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis", §4)
adds the gradient of this classifier's log-probability of the stated key to the sampler's score
(`audiodit.guidance.key_classifier_velocity`), so it must work on noisy latents: it sees
`x_t = (1 - t) x0 + t noise` and `t` itself, and is trained on random `t`.

Input: VAE latents times the VAE's `scaling_factor` (what the DiT sees), `(B, C, T)` at the latent
rate, any `T`; padded frames are left out of the average with `frame_mask`. Output: logits over
the 24 keys `tonic pitch class + 12 * minor` (`audiodit.prompt_attributes.parse_key`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from audiodit.models.embedders import NUM_KEYS


@dataclass
class KeyClassifierOutput(BaseOutput):
    """logits: `(B, 24)` over keys `tonic + 12 * minor`."""

    logits: torch.Tensor


class ResidualConv(nn.Module):
    """LayerNorm over channels -> GELU -> dilated Conv1d, added back to its input (length kept).
    The norm is per frame, so no statistic mixes padded frames into real ones."""

    def __init__(self, width: int, dilation: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)

    def forward(self, hidden):
        normed = self.norm(hidden.transpose(1, 2)).transpose(1, 2)  # (B, W, T)
        return hidden + self.conv(nn.functional.gelu(normed))  # (B, W, T)


class LatentKeyClassifier(ModelMixin, ConfigMixin):
    """Scaled latents `(B, C, T)` and noise level `t (B,)` in [0, 1] -> key logits `(B, 24)`.

    Dilations 1, 2, 4, 8 see 31 frames (1.2 s at 25 Hz): a few chords, which is what a key is heard
    from; the mean over the clip's real frames then pools the whole clip. Padded frames are zeroed
    after every layer, so they cannot reach a real frame's features.
    """

    @register_to_config
    def __init__(self, in_channels: int = 32, width: int = 128, dilations: tuple[int, ...] = (1, 2, 4, 8, 1, 2)):
        super().__init__()
        self.input = nn.Conv1d(in_channels + 1, width, 3, padding=1)  # + one channel holding t
        self.blocks = nn.ModuleList(ResidualConv(width, int(d)) for d in dilations)
        self.output = nn.Linear(width, NUM_KEYS)

    def forward(self, latents: torch.Tensor, timestep: torch.Tensor, frame_mask: torch.Tensor | None = None,
                return_dict: bool = True):
        """latents `(B, C, T)` scaled; timestep `(B,)` or scalar, the flow time t in [0, 1] (0 = clean);
        frame_mask `(B, T)` bool, True on real frames (None: all real)."""
        if latents.dim() != 3 or latents.shape[1] != self.config.in_channels:
            raise ValueError(f"latents must be (B, {self.config.in_channels}, T), got {tuple(latents.shape)}")
        batch, _, frames = latents.shape
        if frame_mask is None:
            frame_mask = torch.ones(batch, frames, dtype=torch.bool, device=latents.device)
        keep = frame_mask.to(latents.dtype)[:, None]  # (B, 1, T)
        timestep = torch.as_tensor(timestep, device=latents.device, dtype=latents.dtype).reshape(-1).expand(batch)
        time_channel = timestep[:, None, None].expand(batch, 1, frames)  # (B, 1, T)
        hidden = self.input(torch.cat([latents, time_channel], dim=1) * keep) * keep  # (B, W, T)
        for block in self.blocks:
            hidden = block(hidden) * keep  # (B, W, T)
        pooled = hidden.sum(-1) / keep.sum(-1).clamp_min(1.0)  # (B, W)
        logits = self.output(pooled)  # (B, 24)
        return KeyClassifierOutput(logits=logits) if return_dict else (logits,)

    def log_prob(self, latents: torch.Tensor, timestep: torch.Tensor, key_ids: torch.Tensor,
                 frame_mask: torch.Tensor | None = None) -> torch.Tensor:
        """`(B,)` log-probability of keys `key_ids (B,)` (valid ids only) for `latents` at `timestep`."""
        logits = self(latents, timestep, frame_mask).logits.float()  # (B, 24)
        return torch.log_softmax(logits, dim=-1).gather(1, key_ids.long()[:, None])[:, 0]
