"""Signal pieces for the sound-design recipes: noise sources, filters, envelopes, resonant modes,
drops, event scattering, stereo width and a room, all at SAMPLE_RATE on float64 arrays."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import signal

SAMPLE_RATE = 48000


def samples(seconds: float) -> int:
    return max(1, round(seconds * SAMPLE_RATE))


def white(rng: np.random.Generator, length: int) -> np.ndarray:
    return rng.standard_normal(length).astype(np.float64)


def coloured(rng: np.random.Generator, length: int, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1 / f**exponent (1: pink, 2: brown), unit RMS."""
    spectrum = np.fft.rfft(white(rng, length))
    frequencies = np.fft.rfftfreq(length, 1.0 / SAMPLE_RATE)
    spectrum *= np.maximum(frequencies, 20.0) ** (-exponent / 2)
    noise = np.fft.irfft(spectrum, length)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def band(audio: np.ndarray, low: float | None, high: float | None, order: int = 2) -> np.ndarray:
    """Butterworth high-pass (`low`), low-pass (`high`) or band-pass (both) along the last axis."""
    nyquist = SAMPLE_RATE / 2
    if low and high:
        sos = signal.butter(order, [low / nyquist, min(high / nyquist, 0.99)], "bandpass", output="sos")
    elif low:
        sos = signal.butter(order, low / nyquist, "highpass", output="sos")
    else:
        sos = signal.butter(order, min(high / nyquist, 0.99), "lowpass", output="sos")
    return signal.sosfilt(sos, audio, axis=-1)


def drift(rng: np.random.Generator, length: int, rate_hz: float, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    """A slowly wandering curve in [low, high]: random points `rate_hz` apart, smoothly joined."""
    points = max(2, math.ceil(length / SAMPLE_RATE * rate_hz) + 2)
    knots = rng.uniform(low, high, points)
    position = np.linspace(0, points - 1, length)
    whole = np.floor(position).astype(int).clip(0, points - 2)
    fraction = position - whole
    ease = fraction * fraction * (3 - 2 * fraction)  # smoothstep between knots
    return knots[whole] * (1 - ease) + knots[whole + 1] * ease


def normalised(audio: np.ndarray) -> np.ndarray:
    """`audio` with its peak at 1 (a whisker under, so silence stays finite)."""
    return audio / (np.abs(audio).max() + 1e-9)


def decay(length: int, seconds: float, attack_s: float = 0.001) -> np.ndarray:
    """An envelope with a linear `attack_s` rise and an exponential fall of time constant `seconds`."""
    time = np.arange(length) / SAMPLE_RATE
    return np.minimum(time / max(attack_s, 1e-6), 1.0) * np.exp(-time / seconds)


def modes(frequencies, decays_s, gains, seconds: float) -> np.ndarray:
    """A struck object: damped sinusoids (resonant modes) summed, `seconds` long."""
    time = np.arange(samples(seconds)) / SAMPLE_RATE
    out = np.zeros_like(time)
    for frequency, decay_s, gain in zip(frequencies, decays_s, gains):
        out += gain * np.sin(2 * math.pi * frequency * time) * np.exp(-time / decay_s)
    return out


def chirp(start_hz: float, end_hz: float, seconds: float, curve: float = 1.0) -> np.ndarray:
    """A sine gliding from `start_hz` to `end_hz` (`curve` > 1 bends the glide towards its end)."""
    length = samples(seconds)
    progress = np.linspace(0.0, 1.0, length) ** curve
    frequency = start_hz + (end_hz - start_hz) * progress
    return np.sin(2 * math.pi * np.cumsum(frequency) / SAMPLE_RATE)


def bubble(rng: np.random.Generator, low_hz: float, high_hz: float) -> np.ndarray:
    """A drop or bubble: a decaying sine whose pitch rises as it rings (Minnaert resonance)."""
    frequency = rng.uniform(low_hz, high_hz)
    seconds = rng.uniform(0.004, 0.02)
    tone = chirp(frequency, frequency * rng.uniform(1.2, 2.0), seconds * 4, curve=0.7)
    return tone * decay(tone.size, seconds, 0.0003)


def scatter(events: list[np.ndarray], onsets: np.ndarray, gains: np.ndarray, pans: np.ndarray,
            length: int) -> np.ndarray:
    """Mono `events` (cycled) summed at `onsets` (samples) with `gains` and constant-power `pans`
    in [-1, 1] into (2, length)."""
    out = np.zeros((2, length))
    for index, (onset, gain, pan) in enumerate(zip(onsets, gains, pans)):
        event = events[index % len(events)]
        end = min(length, int(onset) + event.size)
        if end <= onset:
            continue
        angle = (pan + 1.0) * math.pi / 4
        piece = gain * event[: end - int(onset)]
        out[0, int(onset):end] += piece * math.cos(angle)
        out[1, int(onset):end] += piece * math.sin(angle)
    return out


def poisson_onsets(rng: np.random.Generator, rate_hz, length: int) -> np.ndarray:
    """Onsets (samples) of a Poisson process of `rate_hz` (a number, or a curve per sample)."""
    rate = np.broadcast_to(np.asarray(rate_hz, dtype=np.float64), (length,))
    return np.flatnonzero(rng.random(length) < rate / SAMPLE_RATE)


def wide(rng: np.random.Generator, make: Callable[[np.random.Generator], np.ndarray], width: float) -> np.ndarray:
    """A diffuse stereo texture: two draws of `make` mixed so their correlation falls with `width`."""
    left, right = make(rng), make(rng)
    mix = (1.0 - width) / 2
    return np.stack([left * (1 - mix) + right * mix, right * (1 - mix) + left * mix])


def room(rng: np.random.Generator, audio: np.ndarray, seconds: float, wet: float) -> np.ndarray:
    """`audio` (2, S) in a room: convolved with decaying stereo noise of time constant `seconds`."""
    length = samples(seconds * 4)
    impulse = band(np.stack([white(rng, length), white(rng, length)]) * decay(length, seconds, 0.002), 150.0, 7000.0)
    impulse = impulse / math.sqrt(np.sum(impulse**2) / 2 + 1e-12)  # unit energy per channel
    tail = signal.fftconvolve(audio, impulse, axes=-1)[:, : audio.shape[1]]
    return audio * (1 - wet) + tail * wet


def room_tone(rng, length: int, level: float = 0.004) -> np.ndarray:
    """The faint noise of a quiet room, so a tail never ends in digital silence."""
    return level * wide(rng, lambda r: band(coloured(r, length, 1.5), 80.0, 3000.0), 0.9)


def pan_of(rng: np.random.Generator) -> float:
    return float(rng.uniform(-0.7, 0.7))


def pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


