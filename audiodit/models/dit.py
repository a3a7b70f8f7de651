"""Diffusion transformer over spacetime latent patches: `AudioDiTModel`.

Laid out like DiT's `models.py` (Peebles & Xie, 2023): helpers, embedders, attention, block, final
layer, model, presets. The model predicts the flow-matching velocity `v = noise - x0` of a noisy
latent `(B, C, T)`:

* the latent is cut into spacetime patches (`patches.py`), each linearly embedded as one token;
  rotary embeddings carry each token's time in latent frames and, when patches split the channels,
  a learned embedding carries the channel group;
* each block is adaLN-Zero (DiT): shift/scale/gate for self-attention and MLP come from one
  conditioning vector = timestep + pooled text + timing (`seconds_start`, `seconds_total`, as
  Stable Audio conditions, arXiv 2402.04825); self-attention uses QK-RMSNorm (ViT-22B, SD3); text
  tokens enter through cross-attention (PixArt-alpha) with their padding mask;
* modulation, cross-attention outputs and the final layer start at zero, so every block is the
  identity and the predicted velocity is exactly zero at initialisation.

Two entry points share all of this: `forward` on a padded batch (with an optional `frame_mask`), and
`forward_packed` on a list of clips of different lengths packed into one sequence with
block-diagonal attention (NaViT, Dehghani et al. 2023), for training without padding.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.loaders.peft import PeftAdapterMixin
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from audiodit.configuration import ConfigError
from audiodit.models.attention import (BlockDiagonalMask, KeyPaddingMask, apply_rotary, attention,
                                       check_backend, prepare_mask, resolve_backend, rotary_cos_sin)
from audiodit.models.conditions import CONDITIONS, FRAME_CONDITIONS, GLOBAL_CONDITIONS, check_values, switched_on
from audiodit.models.embedders import (TIMING_FREQUENCIES, TimingEmbedder, beat_features, melody_features, mlp,
                                       timestep_features)
from audiodit.models.patches import PatchGrid


# Fields a training config leaves unset (None) to take from the VAE and text encoder it trains with
# (`DiTConfig.with_widths`); a value that is set must agree with them.
DERIVED = ("in_channels", "patch_channels", "cross_attention_dim", "pooled_dim", "latent_rate")
# What a model built alone (a preset, a benchmark; no VAE or text encoder at hand) takes for them:
# the small preset's, `AudioDiTModel.__init__`'s defaults (patch_channels: in_channels).
STANDALONE = {"in_channels": 32, "cross_attention_dim": 128, "pooled_dim": 128, "latent_rate": 25.0}


@dataclass
class DiTConfig:
    in_channels: int | None = None  # latent channels of the VAE (None: the VAE's)
    patch_frames: int = 2  # latent frames per patch
    patch_channels: int | None = None  # latent channels per patch (None: in_channels, whole-channel patches)
    hidden_size: int = 256  # transformer width
    depth: int = 8  # number of blocks
    num_heads: int = 4  # attention heads (head width = hidden_size / num_heads, even for RoPE)
    mlp_ratio: float = 4.0  # MLP hidden width / hidden_size
    cross_attention_dim: int | None = None  # width of the text token embeddings (None: the text encoder's)
    pooled_dim: int | None = None  # width of the pooled text embedding (None: the text encoder's)
    max_seconds: float = 30.0  # longest clip the timing conditioning is trained for
    qk_norm: bool = True  # RMSNorm on self-attention queries and keys (keeps bf16 logits bounded)
    rope_theta: float = 10000.0  # rotary base; positions are in latent frames
    timestep_embed_dim: int = 256  # sinusoidal features of 1000 * t before the timestep MLP
    attention_backend: Literal["auto", "xformers", "sdpa"] = "auto"  # see models/attention.py
    tempo_conditioning: bool = False  # a numeric tempo (BPM) input beside the timing (see TempoEmbedder)
    beat_conditioning: bool = False  # each token also sees its phase on the tempo's beat grid (needs tempo)
    latent_rate: float | None = None  # latent frames per second (None: the VAE's; the beat grid's frames -> seconds)
    key_conditioning: bool = False  # the prompt's key (tonic and mode) beside the text (see KeyEmbedder)
    melody_conditioning: bool = False  # a dominant pitch class per latent frame (see melody_features)

    def __post_init__(self):
        if self.hidden_size % self.num_heads or (self.hidden_size // self.num_heads) % 2:
            raise ConfigError(f"dit.hidden_size ({self.hidden_size}) / dit.num_heads ({self.num_heads}) "
                              "must be an even integer (rotary embeddings rotate channel pairs)")
        if self.patch_frames < 1:
            raise ConfigError(f"dit.patch_frames must be >= 1, got {self.patch_frames}")
        if self.patch_channels is not None and (self.patch_channels < 1 or (
                self.in_channels is not None and self.in_channels % self.patch_channels)):
            raise ConfigError(f"dit.patch_channels ({self.patch_channels}) must divide "
                              f"dit.in_channels ({self.in_channels})")
        if self.beat_conditioning and not self.tempo_conditioning:
            raise ConfigError("dit.beat_conditioning needs dit.tempo_conditioning: true (the beat grid is the tempo's)")
        if self.latent_rate is not None and self.latent_rate <= 0:
            raise ConfigError(f"dit.latent_rate must be positive, got {self.latent_rate}")
        if self.max_seconds <= 0 or self.mlp_ratio <= 0 or self.depth < 1:
            raise ConfigError("dit.max_seconds and dit.mlp_ratio must be positive and dit.depth >= 1")


    def with_widths(self, vae, text_encoder) -> DiTConfig:
        """This config with every `DERIVED` field that is None taken from the `vae` (latent
        channels and frame rate; whole-channel patches) and `text_encoder` (token and pooled
        widths); a field that is set must agree with them (ValueError naming it) except
        `patch_channels` (any divisor of the channels) and `latent_rate` without a beat grid (it is
        read only there)."""
        found = {"in_channels": vae.latent_channels, "cross_attention_dim": text_encoder.hidden_size,
                 "pooled_dim": text_encoder.pooled_dim, "latent_rate": float(vae.latent_rate)}
        values = {}
        for name, value in found.items():
            given = getattr(self, name)
            agrees = given is None or given == value or (name == "latent_rate" and not self.beat_conditioning)
            if not agrees:
                raise ValueError(f"dit.{name}={given} does not match the VAE/text encoder ({value}); "
                                 f"leave dit.{name} unset to take it from them")
            values[name] = value if given is None else given
        values["patch_channels"] = values["in_channels"] if self.patch_channels is None else self.patch_channels
        return dataclasses.replace(self, **values)

    def standalone(self) -> DiTConfig:
        """This config with unset widths as a model built alone takes them (`STANDALONE`)."""
        values = {name: value if getattr(self, name) is None else getattr(self, name) for name, value in STANDALONE.items()}
        values["patch_channels"] = values["in_channels"] if self.patch_channels is None else self.patch_channels
        return dataclasses.replace(self, **values)


# Field overrides of the defaults (= small, the bundled model: depth 8, width 256, 11M parameters,
# so it trains on a 2-core CPU and the bundled pipeline stays under 60 MB in fp16).
PRESETS = {
    "tiny": {"hidden_size": 64, "depth": 2, "num_heads": 4},  # tests
    "small": {},
    "base": {  # Stable Audio Open scale (depth 24, width 1536, 24 heads, T5-base text, 64 channels)
        "in_channels": 64, "patch_frames": 1, "patch_channels": 64, "hidden_size": 1536, "depth": 24,
        "num_heads": 24, "cross_attention_dim": 768, "pooled_dim": 768, "max_seconds": 47.0,
    },
}


@dataclass
class AudioDiTOutput(BaseOutput):
    """`sample`: predicted velocity `(B, C, T)` for `forward`; a list of `(C, T_i)` for `forward_packed`."""

    sample: torch.Tensor | list[torch.Tensor]


# ----------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------

def modulate(x, shift, scale):
    return torch.addcmul(shift, x, 1 + scale)  # x * (1 + scale) + shift in one pass


class FP32LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the activations' dtype (bf16 statistics drift)."""

    def forward(self, x):
        weight = self.weight.float() if self.weight is not None else None
        bias = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, weight, bias, self.eps).to(x.dtype)


# ----------------------------------------------------------------------------------------------------
# Attention layers
# ----------------------------------------------------------------------------------------------------

# Attention projections carry no biases (as in LLaMA and Stable Audio's DiT): they add little, and a
# biased CPU matmul first copies the bias into every output row.

class SelfAttention(nn.Module):
    """Self-attention with QK-RMSNorm and RoPE applied to queries and keys together (one pass each)."""

    def __init__(self, hidden_size: int, num_heads: int, qk_norm: bool):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size, bias=False)
        # RMSNorm gains for queries (row 0) and keys (row 1).
        self.qk_norm_weight = nn.Parameter(torch.ones(2, 1, self.head_dim)) if qk_norm else None
        self.proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x, rope_cos, rope_sin, mask, backend):
        batch, tokens, width = x.shape
        qkv = self.qkv(x).view(batch, tokens, 3, self.num_heads, self.head_dim)  # (B, N, 3, H, K)
        qk = qkv[:, :, :2].float()  # (B, N, 2, H, K)
        if self.qk_norm_weight is not None:
            qk = F.rms_norm(qk, (self.head_dim,), eps=1e-6) * self.qk_norm_weight.float()
        q, k = apply_rotary(qk, rope_cos[:, None], rope_sin[:, None]).to(qkv.dtype).unbind(2)  # (B, N, H, K)
        out = attention(q, k, qkv[:, :, 2], mask, backend)  # (B, N, H, K)
        return self.proj(out.reshape(batch, tokens, width))  # (B, N, D)


class CrossAttention(nn.Module):
    """Queries from the latent tokens, keys/values from the (already projected) text tokens.

    No QK-norm here: the logit growth it prevents is a self-attention effect (ViT-22B, sec. 3.1),
    and leaving it out saves a full-width normalisation of the queries in every block.
    """

    def __init__(self, hidden_size: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        self.q = nn.Linear(hidden_size, hidden_size, bias=False)
        self.kv = nn.Linear(hidden_size, 2 * hidden_size, bias=False)
        self.proj = nn.Linear(hidden_size, hidden_size, bias=False)

    def forward(self, x, text, mask, backend):
        batch, tokens, width = x.shape
        q = self.q(x).view(batch, tokens, self.num_heads, self.head_dim)  # (B, N, H, K)
        k, v = self.kv(text).view(batch, text.shape[1], 2, self.num_heads, self.head_dim).unbind(2)
        out = attention(q, k, v, mask, backend)  # (B, N, H, K)
        return self.proj(out.reshape(batch, tokens, width))  # (B, N, D)


# ----------------------------------------------------------------------------------------------------
# Transformer block and final layer
# ----------------------------------------------------------------------------------------------------

def per_token(modulation: torch.Tensor, token_clip: torch.Tensor | None) -> torch.Tensor:
    """`(S, M)` per-sequence modulation -> `(B, 1, M)` for a batch, or `(1, N, M)` for a packed
    sequence where `token_clip (N,)` says which clip each token belongs to."""
    return modulation[:, None] if token_clip is None else modulation[token_clip][None]


class DiTBlock(nn.Module):
    """adaLN-Zero self-attention and MLP (DiT), with cross-attention to the text in between."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float, qk_norm: bool):
        super().__init__()
        self.norm1 = FP32LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(hidden_size, num_heads, qk_norm)
        self.norm2 = FP32LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)  # W_q absorbs an affine
        self.cross_attn = CrossAttention(hidden_size, num_heads)
        self.norm3 = FP32LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.mlp = mlp(hidden_size, int(hidden_size * mlp_ratio), hidden_size, nn.GELU())
        self.adaLN_modulation = nn.Linear(hidden_size, 6 * hidden_size)

    def forward(self, x, cond, rope_cos, rope_sin, self_mask, text, text_mask, token_clip, backend):
        modulation = per_token(self.adaLN_modulation(cond), token_clip)  # (B, 1, 6D) | (1, N, 6D)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = modulation.chunk(6, dim=-1)
        h = modulate(self.norm1(x), shift_msa, scale_msa)  # (B, N, D)
        x = torch.addcmul(x, gate_msa, self.attn(h, rope_cos, rope_sin, self_mask, backend))  # (B, N, D)
        x = x + self.cross_attn(self.norm2(x), text, text_mask, backend)  # (B, N, D)
        h = modulate(self.norm3(x), shift_mlp, scale_mlp)  # (B, N, D)
        return torch.addcmul(x, gate_mlp, self.mlp(h))  # (B, N, D)


class FinalLayer(nn.Module):
    def __init__(self, hidden_size: int, token_dim: int):
        super().__init__()
        self.norm = FP32LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.adaLN_modulation = nn.Linear(hidden_size, 2 * hidden_size)
        self.linear = nn.Linear(hidden_size, token_dim)

    def forward(self, x, cond, token_clip):
        shift, scale = per_token(self.adaLN_modulation(cond), token_clip).chunk(2, dim=-1)  # (B|1, 1|N, D)
        return self.linear(modulate(self.norm(x), shift, scale))  # (B, N, pf*pc)


# ----------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------

class AudioDiTModel(ModelMixin, ConfigMixin, PeftAdapterMixin):
    """Text-conditioned diffusion transformer predicting the velocity of noisy audio latents.

    Build with `AudioDiTModel.from_preset("small")` or `AudioDiTModel(**dataclasses.asdict(cfg))`.
    Gradient checkpointing: `model.enable_gradient_checkpointing()` (diffusers' switch). LoRA
    adapters: diffusers' `PeftAdapterMixin` (`add_adapter`, `set_adapters`, ...; `audiodit.lora`).
    """

    _supports_gradient_checkpointing = True

    @register_to_config
    def __init__(self, in_channels: int = 32, patch_frames: int = 2, patch_channels: int = 32,
                 hidden_size: int = 256, depth: int = 8, num_heads: int = 4, mlp_ratio: float = 4.0,
                 cross_attention_dim: int = 128, pooled_dim: int = 128, max_seconds: float = 30.0,
                 qk_norm: bool = True, rope_theta: float = 10000.0, timestep_embed_dim: int = 256,
                 attention_backend: str = "auto", tempo_conditioning: bool = False,
                 beat_conditioning: bool = False, latent_rate: float = 25.0, key_conditioning: bool = False,
                 melody_conditioning: bool = False):
        super().__init__()
        self.dit_config  # validates the arguments (ConfigError names the bad field)
        check_backend(attention_backend)
        self.grid = PatchGrid(in_channels, patch_frames, patch_channels)
        self.head_dim = hidden_size // num_heads
        self.patch_embed = nn.Linear(self.grid.token_dim, hidden_size)
        # A learned vector per channel group when patches split the channels: RoPE only tells
        # tokens apart in time.
        self.channel_group_embed = (nn.Parameter(torch.zeros(self.grid.groups, hidden_size))
                                    if self.grid.groups > 1 else None)
        self.timestep_embed = mlp(timestep_embed_dim, hidden_size, hidden_size, nn.SiLU())
        self.timing_embed = TimingEmbedder(hidden_size, max_seconds)
        # Conditions beside text and timing (audiodit.models.conditions): tempo_embed, beat_embed
        # (each token's beat-grid phase), key_embed, melody_embed; None where the config switches one off.
        switches = {"tempo_conditioning": tempo_conditioning, "beat_conditioning": beat_conditioning,
                    "key_conditioning": key_conditioning, "melody_conditioning": melody_conditioning}
        for condition in CONDITIONS:
            setattr(self, condition.attribute, condition.build(hidden_size) if switches[condition.switch] else None)
        self.pooled_embed = mlp(pooled_dim, hidden_size, hidden_size, nn.SiLU())
        self.text_proj = mlp(cross_attention_dim, hidden_size, hidden_size, nn.GELU())
        # Always-visible text key: a clip with no real text token (unconditional) attends to it
        # instead of to nothing, which would be NaN.
        self.text_null = nn.Parameter(torch.zeros(1, 1, hidden_size))
        self.blocks = nn.ModuleList([DiTBlock(hidden_size, num_heads, mlp_ratio, qk_norm) for _ in range(depth)])
        self.final_layer = FinalLayer(hidden_size, self.grid.token_dim)
        self.gradient_checkpointing = False
        self.initialize_weights()

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "AudioDiTModel":
        if name not in PRESETS:
            raise ValueError(f"unknown DiT preset {name!r}; choose from {sorted(PRESETS)}")
        return cls(**dataclasses.asdict(DiTConfig(**{**PRESETS[name], **overrides}).standalone()))

    @property
    def dit_config(self) -> DiTConfig:
        """The typed config this model was built from."""
        return DiTConfig(**{f.name: getattr(self.config, f.name) for f in dataclasses.fields(DiTConfig)})

    def initialize_weights(self):
        # Xavier-uniform linears, zero biases (DiT / ViT).
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # Small random embeddings so channel groups and the null text key start distinguishable.
        if self.channel_group_embed is not None:
            nn.init.normal_(self.channel_group_embed, std=0.02)
        nn.init.normal_(self.text_null, std=0.02)
        # Conditioning MLPs: normal(0.02), as DiT's timestep embedder.
        for embedder in (self.timestep_embed, self.timing_embed.mlp, self.pooled_embed):
            nn.init.normal_(embedder[0].weight, std=0.02)
            nn.init.normal_(embedder[2].weight, std=0.02)
        # Global conditions: input layer normal(0.02); output layer and null stay zero, and so does
        # the beat layer (each can be added to a trained model).
        for condition in switched_on(self.config):
            layer = getattr(self, condition.attribute)
            if condition.kind == "global":
                nn.init.normal_(layer.mlp[0].weight, std=0.02)
                nn.init.zeros_(layer.mlp[2].weight)
            else:
                nn.init.zeros_(layer.weight)
        # Zero-out adaLN modulation and cross-attention outputs: each block starts as the identity.
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation.weight)
            nn.init.zeros_(block.adaLN_modulation.bias)
            nn.init.zeros_(block.cross_attn.proj.weight)
        # Zero-out the output layer: the initial velocity prediction is exactly 0.
        for layer in (self.final_layer.adaLN_modulation, self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    # ---- shared stages ------------------------------------------------------------------------------

    def _embed_tokens(self, tokens, group):
        x = self.patch_embed(tokens.to(self.patch_embed.weight.dtype))  # (B, N, D)
        if self.channel_group_embed is None:
            return x
        return x + self.channel_group_embed[group]  # (B, N, D)

    def _conditioning(self, timestep, pooled_text, seconds_start, seconds_total, conditions):
        """SiLU of timestep + timing + each global condition (tempo, key) + pooled-text embeddings
        `(S, D)`: the adaLN input. `conditions`: the checked `(S,)` values by name."""
        dtype = self.patch_embed.weight.dtype
        c = self.timestep_embed(timestep_features(timestep, self.config.timestep_embed_dim).to(dtype))
        c = c + self.timing_embed(seconds_start, seconds_total)
        for condition in switched_on(self.config, "global"):
            c = c + getattr(self, condition.attribute)(conditions[condition.name])
        c = c + self.pooled_embed(pooled_text.to(dtype))
        return F.silu(c)  # (S, D)

    def _add_beat(self, x, time, seconds_start, conditions, token_clip):
        """Add each token's beat-grid embedding: `x (B, N, D)` with `time (N,)` in latent frames
        (patch centres) and per-sequence `seconds_start`, `conditions["bpm"] (S,)`; packed:
        `token_clip (N,)`."""
        if self.beat_embed is None:
            return x
        bpm = conditions["bpm"]
        offset = (time + 0.5) / self.config.latent_rate  # (N,) seconds from the crop's start to the token's centre
        if token_clip is None:
            seconds, tempo = seconds_start[:, None] + offset[None], bpm[:, None].expand(-1, offset.shape[0])
        else:
            seconds, tempo = (seconds_start[token_clip] + offset)[None], bpm[token_clip][None]
        return x + self.beat_embed(beat_features(seconds, tempo).to(x.dtype))  # (B, N, D)

    def _add_frame_conditions(self, x, conditions, frames):
        """Add each per-frame condition's embedding to the tokens `x (B, N, D)`: the time patch's mean
        features, the same for every channel group of the patch."""
        for condition in switched_on(self.config, "frames"):
            patches = self.grid.time_patches(frames)
            features = melody_features(conditions[condition.name], self.config.patch_frames, patches)  # (B, P, F)
            embedded = getattr(self, condition.attribute)(features.to(x.dtype))  # (B, P, D)
            x = x + embedded.repeat_interleave(self.grid.groups, dim=1)  # (B, N, D)
        return x

    def _text_tokens(self, encoder_hidden_states, encoder_attention_mask):
        """Projected text with the null key first `(S, 1 + L, D)` and its keep mask `(S, 1 + L)`."""
        text = self.text_proj(encoder_hidden_states.to(self.patch_embed.weight.dtype))  # (S, L, D)
        null = self.text_null.expand(text.shape[0], 1, -1)
        keep = F.pad(encoder_attention_mask, (1, 0), value=True)
        return torch.cat([null.to(text.dtype), text], dim=1), keep

    def _blocks(self, x, cond, rope, self_mask, text, text_mask, token_clip, backend):
        for block in self.blocks:
            args = (x, cond, *rope, self_mask, text, text_mask, token_clip, backend)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(block, *args)
            else:
                x = block(*args)
        return x

    # ---- batched forward ----------------------------------------------------------------------------

    def forward(self, hidden_states, timestep, encoder_hidden_states, encoder_attention_mask,
                pooled_text, seconds_start, seconds_total, frame_mask=None, return_dict=True, **conditions):
        """Predict the velocity `noise - x0` for a padded batch.

        Args:
            hidden_states: `(B, C, T)` noisy latents.
            timestep: `(B,)` or scalar flow-matching time in [0, 1] (1 = pure noise).
            encoder_hidden_states: `(B, L, cross_attention_dim)` text token embeddings.
            encoder_attention_mask: `(B, L)` bool, True = real token (None: all real). Padded
                tokens get no attention weight, so their values change nothing.
            pooled_text: `(B, pooled_dim)` pooled text embedding.
            seconds_start, seconds_total: `(B,)` or scalar, in seconds (clamped to [0, max_seconds]).
            frame_mask: optional `(B, T)` bool, True = real latent frame. Padded frames are zeroed
                before patching and tokens holding only padding are hidden from self-attention, so
                padding cannot influence real frames; padded output frames are set to 0.
            **conditions: the global conditions the model was built with (`models.conditions`), each
                `(B,)` or a scalar; left out (or None): none stated for any item.
                bpm: tempo in BPM, NaN where none is stated (`tempo_conditioning=True`).
                key_ids: int key ids, tonic pitch class + 12 for minor, NO_KEY = -1 where none is
                stated (`key_conditioning=True`).
                melody: `(T,)` or `(B, T)` int per latent frame, a pitch class 0-11, -1 a rest, -2 none
                (`melody_conditioning=True`; `forward_packed` takes none).
        Returns:
            `AudioDiTOutput(sample=(B, C, T))` in the dtype of `hidden_states`.
        """
        batch, frames = self._check_latents(hidden_states, frame_mask)
        device = hidden_states.device
        backend, timestep, seconds_start, seconds_total, encoder_attention_mask = self._check_conditioning(
            batch, device, timestep, seconds_start, seconds_total, encoder_hidden_states, encoder_attention_mask,
            pooled_text)
        conditions = self._check_conditions(conditions, batch, device, frames)
        # 1. Latent tokens and their positions
        latents = hidden_states
        if frame_mask is not None:
            latents = torch.where(frame_mask[:, None, :], latents, 0.0)  # (B, C, T)
        time, group = self.grid.positions(frames, device)  # (N,), (N,)
        x = self._embed_tokens(self.grid.patchify(latents), group)  # (B, N, D)
        x = self._add_beat(x, time, seconds_start, conditions, None)
        x = self._add_frame_conditions(x, conditions, frames)
        rope = rotary_cos_sin(time, self.head_dim, self.config.rope_theta)  # (N, 1, K) x 2
        self_mask = None if frame_mask is None else KeyPaddingMask(self.grid.token_mask(frame_mask))
        # 2. Conditioning vector and text tokens
        cond = self._conditioning(timestep, pooled_text, seconds_start, seconds_total, conditions)  # (B, D)
        text, keep = self._text_tokens(encoder_hidden_states, encoder_attention_mask)  # (B, 1+L, D)
        # 3. Transformer
        x = self._blocks(x, cond, rope, self_mask, text, KeyPaddingMask(keep), None, backend)
        # 4. Back to latents
        velocity = self.grid.unpatchify(self.final_layer(x, cond, None), frames)  # (B, C, T)
        if frame_mask is not None:
            velocity = torch.where(frame_mask[:, None, :], velocity, 0.0)
        velocity = velocity.to(hidden_states.dtype)
        return AudioDiTOutput(sample=velocity) if return_dict else (velocity,)

    # ---- packed forward -----------------------------------------------------------------------------

    def forward_packed(self, latents, timestep, encoder_hidden_states, encoder_attention_mask,
                       pooled_text, seconds_start, seconds_total, return_dict=True, **conditions):
        """Predict velocities for clips of different lengths packed into one sequence (no padding).

        The tokens of all clips are concatenated and attend only within their own clip (a
        block-diagonal mask: xformers `BlockDiagonalMask` on CUDA, a dense bool mask with sdpa);
        each clip attends only to its own real text tokens and is modulated by its own
        conditioning vector. The result for each clip equals `forward` on that clip alone.

        Args:
            latents: list of S noisy latents `(C, T_i)`, any lengths `T_i >= 1`.
            timestep, seconds_start, seconds_total: `(S,)` (or scalars), as in `forward`.
            encoder_hidden_states: `(S, L, cross_attention_dim)`; encoder_attention_mask: `(S, L)`
                bool (None: all real); pooled_text: `(S, pooled_dim)`; conditions: `(S,)` each, as in `forward`.
        Returns:
            `AudioDiTOutput(sample=[(C, T_i), ...])`, one velocity per clip.
        """
        if not isinstance(latents, (list, tuple)) or not latents:
            raise ValueError("forward_packed expects a non-empty list of (C, T_i) latents")
        for i, clip in enumerate(latents):
            if clip.ndim != 2 or clip.shape[0] != self.config.in_channels or clip.shape[1] < 1:
                raise ValueError(f"latents[{i}] must be ({self.config.in_channels}, T >= 1), "
                                 f"got {tuple(clip.shape)}")
        clips, device = len(latents), latents[0].device
        backend, timestep, seconds_start, seconds_total, encoder_attention_mask = self._check_conditioning(
            clips, device, timestep, seconds_start, seconds_total, encoder_hidden_states, encoder_attention_mask,
            pooled_text)
        conditions = self._check_conditions(conditions, clips, device, packed=True)
        # 1. Pack the clips' tokens into one sequence (1, sum N_i, D)
        frames = [clip.shape[1] for clip in latents]
        seqlens = [self.grid.num_tokens(f) for f in frames]
        tokens = torch.cat([self.grid.patchify(clip[None]) for clip in latents], dim=1)  # (1, N, pf*pc)
        time, group = (torch.cat(parts) for parts in zip(*(self.grid.positions(f, device) for f in frames)))
        token_clip = torch.repeat_interleave(torch.arange(clips, device=device),
                                             torch.tensor(seqlens, device=device))  # (N,)
        x = self._embed_tokens(tokens, group)  # (1, N, D)
        x = self._add_beat(x, time, seconds_start, conditions, token_clip)
        for condition in switched_on(self.config, "frames"):  # packed clips state none: each its "absent"
            absent = torch.full((1, 1), condition.absent, dtype=torch.long, device=device)
            x = x + getattr(self, condition.attribute)(melody_features(absent, 1, 1).to(x.dtype))  # (1, 1, D)
        rope = rotary_cos_sin(time, self.head_dim, self.config.rope_theta)  # (N, 1, K) x 2
        self_mask = prepare_mask(BlockDiagonalMask(seqlens, seqlens), backend, device)
        # 2. Conditioning per clip; each clip's real text tokens, packed (1, sum L_i, D)
        cond = self._conditioning(timestep, pooled_text, seconds_start, seconds_total, conditions)  # (S, D)
        text, keep = self._text_tokens(encoder_hidden_states, encoder_attention_mask)  # (S, 1+L, D)
        text_mask = prepare_mask(BlockDiagonalMask(seqlens, keep.sum(dim=1).tolist()), backend, device)
        text = text[keep][None]  # (1, sum L_i, D)
        # 3. Transformer
        x = self._blocks(x, cond, rope, self_mask, text, text_mask, token_clip, backend)
        # 4. Unpack
        out = self.final_layer(x, cond, token_clip)[0].split(seqlens)  # S x (N_i, pf*pc)
        samples = [self.grid.unpatchify(piece[None], f)[0].to(clip.dtype)
                   for piece, f, clip in zip(out, frames, latents)]
        return AudioDiTOutput(sample=samples) if return_dict else (samples,)

    # ---- input checks -------------------------------------------------------------------------------

    def _check_conditioning(self, batch, device, timestep, seconds_start, seconds_total, encoder_hidden_states,
                            encoder_attention_mask, pooled_text):
        """Shared by `forward` and `forward_packed`: the attention backend, per-item (batch,)
        timestep and seconds, and the checked text mask."""
        backend = resolve_backend(self.config.attention_backend, device)
        timestep, seconds_start, seconds_total = (self._per_item(value, batch, name, device) for value, name in
                                                  ((timestep, "timestep"), (seconds_start, "seconds_start"),
                                                   (seconds_total, "seconds_total")))
        encoder_attention_mask = self._check_text(encoder_hidden_states, encoder_attention_mask, pooled_text, batch)
        return backend, timestep, seconds_start, seconds_total, encoder_attention_mask

    def _check_conditions(self, conditions: dict, batch: int, device, frames: int | None = None,
                          packed: bool = False) -> dict:
        """`(batch,)` values of every global condition the model was built with, `(batch, frames)` of
        every per-frame one (`absent` where none is given); ValueError for a condition it was built
        without, an unknown name, or a per-frame condition given to `forward_packed`."""
        known = {condition.name: condition for condition in GLOBAL_CONDITIONS + FRAME_CONDITIONS}
        unknown = sorted(set(conditions) - set(known))
        if unknown:
            raise ValueError(f"unknown condition(s) {unknown}; a transformer takes {sorted(known)}")
        checked = {}
        for name, condition in known.items():
            if getattr(self, condition.attribute) is None:
                if conditions.get(name) is not None:
                    raise ValueError(f"{name} was given, but this model has no {condition.switch.replace('_', ' ')} "
                                     f"(built with {condition.switch}=False)")
                continue
            if condition.kind == "frames":
                if packed:
                    if conditions.get(name) is not None:
                        raise ValueError(f"forward_packed takes no {name}: per-frame conditions need the "
                                         "batched forward")
                    continue
            checked[name] = check_values(condition, conditions.get(name), batch, device, frames)
        return checked

    def _check_latents(self, hidden_states, frame_mask):
        if hidden_states.ndim != 3 or hidden_states.shape[1] != self.config.in_channels:
            raise ValueError(f"hidden_states must be (B, {self.config.in_channels}, T), "
                             f"got {tuple(hidden_states.shape)}")
        batch, _, frames = hidden_states.shape
        if frames < 1:
            raise ValueError("hidden_states has no latent frames (T = 0)")
        if frame_mask is not None and (frame_mask.dtype != torch.bool or frame_mask.shape != (batch, frames)):
            raise ValueError(f"frame_mask must be a ({batch}, {frames}) bool tensor, got "
                             f"{frame_mask.dtype} {tuple(frame_mask.shape)}")
        return batch, frames

    def _check_text(self, encoder_hidden_states, encoder_attention_mask, pooled_text, batch):
        expected = (batch, self.config.cross_attention_dim)
        if encoder_hidden_states.ndim != 3 or (encoder_hidden_states.shape[0], encoder_hidden_states.shape[2]) != expected:
            raise ValueError(f"encoder_hidden_states must be ({batch}, L, {self.config.cross_attention_dim}), "
                             f"got {tuple(encoder_hidden_states.shape)}")
        if pooled_text.shape != (batch, self.config.pooled_dim):
            raise ValueError(f"pooled_text must be ({batch}, {self.config.pooled_dim}), got {tuple(pooled_text.shape)}")
        if encoder_attention_mask is None:
            return torch.ones(encoder_hidden_states.shape[:2], dtype=torch.bool, device=encoder_hidden_states.device)
        if encoder_attention_mask.shape != encoder_hidden_states.shape[:2]:
            raise ValueError(f"encoder_attention_mask must be {tuple(encoder_hidden_states.shape[:2])}, "
                             f"got {tuple(encoder_attention_mask.shape)}")
        return encoder_attention_mask.bool()

    @staticmethod
    def _per_item(value, batch, name, device):
        value = torch.as_tensor(value, device=device, dtype=torch.float32).reshape(-1)
        if value.numel() == 1:
            return value.expand(batch)
        if value.numel() != batch:
            raise ValueError(f"{name} must be a scalar or have {batch} entries, got {value.numel()}")
        return value


# ----------------------------------------------------------------------------------------------------
# FLOPs (for MFU)
# ----------------------------------------------------------------------------------------------------

def dit_flops(config: DiTConfig, num_tokens: int, text_tokens: int) -> int:
    """Forward FLOPs (2 per multiply-add, matmuls and attention only) of one clip.

    `num_tokens` patch tokens and `text_tokens` text tokens as given to `forward` (the model adds
    its null key). Elementwise work (norms, activations, RoPE) is left out, as in MFU accounting
    (PaLM, Appendix B). Training ~ 3x forward. A packed batch: sum over its clips.
    """
    config = config.standalone()  # unset widths as a model built alone takes them
    d, n, keys = config.hidden_size, num_tokens, text_tokens + 1
    token_dim = config.patch_frames * config.patch_channels
    hidden = int(d * config.mlp_ratio)
    timing = 2 * (1 + 2 * TIMING_FREQUENCIES)
    embed = n * token_dim * d + (config.timestep_embed_dim + timing + config.pooled_dim + 3 * d) * d
    embed += text_tokens * (config.cross_attention_dim + d) * d
    for condition in switched_on(config):
        # per token (beat) or per time patch (frames: counted per token, an upper bound)
        embed += (condition.features + d) * d if condition.kind == "global" else n * condition.features * d
    block = 6 * d * d  # adaLN modulation
    block += n * 3 * d * d + 2 * n * n * d + n * d * d  # self-attention: qkv, scores + values, out
    block += 2 * n * d * d + keys * 2 * d * d + 2 * n * keys * d  # cross-attention
    block += 2 * n * d * hidden  # MLP
    final = 2 * d * d + n * d * token_dim
    return 2 * (embed + config.depth * block + final)
