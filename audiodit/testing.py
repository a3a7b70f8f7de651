"""Tiny, seeded, randomly initialised components for tests and smoke runs (no weights needed).

Following diffusers' fast pipeline tests: a VAE and a DiT from their `tiny` presets and a 2-layer
CLIP text tower, small enough that a 2-step generation of one second takes well under a second.
"""

from __future__ import annotations

import torch

from audiodit.conditioners import TextConditioner
from audiodit.models.dit import AudioDiTModel
from audiodit.models.vae import AudioVAE
from audiodit.pipeline import AudioDiTPipeline, default_scheduler

TINY_MAX_SECONDS = 5.0


def _wake_zero_layers(module: torch.nn.Module, generator: torch.Generator) -> None:
    """adaLN-Zero starts every block as the identity and the output layer at zero, so a fresh DiT
    predicts zero velocity whatever its inputs. Tests that need text and timing to matter fill
    those zero weights with small random values."""
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.dim() >= 1 and not parameter.any() and "norm" not in name:
                parameter.copy_(0.05 * torch.randn(parameter.shape, generator=generator))


def tiny_components(seed: int = 0, wake: bool = True, **dit_overrides) -> dict:
    """vae, transformer, text_encoder and scheduler, consistent in their widths; `dit_overrides`
    (e.g. `tempo_conditioning=True`) go to the transformer."""
    torch.manual_seed(seed)
    vae = AudioVAE.from_preset("tiny")
    text_encoder = TextConditioner.from_preset("tiny")
    transformer = AudioDiTModel.from_preset(
        "tiny",
        in_channels=vae.latent_channels,
        patch_channels=vae.latent_channels,
        cross_attention_dim=text_encoder.hidden_size,
        pooled_dim=text_encoder.pooled_dim,
        max_seconds=TINY_MAX_SECONDS,
        **dit_overrides,
    )
    if wake:
        _wake_zero_layers(transformer, torch.Generator().manual_seed(seed))
    for model in (vae, text_encoder, transformer):
        model.eval()
    return dict(vae=vae, transformer=transformer, text_encoder=text_encoder, scheduler=default_scheduler())


def tiny_pipeline(seed: int = 0, wake: bool = True, **dit_overrides) -> AudioDiTPipeline:
    pipe = AudioDiTPipeline(**tiny_components(seed, wake, **dit_overrides), default_num_inference_steps=2)
    pipe.set_progress_bar_config(disable=True)
    return pipe
