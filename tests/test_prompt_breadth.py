"""benchmarks/prompt_breadth.py: its measures on signals with known answers, its separation
statistics on made-up spectra, and a smoke run of the whole script with a tiny random pipeline."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from audiodit.audio import save_audio
from audiodit.testing import tiny_pipeline
from benchmarks import prompt_breadth

SR = 48000


def kick_beat(bpm: float = 120.0, seconds: float = 4.0) -> np.ndarray:
    """Stereo kick drums: a sine gliding 120 -> 45 Hz, decaying over 0.12 s, on every beat."""
    t = np.arange(int(0.4 * SR)) / SR
    kick = np.sin(2 * np.pi * np.cumsum(45.0 + 75.0 * np.exp(-t / 0.03)) / SR) * np.exp(-t / 0.12)
    audio = np.zeros(int(seconds * SR))
    for onset in np.arange(0.0, seconds - 0.4, 60.0 / bpm):
        audio[int(onset * SR) : int(onset * SR) + len(kick)] += kick
    return np.stack([audio, audio]).astype(np.float32) * 0.5


def sustained_chord(seconds: float = 4.0, midi=(60, 64, 67)) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    mono = sum(np.sin(2 * np.pi * 440.0 * 2 ** ((m - 69) / 12) * k * t) / k for m in midi for k in range(1, 5))
    return np.stack([mono, mono]).astype(np.float32) * 0.05


def test_a_kick_beat_is_percussive_low_and_full_of_low_onsets_and_a_chord_is_not():
    kicks, chord = prompt_breadth.clip_measures(kick_beat()), prompt_breadth.clip_measures(sustained_chord())
    assert kicks["percussive_share"] > 0.3 and chord["percussive_share"] < 0.01
    assert kicks["low_onset_strength"] > 2.0 and chord["low_onset_strength"] < 0.1
    assert kicks["low_energy_share"] > 0.5 and chord["low_energy_share"] < 0.01
    assert kicks["spectrum_db"].shape == (prompt_breadth.N_MELS,) and kicks["mel_db"].shape[0] == prompt_breadth.N_MELS
    under = prompt_breadth.clip_measures(kick_beat() + sustained_chord())  # kicks under a chord still count
    assert under["low_onset_strength"] > 1.0 and under["percussive_share"] > 10 * chord["percussive_share"]


def test_only_silence_between_sounds_is_an_inner_gap():
    chord = sustained_chord(seconds=2.0)
    gap = np.zeros((2, int(1.5 * SR)), np.float32)
    dropout = prompt_breadth.clip_measures(np.concatenate([chord, gap, chord], axis=1))["inner_gap_s"]
    assert dropout == pytest.approx(1.5, abs=0.15)
    one_shot = prompt_breadth.clip_measures(np.concatenate([chord, gap, gap], axis=1))  # trailing silence
    assert one_shot["inner_gap_s"] == 0.0
    assert prompt_breadth.clip_measures(sustained_chord())["inner_gap_s"] == 0.0


def test_a_sound_shorter_than_the_hpss_window_has_finite_measures():
    blip = kick_beat(seconds=1.0)[:, : SR // 20]  # 50 ms: 3 STFT frames unpadded
    assert all(np.isfinite(v) for v in prompt_breadth.clip_measures(blip).values() if isinstance(v, float))


def test_clips_of_one_spectrum_correlate_one_whatever_their_level():
    loud, quiet = (prompt_breadth.clip_measures(sustained_chord() * gain)["spectrum_db"] for gain in (1.0, 0.1))
    spectra = np.stack([loud, quiet])
    assert prompt_breadth.mean_correlation(spectra, np.ones((2, 2), bool)) == pytest.approx(1.0, abs=1e-6)
    assert prompt_breadth.spectral_distances(spectra)[0, 1] == pytest.approx(0.0, abs=1e-3)  # level is centred out


def _rows(domains: int, prompts_per_domain: int, seeds: int) -> list[dict]:
    return [{"prompt_index": d * prompts_per_domain + p, "domain": f"domain{d}", "seed": s}
            for d in range(domains) for p in range(prompts_per_domain) for s in range(seeds)]


def test_domain_separation_is_above_one_for_different_domains_and_near_one_for_alike_ones():
    rows, rng = _rows(domains=3, prompts_per_domain=4, seeds=2), np.random.default_rng(0)
    centres = 10.0 * rng.standard_normal((3, prompt_breadth.N_MELS))
    noise = rng.standard_normal((len(rows), prompt_breadth.N_MELS))
    separate = np.array([centres[int(r["domain"][-1])] for r in rows]) + noise
    alike = rng.standard_normal((len(rows), prompt_breadth.N_MELS))
    found = prompt_breadth.separations(prompt_breadth.spectral_distances(separate), rows, seed=0)
    assert found["domain_separation"]["ratio"] > 3.0 and found["domain_separation"]["p"] < 0.01
    assert found["prompt_separation"]["ratio"] > 3.0  # other prompts differ far more than other seeds
    null = prompt_breadth.separations(prompt_breadth.spectral_distances(alike), rows, seed=0)["domain_separation"]
    assert 0.8 < null["ratio"] < 1.1 and null["p"] > 0.05 and null["chance_ratio"] == pytest.approx(1.0, abs=0.05)


def test_auc_and_permutation_p():
    assert prompt_breadth.auc([3, 4, 5], [0, 1, 2]) == 1.0 and prompt_breadth.auc([1, 1], [1, 1]) == 0.5
    labels = np.array([True] * 5 + [False] * 5)
    assert prompt_breadth.permutation_p(np.arange(10)[::-1], labels) < 0.02  # 1/252 arrangements score as high
    assert prompt_breadth.permutation_p(np.arange(10), labels) > 0.9


def test_the_judge_hook_skips_cleanly_without_its_interpreter(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIODIT_JUDGE_PYTHON", str(tmp_path / "no-such-python"))
    assert "no judge interpreter" in prompt_breadth.judge_clips([tmp_path / "a.flac"], None)["skipped"]
    monkeypatch.setitem(sys.modules, "audiodit.judge", None)  # as if the module were absent
    assert "not importable" in prompt_breadth.judge_clips([tmp_path / "a.flac"], None)["skipped"]


def test_smoke_run_two_models_side_by_side_with_references(tmp_path, single_thread):
    model = tmp_path / "tiny"
    tiny_pipeline(seed=0).save_pretrained(model)
    for name, clip in (("kicks", kick_beat(seconds=2.0)), ("chords", sustained_chord(seconds=2.0))):
        for i in range(2):
            save_audio(tmp_path / name / f"{i}.wav", clip * (1.0 + i), SR)
    report = tmp_path / "results" / "prompt_breadth_test"
    assert prompt_breadth.main(["--model", str(model), "--model", str(model), "--seconds", "1", "--steps", "2",
                                "--per-domain", "1", "--no-judge", "--out", str(tmp_path / "audio"),
                                "--report", str(report), "--reference-dir", f"sound={tmp_path / 'kicks'}",
                                "--reference-dir", f"drumless={tmp_path / 'chords'}"]) == 0

    result = json.loads(report.with_name(report.name + ".json").read_text())
    domains = {p[1] for p in prompt_breadth.PROMPTS}
    assert len(result["prompts"]) == len(domains) and result["seeds"] == 2
    assert [m["label"] for m in result["models"]] == ["tiny-0", "tiny-1"]
    for m in result["models"]:
        assert {"drums", "drums_without_score", "prompt_separation", "domain_separation", "sound_spectrum_correlation",
                "all_spectrum_correlation", "domains", "per_prompt", "clips", "judge"} <= set(m)
        assert set(m["drums"]) == set(prompt_breadth.DRUM_MEASURES)
        assert {"drums", "drumless", "p", "auc"} <= set(m["drums"]["percussive_share"])
        assert {"ratio", "p", "chance_ratio"} <= set(m["domain_separation"])
        assert set(m["domains"]) == domains and len(m["clips"]) == 2 * len(domains)
        assert m["judge"] == "--no-judge" and Path(m["grid_png"]).is_file()
        assert len(list((tmp_path / "audio" / m["label"]).glob("*.flac"))) == 2 * len(domains)
    assert result["models"][0]["per_prompt"] == result["models"][1]["per_prompt"]  # same prompts, same noise
    kicks, chords = result["references"]
    assert kicks["low_onset_strength"] > 1.0 > chords["low_onset_strength"] and kicks["clips"] == 2
    assert result["reference_comparison"]["separation"]["ratio"] > 1.0
    assert "# Prompt breadth: tiny-0, tiny-1" in report.with_name(report.name + ".md").read_text()
