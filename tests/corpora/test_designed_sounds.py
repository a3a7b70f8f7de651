"""Designed sounds: every recipe makes the asked length at the asked level, seeded; categories
differ in spectrum; single events ring out into room tone; the builder's layout, resume and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from audiodit.corpora.designed_sounds import build_designed, main, plan_clips
from audiodit.corpora.sound_design import RECIPES, SAMPLE_RATE, design
from audiodit.prompt_attributes import parse_bpm, parse_key
from audiodit.models.embedders import NO_KEY


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_length_level_and_seed(name):
    audio, facts = design(name, np.random.default_rng(3), 4.5, -3.0)
    again, _ = design(name, np.random.default_rng(3), 4.5, -3.0)
    other, _ = design(name, np.random.default_rng(4), 4.5, -3.0)
    assert audio.shape == (2, round(4.5 * SAMPLE_RATE)) and audio.dtype == np.float32
    assert np.isfinite(audio).all()
    assert 20 * np.log10(np.abs(audio).max()) == pytest.approx(-3.0, abs=0.01)
    np.testing.assert_array_equal(audio, again)
    assert not np.array_equal(audio, other)
    assert facts["phrases"] and all(isinstance(p, str) and p for p in facts["phrases"])
    assert len(set(facts["phrases"])) == len(facts["phrases"])  # each once: the caption draw is as documented
    assert facts["category"] == RECIPES[name][1]
    # never digital silence: the quietest 50 ms frame still holds sound (room tone at worst)
    frames = audio[:, : audio.shape[1] // 2400 * 2400].reshape(2, -1, 2400)
    assert np.sqrt((frames**2).mean(axis=(0, 2))).min() > 1e-6


def _band_shares(audio: np.ndarray) -> np.ndarray:
    spectrum = np.abs(np.fft.rfft(audio.mean(axis=0))) ** 2
    edges = np.searchsorted(np.fft.rfftfreq(audio.shape[1], 1 / SAMPLE_RATE), [0, 250, 1000, 4000, 24000])
    energy = np.array([spectrum[a:b].sum() for a, b in zip(edges[:-1], edges[1:])])
    return energy / energy.sum()


def test_categories_sit_in_their_own_bands():
    """Thunder lives below 250 Hz, crickets above 4 kHz, a heartbeat at the bottom: the recipes
    are not one texture at different levels."""
    shares = {name: np.mean([_band_shares(design(name, np.random.default_rng(seed), 6.0, -3.0)[0])
                             for seed in range(3)], axis=0) for name in ("thunderstorm", "crickets", "heartbeat", "birds")}
    assert shares["thunderstorm"][0] > 0.5 and shares["heartbeat"][0] > 0.8
    assert shares["crickets"][3] > 0.6 and shares["birds"][2:].sum() > 0.6


def test_single_events_ring_out():
    """A door, an explosion, a gunshot or breaking glass happens once near the start: most energy
    in the first quarter of a 10 s clip (fireworks, several bangs, are not single events)."""
    checked = []
    for name in ("door", "glass", "explosion"):
        for seed in range(12):
            audio, facts = design(name, np.random.default_rng(seed), 10.0, -3.0)
            if facts.get("kind") == "fireworks":
                continue
            energy = (audio**2).sum(axis=0)
            assert energy[: energy.size // 4].sum() > 0.8 * energy.sum(), (name, seed)
            checked.append(name)
    assert checked.count("explosion") >= 2 and len(checked) >= 26


def test_design_rejects_bad_requests():
    with pytest.raises(ValueError, match="unknown sound recipe 'purr'"):
        design("purr", np.random.default_rng(0), 5.0, -3.0)
    with pytest.raises(ValueError, match="at least 1 s"):
        design("rain", np.random.default_rng(0), 0.5, -3.0)


def test_builder_layout_resume_and_captions(tmp_path):
    recipes = ["rain", "dog", "door"]
    summary = build_designed(tmp_path / "out", 6, recipes, max_seconds=5.0, verbose=False)
    assert summary["clips"] == 6 and summary["failed"] == 0
    assert summary["recipes"] == {"rain": 2, "dog": 2, "door": 2}
    index = [json.loads(line) for line in (tmp_path / "out" / "metadata.jsonl").read_text().splitlines()]
    assert len(index) == 6
    for record in index:
        audio, rate = sf.read(tmp_path / "out" / record["split"] / f"{record['id']}.flac")
        assert rate == SAMPLE_RATE and audio.shape[1] == 2
        assert record["duration_s"] == pytest.approx(audio.shape[0] / rate, abs=1e-3)
        assert 4.0 <= record["duration_s"] <= 5.0
        caption = (tmp_path / "out" / record["split"] / f"{record['id']}.txt").read_text().strip()
        assert caption == record["caption"] and caption.rstrip(".").lower() in [p.lower() for p in record["phrases"]]
        assert np.isnan(parse_bpm(caption)) and parse_key(caption) == NO_KEY  # no tempo or key for sounds
        assert record["domain"] == "sound"
    first = {r["id"]: r for r in index}
    again = build_designed(tmp_path / "out", 6, recipes, max_seconds=5.0, verbose=False)  # resumes
    assert again["clips"] == 6
    assert {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "metadata.jsonl").read_text().splitlines())} == first
    with pytest.raises(ValueError, match="use a new --out"):
        build_designed(tmp_path / "out", 6, recipes, max_seconds=6.0, verbose=False)


def test_plan_is_seeded_and_cycles_recipes():
    plan = plan_clips(5, ["rain", "wind"], seed=0, max_seconds=8.0)
    assert [clip.recipe for clip in plan] == ["rain", "wind", "rain", "wind", "rain"]
    assert plan == plan_clips(5, ["rain", "wind"], seed=0, max_seconds=8.0)
    assert plan != plan_clips(5, ["rain", "wind"], seed=1, max_seconds=8.0)


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--recipes", "rain,purr"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: unknown recipe(s) purr") and "\n" not in error
    assert main(["--out", str(tmp_path / "x"), "--max-seconds", "2"]) == 2
    assert "--max-seconds must be at least" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x"), "--max-seconds", "2", "--list"]) == 2  # a dry run checks alike
    assert "--max-seconds must be at least" in capsys.readouterr().err


def test_a_damaged_record_is_made_again_on_resume(tmp_path):
    build_designed(tmp_path / "out", 2, ["rain"], max_seconds=4.5, verbose=False)
    record = next((tmp_path / "out").glob("*/designed-00000-rain.json"))
    record.write_text('{"id": "designed-00000-ra')  # a run killed while writing it
    summary = build_designed(tmp_path / "out", 2, ["rain"], max_seconds=4.5, verbose=False)
    assert summary["clips"] == 2 and summary["failed"] == 0
    assert json.loads(record.read_text())["recipe"] == "rain"
