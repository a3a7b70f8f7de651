"""The DiT's conditions beside text and timing, one registry entry each (issue 23).

A condition is a `Condition`: the keyword the transformer takes it by (`bpm`, `key_ids`), the
`AudioDiTModel` config switch that builds it, the module attribute that holds its layer (and so
the prefix of its weights in every saved model), the value that states nothing, and its layer.
`AudioDiTModel` builds, checks, initialises and adds every switched-on condition from this list,
in this order; the pipeline's guidance branches (`audiodit.guidance.condition_branches`) and the
training stage (`audiodit.training.dit_stage`) loop over the same list, so a new condition is a new
entry here, its layer, its switch in `DiTConfig`/`AudioDiTModel.__init__`, and how a prompt states
it (`audiodit.guidance.STATED`).

Kinds:
* "global": `values (B,)` -> `(B, D)` added to the adaLN conditioning vector (tempo, key);
* "beat": the tempo's beat grid, per token (`beat_features`): it reads `bpm` and the timing and
  takes no input of its own;
* "frames": one value per latent frame, `(B, T)` (the melody: a dominant pitch class per frame),
  averaged over each time patch (`melody_features`) and added to every token of that patch.

Every layer starts with a zero output (and a zero "absent" vector), so switching a condition on in
a trained model (`training.init_from`) leaves its outputs unchanged at first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from audiodit.models.embedders import (BEAT_CYCLES, KEY_FEATURES, MELODY_ABSENT, MELODY_FEATURES, NO_KEY, NUM_KEYS,
                                       TEMPO_FREQUENCIES, KeyEmbedder, TempoEmbedder)


@dataclass(frozen=True)
class Condition:
    name: str  # the transformer's keyword (and `guidance.Conditioning.extra`'s key); "" for "beat"
    # (`kind` below)
    switch: str  # the AudioDiTModel / DiTConfig field that builds it
    attribute: str  # the module attribute holding its layer: the prefix of its weights
    kind: str  # "global", "beat" or "frames" (module docstring)
    build: Callable[[int], nn.Module]  # hidden_size -> its layer
    features: int  # input width of the layer (FLOPs)
    absent: float = math.nan  # the value that states nothing (guidance's unconditional branch, dropped captions)
    integer: bool = False  # values are ids (long), not numbers (float32)
    valid_range: tuple[int, int] | None = None  # [low, high] for ids, `absent` included
    meaning: str = ""  # what a value is, for error messages


def _beat_layer(hidden_size: int) -> nn.Module:
    return nn.Linear(2 * len(BEAT_CYCLES), hidden_size, bias=False)


def _melody_layer(hidden_size: int) -> nn.Module:
    return nn.Linear(MELODY_FEATURES, hidden_size, bias=False)


CONDITIONS = (
    Condition("bpm", "tempo_conditioning", "tempo_embed", "global", TempoEmbedder, 1 + 2 * TEMPO_FREQUENCIES,
              meaning="tempo in BPM, NaN = none"),
    Condition("", "beat_conditioning", "beat_embed", "beat", _beat_layer, 2 * len(BEAT_CYCLES)),
    Condition("key_ids", "key_conditioning", "key_embed", "global", KeyEmbedder, KEY_FEATURES, absent=NO_KEY,
              integer=True, valid_range=(NO_KEY, NUM_KEYS - 1), meaning=f"tonic + 12 for minor, {NO_KEY} = none"),
    Condition("melody", "melody_conditioning", "melody_embed", "frames", _melody_layer, MELODY_FEATURES,
              absent=MELODY_ABSENT, integer=True, valid_range=(MELODY_ABSENT, 11),
              meaning=f"a pitch class per latent frame, -1 = rest, {MELODY_ABSENT} = none"),
)
FRAME_CONDITIONS = tuple(condition for condition in CONDITIONS if condition.kind == "frames")
GLOBAL_CONDITIONS = tuple(condition for condition in CONDITIONS if condition.kind == "global")


def switched_on(config, kind: str | None = None) -> tuple[Condition, ...]:
    """The conditions a DiT `config` (a DiTConfig, or a model's diffusers config) builds."""
    return tuple(condition for condition in CONDITIONS
                 if getattr(config, condition.switch, False) and kind in (None, condition.kind))


def check_values(condition: Condition, values, batch: int, device, frames: int | None = None) -> torch.Tensor:
    """`(batch,)` values of a global `condition` (a scalar or `batch` values), or `(batch, frames)` of
    a "frames" one (`(frames,)` or `(batch, frames)`); None: `absent` for all. ValueError naming the
    condition otherwise."""
    shape = (batch,) if condition.kind == "global" else (batch, frames)
    if values is None:
        return torch.full(shape, condition.absent, device=device,
                          dtype=torch.long if condition.integer else torch.float32)
    values = torch.as_tensor(values, device=device)
    if condition.integer and (values.is_floating_point() or values.is_complex()):
        raise ValueError(f"{condition.name} must be integers ({condition.meaning}), got {values.dtype}")
    values = values.long() if condition.integer else values.float()
    if condition.kind == "frames":
        if values.ndim == 1:
            values = values[None].expand(batch, -1)
        if tuple(values.shape) != shape:
            raise ValueError(f"{condition.name} must be ({frames},) or ({batch}, {frames}) (one value per latent "
                             f"frame), got {tuple(values.shape)}")
    else:
        values = values.reshape(-1)
        if values.numel() == 1:
            values = values.expand(batch)
        if values.numel() != batch:
            raise ValueError(f"{condition.name} must be a scalar or have {batch} entries, got {values.numel()}")
    # A value check reads the tensor: eager only, so that torch.compile traces one graph.
    if condition.valid_range and not torch.compiler.is_compiling():
        low, high = condition.valid_range
        if bool(((values < low) | (values > high)).any()):
            raise ValueError(f"{condition.name} must lie in [{low}, {high}], got {values.tolist()}")
    return values
