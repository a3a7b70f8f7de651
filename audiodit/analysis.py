"""Music analysers the evaluation and the benchmarks share: key, tempo and a fixed clip feature vector.

Every analyser is someone else's: essentia's `KeyExtractor` and `RhythmExtractor2013`, and librosa's
spectral features. Inputs are float waveforms, stereo (2, S) or mono (S,), at any sample rate; they
are mixed to mono and resampled (soxr) to the rate each analyser is tuned for.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 48000  # the rate of our audio, and the default input rate
ANALYSIS_RATE = 44100  # essentia's extractors are tuned for 44.1 kHz
FEATURE_RATE = 22050  # librosa's default analysis rate
KEY_PROFILE = "tonictriad"  # essentia key profile; chosen on train-split clips, see docs/evaluation.md
SILENCE_RMS = 1e-5  # -100 dBFS: below this a clip has no key or tempo
PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _essentia():
    try:
        import essentia
        import essentia.standard as standard
    except ImportError as error:
        raise ImportError("essentia is needed for evaluation: pip install 'audiodit[eval]'") from error
    essentia.log.infoActive = False
    return standard


def to_mono(audio: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    """(2, S) or (S,) float waveform -> mono float32 at `target_rate` (mid channel, soxr)."""
    import soxr

    audio = np.asarray(audio, dtype=np.float32)
    mono = audio.mean(axis=0) if audio.ndim == 2 else audio
    if sample_rate != target_rate:
        mono = soxr.resample(mono, sample_rate, target_rate)
    return np.ascontiguousarray(mono, dtype=np.float32)


def pitch_class(name: str) -> int:
    """'F#' -> 6, 'Bb' -> 10, 'Cb' -> 11."""
    if not name or name[0].upper() not in PITCH_CLASSES or any(c not in "#b" for c in name[1:]):
        raise ValueError(f"not a pitch name: {name!r}")
    return (PITCH_CLASSES[name[0].upper()] + name.count("#") - name.count("b")) % 12


def is_silent(mono: np.ndarray) -> bool:
    """Empty, or RMS below SILENCE_RMS."""
    return mono.size == 0 or float(np.sqrt(np.mean(mono.astype(np.float64) ** 2))) < SILENCE_RMS


def estimate_key(audio, sample_rate: int = SAMPLE_RATE) -> dict:
    """essentia KeyExtractor: {"tonic": pitch class, "mode": "major"|"minor", "key": str, "strength"}.
    Silence has no key (tonic -1, mode "none"), so it never matches a prompt."""
    mono = to_mono(audio, sample_rate, ANALYSIS_RATE)
    if is_silent(mono):
        return {"tonic": -1, "mode": "none", "key": "none", "strength": 0.0}
    tonic, mode, strength = _essentia().KeyExtractor(profileType=KEY_PROFILE, sampleRate=ANALYSIS_RATE)(mono)
    return {"tonic": pitch_class(tonic), "mode": mode, "key": f"{tonic} {mode}", "strength": float(strength)}


def estimate_tempo(audio, sample_rate: int = SAMPLE_RATE) -> tuple[float, float]:
    """essentia RhythmExtractor2013 (multifeature beat tracker): (global BPM, beat confidence);
    (0, 0) for silence. The confidence is the tracker's (above about 1.5 it usually holds)."""
    mono = to_mono(audio, sample_rate, ANALYSIS_RATE)
    if is_silent(mono):  # the tracker reports nonsense tempi (hundreds of BPM) on digital silence
        return 0.0, 0.0
    bpm, _, confidence, _, _ = _essentia().RhythmExtractor2013(method="multifeature")(mono)
    return (float(bpm) if np.isfinite(bpm) else 0.0), float(confidence)


def estimate_bpm(audio, sample_rate: int = SAMPLE_RATE) -> float:
    """`estimate_tempo`'s global BPM; 0 for silence."""
    return estimate_tempo(audio, sample_rate)[0]


def _summary_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}_{stat}" for stat in ("mean", "std") for i in range(count)]


FEATURE_NAMES = (
    _summary_names("mfcc", 20) + _summary_names("contrast", 7) + _summary_names("chroma", 12)
    + [f"{name}_{stat}" for stat in ("mean", "std")
       for name in ("log_centroid", "log_bandwidth", "log_rolloff", "log_flatness", "rms_db", "zcr")]
    + ["side_to_mid_db"]
)


def clip_features(audio, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The fixed feature vector (len(FEATURE_NAMES) = 91) of one stereo clip (2, S).

    Mono mix at 22.05 kHz, 2048-point STFT with hop 512: frame-wise 20 MFCCs (128-band mel),
    7 spectral-contrast bands, 12 chroma bins, log centroid / bandwidth / 85 % rolloff / flatness,
    RMS in dB and zero-crossing rate, each summarised by its mean and standard deviation over
    frames; plus the side-to-mid energy ratio in dB (stereo width) of the 48 kHz clip.
    """
    import librosa

    audio = np.asarray(audio, dtype=np.float32)
    stereo = audio if audio.ndim == 2 else np.stack([audio, audio])
    y = to_mono(stereo, sample_rate, FEATURE_RATE)
    magnitude = np.abs(librosa.stft(y, n_fft=2048, hop_length=512))  # (1025, frames)
    power = magnitude**2
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=FEATURE_RATE, n_mels=128), top_db=None)
    tiny = 1e-10  # keeps logs of silent frames finite
    framewise = [
        librosa.feature.mfcc(S=mel_db, n_mfcc=20),  # (20, frames)
        librosa.feature.spectral_contrast(S=magnitude + tiny, sr=FEATURE_RATE),  # (7, frames)
        librosa.feature.chroma_stft(S=power + tiny, sr=FEATURE_RATE, tuning=0.0),  # (12, frames)
    ]
    scalars = np.concatenate([
        np.log(librosa.feature.spectral_centroid(S=magnitude, sr=FEATURE_RATE) + 1.0),
        np.log(librosa.feature.spectral_bandwidth(S=magnitude, sr=FEATURE_RATE) + 1.0),
        np.log(librosa.feature.spectral_rolloff(S=magnitude, sr=FEATURE_RATE) + 1.0),
        np.log(librosa.feature.spectral_flatness(S=magnitude + tiny) + tiny),
        20.0 * np.log10(librosa.feature.rms(S=magnitude, frame_length=2048) + 1e-5),
        librosa.feature.zero_crossing_rate(y, frame_length=2048, hop_length=512)[:, : magnitude.shape[1]],
    ])  # (6, frames)
    mid, side = 0.5 * (stereo[0] + stereo[1]), 0.5 * (stereo[0] - stereo[1])
    width = 10.0 * np.log10((np.mean(side**2) + 1e-10) / (np.mean(mid**2) + 1e-10))
    summaries = [np.concatenate([f.mean(axis=1), f.std(axis=1)]) for f in framewise + [scalars]]
    return np.concatenate(summaries + [[width]]).astype(np.float64)


def analyse_clip(audio, sample_rate: int = SAMPLE_RATE) -> dict:
    """Key, tempo and feature vector of one stereo clip (2, S)."""
    return {**estimate_key(audio, sample_rate), "bpm_estimate": estimate_bpm(audio, sample_rate),
            "features": clip_features(audio, sample_rate)}
