"""Melody features at the latent frame rate, and synthetic hums to test them with (issue 26).

Melody conditioning gives the DiT, per latent frame, the dominant pitch class of a reference audio:
the strongest of the 12 chroma bins, as MusicGen's melody model keeps only the dominant bin so that
the condition carries the tune and not the whole accompaniment. This module makes that feature
from any audio (a rendered score, a recording, a hum):

    chroma = chromagram(audio)                    # (12, T) pitch-class power per latent frame
    melody = dominant_pitch_classes(chroma)       # (T,) 0 = C ... 11 = B, NO_PITCH where silent
    # the DiT reads it per time patch (audiodit.models.embedders.melody_features)

and the measure the issue asks for, `chroma_cosine(reference, output)`: the cosine between the two
clips' dominant-bin (one-hot) chromagrams averaged over frames where the reference sounds, which
for one-hots is the share of those frames whose dominant pitch class agrees (MusicGen reports
0.44 for its melody model, JASCO 0.42; `melody_agreement` is the same from two id tracks).
`notes_from_ids` turns an id track into notes and `synth_hum` sings a note list as a person humming would:
a near-sine voice with weak harmonics, vibrato, a little off pitch, so tests and benchmarks have
hums although no recording of a person exists here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

from audiodit.losses import chroma_filterbank, magnitude_spectrogram
from audiodit.models.embedders import MELODY_REST, NO_KEY

SAMPLE_RATE = 48000
FRAME_RATE = 25.0  # latent frames per second of the bundled VAE
N_FFT = 8192  # 5.9 Hz bins at 48 kHz (a semitone is 6 Hz wide at 100 Hz); 170 ms: +-2 frames of smear
F_MIN, F_MAX = 80.0, 2000.0  # Hz: where tunes (and their first harmonics) lie; bass and hiss left out
SILENCE_DB = 40.0  # a frame this far below the loudest has no pitch
NO_PITCH = MELODY_REST  # the DiT's melody input reads it as a rest
DIGITAL_SILENCE = 1e-6  # chroma energy of a frame of zeros is rounding noise below this


def chromagram(audio, sample_rate: int = SAMPLE_RATE, frame_rate: float = FRAME_RATE, n_fft: int = N_FFT,
               f_min: float = F_MIN, f_max: float = F_MAX) -> torch.Tensor:
    """Pitch-class power `(12, T)` of `audio` (`(S,)` or `(channels, S)`, mixed to mono), one frame
    per `1 / frame_rate` s (T = ceil(S * frame_rate / sample_rate)), row 0 = C."""
    audio = torch.as_tensor(np.asarray(audio, dtype=np.float32))
    mono = audio if audio.ndim == 1 else audio.mean(dim=0)  # (S,)
    hop = sample_rate / frame_rate
    if abs(hop - round(hop)) > 1e-6:
        raise ValueError(f"sample_rate / frame_rate must be a whole number of samples, got {hop}")
    hop = round(hop)
    frames = max(1, math.ceil(mono.shape[0] / hop))
    # STFT frames are centred on their sample: start half a hop in, so frame k is centred on latent
    # frame k's middle, (k + 1/2) hops.
    shifted = torch.nn.functional.pad(mono[hop // 2:], (0, max(0, frames * hop - mono.shape[0])))
    power = (magnitude_spectrogram(shifted, n_fft, hop).square() - 1e-8).clamp(min=0.0)  # (bins, >= frames)
    filters = chroma_filterbank(sample_rate, n_fft, f_min, f_max)  # (12, bins)
    return (filters @ power)[:, :frames]  # (12, T)


def dominant_pitch_classes(chroma: torch.Tensor, silence_db: float = SILENCE_DB) -> torch.Tensor:
    """`(T,)` long: each frame's strongest pitch class, NO_PITCH where the frame's chroma energy is
    `silence_db` below the loudest frame's (or the clip is silent)."""
    energy = chroma.sum(dim=0)  # (T,)
    loudest = float(energy.max()) if energy.numel() else 0.0
    ids = chroma.argmax(dim=0)
    if loudest <= DIGITAL_SILENCE:
        return torch.full_like(ids, NO_PITCH)
    return torch.where(energy >= loudest * 10 ** (-silence_db / 10), ids, torch.full_like(ids, NO_PITCH))


def melody_ids(audio, sample_rate: int = SAMPLE_RATE, frame_rate: float = FRAME_RATE,
               frames: int | None = None) -> torch.Tensor:
    """`(T,)` long dominant pitch class per frame of `audio` (NO_PITCH where silent); with `frames`,
    cut or padded with NO_PITCH to that many (a clip's latent length)."""
    ids = dominant_pitch_classes(chromagram(audio, sample_rate, frame_rate))
    if frames is None:
        return ids
    return torch.nn.functional.pad(ids[:frames], (0, max(0, frames - ids.shape[0])), value=NO_PITCH)


def chroma_cosine(reference, output, sample_rate: int = SAMPLE_RATE) -> float:
    """Mean cosine between the dominant-bin chromagrams of two clips' audio over the frames where
    the reference has a pitch (frames where the output is silent count 0); NaN if it never does.
    The shorter clip sets the length compared."""
    return melody_agreement(melody_ids(reference, sample_rate), melody_ids(output, sample_rate))


def melody_agreement(reference_ids: torch.Tensor, output_ids: torch.Tensor) -> float:
    """`chroma_cosine` from the two clips' melody ids (`melody_ids`): the share of the reference's
    pitched frames where the output's dominant pitch class is the same; NaN if it has none. Ids
    below 0 (a rest, or "none" where a melody was padded) are not pitched."""
    frames = min(reference_ids.shape[0], output_ids.shape[0])
    ref, out = reference_ids[:frames], output_ids[:frames]
    sounding = ref >= 0
    if not bool(sounding.any()):
        return float("nan")
    return float((out[sounding] == ref[sounding]).float().mean())


# Krumhansl & Kessler's (1982) probe-tone ratings of the 12 pitch classes in C major and C minor:
# the key whose rotated profile correlates best with a tune's pitch-class durations is its key
# (the Krumhansl-Schmuckler algorithm).
MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)
MIN_KEY_FRAMES = 25  # a second of pitched frames at the bundled VAE's rate before naming a key


def melody_key(ids: torch.Tensor, min_frames: int = MIN_KEY_FRAMES) -> int:
    """The key of a melody id track `(T,)`: a key id (tonic + 12 for minor, as `parse_key`), or
    NO_KEY when fewer than `min_frames` frames are pitched or every pitch class lasts as long (a
    chromatic run names no key)."""
    pitched = ids[ids >= 0].long()
    if pitched.numel() < min_frames:
        return NO_KEY
    durations = torch.bincount(pitched, minlength=12).double()  # (12,)
    if float(durations.std()) == 0.0:
        return NO_KEY
    scores = []
    for profile in (MAJOR_PROFILE, MINOR_PROFILE):
        reference = torch.tensor(profile, dtype=torch.float64)
        for tonic in range(12):
            rotated = torch.roll(reference, tonic)  # the profile of the key on `tonic`
            scores.append(float(torch.corrcoef(torch.stack([durations, rotated]))[0, 1]))
    return int(np.nanargmax(scores))


def notes_from_ids(ids: torch.Tensor, frame_rate: float = FRAME_RATE, lowest_pitch: int = 55,
                   shortest_frames: int = 3) -> list[tuple[int | None, float]]:
    """A melody id track `(T,)` as `synth_hum` notes: each run of one pitch class a note in the
    octave from MIDI `lowest_pitch` up (a hummable range), runs of ids below 0 (a rest, "none")
    rests (None); a run shorter
    than `shortest_frames` is sung as part of the note before it (a person does not hum 40 ms notes)."""
    runs: list[list] = []  # [pitch, frames]
    for value, group in itertools.groupby(ids.tolist()):
        pitch = None if value < 0 else lowest_pitch + (int(value) - lowest_pitch) % 12
        frames = len(list(group))
        if runs and (frames < shortest_frames or runs[-1][0] == pitch):
            runs[-1][1] += frames
        else:
            runs.append([pitch, frames])
    return [(pitch, frames / frame_rate) for pitch, frames in runs]


def synth_hum(notes: list[tuple[float, float]], sample_rate: int = SAMPLE_RATE, vibrato_hz: float = 5.5,
              vibrato_cents: float = 25.0, detune_cents: float = 0.0, harmonics=(1.0, 0.25, 0.08),
              gap_seconds: float = 0.04, seed: int = 0) -> np.ndarray:
    """A hummed line `(S,)` float32 (peak 0.5): `notes` as (MIDI pitch, seconds), each a voice of
    `harmonics` (amplitudes of partials 1, 2, 3...) gliding in on a 30 ms attack, with vibrato
    (`vibrato_cents` deep at `vibrato_hz`, random phase per note), off pitch by `detune_cents`,
    and `gap_seconds` of breath between notes. A pitch of None is a rest."""
    rng = np.random.default_rng(seed)
    pieces = []
    for pitch, seconds in notes:
        count = round(seconds * sample_rate)
        if count <= 0:
            raise ValueError(f"note length must be positive, got {seconds}")
        if pitch is None:
            pieces.append(np.zeros(count, np.float32))
            continue
        time = np.arange(count) / sample_rate
        cents = detune_cents + vibrato_cents * np.sin(2 * np.pi * vibrato_hz * time + rng.uniform(0, 2 * np.pi))
        frequency = 440.0 * 2 ** ((pitch - 69 + cents / 100) / 12)  # (count,)
        phase = 2 * np.pi * np.cumsum(frequency) / sample_rate
        voice = sum(weight * np.sin((k + 1) * phase) for k, weight in enumerate(harmonics))
        ramp = max(1, min(round(0.03 * sample_rate), count // 2))
        gap = min(round(gap_seconds * sample_rate), count - ramp)
        envelope = np.ones(count)
        envelope[:ramp] = np.linspace(0.0, 1.0, ramp)
        envelope[count - gap - ramp:count - gap] = np.linspace(1.0, 0.0, ramp)
        envelope[count - gap:] = 0.0
        pieces.append((voice * envelope).astype(np.float32))
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    peak = np.abs(audio).max() if audio.size else 0.0
    return (audio * (0.5 / peak) if peak > 0 else audio).astype(np.float32)
