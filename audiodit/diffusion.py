"""Rectified-flow (flow-matching) objective shared by the trainer and the pipeline.

Convention (the one diffusers' `FlowMatchEulerDiscreteScheduler` integrates):

    x_t = (1 - t) * x_0 + t * noise,      t in [0, 1], t = 1 is pure noise
    v   = d x_t / d t = noise - x_0       (the model's target)

Training draws t from a logit-normal distribution, which puts more weight on the middle of the
path where the velocity is hardest to predict (Esser et al. 2024, "Scaling Rectified Flow
Transformers", SD3 paper §3.1). The loss is a mean squared error over real latent frames only:
padding frames (`frame_mask == False`) contribute nothing.
"""

from __future__ import annotations

import torch

from audiodit.config import DiffusionConfig


class FlowMatching:
    """Timestep sampling, noising and the masked velocity loss of rectified flow."""

    def __init__(self, config: DiffusionConfig | None = None):
        self.config = config or DiffusionConfig()

    def sample_timesteps(
        self, batch_size: int, device=None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """t for each item, shape (B,), in (0, 1)."""
        cfg = self.config
        if cfg.timestep_sampling == "logit_normal":
            normal = torch.randn(batch_size, generator=generator, device=device)
            return torch.sigmoid(cfg.logit_mean + cfg.logit_std * normal)
        return torch.rand(batch_size, generator=generator, device=device)

    @staticmethod
    def add_noise(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t for latents (B, C, T) and t (B,)."""
        t = t.to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))  # (B, 1, 1)
        return (1 - t) * x0 + t * noise

    @staticmethod
    def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the model predicts: the path's constant velocity d x_t / d t."""
        return noise - x0

    @staticmethod
    def loss(
        prediction: torch.Tensor,
        x0: torch.Tensor,
        noise: torch.Tensor,
        frame_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mean squared velocity error over real frames. prediction/x0/noise: (B, C, T);
        frame_mask: (B, T) bool, True = real frame."""
        error = (prediction.float() - FlowMatching.velocity_target(x0, noise).float()).pow(2)  # (B, C, T)
        if frame_mask is None:
            return error.mean()
        weight = frame_mask.to(error.dtype).unsqueeze(1).expand_as(error)  # (B, C, T)
        return (error * weight).sum() / weight.sum().clamp_min(1.0)


def next_noise_level(timesteps: torch.Tensor, position: int, t_scale: float) -> torch.Tensor:
    """The noise level t in [0, 1] of `timesteps[position + 1]` (0 after the last): where the step
    at `position` has just taken the latents. By position, not by value: a second-order
    scheduler (Heun) repeats timesteps."""
    if position + 1 < len(timesteps):
        return timesteps[position + 1] / t_scale
    return torch.zeros((), device=timesteps.device)


def start_step(num_inference_steps: int, strength: float) -> int:
    """The first of `num_inference_steps` an audio-to-audio call at `strength` runs (SD3's
    image-to-image starts part-way along the path the same way)."""
    return min(int(round(num_inference_steps * (1.0 - strength))), num_inference_steps - 1) if strength < 1.0 else 0


def repaint(latents: torch.Tensor, known: torch.Tensor, noise: torch.Tensor, keep_mask: torch.Tensor,
            t_next: torch.Tensor) -> torch.Tensor:
    """RePaint (Lugmayr et al. 2022) after one step: where `keep_mask` is 1 the latents follow the
    known latents' own noise path at level `t_next`, where it is 0 they are the model's, in
    between a blend. Inpainting, continuation and long-form windows all keep frames this way."""
    t_next = t_next.to(device=known.device, dtype=known.dtype)
    known_t = FlowMatching.add_noise(known, noise, t_next)  # (B, C, T)
    return keep_mask * known_t + (1 - keep_mask) * latents
