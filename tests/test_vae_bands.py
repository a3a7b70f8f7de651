"""benchmarks/vae_bands.py: the per-band measure sees what a filter removes, and nothing else."""


import torch

from benchmarks import vae_bands


def test_kept_db_is_zero_for_a_copy_and_shows_a_high_pass():
    drums = vae_bands.synthetic(4.0)["kick and noise bursts"]
    assert abs(vae_bands.kept_db(drums, drums.clone())).max() < 1e-6
    spectrum = torch.fft.rfft(drums, dim=-1)
    frequencies = torch.fft.rfftfreq(drums.shape[-1], 1 / vae_bands.RATE)
    high_passed = torch.fft.irfft(spectrum * (frequencies >= 300), n=drums.shape[-1], dim=-1)
    kept = vae_bands.kept_db(drums, high_passed)
    below_150 = [i for i, high in enumerate(vae_bands.EDGES[1:]) if high <= 150]
    above_600 = [i for i, low in enumerate(vae_bands.EDGES[:-1]) if low >= 600]
    assert all(kept[i] < -30 for i in below_150)
    assert all(abs(kept[i]) < 0.5 for i in above_600)


def test_decoder_swap_and_the_latent_probe_run_end_to_end_on_tiny_models(tmp_path, capsys):
    import json

    import soundfile as sf

    from audiodit.testing import tiny_pipeline

    from experiments.probes import decoder_swap

    model = tmp_path / "model"
    tiny_pipeline(seed=0).save_pretrained(model)
    heldout = tmp_path / "heldout"
    heldout.mkdir()
    drums = vae_bands.synthetic(1.0)["kick and noise bursts"]
    for index in range(3):
        sf.write(heldout / f"clip{index}.wav", drums.T.numpy(), vae_bands.RATE)
        (heldout / f"clip{index}.txt").write_text(f"a drum groove number {index}")
    report = tmp_path / "swap"
    assert decoder_swap.main(["--model", str(model), "--vae", str(model / "vae"), "--heldout", str(heldout),
                              "--captions", "2", "--seconds", "1", "--steps", "2", "--report", str(report)]) == 0
    rows = json.loads(report.with_suffix(".json").read_text())["rows"]
    assert set(rows) == {"heldout", str(model / "vae")} and rows["heldout"]["spectral_distance_db"] == 0.0
    clips = vae_bands.real_clips(heldout, 3, 1.0)
    r2 = vae_bands.latent_probe(str(model / "vae"), clips[:2], clips[2:])
    assert len(r2) == len(vae_bands.EDGES) - 1
