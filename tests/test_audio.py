"""Tests for audiodit/audio.py: channel rule, resampling, crop/pad, levels, saving, bad files."""

import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodit.audio import (
    level_output,
    AUDIO_EXTENSIONS,
    AudioLoadError,
    audio_info,
    load_audio,
    normalize_audio,
    save_audio,
    trim_trailing_silence,
)

RATE = 48000


def sine(frequency, num_samples, sample_rate, amplitude=0.5):
    return amplitude * np.sin(2 * np.pi * frequency * np.arange(num_samples) / sample_rate)


def write(path, frames_by_channel, sample_rate=RATE, subtype="FLOAT"):
    """Write (C, S) float data with soundfile directly (independent of save_audio)."""
    sf.write(str(path), np.asarray(frames_by_channel, dtype=np.float32).T, sample_rate, subtype=subtype)
    return path


def dominant_frequency(signal, sample_rate):
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    return np.argmax(spectrum) * sample_rate / len(signal)


# ---------------------------------------------------------------------------------------------
# Channel layouts
# ---------------------------------------------------------------------------------------------


def test_mono_is_duplicated(tmp_path):
    mono = sine(440, 4801, RATE)
    audio = load_audio(write(tmp_path / "mono.wav", [mono]))
    assert audio.dtype == torch.float32 and audio.shape == (2, 4801)
    assert torch.equal(audio[0], audio[1])
    np.testing.assert_allclose(audio[0].numpy(), mono, atol=1e-6)


def test_stereo_keeps_sides_and_mono_request_averages(tmp_path):
    left, right = sine(440, 3000, RATE), sine(660, 3000, RATE, 0.3)
    path = write(tmp_path / "stereo.flac", [left, right], subtype="PCM_24")
    audio = load_audio(path)
    np.testing.assert_allclose(audio.numpy(), [left, right], atol=2**-20)
    mono = load_audio(path, channels=1)
    assert mono.shape == (1, 3000)
    np.testing.assert_allclose(mono[0].numpy(), (left + right) / 2, atol=2**-20)


def _impulse_channels(num_channels, active, num_samples=64):
    data = np.zeros((num_channels, num_samples))
    data[active] = 0.8
    return data


@pytest.mark.parametrize(
    "num_channels, active, expected_left, expected_right",
    [
        (3, 2, 0.7071 / 1.7071, 0.7071 / 1.7071),  # centre -> both sides at -3 dB, normalised
        (3, 0, 1 / 1.7071, 0.0),  # left stays left
        (6, 3, 0.0, 0.0),  # LFE dropped
        (6, 4, 0.7071 / 2.4142, 0.0),  # left surround -> left only
        (6, 5, 0.0, 0.7071 / 2.4142),  # right surround -> right only
        (6, 1, 0.0, 1 / 2.4142),
        (7, 2, 1 / 4, 0.0),  # unknown layout: even channels averaged into left
        (7, 3, 0.0, 1 / 3),  # odd channels averaged into right
    ],
)
def test_multichannel_downmix_rule(tmp_path, num_channels, active, expected_left, expected_right):
    path = write(tmp_path / f"c{num_channels}.wav", _impulse_channels(num_channels, active))
    audio = load_audio(path)
    assert audio.shape == (2, 64)
    np.testing.assert_allclose(audio[:, 10].numpy(), [0.8 * expected_left, 0.8 * expected_right], atol=1e-4)


@pytest.mark.parametrize("num_channels", [3, 4, 5, 6, 7, 8, 10])
def test_downmix_never_exceeds_input_peak_and_keeps_common_level(tmp_path, num_channels):
    rng = np.random.default_rng(num_channels)
    data = rng.uniform(-1, 1, size=(num_channels, 1000))
    audio = load_audio(write(tmp_path / "random.wav", data))
    assert audio.abs().max() <= np.abs(data).max() + 1e-6
    common = np.tile(sine(300, 1000, RATE), (num_channels, 1))
    audio = load_audio(write(tmp_path / "common.wav", common), normalize="none")
    # Each side is a weighted average, so a signal in every channel keeps its level (LFE included).
    np.testing.assert_allclose(audio.numpy(), [common[0], common[0]], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Sample rates and lengths
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file_rate", [16000, 22050, 44100, 48000, 96000])
def test_resampling_length_and_frequency(tmp_path, file_rate):
    num_samples = file_rate // 2 + 7  # odd, not a multiple of anything convenient
    tone = sine(1000, num_samples, file_rate)
    path = write(tmp_path / f"r{file_rate}.wav", [tone, tone], sample_rate=file_rate)
    assert audio_info(path).sample_rate == file_rate
    audio = load_audio(path)
    assert audio.shape == (2, round(num_samples * RATE / file_rate))
    resolution = RATE / audio.shape[1]
    assert abs(dominant_frequency(audio[0].numpy(), RATE) - 1000) <= resolution
    # Level is kept away from the edges (no resampler gain error).
    middle = audio[0, audio.shape[1] // 4 : 3 * audio.shape[1] // 4]
    assert abs(float(middle.abs().max()) - 0.5) < 0.01


def test_other_output_rate(tmp_path):
    path = write(tmp_path / "x.wav", [sine(500, 4410, 44100)], sample_rate=44100)
    audio = load_audio(path, sample_rate=16000)
    assert audio.shape == (2, 1600)
    assert abs(dominant_frequency(audio[0].numpy(), 16000) - 500) <= 16000 / 1600


@pytest.mark.parametrize("num_samples", [1, 2, 3, 997, 12345])
def test_odd_lengths_round_trip(tmp_path, num_samples):
    rng = np.random.default_rng(num_samples)
    data = rng.uniform(-0.9, 0.9, size=(2, num_samples)).astype(np.float32)
    path = save_audio(tmp_path / "odd.wav", data, subtype="FLOAT")
    audio = load_audio(path)
    assert audio.shape == (2, num_samples)
    np.testing.assert_array_equal(audio.numpy(), data)


# ---------------------------------------------------------------------------------------------
# Crop, pad, offset
# ---------------------------------------------------------------------------------------------


def test_crop_pad_and_offset(tmp_path):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, size=(2, RATE)).astype(np.float32)  # 1 s
    path = write(tmp_path / "one_second.wav", data)
    cropped = load_audio(path, duration=0.25, offset=0.5)
    assert cropped.shape == (2, 12000)
    np.testing.assert_array_equal(cropped.numpy(), data[:, 24000:36000])
    padded = load_audio(path, duration=1.5, offset=0.75)
    assert padded.shape == (2, 72000)
    np.testing.assert_array_equal(padded[:, :12000].numpy(), data[:, 36000:])
    assert torch.count_nonzero(padded[:, 12000:]) == 0
    odd = load_audio(path, duration=0.123457)
    assert odd.shape[1] == round(0.123457 * RATE)
    with pytest.raises(ValueError, match="beyond the end"):
        load_audio(path, offset=1.0)
    with pytest.raises(ValueError, match="duration"):
        load_audio(path, duration=0)


def test_crop_with_resampling_matches_full_load(tmp_path):
    path = write(tmp_path / "22k.wav", [sine(700, 22050, 22050)] * 2, sample_rate=22050)
    full = load_audio(path)
    part = load_audio(path, offset=0.5, duration=0.25)
    assert part.shape == (2, 12000)
    # Same audio away from the segment edges, where the resampler saw different context.
    np.testing.assert_allclose(part[:, 500:-500].numpy(), full[:, 24500:35500].numpy(), atol=1e-3)


# ---------------------------------------------------------------------------------------------
# Normalisation and silence
# ---------------------------------------------------------------------------------------------


def test_peak_and_rms_normalisation(tmp_path):
    path = write(tmp_path / "quiet.wav", [sine(440, 4800, RATE, 0.05)] * 2)
    peak = load_audio(path, normalize="peak", target_db=-3.0)
    assert math.isclose(float(peak.abs().max()), 10 ** (-3 / 20), rel_tol=1e-5)
    rms = load_audio(path, normalize="rms", target_db=-20.0)
    assert math.isclose(float(rms.pow(2).mean().sqrt()), 0.1, rel_tol=1e-4)
    loud = load_audio(path, normalize="rms", target_db=0.0)  # would put the peak at +3 dBFS
    assert math.isclose(float(loud.abs().max()), 1.0, rel_tol=1e-5)
    silence = write(tmp_path / "silence.wav", np.zeros((2, 100)))
    assert torch.count_nonzero(load_audio(silence, normalize="peak")) == 0
    with pytest.raises(ValueError, match="normalize"):
        normalize_audio(np.ones(3), "loudest")


def test_trim_trailing_silence():
    audio = np.zeros((2, RATE), dtype=np.float32)
    audio[1, 1000] = 0.5
    trimmed = trim_trailing_silence(audio, RATE, threshold_db=-60, keep=0.01)
    assert trimmed.shape == (2, 1001 + 480)
    assert trim_trailing_silence(torch.from_numpy(audio), RATE, keep=10.0).shape == (2, RATE)


# ---------------------------------------------------------------------------------------------
# Saving
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, subtype, tolerance",
    [(".wav", "PCM_16", 2**-15), (".wav", "PCM_24", 2**-23), (".wav", "FLOAT", 0.0),
     (".flac", "PCM_16", 2**-15), (".flac", "PCM_24", 2**-23)],
)
def test_save_load_round_trip(tmp_path, suffix, subtype, tolerance):
    data = torch.from_numpy(np.random.default_rng(1).uniform(-1, 1, size=(2, 4097)).astype(np.float32))
    path = save_audio(tmp_path / f"x{suffix}", data, subtype=subtype)
    info = audio_info(path)
    assert (info.subtype, info.channels, info.frames, info.sample_rate) == (subtype, 2, 4097, RATE)
    error = (load_audio(path) - data).abs().max()
    assert error <= tolerance * 1.01
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left


def test_flac_float_is_refused_and_bad_arguments(tmp_path):
    data = np.zeros((2, 10))
    with pytest.raises(ValueError, match="FLAC cannot store float"):
        save_audio(tmp_path / "x.flac", data, subtype="FLOAT")
    with pytest.raises(ValueError, match="suffix"):
        save_audio(tmp_path / "x.m4a", data)
    with pytest.raises(ValueError, match="channels-first"):
        save_audio(tmp_path / "x.wav", np.zeros((1000, 2)))
    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "x.wav", np.full((2, 10), np.nan))
    assert list(tmp_path.iterdir()) == []


def test_loud_input_is_scaled_not_wrapped(tmp_path, caplog):
    data = np.stack([sine(100, 4800, RATE, 1.8), -sine(100, 4800, RATE, 1.8)])
    with caplog.at_level(logging.WARNING, logger="audiodit.audio"):
        path = save_audio(tmp_path / "loud.wav", data, subtype="PCM_16")
    assert "scaling" in caplog.text
    loaded = load_audio(path).numpy()
    np.testing.assert_allclose(loaded, data / 1.8, atol=2**-14)  # same shape of wave, peak 1.0
    kept = load_audio(save_audio(tmp_path / "loud_float.wav", data, subtype="FLOAT")).numpy()
    np.testing.assert_allclose(kept, data, atol=1e-6)  # float files keep values above 1.0


def test_no_silent_overwrite(tmp_path):
    path = save_audio(tmp_path / "sub" / "x.flac", np.full((2, 100), 0.25))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_audio(path, np.full((2, 100), -0.5))
    np.testing.assert_allclose(load_audio(path).numpy(), 0.25, atol=2**-15)
    save_audio(path, np.full((1, 50), -0.5), overwrite=True)
    np.testing.assert_allclose(load_audio(path).numpy(), np.full((2, 50), -0.5), atol=2**-15)
    assert [p.name for p in path.parent.iterdir()] == ["x.flac"]


# ---------------------------------------------------------------------------------------------
# Compressed formats
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".ogg", ".mp3"])
def test_compressed_formats(tmp_path, suffix):
    if suffix == ".mp3" and "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile build has no MP3 support (needs libsndfile >= 1.1)")
    assert suffix in AUDIO_EXTENSIONS
    path = write(tmp_path / f"x{suffix}", [sine(880, 44100, 44100)] * 2, sample_rate=44100, subtype=None)
    audio = load_audio(path)
    assert audio.shape[0] == 2 and abs(audio.shape[1] - RATE) < 0.05 * RATE  # codec padding
    assert abs(dominant_frequency(audio[0].numpy(), RATE) - 880) <= 2 * RATE / audio.shape[1]


# ---------------------------------------------------------------------------------------------
# Bad files
# ---------------------------------------------------------------------------------------------


def _good_wav_bytes(tmp_path):
    return write(tmp_path / "good.wav", [sine(440, 4800, RATE)], subtype="PCM_16").read_bytes()


BAD_FILES = {
    "missing": (lambda d, good: d / "missing.wav", "does not exist"),
    "empty": (lambda d, good: _put(d / "empty.wav", b""), "empty"),
    "zero_frames": (lambda d, good: write(d / "zero.wav", np.zeros((2, 0))), "no audio frames"),
    "garbage": (lambda d, good: _put(d / "garbage.flac", bytes(range(256)) * 8), "corrupt"),
    "truncated_header": (lambda d, good: _put(d / "truncated.wav", good[:20]), "corrupt"),
    "directory": (lambda d, good: _mkdir(d / "folder.wav"), "directory"),
    "bad_extension": (lambda d, good: _put(d / "audio.txt", good), "unsupported extension"),
}


def _put(path, content):
    path.write_bytes(content)
    return path


def _mkdir(path):
    path.mkdir()
    return path


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_audio_load_error(tmp_path, case):
    make, reason = BAD_FILES[case]
    path = make(tmp_path, _good_wav_bytes(tmp_path))
    with pytest.raises(AudioLoadError, match=reason) as caught:
        load_audio(path)
    assert str(path) in str(caught.value) and caught.value.path == str(path)
    with pytest.raises(AudioLoadError):
        audio_info(path)


def test_non_finite_samples_are_rejected(tmp_path):
    data = np.zeros((2, 100), dtype=np.float32)
    data[0, 5] = np.inf
    path = write(tmp_path / "inf.wav", data)
    with pytest.raises(AudioLoadError, match="infinite"):
        load_audio(path)


def test_level_output_caps_the_gain_and_leaves_silence():
    quiet = torch.full((2, 100), 1e-4)
    raised, gain = level_output(quiet, "peak")
    assert gain == pytest.approx(30.0) and raised.abs().max() == pytest.approx(1e-4 * 10 ** 1.5, rel=1e-5)
    silence = torch.zeros(2, 100)
    assert level_output(silence, "rms")[1] == 0.0 and bool((level_output(silence, "rms")[0] == 0).all())
    loud = torch.tensor([[0.9, -0.9, 0.0, 0.0]])
    assert 20 * torch.log10(level_output(loud, "rms", -3.0)[0].abs().max()) == pytest.approx(-1.0, abs=1e-4)
    with pytest.raises(ValueError, match="normalize must be"):
        level_output(loud, "loud")
