"""benchmarks/vae_codecs.py: where a VAE is placed among the codecs, codec re-alignment, and one
tiny end-to-end run (a random tiny VAE, two short synthetic clips, no judge)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from benchmarks import vae_codecs

pytestmark = pytest.mark.usefixtures("single_thread")


def test_placement_in_words():
    values = {"Opus 12 kbps": 9.0, "Opus 24 kbps": 4.0, "MP3 128 kbps": 2.0, "VAE x": 6.0}
    assert vae_codecs.placement(values, "VAE x", lower_is_better=True) == \
        "between Opus 24 kbps (4) and Opus 12 kbps (9)"
    assert vae_codecs.placement({**values, "VAE x": 1.0}, "VAE x", True).startswith("better than every codec")
    assert vae_codecs.placement({**values, "VAE x": 12.0}, "VAE x", True) == \
        "worse than every codec (worst: Opus 12 kbps, 9)"
    snr = {"Opus 12 kbps": 4.0, "MP3 128 kbps": 27.0, "VAE x": -40.0}
    assert vae_codecs.placement(snr, "VAE x", lower_is_better=False).startswith("worse than every codec")


def test_align_undoes_a_delay():
    reference = np.random.default_rng(0).standard_normal((2, 48000)).astype(np.float32)
    for lag in (0, 37, -120):
        shifted = np.roll(reference, lag, axis=-1)
        aligned, found = vae_codecs.align(reference, shifted)
        assert found == lag
        inner = slice(200, -200)
        np.testing.assert_allclose(aligned[:, inner], reference[:, inner])


def test_vae_labels(tmp_path):
    assert vae_codecs.parse_vae_argument("v2=runs/x/vae") == ("VAE v2", Path("runs/x/vae"))
    assert vae_codecs.parse_vae_argument(str(tmp_path / "pipe" / "vae"))[0] == "VAE pipe"
    assert vae_codecs.parse_vae_argument(str(tmp_path / "myvae"))[0] == "VAE myvae"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg with libopus and libmp3lame")
def test_tiny_end_to_end_run(tmp_path):
    from audiodit.models.vae import AudioVAE

    AudioVAE.from_preset("tiny").save_pretrained(tmp_path / "pipe" / "vae")
    data = tmp_path / "data"
    data.mkdir()
    t = np.arange(int(1.5 * 48000)) / 48000
    for name, frequency in (("a", 220.0), ("b", 330.0)):
        tone = 0.3 * np.sin(2 * np.pi * frequency * t)
        sf.write(data / f"{name}.wav", np.stack([tone, tone], 1), 48000)
    sf.write(data / "silent.wav", np.zeros((48000 * 2, 2)), 48000)  # skipped: near silence
    out = tmp_path / "report.md"
    assert vae_codecs.main(["--vae", f"tiny={tmp_path / 'pipe'}", "--data", str(data), "--num-clips", "3",
                            "--seconds", "1.2", "--no-judge", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["systems"] == list(vae_codecs.CODECS) + ["VAE tiny"]
    names = [clip["name"] for clip in result["clips"]]
    assert len(names) == 2 and names[0].endswith("/data/a.wav") and names[1].endswith("/data/b.wav")
    assert set(result["placement"]["VAE tiny"]) == {"mel_l1_db", "mrstft", "si_sdr_db"}
    assert "original" in result["periodicity_means"] and "delta_acf_mean" in result["periodicity_means"]["VAE tiny"]
    text = out.read_text()
    assert "| VAE tiny |" in text and "Opus 12 kbps" in text and "not run (--no-judge)" in text
