"""AudioVAE: length rule, posterior API, save/load, tiling, output initialisation, and short trainings
on a real recording (the loss falls; reconstructions depend on their input)."""

import dataclasses
import inspect
import json
import math
from pathlib import Path

import pytest
import torch

from audiodit.losses import VAELoss, VAELossConfig, log_mel_spectrogram
from audiodit.models.stft import istft_same, stft_same
from audiodit.models.vae import (INITIAL_POSTERIOR_STD, PRESETS, AudioVAE, DiagonalGaussianDistribution,
                                  VAEConfig)
from audiodit.phase_reconstruction import magnitude_phase


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return AudioVAE.from_preset("tiny").eval()


def test_config_fields_are_the_init_arguments():
    init_args = list(inspect.signature(AudioVAE.__init__).parameters)[1:]
    assert [f.name for f in dataclasses.fields(VAEConfig)] == init_args
    for overrides in PRESETS.values():
        cfg = VAEConfig(**overrides)
        assert cfg.hop_length == 1920 and cfg.sampling_rate / cfg.hop_length == 25.0
    assert VAEConfig(**PRESETS["base"]).latent_channels == 64
    model = AudioVAE.from_preset("tiny", latent_channels=4)  # base/small are slow to initialise
    assert (model.hop_length, model.latent_rate, model.latent_channels) == (1920, 25.0, 4)
    with pytest.raises(ValueError, match="unknown VAE preset"):
        AudioVAE.from_preset("huge")


@torch.no_grad()
def test_round_trip_lengths(tiny):
    generator = torch.Generator().manual_seed(1)
    lengths = [1, 1919, 1920, 1921, 3840] + torch.randint(2, 20000, (4,), generator=generator).tolist()
    for length in lengths:
        audio = 0.1 * torch.randn(2, 2, length, generator=generator)
        posterior = tiny.encode(audio).latent_dist
        frames = math.ceil(length / tiny.hop_length)
        assert tiny.latent_frames(length) == frames
        assert posterior.mean.shape == (2, tiny.latent_channels, frames)
        assert tiny.decode(posterior.mode()).sample.shape == (2, 2, frames * tiny.hop_length)
        assert tiny.decode(posterior.mode(), length=length).sample.shape == (2, 2, length)
        assert tiny(audio).sample.shape == audio.shape
    # a longer `length` than the latents cover is zero-padded
    padded = tiny.decode(torch.zeros(1, tiny.latent_channels, 2), length=5000).sample
    assert padded.shape == (1, 2, 5000) and padded[..., 3840:].abs().max() == 0


def test_bad_inputs_raise(tiny):
    with pytest.raises(ValueError, match="audio must be"):
        tiny.encode(torch.zeros(1, 1, 4000))
    with pytest.raises(ValueError, match="audio must be"):
        tiny.encode(torch.zeros(2, 4000))
    with pytest.raises(ValueError, match="latents must be"):
        tiny.decode(torch.zeros(1, tiny.latent_channels + 1, 4))
    with pytest.raises(ValueError, match="length"):
        tiny.decode(torch.zeros(1, tiny.latent_channels, 4), length=0)
    with pytest.raises(ValueError, match="overlap"):
        tiny.enable_tiling(tile_latent_frames=10, overlap_latent_frames=6)


@torch.no_grad()
def test_posterior_api(tiny):
    audio = 0.1 * torch.randn(3, 2, 9000, generator=torch.Generator().manual_seed(2))
    posterior = tiny.encode(audio).latent_dist
    first = posterior.sample(torch.Generator().manual_seed(7))
    again = posterior.sample(torch.Generator().manual_seed(7))
    other = posterior.sample(torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert torch.equal(posterior.mode(), posterior.mean)
    kl = posterior.kl()
    assert kl.shape == (3,) and (kl > 0).all()

    standard = DiagonalGaussianDistribution(torch.zeros(2, 4, 5), torch.ones(2, 4, 5))
    assert torch.allclose(standard.kl(), torch.zeros(2), atol=1e-6)
    shifted = DiagonalGaussianDistribution(torch.full((1, 4, 5), 0.5), torch.ones(1, 4, 5))
    assert torch.allclose(shifted.kl(), torch.tensor([0.5 * 0.25 * 20]))  # 0.5 * mean^2 * elements
    narrow = DiagonalGaussianDistribution(torch.zeros(1, 4, 5), torch.full((1, 4, 5), 0.5))
    assert (narrow.kl() > 0).all()


@torch.no_grad()
def test_save_and_load_give_identical_outputs(tiny, tmp_path):
    tiny.save_pretrained(tmp_path / "vae")
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = AudioVAE.from_pretrained(tmp_path / "vae").eval()
    assert dict(loaded.config, _name_or_path=None) == dict(tiny.config, _name_or_path=None)
    audio = 0.1 * torch.randn(1, 2, 7000, generator=torch.Generator().manual_seed(3))
    latents = tiny.encode(audio).latent_dist.mode()
    assert torch.equal(loaded.encode(audio).latent_dist.mode(), latents)
    assert torch.equal(loaded.decode(latents).sample, tiny.decode(latents).sample)


@torch.no_grad()
def test_tiled_matches_untiled(tiny):
    # Stated tolerance: max abs difference <= 1e-4 of the untiled output's peak (the overlap's
    # outer quarters, 8 frames, exceed the tiny model's receptive field of about 4 latent frames).
    generator = torch.Generator().manual_seed(4)
    latents = torch.randn(1, tiny.latent_channels, 130, generator=generator)
    audio = 0.1 * torch.randn(1, 2, 130 * tiny.hop_length - 777, generator=generator)
    full = tiny.decode(latents).sample
    full_mean = tiny.encode(audio).latent_dist.mean
    try:
        tiny.enable_tiling(tile_latent_frames=64, overlap_latent_frames=32)
        tiled = tiny.decode(latents).sample
        tiled_mean = tiny.encode(audio).latent_dist.mean
    finally:
        tiny.disable_tiling()
    assert tiled.shape == full.shape and tiled_mean.shape == full_mean.shape
    assert (tiled - full).abs().max() <= 1e-4 * full.abs().max()
    assert (tiled_mean - full_mean).abs().max() <= 1e-4 * full_mean.abs().max()


@torch.no_grad()
def test_tiles_keep_the_phase_advance_when_its_cycle_is_not_one_latent_frame():
    # n_fft 1440 with hop 480: a bin's centre-frequency phase repeats every 3 STFT frames, and a tile
    # starting at latent frame 32 starts at STFT frame 128 (128 % 3 != 0), so the tile must be told
    # where it starts or its sinusoids jump in phase at the seam.
    torch.manual_seed(0)
    vae = AudioVAE.from_preset("tiny", n_fft=1440).eval()
    latents = torch.randn(1, vae.latent_channels, 100, generator=torch.Generator().manual_seed(5))
    full = vae.decode(latents).sample
    vae.enable_tiling(tile_latent_frames=64, overlap_latent_frames=32)
    tiled = vae.decode(latents).sample
    assert (tiled - full).abs().max() <= 1e-4 * full.abs().max()


def _decode_one_bin(phase_advance: bool, bin_index: int) -> torch.Tensor:
    """Frequency (Hz) of the strongest component when a tiny decoder's head outputs a constant
    spectrum: bin `bin_index` loud, every other bin silent, phase 0."""
    vae = AudioVAE.from_preset("tiny", phase_advance=phase_advance).eval()
    bins = vae.config.n_fft // 2 + 1
    with torch.no_grad():
        vae.decoder_head.weight.zero_()
        bias = vae.decoder_head.bias.view(2, 2, bins)  # (ch, [log-magnitude, phase], bins)
        bias.zero_()
        bias[:, 0] = -20.0
        bias[:, 0, bin_index] = 0.0
        audio = vae.decode(torch.zeros(1, vae.latent_channels, 25)).sample[0, 0]  # 1 s, left
    spectrum = torch.fft.rfft(audio * torch.hann_window(audio.shape[-1])).abs()  # 1 Hz per bin
    return float(spectrum.argmax()) * vae.sampling_rate / audio.shape[-1]


def test_phase_advance_lets_a_constant_head_render_any_bin_frequency():
    # Bin 17 of a 1920-point FFT at 48 kHz is 425 Hz. With the centre-frequency phase advance a
    # constant head renders a steady 425 Hz sinusoid; without it, the frames repeat every 480-sample
    # hop and the energy can only land on multiples of 100 Hz (the comb buzz of issue 3).
    assert abs(_decode_one_bin(True, 17) - 425.0) <= 2.0
    assert _decode_one_bin(False, 17) % 100.0 == pytest.approx(0.0, abs=2.0)


@torch.no_grad()
def test_tiled_decode_works_chunk_by_chunk(tiny, monkeypatch):
    # 2 minutes of latents: memory is bounded because the network only ever sees one tile.
    seen = []
    decode_frames = tiny._decode_frames
    monkeypatch.setattr(tiny, "_decode_frames", lambda z, first=0: seen.append(z.shape[-1]) or decode_frames(z, first))
    frames = 3000
    tiny.enable_tiling(tile_latent_frames=500, overlap_latent_frames=32)
    try:
        audio = tiny.decode(torch.randn(1, tiny.latent_channels, frames), length=frames * 1920 - 5).sample
    finally:
        tiny.disable_tiling()
    assert audio.shape == (1, 2, frames * 1920 - 5) and torch.isfinite(audio).all()
    assert max(seen) <= 500 and len(seen) == math.ceil((frames - 32) / (500 - 32))
    assert sum(seen) - 32 * (len(seen) - 1) == frames  # tiles cover every frame once, plus overlaps


def _real_recording(seconds: float = 0.5, offset: float = 2.0) -> torch.Tensor:
    """`seconds` of a real microphone recording (music21's audioSearch test file, mono, 44.1 kHz),
    resampled to 48 kHz stereo (both sides equal)."""
    music21 = pytest.importorskip("music21")
    from audiodit.audio import load_audio

    path = Path(music21.__file__).parent / "audioSearch" / "test_audio.wav"
    if not path.is_file():
        pytest.skip(f"{path} not shipped with this music21")
    audio = load_audio(path, offset=offset, duration=seconds)  # (2, S)
    assert audio.abs().max() > 0.01, "the excerpt should not be silence"
    return audio[None]


def test_overfit_one_real_recording():
    torch.manual_seed(0)
    audio = _real_recording()  # (1, 2, 24000)
    vae = AudioVAE.from_preset("tiny")
    loss_fn = VAELoss(VAELossConfig(adversarial_start_step=10**9))
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    losses = []
    for step in range(60):
        posterior = vae.encode(audio).latent_dist
        fake = vae.decode(posterior.mode(), length=audio.shape[-1]).sample
        loss, terms = loss_fn.generator_loss(audio, fake, posterior, step)
        assert "adversarial" not in terms
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert min(losses[-5:]) < 0.7 * losses[0], losses


def test_fresh_posterior_starts_narrow(tiny):
    # Issue 3: a posterior starting at softplus(0) = 0.69 buried the latents in noise and the decoder
    # learnt to ignore them. A fresh encoder starts at INITIAL_POSTERIOR_STD instead.
    torch.manual_seed(1)
    std = tiny.encode(0.1 * torch.randn(2, 2, 7000)).latent_dist.std
    assert 0.5 * INITIAL_POSTERIOR_STD < std.mean().item() < 2 * INITIAL_POSTERIOR_STD


def test_mean_log_magnitude_leaves_out_padding(tiny):
    torch.manual_seed(2)
    audio = 0.1 * torch.randn(1, 2, 4800)
    padded = torch.nn.functional.pad(audio, (0, 9600))
    expected = tiny.mean_log_magnitude(audio)  # (ch, bins)
    assert expected.shape == (2, tiny.config.n_fft // 2 + 1)
    torch.testing.assert_close(tiny.mean_log_magnitude(padded, lengths=[4800]), expected)
    assert (tiny.mean_log_magnitude(padded) < expected).all()  # zeros would pull it to log(1e-5)


def test_output_initialisation_sets_the_log_magnitude_bias():
    vae = AudioVAE.from_preset("tiny")
    audio = 0.1 * torch.randn(3, 2, 5000)
    log_magnitude = vae.initialize_from_audio(audio)
    bins = vae.config.n_fft // 2 + 1
    bias = vae.decoder_head.bias.detach().view(2, 2, bins)  # (ch, [log-magnitude, phase], bins)
    torch.testing.assert_close(bias[:, 0], log_magnitude)
    assert (bias[:, 1] == 0).all()  # phase bias untouched
    with pytest.raises(ValueError, match="log_magnitude must have shape"):
        vae.set_output_log_magnitude(torch.zeros(bins))


@torch.no_grad()
def test_initialisation_standardises_log_magnitude_inputs(tmp_path):
    # After initialize_from_audio every encoder input feature has mean 0 and std 1 over the frames
    # of the audio it was computed on (padding left out), and the statistics are saved with the model.
    torch.manual_seed(3)
    vae = AudioVAE.from_preset("tiny")
    t = torch.arange(9600) / 48000
    audio = torch.stack([0.3 * torch.sin(2 * math.pi * 440 * t) * torch.linspace(0, 1, 9600),
                         0.05 * torch.randn(9600)])[None]  # (1, 2, S): a swelling tone and noise
    padded = torch.nn.functional.pad(audio, (0, 4800))
    vae.initialize_from_audio(padded, lengths=[9600])
    feats = vae._encoder_features(audio)[0]  # (features, F)
    assert feats.mean(-1).abs().max() < 1e-3
    assert (feats.std(-1, unbiased=False) - 1).abs().max() < 1e-3
    vae.save_pretrained(tmp_path / "vae")
    loaded = AudioVAE.from_pretrained(tmp_path / "vae")
    torch.testing.assert_close(loaded.encoder_input_std, vae.encoder_input_std)
    torch.testing.assert_close(loaded.encode(audio).latent_dist.mean, vae.encode(audio).latent_dist.mean)
    with pytest.raises(ValueError, match="moments must have shape"):
        vae.set_encoder_input_statistics(torch.zeros(3, 5))
    with pytest.raises(ValueError, match="takes no input statistics"):
        AudioVAE.from_preset("tiny", encoder_input="complex").set_encoder_input_statistics(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="encoder_input must be one of"):
        AudioVAE.from_preset("tiny", encoder_input="mel")


def test_configs_saved_before_the_options_load_as_they_were_trained(tmp_path):
    # A config.json without encoder_input and phase_advance (the bundled model before issue 8's
    # change) must keep complex inputs and the plain phase, or its weights would decode noise.
    old = AudioVAE.from_preset("tiny", encoder_input="complex", phase_advance=False)
    old.save_pretrained(tmp_path / "vae")
    config_path = tmp_path / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    del config["encoder_input"], config["phase_advance"]
    config_path.write_text(json.dumps(config))
    loaded = AudioVAE.from_pretrained(tmp_path / "vae")
    assert loaded.config.encoder_input == "complex" and loaded.config.phase_advance is False
    audio = 0.1 * torch.randn(1, 2, 4000, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded(audio).sample, old(audio).sample)


def test_trained_reconstruction_depends_on_its_input():
    # The failure of issue 3: after a few dozen steps every input decoded to the same average
    # spectrum (each reconstruction as far from its own clip as from the other). With the two
    # initialisations (narrow posterior, decoder at the data's mean spectrum) and posterior samples as
    # in training, each reconstruction must be clearly closer to its own clip.
    torch.manual_seed(0)
    clips = torch.cat([_real_recording(offset=offset) for offset in (2.0, 10.0)])  # (2, 2, 24000)
    vae = AudioVAE.from_preset("tiny")
    vae.initialize_from_audio(clips)
    loss_fn = VAELoss(VAELossConfig(adversarial_start_step=10**9))
    optimizer = torch.optim.Adam(vae.parameters(), lr=3e-3)
    for step in range(100):
        posterior = vae.encode(clips).latent_dist
        fake = vae.decode(posterior.sample(), length=clips.shape[-1]).sample
        loss, _ = loss_fn.generator_loss(clips, fake, posterior, step)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
    with torch.no_grad():
        recon = log_mel_spectrogram(vae(clips).sample, 48000)  # (2, 2, mels, frames)
        real = log_mel_spectrogram(clips, 48000)
    distance = (recon[:, None] - real[None]).abs().mean(dim=(2, 3, 4))  # (reconstruction, real)
    assert distance[0, 0] < 0.6 * distance[0, 1] and distance[1, 1] < 0.6 * distance[1, 0], distance


@torch.no_grad()
def test_magnitude_output_phase_keeps_lengths_and_magnitudes(tiny):
    latents = torch.randn(2, tiny.latent_channels, 7, generator=torch.Generator().manual_seed(3))
    decoder = tiny.decode(latents, length=12345).sample
    rebuilt = tiny.decode(latents, length=12345, output_phase="magnitude").sample
    assert rebuilt.shape == decoder.shape == (2, 2, 12345)
    assert not torch.allclose(rebuilt, decoder)
    cfg = tiny.config

    def magnitudes(audio):  # (B*ch, bins, F) over whole hops
        return stft_same(audio[..., :12000].reshape(4, -1), cfg.n_fft, cfg.stft_hop_length, tiny.window).abs()

    before, after = magnitudes(decoder)[..., 4:-4], magnitudes(rebuilt)[..., 4:-4]
    assert float((after - before).norm() / before.norm()) < 0.5
    with pytest.raises(ValueError, match="output_phase must be one of"):
        tiny.decode(latents, output_phase="griffin_lim")


def test_output_phase_is_saved_and_training_uses_the_decoders_phase(tmp_path):
    vae = AudioVAE.from_preset("tiny", output_phase="magnitude").eval()
    vae.save_pretrained(tmp_path / "vae")
    loaded = AudioVAE.from_pretrained(tmp_path / "vae").eval()
    assert loaded.config.output_phase == "magnitude"
    latents = torch.randn(1, vae.latent_channels, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(loaded.decode(latents).sample, vae.decode(latents, output_phase="magnitude").sample)
        decoder = vae.decode(latents, output_phase="decoder").sample
        assert not torch.allclose(vae.decode(latents).sample, decoder)
        vae.train()  # the losses train the decoder's own phase
        torch.testing.assert_close(vae.decode(latents).sample, decoder)
    config_path = tmp_path / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    del config["output_phase"]  # saved before the option: decodes as it did
    config_path.write_text(json.dumps(config))
    assert AudioVAE.from_pretrained(tmp_path / "vae").config.output_phase == "decoder"
    with pytest.raises(ValueError, match="output_phase must be one of"):
        AudioVAE.from_preset("tiny", output_phase="predicted")


@torch.no_grad()
def test_magnitude_phase_in_blocks_equals_the_whole_spectrogram_at_once():
    # Long audio is rebuilt block by block (bounded memory); the blocks must not show: the same
    # result as one inverse STFT of the rebuilt low band beside the original upper bins.
    vae = AudioVAE.from_preset("tiny", output_phase="magnitude").eval()
    cfg = vae.config
    t = torch.arange(48000 * 2) / 48000
    audio = torch.stack([0.3 * torch.sin(2 * math.pi * 98.0 * t) + 0.1 * torch.sin(2 * math.pi * 1234.0 * t),
                         0.2 * torch.sin(2 * math.pi * 146.83 * t)])[None]  # (1, 2, S)
    blocked = vae._magnitude_phase_(audio.clone(), block_frames=7)
    whole = vae._magnitude_phase_(audio.clone(), block_frames=100000)
    torch.testing.assert_close(blocked, whole, atol=1e-4, rtol=0)
    spec = stft_same(audio[0], cfg.n_fft, cfg.stft_hop_length, vae.window)  # (2, bins, F)
    low_bins = math.ceil(cfg.magnitude_phase_below_hz * cfg.n_fft / cfg.sampling_rate)
    low = magnitude_phase(spec[:, :low_bins + 4].abs(), cfg.stft_hop_length, cfg.n_fft)[:, :low_bins]
    direct = istft_same(torch.cat([low, spec[:, low_bins:]], dim=1), cfg.n_fft, cfg.stft_hop_length, vae.window)
    torch.testing.assert_close(whole[0], direct, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="magnitude_phase_below_hz must be in"):
        AudioVAE.from_preset("tiny", magnitude_phase_below_hz=0.0)


def _held_chord(seconds: float = 3.0) -> torch.Tensor:
    """(1, 2, S) a held 110 Hz note with harmonics and a quiet noise floor: no rhythm of its own."""
    t = torch.arange(int(48000 * seconds)) / 48000
    mono = sum(0.2 / k * torch.sin(2 * math.pi * 110.0 * k * t) for k in range(1, 7))
    mono = mono + 1e-3 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0))
    return torch.stack([mono, 0.8 * mono])[None]


@torch.no_grad()
def test_rebuilt_phase_removes_a_pulse_that_lives_in_the_phase():
    # Issue 24's artefact: magnitudes right, phase jumping at every latent frame (every 40 ms). A
    # render with that phase pulses at 25 Hz; the rebuilt phase, made from the magnitudes alone,
    # pulses no more than the original does.
    pytest.importorskip("librosa")
    from audiodit.periodicity import frame_periodicity

    vae = AudioVAE.from_preset("tiny", output_phase="rebuilt").eval()
    cfg = vae.config
    audio = _held_chord()
    spec = stft_same(audio[0], cfg.n_fft, cfg.stft_hop_length, vae.window)  # (2, bins, F)
    frames = spec.shape[-1]
    jumps = torch.rand(1, spec.shape[1], frames // cfg.frames_per_latent + 1,
                       generator=torch.Generator().manual_seed(1)) * 2 * math.pi
    jumps = jumps.repeat_interleave(cfg.frames_per_latent, dim=-1)[..., :frames]  # constant inside a latent frame
    pulsing = istft_same(spec * torch.polar(torch.ones_like(jumps), jumps), cfg.n_fft, cfg.stft_hop_length, vae.window)
    rebuilt = vae._rebuilt_audio(spec.abs()[None])[0]
    scores = {name: frame_periodicity(signal.numpy(), 48000)["acf_mean"]
              for name, signal in (("original", audio[0]), ("pulsing", pulsing), ("rebuilt", rebuilt))}
    assert scores["pulsing"] > scores["original"] + 0.3, scores
    assert scores["rebuilt"] < scores["original"] + 0.05, scores
    assert rebuilt.shape == audio[0].shape


@torch.no_grad()
def test_rebuilt_phase_iterations_make_the_spectrum_consistent_and_blocks_do_not_show():
    vae = AudioVAE.from_preset("tiny", output_phase="rebuilt").eval()
    cfg = vae.config
    magnitude = stft_same(_held_chord(1.5)[0], cfg.n_fft, cfg.stft_hop_length, vae.window).abs()[None]

    def inconsistency(iterations):  # how far the output's own magnitudes are from the asked ones
        vae.register_to_config(phase_iterations=iterations)
        audio = vae._rebuilt_audio(magnitude)
        out = stft_same(audio[0], cfg.n_fft, cfg.stft_hop_length, vae.window).abs()
        return float((out - magnitude[0]).norm() / magnitude.norm()), audio

    (plain, plain_audio), (iterated, iterated_audio) = inconsistency(0), inconsistency(8)
    assert iterated < 0.8 * plain, (plain, iterated)
    # In blocks: exact without iterations; with them each block sees enough context (8 iterations
    # reach 24 frames, the margin is 64) to give the one-pass result.
    vae.register_to_config(phase_iterations=0)
    torch.testing.assert_close(vae._rebuilt_audio(magnitude, block_frames=23), plain_audio, atol=1e-5, rtol=0)
    vae.register_to_config(phase_iterations=8)
    torch.testing.assert_close(vae._rebuilt_audio(magnitude, block_frames=23), iterated_audio, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="phase_iterations must be an int"):
        AudioVAE.from_preset("tiny", phase_iterations=-1)
    with pytest.raises(ValueError, match="phase_iterations must be an int"):
        AudioVAE.from_preset("tiny", phase_iterations=2.5)


@torch.no_grad()
def test_rebuilt_output_phase_decodes_tiled_like_whole_and_training_keeps_the_decoders_phase():
    torch.manual_seed(0)
    vae = AudioVAE.from_preset("tiny", output_phase="rebuilt", phase_iterations=4).eval()
    latents = torch.randn(1, vae.latent_channels, 40, generator=torch.Generator().manual_seed(5))
    whole = vae.decode(latents, length=40 * vae.hop_length - 100).sample
    assert whole.shape == (1, 2, 40 * vae.hop_length - 100)
    decoder = vae.decode(latents, length=whole.shape[-1], output_phase="decoder").sample
    assert not torch.allclose(whole, decoder)
    vae.enable_tiling(16, 4)
    tiled = vae.decode(latents, length=whole.shape[-1]).sample
    vae.disable_tiling()
    # The tiles' magnitudes are cross-faded, then one phase is built for the whole: the result is
    # as close to the decoder's magnitudes as the untiled one (its waveform may drift in phase).
    cfg = vae.config
    target = vae.decode_spectrum(latents).abs()[0, ..., :38 * cfg.frames_per_latent]

    def distance(audio):
        out = stft_same(audio[0, :, :38 * vae.hop_length], cfg.n_fft, cfg.stft_hop_length, vae.window).abs()
        return float((out - target).norm() / target.norm())

    assert distance(tiled) < 1.2 * distance(whole) + 0.01
    vae.train()
    torch.testing.assert_close(vae.decode(latents, length=whole.shape[-1]).sample, decoder)


@torch.no_grad()
def test_interpolate_upsampling_keeps_the_length_rule_and_treats_every_frame_alike():
    torch.manual_seed(0)
    vae = AudioVAE.from_preset("tiny", decoder_upsample="interpolate").eval()
    audio = 0.1 * torch.randn(1, 2, 5 * vae.hop_length - 300)
    assert vae(audio).sample.shape == audio.shape
    # constant latents decode to frame features that are the same in every STFT frame away from
    # the edges: nothing in the decoder knows a frame's position within its latent frame
    # (60 latent frames: the middle ones are beyond the reach of the zero padding at the edges)
    latents = torch.ones(1, vae.latent_channels, 60)
    features = vae.decoder_up(vae.decoder_latent(vae.decoder_in_norm(vae.decoder_in(latents))))  # (1, D, 240)
    inner = features[..., 80:160]
    assert (inner - inner[..., :1]).abs().max() < 1e-5
    transposed = AudioVAE.from_preset("tiny").eval()
    features = transposed.decoder_up(transposed.decoder_latent(transposed.decoder_in_norm(transposed.decoder_in(latents))))
    inner = features[..., 80:160]
    assert (inner - inner[..., :1]).abs().max() > 1e-3  # per-position weights differ...
    torch.testing.assert_close(inner[..., 4:], inner[..., :-4])  # ...and repeat every latent frame
    with pytest.raises(ValueError, match="decoder_upsample"):
        AudioVAE.from_preset("tiny", decoder_upsample="nearest")


@torch.no_grad()
def test_converted_upsampling_starts_as_the_transposed_average():
    from audiodit.training.vae_stage import convert_decoder_upsample

    torch.manual_seed(1)
    old = AudioVAE.from_preset("tiny").eval()
    up = old.decoder_up[1]
    up.weight.copy_(up.weight[..., :1].expand_as(up.weight))  # one weight for every position
    new = AudioVAE.from_preset("tiny", decoder_upsample="interpolate").eval()
    new.load_state_dict(convert_decoder_upsample(old.state_dict(), "interpolate"))
    # with position-independent transposed weights, constant latents decode identically (in the
    # middle, beyond the reach of the zero padding at the edges)
    latents = torch.randn(1, old.latent_channels, 1).expand(1, old.latent_channels, 60).contiguous()
    middle = slice(20 * old.hop_length, 40 * old.hop_length)
    torch.testing.assert_close(new.decode(latents).sample[..., middle], old.decode(latents).sample[..., middle],
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="only a 'transposed' VAE converts"):
        convert_decoder_upsample(new.state_dict(), "transposed")


def test_model_defaults_are_their_configs_and_old_configs_load_as_made(tmp_path):
    """One source of truth: `AudioVAE.__init__` and `AudioDiTModel.__init__` default to their
    config dataclasses' values; a VAE config saved before an option existed loads with the value it
    was made with (LEGACY_DEFAULTS), whether the key is absent or marked filled-in by diffusers."""
    from audiodit.config import DiTConfig
    from audiodit.models.dit import DERIVED, STANDALONE, AudioDiTModel
    from audiodit.models.vae import LEGACY_DEFAULTS, VAEConfig

    for model, config in ((AudioVAE, VAEConfig), (AudioDiTModel, DiTConfig)):
        defaults = {name: parameter.default for name, parameter in inspect.signature(model.__init__).parameters.items()
                    if name != "self"}
        expected = dataclasses.asdict(config())
        if model is AudioDiTModel:  # widths a config leaves to the VAE/text encoder: a model alone takes STANDALONE
            assert all(expected.pop(name) is None for name in DERIVED)
            alone = {name: defaults.pop(name) for name in DERIVED}
            assert alone == {**STANDALONE, "patch_channels": STANDALONE["in_channels"]}
        assert defaults == expected, model.__name__
    vae = AudioVAE.from_preset("tiny")
    vae.save_pretrained(str(tmp_path / "new"))
    assert {name: AudioVAE.from_pretrained(str(tmp_path / "new")).config[name] for name in LEGACY_DEFAULTS} == {
        name: getattr(VAEConfig(), name) for name in LEGACY_DEFAULTS}
    AudioVAE.from_preset("tiny", **LEGACY_DEFAULTS).save_pretrained(str(tmp_path / "old"))  # made before the options
    saved = json.loads((tmp_path / "old" / "config.json").read_text())
    for variant, edit in (("absent", lambda c: {k: v for k, v in c.items() if k not in LEGACY_DEFAULTS}),
                          ("defaulted", lambda c: {**c, "_use_default_values": sorted(LEGACY_DEFAULTS)})):
        folder = tmp_path / variant
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(edit(saved)))
        for name in ("diffusion_pytorch_model.safetensors",):
            (folder / name).write_bytes((tmp_path / "old" / name).read_bytes())
        old = AudioVAE.from_pretrained(str(folder))
        assert {name: old.config[name] for name in LEGACY_DEFAULTS} == LEGACY_DEFAULTS, variant
