"""Reconstruction metrics on known signals, and the folder-report command."""

import pytest
import soundfile as sf
import torch

from audiodit.metrics import (load_vae, main, mel_l1_db, multi_resolution_stft_distance,
                              reconstruction_metrics, si_sdr)
from audiodit.models.vae import AudioVAE


pytestmark = pytest.mark.usefixtures("single_thread")


def tone_mix(batch=2, samples=24000, seed=0):
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 48000
    freqs = 100 + 900 * torch.rand(batch, 2, 1, generator=generator)
    return 0.3 * torch.sin(2 * torch.pi * freqs * t) + 0.01 * torch.randn(batch, 2, samples, generator=generator)


def test_identical_audio_scores_perfectly():
    audio = tone_mix()
    assert torch.all(multi_resolution_stft_distance(audio, audio) == 0)
    assert torch.all(mel_l1_db(audio, audio) == 0)
    assert torch.all(si_sdr(audio, audio) > 80)
    assert multi_resolution_stft_distance(audio, audio).shape == (2,)


def test_si_sdr_is_scale_invariant_and_matches_a_known_snr():
    reference = tone_mix(batch=1, samples=48000)
    reference = reference - reference.mean(-1, keepdim=True)
    noise = torch.randn(reference.shape, generator=torch.Generator().manual_seed(5))
    # make the noise orthogonal to the reference so SI-SDR is exactly the SNR
    noise = noise - (noise * reference).sum(-1, keepdim=True) / reference.square().sum(-1, keepdim=True) * reference
    for snr_db in (0.0, 10.0, 20.0):
        scaled = noise * (reference.square().sum(-1, keepdim=True) / noise.square().sum(-1, keepdim=True)
                          / 10 ** (snr_db / 10)).sqrt()
        estimate = reference + scaled
        assert si_sdr(reference, estimate).item() == pytest.approx(snr_db, abs=0.01)
        assert si_sdr(reference, 0.3 * estimate).item() == pytest.approx(snr_db, abs=0.01)


def test_metrics_get_worse_with_noise():
    audio = tone_mix()
    noise = torch.randn(audio.shape, generator=torch.Generator().manual_seed(6))
    rows = [reconstruction_metrics(audio[0], (audio + level * noise)[0]) for level in (0.001, 0.01, 0.1)]
    for better, worse in zip(rows, rows[1:]):
        assert better["mrstft"] < worse["mrstft"]
        assert better["mel_l1_db"] < worse["mel_l1_db"]
        assert better["si_sdr_db"] > worse["si_sdr_db"]


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        si_sdr(torch.zeros(2, 100), torch.zeros(2, 99))


@pytest.fixture()
def audio_folder(tmp_path):
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    audio = tone_mix(batch=2, samples=20000).numpy()
    sf.write(folder / "a.wav", audio[0].T, 48000)
    sf.write(folder / "sub" / "b.flac", audio[1].T[:15000], 48000)
    (folder / "notes.txt").write_text("not audio")
    return folder


def test_command_reports_vae_reconstructions(audio_folder, tmp_path, capsys):
    torch.manual_seed(0)
    AudioVAE.from_preset("tiny").save_pretrained(tmp_path / "pipeline" / "vae")
    assert isinstance(load_vae(tmp_path / "pipeline"), AudioVAE)
    # A vae-stage run: its latest checkpoint's vae/ export, as sample.py --vae takes it.
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000002"
    AudioVAE.from_preset("tiny").save_pretrained(checkpoint / "vae")
    (checkpoint / "trainer_state.json").write_text('{"step": 2}')
    (tmp_path / "run" / "checkpoints" / "latest").write_text("step-00000002")
    assert isinstance(load_vae(tmp_path / "run"), AudioVAE)
    with pytest.raises(FileNotFoundError, match="neither a VAE directory"):
        load_vae(audio_folder)
    assert main([str(audio_folder), "--vae", str(tmp_path / "pipeline")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["file", "mrstft", "mel_l1_db", "si_sdr_db"]
    assert [line.split()[0] for line in lines[1:]] == ["a.wav", "sub/b.flac", "mean"]
    values = [[float(v) for v in line.split()[1:]] for line in lines[1:]]
    assert all(row[0] > 0 for row in values)  # an untrained VAE does not reconstruct
    assert values[2][0] == pytest.approx((values[0][0] + values[1][0]) / 2, abs=1e-3)


def test_command_compares_with_a_reference_folder(audio_folder, capsys):
    assert main([str(audio_folder), "--reference", str(audio_folder)]) == 0
    mean = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert mean[0] == "mean" and float(mean[1]) == 0.0 and float(mean[2]) == 0.0


def test_command_errors(tmp_path, audio_folder):
    with pytest.raises(FileNotFoundError, match="neither a VAE directory"):
        main([str(audio_folder), "--vae", str(tmp_path)])
    with pytest.raises(SystemExit):
        main([str(audio_folder)])  # one of --vae / --reference is required
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--reference", str(audio_folder)]) == 1
