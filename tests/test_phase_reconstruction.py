"""Phase from magnitudes: partials come out at their own frequency, between bins too, with the
magnitudes they were given; channels with the same magnitudes get the same phase; bad input raises."""

import math

import pytest
import torch

from audiodit.models.stft import istft_same, stft_same
from audiodit.phase_reconstruction import magnitude_phase, magnitude_phase_block


pytestmark = pytest.mark.usefixtures("single_thread")

RATE, N_FFT, HOP = 48000, 1920, 480  # the VAE's STFT: 25 Hz bins


def _tones(frequencies, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE)) / RATE  # (S,) seconds, a multiple of HOP samples
    return sum(0.2 * torch.sin(2 * math.pi * f * t + 0.7 * i) for i, f in enumerate(frequencies))


def _peak_hz(audio: torch.Tensor, low: float, high: float) -> float:
    """Frequency of the strongest component between low and high Hz (0.25 Hz resolution)."""
    padded = torch.nn.functional.pad(audio * torch.hann_window(audio.shape[-1]), (0, 3 * audio.shape[-1]))
    spectrum = torch.fft.rfft(padded).abs()
    hz = torch.fft.rfftfreq(padded.shape[-1], 1 / RATE)
    band = (hz >= low) & (hz <= high)
    return float(hz[band][spectrum[band].argmax()])


def _rebuild(audio: torch.Tensor) -> torch.Tensor:
    window = torch.hann_window(N_FFT)
    spec = stft_same(audio[None], N_FFT, HOP, window)  # (1, bins, F)
    return istft_same(magnitude_phase(spec.abs(), HOP, N_FFT), N_FFT, HOP, window)[0]


@pytest.mark.parametrize("frequency", [98.0, 110.0, 123.47, 146.83, 440.0, 1234.5])
def test_partials_come_out_at_their_frequency_not_their_bin_centre(frequency):
    # Bass notes lie between the 25 Hz bins (G2 = 98 Hz is bin 3.92). Rebuilt from the magnitudes
    # alone, a tone stays within 1 Hz of where it was; the bin-centre phase the VAE's decoder starts
    # from (its head's phase 0) renders the nearest bin centre instead, up to 12.5 Hz away.
    rebuilt = _rebuild(_tones([frequency]))
    assert abs(_peak_hz(rebuilt[HOP * 8:-HOP * 8], frequency - 20, frequency + 20) - frequency) < 1.0
    centre = round(frequency / (RATE / N_FFT)) * RATE / N_FFT
    if abs(centre - frequency) > 2:
        window = torch.hann_window(N_FFT)
        spec = stft_same(_tones([frequency])[None], N_FFT, HOP, window)
        frames = torch.arange(spec.shape[-1])
        bins = torch.arange(spec.shape[1])[:, None]
        centre_phase = 2 * math.pi * ((bins * HOP * frames) % N_FFT) / N_FFT + math.pi * bins
        plain = istft_same(torch.polar(spec.abs(), centre_phase.float()), N_FFT, HOP, window)[0]
        assert abs(_peak_hz(plain[HOP * 8:-HOP * 8], frequency - 20, frequency + 20) - frequency) > 2.0


def test_a_bass_note_with_its_harmonics_keeps_its_pitch_and_magnitudes():
    # G2 (98 Hz) and four harmonics: partials 3.9 bins apart. (Closer partials, two low voices
    # within about 60 Hz, share main lobes and pull each other's estimates: see the module docstring.)
    partials = [98.0 * harmonic for harmonic in (1, 2, 3, 4, 5)]
    audio = _tones(partials)
    rebuilt = _rebuild(audio)
    for partial in partials:
        assert abs(_peak_hz(rebuilt[HOP * 8:-HOP * 8], partial - 10, partial + 10) - partial) < 1.0
    window = torch.hann_window(N_FFT)
    before = stft_same(audio[None], N_FFT, HOP, window).abs()[..., 8:-8]
    after = stft_same(rebuilt[None], N_FFT, HOP, window).abs()[..., 8:-8]
    assert float((after - before).norm() / before.norm()) < 0.25  # spectral convergence


def test_same_magnitudes_give_the_same_phase_and_silence_stays_silent():
    audio = _tones([220.0, 330.0], seconds=0.5)
    window = torch.hann_window(N_FFT)
    magnitude = stft_same(torch.stack([audio, 0.5 * audio, torch.zeros_like(audio)]), N_FFT, HOP, window).abs()
    spec = magnitude_phase(magnitude, HOP, N_FFT)  # (3, bins, F)
    unit = torch.polar(torch.ones_like(magnitude[:2]), spec[:2].angle())  # (2, bins, F) phase as unit phasors
    torch.testing.assert_close(unit[0], unit[1], atol=1e-3, rtol=0)  # a panned source keeps its image
    torch.testing.assert_close(spec.abs(), magnitude)
    assert spec[2].abs().max() == 0


def test_block_by_block_continues_the_phase():
    audio = _tones([98.0, 261.63], seconds=0.5)
    magnitude = stft_same(audio[None], N_FFT, HOP, torch.hann_window(N_FFT)).abs()  # (1, bins, 50)
    whole = magnitude_phase(magnitude, HOP, N_FFT)
    first, state = magnitude_phase_block(magnitude[..., :17], HOP, N_FFT)
    second, _ = magnitude_phase_block(magnitude[..., 17:], HOP, N_FFT, state)
    torch.testing.assert_close(torch.cat([first, second], dim=-1), whole)
    with pytest.raises(ValueError, match="previous state must be"):
        magnitude_phase_block(magnitude[:, :100], HOP, N_FFT, state)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="n_fft // 2 \\+ 1"):
        magnitude_phase(torch.ones(1, 962, 4), HOP, N_FFT)
    with pytest.raises(ValueError, match="must be \\(N"):
        magnitude_phase(torch.ones(961, 4), HOP, N_FFT)
    with pytest.raises(ValueError, match="must be real"):
        magnitude_phase(torch.ones(1, 961, 4, dtype=torch.complex64), HOP, N_FFT)
