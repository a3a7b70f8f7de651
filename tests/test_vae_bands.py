"""benchmarks/vae_bands.py: the per-band measure sees what a filter removes, and nothing else."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import vae_bands  # noqa: E402


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
