"""VAE losses on known signals, and the discriminator switching on after the warm-up."""

import pytest
import torch

from audiodit.losses import (VAELoss, VAELossConfig, chroma_filterbank, chroma_loss, log_mel_spectrogram,
                             mel_filterbank, mid_side)
from audiodit.models.vae import DiagonalGaussianDistribution


pytestmark = pytest.mark.usefixtures("single_thread")


def music_like(seconds=0.5, sample_rate=48000, seed=0):
    """(1, 2, S) decaying harmonic notes with a different note mix per side (not a recording)."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    sides = []
    for freqs in ((220.0, 330.0), (277.2, 440.0)):
        wave = sum(torch.sin(2 * torch.pi * f * k * t) / k for f in freqs for k in (1, 2, 3))
        sides.append(0.1 * wave * torch.exp(-3 * t))
    audio = torch.stack(sides)[None]
    return audio + 0.002 * torch.randn(audio.shape, generator=generator)


@pytest.fixture(scope="module")
def loss_fn():
    torch.manual_seed(0)
    return VAELoss(VAELossConfig(adversarial_start_step=3, disc_channels=8))


def test_identical_audio_has_zero_loss(loss_fn):
    audio = music_like()
    total, terms = loss_fn.generator_loss(audio, audio.clone(), None, step=0)
    assert total.item() == 0.0
    assert set(terms) == {"stft", "stft_mid_side", "mel", "waveform", "total"}
    assert all(value.item() == 0.0 for value in terms.values())


def test_loss_grows_with_noise_and_shift(loss_fn):
    audio = music_like()
    noise = torch.randn(audio.shape, generator=torch.Generator().manual_seed(1))
    totals = [loss_fn.generator_loss(audio, audio + level * noise, None)[0].item()
              for level in (0.001, 0.01, 0.1)]
    assert 0 < totals[0] < totals[1] < totals[2]
    shifted = torch.roll(audio, 240, dims=-1)
    assert loss_fn.generator_loss(audio, shifted, None)[0].item() > totals[0]


def test_mid_side_term_sees_what_left_right_magnitudes_miss(loss_fn):
    # Inverting the right channel keeps every L/R magnitude spectrum but swaps mid and side.
    audio = music_like()
    inverted = audio * torch.tensor([1.0, -1.0])[None, :, None]
    terms = loss_fn.reconstruction_terms(audio, inverted)
    assert terms["stft"].item() < 1e-6
    assert terms["stft_mid_side"].item() > 0.1
    back = mid_side(mid_side(audio))  # (L, R) -> (M, S) -> (L/2, R/2)
    assert torch.allclose(back * 2, audio, atol=1e-6)


def test_kl_term_is_weighted_into_the_total():
    config = VAELossConfig(kl_weight=0.5, adversarial_start_step=10**9)
    loss = VAELoss(config)
    audio = music_like()
    posterior = DiagonalGaussianDistribution(torch.full((1, 4, 10), 1.0), torch.ones(1, 4, 10))
    total, terms = loss.generator_loss(audio, audio, posterior, step=0)
    assert torch.isclose(terms["kl"], torch.tensor(0.5 * 4.0))  # 0.5 * mean^2 summed over 4 channels
    assert torch.isclose(total, 0.5 * terms["kl"])


def test_kl_term_starts_late_and_ramps_up():
    # KL annealing: off before kl_start_step, then linear over kl_warmup_steps, then constant.
    config = VAELossConfig(kl_weight=0.5, kl_start_step=10, kl_warmup_steps=4, adversarial_start_step=10**9)
    loss = VAELoss(config)
    audio = music_like()
    posterior = DiagonalGaussianDistribution(torch.full((1, 4, 10), 1.0), torch.ones(1, 4, 10))
    totals = {step: loss.generator_loss(audio, audio, posterior, step=step)[0].item()
              for step in (0, 9, 10, 11, 13, 14, 1000)}
    kl = 2.0  # 0.5 * mean^2 summed over 4 channels
    assert totals[0] == totals[9] == totals[10] == 0.0
    assert totals[11] == pytest.approx(0.5 * kl / 4) and totals[13] == pytest.approx(0.5 * kl * 3 / 4)
    assert totals[14] == totals[1000] == pytest.approx(0.5 * kl)


def test_mel_filterbank_and_spectrogram():
    filters = mel_filterbank(48000, 2048, 64)
    assert filters.shape == (64, 1025) and (filters >= 0).all()
    assert (filters.sum(dim=1) > 0).all()  # no empty band
    peaks = filters.argmax(dim=1)
    assert (peaks[1:] >= peaks[:-1]).all() and peaks[-1] > peaks[0]
    t = torch.arange(48000) / 48000
    low, high = torch.sin(2 * torch.pi * 200 * t), torch.sin(2 * torch.pi * 8000 * t)
    mel_low = log_mel_spectrogram(low, 48000, n_mels=64).mean(-1)
    mel_high = log_mel_spectrogram(high, 48000, n_mels=64).mean(-1)
    assert mel_low.argmax() < mel_high.argmax()


def _tones(frequencies, seconds=0.5, sample_rate=48000):
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return sum(torch.sin(2 * torch.pi * f * t) for f in frequencies).expand(1, 2, -1).clone()


def test_chroma_filterbank_puts_notes_in_their_pitch_class():
    filters = chroma_filterbank(48000, 8192, 100.0, 5000.0)  # (12, bins), row 0 = C
    bins = torch.linspace(0, 24000, 8192 // 2 + 1)
    for midi in (48, 57, 64, 70):  # C3, A3, E4, Bb4
        frequency = 440.0 * 2 ** ((midi - 69) / 12)
        nearest = int(torch.argmin((bins - frequency).abs()))
        assert int(filters[:, nearest].argmax()) == midi % 12
    assert filters[:, bins < 100].abs().sum() == 0 and filters[:, bins > 5000].abs().sum() == 0


def test_chroma_loss_sees_pitch_not_loudness():
    filters = chroma_filterbank(48000, 4096, 100.0, 5000.0)
    c_major = _tones([261.63, 329.63, 392.00])
    assert chroma_loss(c_major, 0.2 * c_major, filters, 4096) < 1e-4  # gain does not change pitch classes
    up_a_tone = _tones([293.66, 369.99, 440.00])  # D major: no pitch class shared with C major
    up_an_octave = _tones([523.25, 659.26, 783.99])
    far, near = chroma_loss(c_major, up_a_tone, filters, 4096), chroma_loss(c_major, up_an_octave, filters, 4096)
    assert far > 1.0 and near < 0.5 * far  # 2 = disjoint distributions
    # off by default; switched on it is a weighted term of the total
    real, fake = c_major, up_a_tone + 0.01
    _, off = VAELoss(VAELossConfig()).generator_loss(real, fake)
    total, on = VAELoss(VAELossConfig(chroma_weight=2.0)).generator_loss(real, fake)
    assert "chroma" not in off
    torch.testing.assert_close(on["total"], off["total"] + 2.0 * on["chroma"])


def test_discriminator_switches_on_after_warm_up(loss_fn):
    audio = music_like()
    fake = (audio + 0.05 * torch.randn(audio.shape, generator=torch.Generator().manual_seed(2)))
    fake.requires_grad_(True)
    # warm-up: no adversarial terms and a zero, gradient-free discriminator loss
    _, terms = loss_fn.generator_loss(audio, fake, None, step=2)
    assert "adversarial" not in terms and "feature_matching" not in terms
    d_loss, d_terms = loss_fn.discriminator_loss(audio, fake, step=2)
    assert d_loss.item() == 0.0 and not d_loss.requires_grad and d_terms == {}
    assert not loss_fn.adversarial_active(2) and loss_fn.adversarial_active(3)

    # after warm-up: the generator gets adversarial + feature-matching gradients, the
    # discriminator's parameters get none from the generator step
    loss_fn.discriminator.zero_grad(set_to_none=True)
    total, terms = loss_fn.generator_loss(audio, fake, None, step=3)
    assert terms["adversarial"].item() > 0 and terms["feature_matching"].item() > 0
    total.backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss_fn.discriminator.parameters())
    assert all(p.requires_grad for p in loss_fn.discriminator.parameters())

    d_loss, d_terms = loss_fn.discriminator_loss(audio, fake, step=3)
    assert d_loss.requires_grad and d_terms["discriminator"].item() > 0
    d_loss.backward()
    assert all(p.grad is not None for p in loss_fn.discriminator.parameters())


def test_discriminator_learns_to_separate_real_from_fake():
    torch.manual_seed(0)
    for kind in ("hinge", "lsgan"):
        loss = VAELoss(VAELossConfig(adversarial_start_step=0, adversarial_loss=kind, disc_channels=8,
                                     disc_fft_sizes=(512, 256)))
        audio = music_like(0.25)
        fake = torch.zeros_like(audio) + 0.02 * torch.randn(audio.shape, generator=torch.Generator().manual_seed(3))
        optimizer = torch.optim.Adam(loss.discriminator.parameters(), lr=1e-3)
        first = None
        for _ in range(15):
            d_loss, _ = loss.discriminator_loss(audio, fake, step=0)
            optimizer.zero_grad()
            d_loss.backward()
            optimizer.step()
            first = first if first is not None else d_loss.item()
        assert d_loss.item() < first, kind


def test_bad_inputs_raise(loss_fn):
    with pytest.raises(ValueError, match="same|real and fake"):
        loss_fn.generator_loss(torch.zeros(1, 2, 1000), torch.zeros(1, 2, 999), None)
    with pytest.raises(ValueError, match="adversarial_loss"):
        VAELoss(VAELossConfig(adversarial_loss="wasserstein"))


def test_stft_consistency_loss_is_zero_for_a_real_signal_and_large_for_clashing_phases():
    from audiodit.losses import stft_consistency_loss
    from audiodit.models.stft import stft_same

    n_fft, hop = 1920, 480
    window = torch.hann_window(n_fft)
    audio = 0.1 * torch.randn(1, 2, 40 * hop, generator=torch.Generator().manual_seed(0))
    spectrum = stft_same(audio.flatten(0, 1), n_fft, hop, window).reshape(1, 2, n_fft // 2 + 1, -1)
    from audiodit.models.stft import istft_same

    remade = istft_same(spectrum.flatten(0, 1), n_fft, hop, window).reshape(1, 2, -1)
    assert float(stft_consistency_loss(spectrum, remade, n_fft, hop, window)) < 1e-4
    # the same magnitudes with a random phase in every frame: overlapping frames cancel
    phase = 2 * torch.pi * torch.rand(spectrum.shape, generator=torch.Generator().manual_seed(1))
    clashing = torch.polar(spectrum.abs(), phase)
    remade = istft_same(clashing.flatten(0, 1), n_fft, hop, window).reshape(1, 2, -1)
    assert float(stft_consistency_loss(clashing, remade, n_fft, hop, window)) > 0.5
