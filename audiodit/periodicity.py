"""How strongly audio pulses at a fixed frame rate: a measure of a codec's frame-rate artefact.

A VAE whose latent runs at 25 Hz (hop 1920 at 48 kHz) can stamp a small amplitude spike on the
audio at every latent frame boundary, every 40 ms, even in a sustained note. Two views of that:

- `acf_<L>ms`: the normalised autocorrelation (Pearson correlation of the envelope with itself
  shifted) of the onset-strength envelope (librosa's `onset_strength`: half-wave rectified
  spectral flux of a dB spectrogram, 5 ms hop) at lags of 1, 2 and 3 frame periods (40, 80,
  120 ms). Music without the artefact correlates little at these exact lags unless its own
  rhythm happens to; a 40 ms pulse train correlates near 1 at all three.
- `line_<F>hz_db`: the modulation spectrum of the same envelope (Welch, 2 s segments, 0.5 Hz
  bins) at the frame rate (25 Hz) and its first harmonic (50 Hz), in dB over the median of the
  neighbouring modulation frequencies (+-5 Hz, the +-1 Hz around the line left out). About 0 dB
  without a line; a periodic pulse gives a narrow line far above its neighbours.

Each is computed for the whole band (64 mel bands) and for the STFT bins below 400 Hz (`low_`
prefix), where a 25 Hz frame is shorter than a bass note's period is long and the artefact was
first heard. Compare a reconstruction against its original (the difference matters more than
the level, since the music's own rhythm adds to both).
"""

from __future__ import annotations

import numpy as np

HOP_SECONDS = 0.005  # envelope frame: 5 ms, so 40 ms is exactly 8 frames at 48 kHz
WINDOW_SECONDS = 0.0213  # STFT window (1024 samples at 48 kHz): shorter than the 40 ms period
LOW_BAND_HZ = 400.0
MEL_BANDS = 64


def onset_envelopes(audio, sample_rate: int, low_band_hz: float = LOW_BAND_HZ) -> dict[str, np.ndarray]:
    """{"full": (frames,), "low": (frames,)} onset-strength envelopes of `audio` (samples,) or
    (channels, samples) (mixed to mono), one frame per `HOP_SECONDS`: spectral flux of the mel dB
    spectrogram (whole band) and of the linear STFT bins below `low_band_hz`."""
    import librosa

    mono = np.asarray(audio, dtype=np.float32)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono  # (S,)
    hop_length = round(HOP_SECONDS * sample_rate)
    n_fft = 2 ** round(np.log2(WINDOW_SECONDS * sample_rate))
    power = np.abs(librosa.stft(mono, n_fft=n_fft, hop_length=hop_length)) ** 2  # (bins, frames)
    mel = librosa.feature.melspectrogram(S=power, sr=sample_rate, n_fft=n_fft, n_mels=MEL_BANDS)
    low_bins = librosa.fft_frequencies(sr=sample_rate, n_fft=n_fft) < low_band_hz
    low_bins[0] = False  # DC carries no pulse we could hear
    return {band: librosa.onset.onset_strength(S=librosa.power_to_db(spectrum), sr=sample_rate,
                                               hop_length=hop_length)
            for band, spectrum in (("full", mel), ("low", power[low_bins]))}


def envelope_autocorrelation(envelope: np.ndarray, lag_frames: int) -> float:
    """Pearson correlation of `envelope` with itself `lag_frames` later (0 for a flat envelope)."""
    envelope = np.asarray(envelope, dtype=np.float64)
    if lag_frames <= 0 or lag_frames >= len(envelope) - 2:
        raise ValueError(f"lag {lag_frames} frames outside a {len(envelope)}-frame envelope")
    head, tail = envelope[:-lag_frames], envelope[lag_frames:]
    head, tail = head - head.mean(), tail - tail.mean()
    norm = np.sqrt((head**2).sum() * (tail**2).sum())
    return float((head * tail).sum() / norm) if norm > 1e-12 else 0.0


def modulation_line_db(envelope: np.ndarray, frame_rate: float, frequency: float, segment_seconds: float = 2.0,
                       neighbourhood_hz: float = 5.0, exclude_hz: float = 1.0) -> float:
    """Power of the envelope's modulation spectrum at `frequency` Hz over the median power of its
    neighbours (within `neighbourhood_hz`, outside `exclude_hz`), in dB."""
    from scipy.signal import welch

    envelope = np.asarray(envelope, dtype=np.float64)
    segment = min(len(envelope), round(segment_seconds * frame_rate))
    frequencies, power = welch(envelope - envelope.mean(), fs=frame_rate, nperseg=segment)
    line = power[np.argmin(np.abs(frequencies - frequency))]
    distance = np.abs(frequencies - frequency)
    neighbours = power[(distance <= neighbourhood_hz) & (distance > exclude_hz)]
    if line <= 0 or not neighbours.size or np.median(neighbours) <= 0:
        return 0.0
    return float(10.0 * np.log10(line / np.median(neighbours)))


def frame_periodicity(audio, sample_rate: int = 48000, frame_rate: float = 25.0, periods=(1, 2, 3)) -> dict[str, float]:
    """The measures of the module docstring for one clip: `acf_<L>ms` and `acf_mean` over the lags of
    `periods` frame periods, `line_<F>hz_db` at the frame rate and twice it, and the same with a
    `low_` prefix for the band below LOW_BAND_HZ. `audio`: (samples,) or (channels, samples)."""
    envelope_rate = 1.0 / HOP_SECONDS
    result = {}
    for band, envelope in onset_envelopes(audio, sample_rate).items():
        prefix = "" if band == "full" else "low_"
        values = []
        for count in periods:
            lag_seconds = count / frame_rate
            values.append(envelope_autocorrelation(envelope, round(lag_seconds * envelope_rate)))
            result[f"{prefix}acf_{1000 * lag_seconds:.0f}ms"] = values[-1]
        result[f"{prefix}acf_mean"] = float(np.mean(values))
        for harmonic in (1, 2):
            result[f"{prefix}line_{harmonic * frame_rate:g}hz_db"] = modulation_line_db(
                envelope, envelope_rate, harmonic * frame_rate)
    return result
