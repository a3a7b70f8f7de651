"""Conditioning embedders of `AudioDiTModel`: everything that becomes the adaLN conditioning vector
(timestep, timing, tempo, key) or is added to each token (beat-grid phase).

Each embedder maps numbers the prompt or the crop states (seconds, BPM, a key) to `(B, D)`. Those
that a model can gain after training (`training.init_from`: tempo, beat grid, key) start with a
zero output, so adding them leaves a trained model's outputs unchanged at first.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

TIMING_FREQUENCIES = 8  # Fourier features of seconds / max_seconds at 1, 2, 4, ..., 128 cycles
TEMPO_FREQUENCIES = 6  # Fourier features of the log tempo at 1/2, 1, 2, ..., 16 cycles over its range
TEMPO_RANGE_BPM = (20.0, 320.0)  # four octaves; tempi outside are clamped
BEAT_CYCLES = (2.0, 1.0, 1 / 2, 1 / 3, 1 / 4)  # cycles per beat: half beats, beats, bars of 2, 3 and 4 beats


def mlp(in_dim: int, hidden: int, out_dim: int, act: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), act, nn.Linear(hidden, out_dim))


def timestep_features(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features `(B, dim)` of `1000 t`: the DDPM timestep scale, so t in [0, 1] spans
    the same frequencies as DiT's integer timesteps (Vaswani et al. 2017 frequencies)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs  # (B, dim/2)
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


def timing_features(seconds: torch.Tensor, max_seconds: float) -> torch.Tensor:
    """`(B,)` seconds -> `(B, 1 + 2F)`: x = seconds / max_seconds clamped to [0, 1], and
    sin/cos(2 pi 2^k x) for k < F (Fourier features, Tancik et al. 2020)."""
    x = (seconds.float() / max_seconds).clamp(0.0, 1.0)[:, None]  # (B, 1)
    freqs = 2.0 ** torch.arange(TIMING_FREQUENCIES, device=x.device, dtype=torch.float32)
    angles = 2 * math.pi * x * freqs  # (B, F)
    return torch.cat([x, angles.sin(), angles.cos()], dim=-1)


def known_tempo(bpm: torch.Tensor) -> torch.Tensor:
    """True where `bpm` states a tempo (finite and positive); NaN means none."""
    return torch.isfinite(bpm) & (bpm > 0)


def tempo_features(bpm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B,)` tempi in BPM (NaN = none stated) -> features `(B, 1 + 2F)` and `known (B,)` bool.

    u = log2 of the tempo, scaled so TEMPO_RANGE_BPM maps to [0, 1] (clamped), and sin/cos(pi 2^k u)
    for k < F: a log scale, because a tempo and its double are one musical step apart at any
    speed. Unknown tempi get zero features; `TempoEmbedder` replaces their embedding.
    """
    bpm = bpm.float()
    known = known_tempo(bpm)
    low, high = (math.log2(value) for value in TEMPO_RANGE_BPM)
    clean = torch.where(known, bpm, torch.full_like(bpm, 2.0 ** low)).clamp(*TEMPO_RANGE_BPM)
    u = ((torch.log2(clean) - low) / (high - low))[:, None]  # (B, 1) in [0, 1]
    angles = math.pi * u * 2.0 ** torch.arange(TEMPO_FREQUENCIES, device=bpm.device, dtype=torch.float32)
    features = torch.cat([u, angles.sin(), angles.cos()], dim=-1)  # (B, 1 + 2F)
    return features * known[:, None], known


class TempoEmbedder(nn.Module):
    """`bpm (B,)` -> `(B, D)`: a numeric tempo for the conditioning vector, as timing is.

    Prompts say "80 BPM"; a text tower learns each number as a separate token and sees each one a
    few dozen times in a music dataset, so it cannot tell that 81 is close to 80 and far from 160.
    This embedder sees the number itself (parsed from the prompt by `parse_bpm`). A clip whose
    prompt states no tempo, or whose condition was dropped for classifier-free guidance, gets the
    learned `null` vector. The output layer and `null` start at zero, so adding tempo conditioning
    to a trained model (`training.init_from`) leaves its outputs unchanged at first.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.mlp = mlp(1 + 2 * TEMPO_FREQUENCIES, hidden_size, hidden_size, nn.SiLU())
        self.null = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, bpm):
        features, known = tempo_features(bpm)
        embedded = self.mlp(features.to(self.mlp[0].weight.dtype))  # (B, D)
        return torch.where(known[:, None], embedded, self.null.to(embedded.dtype))


def beat_features(seconds: torch.Tensor, bpm: torch.Tensor) -> torch.Tensor:
    """Phase on the beat grid: `seconds (...)` since the start of the piece and `bpm (...)` (NaN =
    none) -> `(..., 2 len(BEAT_CYCLES))` sin/cos of 2 pi c x beats for each c in BEAT_CYCLES; zero
    where the tempo is unknown.

    A metronome for every token: beat k of a piece that starts on a beat falls at 60 k / bpm
    seconds, so notes start where the beat phase is 0. `seconds_start` (the timing conditioning)
    places a crop on the piece's grid, so training crops and generated clips share one grid.
    """
    bpm = bpm.float()
    known = known_tempo(bpm)
    beats = seconds.float() * torch.where(known, bpm, torch.zeros_like(bpm)) / 60.0  # (...)
    cycles = torch.tensor(BEAT_CYCLES, device=seconds.device, dtype=torch.float32)
    angles = 2 * math.pi * beats[..., None] * cycles  # (..., len)
    return torch.cat([angles.sin(), angles.cos()], dim=-1) * known[..., None]


class TimingEmbedder(nn.Module):
    """`seconds_start`, `seconds_total` -> `(B, D)`: where the crop starts and how long the clip is."""

    def __init__(self, hidden_size: int, max_seconds: float):
        super().__init__()
        self.max_seconds = max_seconds
        self.mlp = mlp(2 * (1 + 2 * TIMING_FREQUENCIES), hidden_size, hidden_size, nn.SiLU())

    def forward(self, seconds_start, seconds_total):
        features = torch.cat([timing_features(seconds_start, self.max_seconds),
                              timing_features(seconds_total, self.max_seconds)], dim=-1)  # (B, 34)
        return self.mlp(features.to(self.mlp[0].weight.dtype))  # (B, D)


# ----------------------------------------------------------------------------------------------------
# Key (tonic and mode)
# ----------------------------------------------------------------------------------------------------

NO_KEY = -1  # key id of a prompt that states no key (or whose condition is dropped)
NUM_KEYS = 24  # key id = tonic pitch class (C = 0) + 12 for minor
# Pitch classes of each mode's scale above the tonic; minor has both the natural and the raised
# seventh (harmonic minor's leading tone), as the minor-mode chorales of the corpus do.
SCALE_STEPS = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10, 11)}
KEY_FEATURES = 12 + 2 + 12  # tonic one-hot, mode one-hot, scale pitch classes


def key_features(key_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`(B,)` key ids (tonic + 12 * minor; NO_KEY = none) -> features `(B, KEY_FEATURES)`, `known (B,)`.

    The tonic and the mode as one-hots, and the 12 pitch classes of the key's scale: the notes the
    key allows, so keys that share most of their notes (C major and G major, C major and A minor)
    share most of their features. Unknown keys get zero features; `KeyEmbedder` replaces their
    embedding.
    """
    known = (key_ids >= 0) & (key_ids < NUM_KEYS)
    ids = torch.where(known, key_ids, torch.zeros_like(key_ids)).long()
    tonic, minor = ids % 12, ids // 12  # (B,), (B,)
    templates = torch.zeros(2, 12, device=key_ids.device)
    for row, steps in enumerate(SCALE_STEPS.values()):
        templates[row, list(steps)] = 1.0
    above_tonic = (torch.arange(12, device=key_ids.device)[None] - tonic[:, None]) % 12  # (B, 12)
    scale = templates[minor[:, None], above_tonic]  # (B, 12)
    features = torch.cat([F.one_hot(tonic, 12).float(), F.one_hot(minor, 2).float(), scale], dim=-1)
    return features * known[:, None], known


class KeyEmbedder(nn.Module):
    """`key_ids (B,)` -> `(B, D)`: the prompt's key for the conditioning vector.

    A text tower trained on a few thousand captions learns "D" and "minor" as tokens among many
    and need not tie them to the notes (the bundled model's text-only key accuracy was at the
    shuffled-prompt floor). This embedder sees the key parsed from the prompt
    (`audiodit.prompt_attributes.parse_key`) as a tonic, a mode and the scale's pitch classes. A clip
    whose prompt states no key, or whose condition was dropped for classifier-free guidance,
    gets the learned `null` vector. The output layer and `null` start at zero.
    """

    def __init__(self, hidden_size: int):
        super().__init__()
        self.mlp = mlp(KEY_FEATURES, hidden_size, hidden_size, nn.SiLU())
        self.null = nn.Parameter(torch.zeros(hidden_size))

    def forward(self, key_ids):
        features, known = key_features(key_ids)
        embedded = self.mlp(features.to(self.mlp[0].weight.dtype))  # (B, D)
        return torch.where(known[:, None], embedded, self.null.to(embedded.dtype))


# ----------------------------------------------------------------------------------------------------
# Melody (dominant pitch class per latent frame)
# ----------------------------------------------------------------------------------------------------

MELODY_REST = -1  # a frame of the reference melody with no pitch (audiodit.melody.NO_PITCH)
MELODY_ABSENT = -2  # no melody given for the frame (none at all, past its end, or dropped for guidance)
MELODY_FEATURES = 12 + 2  # pitch-class one-hot, rest, absent


def melody_features(ids: torch.Tensor, patch_frames: int, patches: int) -> torch.Tensor:
    """`ids (B, T)` per latent frame (0-11 a pitch class, MELODY_REST, MELODY_ABSENT) -> `(B, patches,
    MELODY_FEATURES)`: each time patch's mean of its frames' one-hot pitch class, rest and absent
    flags; frames past T count as absent."""
    batch, frames = ids.shape
    ids = F.pad(ids.long(), (0, patches * patch_frames - frames), value=MELODY_ABSENT)  # (B, P * pf)
    slot = torch.where(ids >= 0, ids, torch.where(ids == MELODY_REST, torch.full_like(ids, 12),
                                                  torch.full_like(ids, 13)))  # (B, P * pf) in [0, 14)
    one_hot = F.one_hot(slot, MELODY_FEATURES).float()  # (B, P * pf, 14)
    return one_hot.view(batch, patches, patch_frames, MELODY_FEATURES).mean(dim=2)  # (B, P, 14)
