"""benchmarks/latent_stats.py: its statistics on latents with known answers, and a smoke run of the
script with a tiny random pipeline on two made-up domains."""

import json

import numpy as np
import pytest
import torch

from benchmarks import latent_stats

from synthetic_audio import write_dataset  # noqa: E402


def test_offset_is_the_mean_shift_in_units_of_the_reference_std():
    generator = torch.Generator().manual_seed(0)
    scale = torch.tensor([[1.0], [2.0], [0.5]])
    real = [torch.randn(3, 4000, generator=generator) * scale for _ in range(2)]
    shift = torch.tensor([[0.5], [1.0], [-0.25]])  # half a std of every channel
    moved = [x + shift for x in real]
    reference = latent_stats.summarise(real)
    assert np.allclose(reference["std"], [1.0, 2.0, 0.5], rtol=0.05)
    unit = reference["std"]
    assert latent_stats.offset(reference, reference, unit) == 0.0
    assert latent_stats.offset(latent_stats.summarise(moved), reference, unit) == pytest.approx(0.5, rel=0.05)
    # one unit for every reference: a domain twice as spread gives half the per-channel unit's weight
    wide = latent_stats.summarise([x * 2 for x in real])
    assert np.allclose(latent_stats.pooled_std([reference, wide]), np.sqrt(2.5) * reference["std"], rtol=1e-9)
    flat = latent_stats.summarise([x * 0.5 for x in real])
    assert np.allclose(flat["std"] / reference["std"], 0.5) and flat["flux"] == pytest.approx(reference["flux"] / 2)


def test_frames_counted_are_those_the_real_clip_covers():
    assert latent_stats.clip_frames(48000 * 2, 10.0, 25.0) == 50  # a 2 s clip in a 10 s window
    assert latent_stats.clip_frames(48000 * 30, 10.0, 25.0) == 250  # a long one: the window
    assert latent_stats.clip_frames(10, 10.0, 25.0) == 1



def test_bad_scales_and_single_frame_clips():
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="guidance"):
        latent_stats.parse_scales("4,x")
    with pytest.raises(argparse.ArgumentTypeError, match=">= 0"):
        latent_stats.parse_scales("-1")
    single = latent_stats.summarise([torch.ones(3, 1), torch.zeros(3, 1)])
    assert single["flux"] == 0.0 and np.allclose(single["mean"], 0.5)


def test_smoke_run_two_domains(tmp_path, single_thread):
    from audiodit.testing import tiny_pipeline

    model = tmp_path / "tiny"
    tiny_pipeline(seed=0).save_pretrained(model)
    grooves = [{"id": f"g{i}", "domain": "arrangement", "caption": f"a rock groove {i}"} for i in range(3)]
    sounds = [{"id": f"s{i}", "domain": "sound", "caption": f"a dog barking {i}"} for i in range(3)]
    grooves = write_dataset(tmp_path / "grooves", {"train": grooves, "test": grooves}, seconds=1.0)
    sounds = write_dataset(tmp_path / "sounds", {"train": sounds, "test": sounds}, seconds=0.4)
    out = tmp_path / "latent_stats_test.md"
    assert latent_stats.main(["--model", f"tiny={model}", "--data", f"arrangement={grooves}",
                              "--data", f"sound={sounds}", "--num-prompts", "3", "--seconds", "1",
                              "--steps", "2", "--guidance", "1,3", "--length", "clip", "--out", str(out)]) == 0
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["domains"] == ["arrangement", "sound"]
    for domain in ("arrangement", "sound"):
        rows = report["results"][domain]["tiny"]
        assert list(rows) == ["real", "guidance 1", "guidance 3"]
        assert rows["real"]["offset_own"] == 0.0 and rows["real"]["std_ratio"] == pytest.approx(1.0)
        assert rows["real"]["nearest"] == domain and rows["real"]["flux_ratio"] == pytest.approx(1.0)
        assert all(np.isfinite(row["level_db"]) and row["rms"] > 0 for row in rows.values())
        assert len(rows["real"]["channel_mean"]) == len(rows["guidance 1"]["channel_std"])
    assert "| sound | tiny | guidance 3 |" in out.read_text()
