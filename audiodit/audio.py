"""Audio I/O: every file the rest of audiodit sees goes through here.

`load_audio` turns any file libsndfile can decode (wav, flac, ogg/vorbis, mp3, aiff, ...) into a
float32 tensor `(channels, samples)` at the model's rate (48 kHz stereo by default);
`save_audio` writes wav/flac atomically and never overwrites by accident. Anything that cannot be
read raises `AudioLoadError`, whose message names the file and the reason, so a data pipeline can
report and skip bad files instead of crashing deep inside a decoder.

Channel rule (applied before resampling):
- 1 channel: duplicated to both sides.
- 2 channels: kept as (left, right).
- 3, 4, 5, 6 or 8 channels: read in the default WAV/SMPTE order for that count and down-mixed with
  the ITU-R BS.775 coefficients (centre and surrounds at -3 dB, i.e. 0.7071, to their side; LFE
  dropped). Each output side is then divided by the sum of its coefficients, so the mix is a
  weighted average: it can never exceed the input's peak, and a signal present equally in every
  channel keeps its level.
      3: L R C                 L' = (L + .7071 C) / 1.7071
      4: L R Ls Rs (quad)      L' = (L + .7071 Ls) / 1.7071
      5: L R C Ls Rs           L' = (L + .7071 C + .7071 Ls) / 2.4142
      6: L R C LFE Ls Rs (5.1) L' = (L + .7071 C + .7071 Ls) / 2.4142
      8: L R C LFE Ls Rs Lss Rss (7.1)
                               L' = (L + .7071 C + .7071 Ls + .7071 Lss) / 3.1213
  (and symmetrically for R'). libsndfile does not expose the WAV channel mask, so a file whose
  channels are in another order is mixed as if it were in this one.
- any other count (7, 9+): generic fallback, the mean of the even-indexed channels (0, 2, 4, ...)
  is the left side and the mean of the odd-indexed channels (1, 3, 5, ...) the right side.
With `channels=1` the stereo result is averaged to mono.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioInfo",
    "AudioLoadError",
    "audio_info",
    "load_audio",
    "normalize_audio",
    "level_output",
    "save_audio",
    "trim_trailing_silence",
]

# ---------------------------------------------------------------------------------------------
# Formats
# ---------------------------------------------------------------------------------------------

# libsndfile major format -> the suffixes its files usually carry. Only formats this libsndfile
# build reports as available end up in AUDIO_EXTENSIONS (mp3 needs libsndfile >= 1.1).
_FORMAT_SUFFIXES = {
    "WAV": (".wav", ".wave"),
    "WAVEX": (".wav",),
    "RF64": (".rf64",),
    "W64": (".w64",),
    "FLAC": (".flac",),
    "OGG": (".ogg", ".oga", ".opus"),
    "MP3": (".mp3",),
    "AIFF": (".aif", ".aiff", ".aifc"),
    "AU": (".au", ".snd"),
    "CAF": (".caf",),
}
AUDIO_EXTENSIONS: frozenset[str] = frozenset(
    suffix
    for fmt, suffixes in _FORMAT_SUFFIXES.items()
    if fmt in sf.available_formats()
    for suffix in suffixes
)

# What save_audio writes: suffix -> libsndfile format, and the subtypes each may hold.
_SAVE_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".mp3": "MP3", ".ogg": "OGG", ".opus": "OGG"}
_SAVE_SUBTYPES = {"WAV": ("PCM_16", "PCM_24", "FLOAT"), "FLAC": ("PCM_16", "PCM_24"),
                  "MP3": ("MPEG_LAYER_III",), "OGG": ("VORBIS", "OPUS")}
# The subtype each suffix is written with unless one is asked for (libsndfile encodes all of them).
DEFAULT_SUBTYPES = {".wav": "PCM_16", ".flac": "PCM_24", ".mp3": "MPEG_LAYER_III", ".ogg": "VORBIS",
                    ".opus": "OPUS"}
SAVE_EXTENSIONS = tuple(_SAVE_FORMATS)

# ITU-R BS.775 down-mix: centre and surround channels enter their side at -3 dB.
_MINUS_3DB = 1.0 / math.sqrt(2.0)


def new_file_mode() -> int:
    """The permission bits `open()` would give a new file under the current umask (0o666 & ~umask)."""
    from audiodit.configuration import new_file_mode as mode

    return mode()


class AudioLoadError(Exception):
    """A file could not be turned into audio. The message names the file and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load audio from '{self.path}': {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of an audio file, without decoding it."""

    sample_rate: int  # Hz, as stored in the file
    channels: int  # as stored in the file (before any down-mix)
    frames: int  # samples per channel, as stored
    format: str  # libsndfile major format, e.g. "WAV", "FLAC", "MP3"
    subtype: str  # libsndfile subtype, e.g. "PCM_16", "FLOAT", "MPEG_LAYER_III"

    @property
    def duration(self) -> float:
        """Seconds of audio in the file."""
        return self.frames / self.sample_rate


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _open(path: Path) -> sf.SoundFile:
    """Open `path` for reading or raise AudioLoadError with the precise reason."""
    if not path.exists():
        raise AudioLoadError(path, "file does not exist")
    if path.is_dir():
        raise AudioLoadError(path, "is a directory, not a file")
    suffix = path.suffix.lower()
    if suffix not in AUDIO_EXTENSIONS:
        raise AudioLoadError(
            path, f"unsupported extension '{path.suffix}' (supported: {sorted(AUDIO_EXTENSIONS)})"
        )
    if path.stat().st_size == 0:
        raise AudioLoadError(path, "file is empty (0 bytes)")
    try:
        handle = sf.SoundFile(os.fsencode(path))  # bytes: any name the OS allows, UTF-8 or not
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        raise AudioLoadError(path, f"corrupt or unreadable ({error})") from error
    if handle.frames <= 0:
        handle.close()
        raise AudioLoadError(path, "contains no audio frames (zero length)")
    return handle


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read the header of `path` (rate, channels, frames) without decoding the samples."""
    path = Path(path)
    with _open(path) as handle:
        return AudioInfo(handle.samplerate, handle.channels, handle.frames, handle.format, handle.subtype)


def _side_weights(num_channels: int) -> np.ndarray:
    """(num_channels, 2) matrix mapping file channels to (left, right); columns sum to 1."""
    c = _MINUS_3DB
    layouts = {  # per input channel: (weight into left, weight into right)
        3: [(1, 0), (0, 1), (c, c)],  # L R C
        4: [(1, 0), (0, 1), (c, 0), (0, c)],  # L R Ls Rs
        5: [(1, 0), (0, 1), (c, c), (c, 0), (0, c)],  # L R C Ls Rs
        6: [(1, 0), (0, 1), (c, c), (0, 0), (c, 0), (0, c)],  # L R C LFE Ls Rs
        8: [(1, 0), (0, 1), (c, c), (0, 0), (c, 0), (0, c), (c, 0), (0, c)],  # 7.1
    }
    if num_channels in layouts:
        weights = np.array(layouts[num_channels], dtype=np.float64)
    else:  # unknown layout: even-indexed channels -> left, odd-indexed -> right
        weights = np.zeros((num_channels, 2))
        weights[0::2, 0] = 1.0
        weights[1::2, 1] = 1.0
    return weights / weights.sum(axis=0, keepdims=True)


def _to_stereo(frames: np.ndarray) -> np.ndarray:
    """(S, C_file) -> (S, 2) by the module's channel rule."""
    num_channels = frames.shape[1]
    if num_channels == 1:
        return np.repeat(frames, 2, axis=1)
    if num_channels == 2:
        return frames
    return (frames.astype(np.float64) @ _side_weights(num_channels)).astype(np.float32)


def _as_numpy(audio, dtype) -> np.ndarray:
    """A tensor or array-like as a NumPy array of `dtype` (tensors are detached and moved to CPU)."""
    if torch.is_tensor(audio):
        audio = audio.detach().cpu().numpy()
    return np.asarray(audio, dtype=dtype)


def _fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Crop or zero-pad the last axis of `audio` to exactly `length` samples."""
    if audio.shape[-1] >= length:
        return audio[..., :length]
    pad = np.zeros(audio.shape[:-1] + (length - audio.shape[-1],), dtype=audio.dtype)
    return np.concatenate([audio, pad], axis=-1)


def load_audio(
    path: str | os.PathLike,
    sample_rate: int = 48000,
    channels: int = 2,
    duration: float | None = None,
    offset: float = 0.0,
    normalize: str = "none",
    target_db: float = -1.0,
) -> torch.Tensor:
    """Load an audio file as float32 `(channels, samples)` at `sample_rate` Hz.

    Args:
        path: any file with a suffix in AUDIO_EXTENSIONS.
        sample_rate: output rate in Hz; other rates are resampled with soxr ("VHQ"). A file of
            `F` frames at rate `r` gives exactly `round(F * sample_rate / r)` samples.
        channels: 2 (stereo, the module's channel rule) or 1 (mean of that stereo mix).
        duration: seconds to return; the audio is cropped or zero-padded to exactly
            `round(duration * sample_rate)` samples. None keeps everything after `offset`.
        offset: seconds to skip from the start of the file; must lie inside the file.
        normalize: "none", "peak" (scale so the peak is `target_db` dBFS) or "rms" (scale so the
            RMS level is `target_db` dBFS, then scaled down if needed so the peak stays at or
            below 0 dBFS). Applied after cropping; silent audio is returned unscaled.
        target_db: level in dBFS for `normalize`.

    Raises:
        AudioLoadError: the file is missing, a directory, empty, has no frames, has an
            unsupported suffix, cannot be decoded or contains NaN/inf samples.
        ValueError: an argument is invalid (e.g. `offset` beyond the end of the file).
    """
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if offset < 0:
        raise ValueError(f"offset must be >= 0 seconds, got {offset}")
    if duration is not None and duration <= 0:
        raise ValueError(f"duration must be > 0 seconds, got {duration}")
    path = Path(path)

    with _open(path) as handle:
        file_rate = handle.samplerate
        start = round(offset * file_rate)
        if start >= handle.frames:
            raise ValueError(
                f"offset {offset} s is beyond the end of '{path}' ({handle.frames / file_rate:.3f} s)"
            )
        # Read only what is needed, plus one frame so rounding never starves the resampler.
        count = -1 if duration is None else min(math.ceil(duration * file_rate) + 1, handle.frames - start)
        try:
            handle.seek(start)
            frames = handle.read(count, dtype="float32", always_2d=True)  # (S_file, C_file)
        except (sf.LibsndfileError, RuntimeError) as error:
            raise AudioLoadError(path, f"decoding failed ({error})") from error
    if frames.shape[0] == 0:
        raise AudioLoadError(path, "decoder returned no frames (truncated or corrupt data)")
    if not np.isfinite(frames).all():
        raise AudioLoadError(path, "contains NaN or infinite samples")

    stereo = _to_stereo(frames)  # (S_file, 2)
    if file_rate != sample_rate:
        target_length = round(stereo.shape[0] * sample_rate / file_rate)
        stereo = soxr.resample(stereo, file_rate, sample_rate, quality="VHQ")
        stereo = _fit_length(stereo.T, target_length).T  # soxr may differ by one sample
    audio = np.ascontiguousarray(stereo.T, dtype=np.float32)  # (2, S)
    if channels == 1:
        audio = audio.mean(axis=0, keepdims=True)  # (1, S)
    if duration is not None:
        audio = _fit_length(audio, round(duration * sample_rate))
    audio = normalize_audio(audio, normalize, target_db)
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
# Level and silence
# ---------------------------------------------------------------------------------------------


def normalize_audio(audio, mode: str = "peak", target_db: float = -1.0):
    """Scale `audio` (any shape; ndarray or tensor) to a level; returns the same type.

    "peak": the absolute peak becomes `target_db` dBFS. "rms": the RMS over all samples becomes
    `target_db` dBFS (plain RMS, no K-weighting, so it is not LUFS), then the gain is lowered if
    the peak would exceed 0 dBFS. "none": unchanged. All-zero audio is returned unchanged.
    """
    if mode == "none":
        return audio
    if mode not in ("peak", "rms"):
        raise ValueError(f"normalize must be 'none', 'peak' or 'rms', got {mode!r}")
    gain = _level_gain(audio, mode, target_db, ceiling_db=0.0)
    return audio if gain is None else audio * gain


def _level_gain(audio, mode: str, target_db: float, ceiling_db: float) -> float | None:
    """The linear gain that brings `audio` to `target_db` dBFS: its peak ("peak") or its RMS
    ("rms", lowered where the peak would pass `ceiling_db`); None for silence."""
    values = _as_numpy(audio, np.float64)
    peak = float(np.abs(values).max()) if values.size else 0.0
    if peak == 0.0:
        return None
    target = 10.0 ** (target_db / 20.0)
    if mode == "peak":
        return target / peak
    return min(target / float(np.sqrt(np.mean(values**2))), 10.0 ** (ceiling_db / 20.0) / peak)


# Output levelling (`sample.py --normalize`): the default targets and the most a quiet clip is
# raised, so near-silence is not blown up into audible noise.
OUTPUT_LEVELS_DB = {"peak": -1.0, "rms": -20.0}
MAX_OUTPUT_GAIN_DB = 30.0


def level_output(audio, mode: str, target_db: float | None = None, max_gain_db: float = MAX_OUTPUT_GAIN_DB):
    """A generated clip `(C, S)` (tensor or ndarray) at a listening level; returns `(audio, gain_db)`.

    "peak": the peak at `target_db` (default -1 dBFS), as peers' front ends do (stable-audio-tools'
    demo divides by the peak); "rms": the RMS at `target_db` (default -20 dBFS), lowered where the
    peak would pass -1 dBFS; "none": unchanged. The gain never exceeds `max_gain_db`; silence stays
    silence."""
    if mode == "none":
        return audio, 0.0
    if mode not in OUTPUT_LEVELS_DB:
        raise ValueError(f"normalize must be 'none', 'peak' or 'rms', got {mode!r}")
    target_db = OUTPUT_LEVELS_DB[mode] if target_db is None else target_db
    gain = _level_gain(audio, mode, target_db, ceiling_db=OUTPUT_LEVELS_DB["peak"])
    if gain is None:
        return audio, 0.0
    gain_db = min(20 * math.log10(gain), max_gain_db)
    return audio * 10 ** (gain_db / 20), gain_db


def trim_trailing_silence(audio, sample_rate: int = 48000, threshold_db: float = -60.0, keep: float = 0.25):
    """Drop the silent tail of `audio` `(C, S)`, keeping `keep` seconds after the last sound.

    A sample is sound when any channel's magnitude reaches `threshold_db` dBFS. Returns a view of
    the input (ndarray or tensor); all-silent audio is returned with `keep` seconds.
    """
    magnitude = audio.abs().amax(dim=0) if torch.is_tensor(audio) else np.abs(audio).max(axis=0)  # (S,)
    loud = np.flatnonzero(np.asarray(magnitude) >= 10.0 ** (threshold_db / 20.0))
    end = (int(loud[-1]) + 1 if loud.size else 0) + round(keep * sample_rate)
    return audio[..., : min(end, audio.shape[-1])]


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


def _save_format(path: Path, subtype: str | None, sample_rate: int) -> tuple[str, str]:
    """libsndfile's (format, subtype) for writing `path` at `sample_rate`; ValueError naming the
    problem for a suffix, subtype or rate that cannot be written."""
    file_format = _SAVE_FORMATS.get(path.suffix.lower())
    if file_format is None:
        raise ValueError(f"cannot save '{path}': suffix must be one of {sorted(_SAVE_FORMATS)}")
    subtype = DEFAULT_SUBTYPES[path.suffix.lower()] if subtype is None else subtype
    if subtype not in _SAVE_SUBTYPES[file_format]:
        hint = ""
        if subtype == "FLOAT":
            hint = " (FLAC cannot store float samples; use PCM_16/PCM_24 or a .wav file)"
        raise ValueError(
            f"cannot save '{path}' as {file_format} {subtype}: allowed subtypes are "
            f"{list(_SAVE_SUBTYPES[file_format])}{hint}"
        )
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if subtype == "OPUS" and sample_rate not in (8000, 12000, 16000, 24000, 48000):
        raise ValueError(f"cannot save '{path}' as Opus at {sample_rate} Hz (Opus takes 8, 12, 16, 24 or 48 kHz)")
    return file_format, subtype


def save_audio(
    path: str | os.PathLike,
    audio,
    sample_rate: int = 48000,
    subtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `audio` `(channels, samples)` (tensor or ndarray) to a .wav, .flac, .mp3, .ogg (Vorbis)
    or .opus file.

    The format comes from the suffix; `subtype` (None: `DEFAULT_SUBTYPES`, PCM_16 for wav) is
    "PCM_16", "PCM_24" or "FLOAT" (wav only: FLAC stores integers), or the lossy formats' one
    (mp3 "MPEG_LAYER_III", ogg "VORBIS" or "OPUS"; Opus needs 48 kHz). For integer subtypes, audio whose peak exceeds 1.0 is scaled down so
    the peak is exactly 1.0 and a warning is logged, instead of letting the encoder wrap around
    or clip; FLOAT files store the values as given. The file is written to a temporary name in
    the same directory and moved into place, so readers never see half a file. Missing parent
    directories are created. Returns the path written.

    Raises:
        FileExistsError: `path` exists and `overwrite` is False.
        ValueError: bad suffix, subtype, shape, sample rate or non-finite samples.
    """
    path = Path(path)
    file_format, subtype = _save_format(path, subtype, sample_rate)
    values = _as_numpy(audio, np.float32)
    if values.ndim != 2 or not 1 <= values.shape[0] <= 16 or values.shape[1] == 0:
        raise ValueError(
            "audio must be channels-first (C, S) with 1 <= C <= 16 and S >= 1, got shape "
            f"{tuple(values.shape)} (a (S, C) array must be transposed)"
        )
    if not np.isfinite(values).all():
        raise ValueError(f"cannot save '{path}': audio contains NaN or infinite samples")
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' already exists (pass overwrite=True to replace it)")

    peak = float(np.abs(values).max())
    if subtype != "FLOAT" and peak > 1.0:  # integer and lossy formats clip
        logger.warning(
            "peak %.3f > 1.0 while saving %s as %s: scaling by %.4f to avoid clipping",
            peak, path, subtype, 1 / peak,
        )
        values = values / peak

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        try:
            os.chmod(temp_name, new_file_mode())  # mkstemp makes 0600; a saved file honours the umask
        except OSError:
            pass  # a file system without modes (vfat, some network mounts): its default
        try:
            with open(temp_name, "wb") as handle:  # a file object: soundfile cannot encode every OS file name
                sf.write(handle, values.T, sample_rate, subtype=subtype, format=file_format)
        except (sf.LibsndfileError, RuntimeError) as err:  # e.g. the disk filled up under libsndfile
            raise OSError(f"could not write {os.fsdecode(path)!r}: {err}") from err
        if overwrite:
            os.replace(temp_name, path)
        else:
            _move_no_clobber(temp_name, path)
    except BaseException:
        if os.path.exists(temp_name):
            os.unlink(temp_name)
        raise
    return path


def _move_no_clobber(source: str, destination: Path) -> None:
    """Move `source` to `destination`, failing if `destination` exists (even if it just appeared)."""
    exists_message = f"'{destination}' already exists (pass overwrite=True to replace it)"
    try:
        # A hard link is created atomically or not at all, so a file written meanwhile survives.
        os.link(source, destination)
    except FileExistsError:
        raise FileExistsError(exists_message) from None
    except OSError:  # filesystem without hard links: check, then rename
        if destination.exists():
            raise FileExistsError(exists_message) from None
        os.replace(source, destination)
        return
    os.unlink(source)


def partial_path(path: str | os.PathLike) -> Path:
    """Where `AudioStreamWriter` writes `path` until it is complete: `name.partial.wav` beside it."""
    path = Path(path)
    return path.with_name(f"{path.stem}.partial{path.suffix}")


class AudioStreamWriter:
    """Write audio part by part as it is made (long-form generation), to `partial_path(path)`,
    flushed after every part, so a run killed half way leaves a playable file of what was made;
    `commit()` then moves it to `path` (refusing to replace an existing file unless `overwrite`).

    Integer and lossy formats cannot be normalised after the fact as `save_audio` does: samples
    beyond [-1, 1] are clipped and counted (`clipped`)."""

    def __init__(self, path: str | os.PathLike, sample_rate: int = 48000, channels: int = 2,
                 subtype: str | None = None, overwrite: bool = False):
        self.path = Path(path)
        file_format, self.subtype = _save_format(self.path, subtype, sample_rate)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"'{self.path}' already exists (pass overwrite=True to replace it)")
        self.overwrite, self.channels, self.frames, self.clipped = overwrite, channels, 0, 0
        self.partial = partial_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.partial, "wb")  # a file object: soundfile cannot encode every OS file name
        self._file = sf.SoundFile(self._handle, "w", samplerate=sample_rate, channels=channels,
                                  subtype=self.subtype, format=file_format)

    def write(self, audio) -> None:
        """Append `audio` (channels, samples) and flush it to disk."""
        values = _as_numpy(audio, np.float32)
        if values.ndim != 2 or values.shape[0] != self.channels:
            raise ValueError(f"audio must be ({self.channels}, samples), got shape {tuple(values.shape)}")
        if not np.isfinite(values).all():
            raise ValueError(f"cannot save '{self.path}': audio contains NaN or infinite samples")
        if self.subtype != "FLOAT":
            self.clipped += int((np.abs(values) > 1.0).sum())
            values = np.clip(values, -1.0, 1.0)
        try:
            self._file.write(values.T)
            self._file.flush()  # libsndfile's buffers and the header's length
            self._handle.flush()  # Python's buffer: in the file even if the process is killed now
        except (sf.LibsndfileError, RuntimeError) as err:  # e.g. the disk filled up
            raise OSError(f"could not write {os.fsdecode(self.partial)!r}: {err}") from err
        self.frames += values.shape[1]

    def close(self) -> None:
        """Close the partial file (it stays, complete up to the last part written)."""
        if not self._file.closed:
            self._file.close()
        self._handle.close()

    def commit(self) -> Path:
        """Close and move the finished file to `path`; returns `path`."""
        self.close()
        if self.overwrite:
            os.replace(self.partial, self.path)
        else:
            _move_no_clobber(os.fspath(self.partial), self.path)
        return self.path

    def __enter__(self) -> AudioStreamWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
