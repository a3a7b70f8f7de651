"""The frame-rate artefact measure on synthetic audio: a sustained tone with a spike every 40 ms
scores high, the same tone clean (or spiking at another rate) scores low."""

import numpy as np
import pytest

from audiodit.periodicity import envelope_autocorrelation, frame_periodicity, modulation_line_db

pytest.importorskip("librosa")
pytest.importorskip("scipy")

SR = 48000
SECONDS = 6.0


def sustained_tone(seed: int = 0) -> np.ndarray:
    """A held 220 Hz note with five harmonics and a noise floor 50 dB down, stereo (2, S)."""
    t = np.arange(int(SECONDS * SR)) / SR
    mono = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t) for k in range(1, 6))
    mono = mono + 1e-3 * np.random.default_rng(seed).standard_normal(t.size)
    return np.stack([mono, mono]).astype(np.float32)


def with_spikes(audio: np.ndarray, period_seconds: float, depth: float = 0.3) -> np.ndarray:
    """Amplitude spikes (2 ms Gaussian bumps of relative height `depth`) every `period_seconds`."""
    t = np.arange(audio.shape[-1]) / SR
    phase = t % period_seconds
    distance = np.minimum(phase, period_seconds - phase)
    return audio * (1.0 + depth * np.exp(-0.5 * (distance / 0.002) ** 2))


def test_spikes_at_the_latent_frame_rate_score_high_and_a_clean_tone_low():
    clean = frame_periodicity(sustained_tone())
    spiky = frame_periodicity(with_spikes(sustained_tone(), 0.040))
    for prefix in ("", "low_"):
        for lag in ("40ms", "80ms", "120ms"):
            assert spiky[f"{prefix}acf_{lag}"] > 0.6, (prefix, lag, spiky)
            assert clean[f"{prefix}acf_{lag}"] < 0.2, (prefix, lag, clean)
        assert spiky[f"{prefix}line_25hz_db"] > 20.0
        assert spiky[f"{prefix}line_50hz_db"] > 20.0
        assert abs(clean[f"{prefix}line_25hz_db"]) < 6.0
    assert spiky["acf_mean"] - clean["acf_mean"] > 0.6


def test_spikes_at_another_rate_do_not_count_as_the_frame_rate():
    other = frame_periodicity(with_spikes(sustained_tone(), 1 / 30))  # 33.3 ms
    assert other["acf_40ms"] < 0.2
    assert abs(other["line_25hz_db"]) < 6.0


def test_output_keys_follow_the_frame_rate():
    result = frame_periodicity(sustained_tone()[0], frame_rate=12.5, periods=(1, 2))  # mono input
    assert {"acf_80ms", "acf_160ms", "acf_mean", "line_12.5hz_db", "line_25hz_db", "low_acf_80ms"} <= set(result)
    assert "acf_40ms" not in result


def test_autocorrelation_and_modulation_line_primitives():
    frame_rate = 200.0
    t = np.arange(2000) / frame_rate
    pulse = (np.round(t * frame_rate) % 8 == 0).astype(float)  # one frame in eight: 25 Hz
    assert envelope_autocorrelation(pulse, 8) == pytest.approx(1.0)
    assert envelope_autocorrelation(pulse, 4) < -0.1
    assert envelope_autocorrelation(np.ones(100), 8) == 0.0
    noise = np.random.default_rng(1).standard_normal(2000)
    assert abs(envelope_autocorrelation(noise, 8)) < 0.1
    assert modulation_line_db(pulse + 0.1 * noise, frame_rate, 25.0) > 10.0
    assert abs(modulation_line_db(noise, frame_rate, 25.0)) < 6.0
    with pytest.raises(ValueError):
        envelope_autocorrelation(noise, 0)
