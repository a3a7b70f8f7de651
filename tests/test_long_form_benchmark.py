"""benchmarks/long_form.py: its seam measure, and the script end to end on a tiny pipeline."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from audiodit.testing import tiny_pipeline
from benchmarks.long_form import continuity_ratios, seam_ratios

ROOT = Path(__file__).resolve().parents[1]
SR = 48000


def _clicks(seconds: float, every_s: float, at_s: list[float] = (), seed: int = 0) -> np.ndarray:
    """Quiet noise with a click every `every_s` seconds (a beat) and at each of `at_s`."""
    audio = 0.01 * np.random.default_rng(seed).standard_normal((2, int(seconds * SR))).astype(np.float32)
    for time in [*np.arange(every_s / 2, seconds, every_s), *at_s]:
        start = int(time * SR)
        audio[:, start:start + 240] += 0.8
    return audio


def test_joins_on_the_beat_are_compared_with_the_beat_not_with_the_gaps():
    """Joins that fall on beats of a clicking piece look like seams against the whole piece, and
    like nothing against places a whole number of beats away: the control the script uses."""
    beat = 0.5
    joins = [beat / 2 + 17.0 * k for k in range(1, 5)]  # on a beat, as a fixed hop puts every join
    audio = _clicks(80.0, beat)
    against_beats = np.median(seam_ratios(audio, SR, joins, beat_s=beat)["flux"])
    against_all = np.median(seam_ratios(audio, SR, joins)["flux"])
    assert 0.7 < against_beats < 1.4 and against_all > 3 * against_beats


def test_a_click_at_every_join_is_a_seam():
    joins = [10.1, 27.3, 44.6, 61.9]
    audio = _clicks(80.0, 0.5, at_s=joins)  # between the beats: only the joins have these
    assert np.median(seam_ratios(audio, SR, joins, beat_s=0.5)["flux"]) > 3
    assert np.median(seam_ratios(_clicks(80.0, 0.5), SR, joins, beat_s=0.5)["flux"]) < 1.5


def test_continuity_sees_two_different_sounds_meeting_and_not_one_sound_going_on():
    rng = np.random.default_rng(1)
    seconds, joins = 60.0, [15.0, 30.0, 45.0]
    steady = 0.1 * rng.standard_normal((2, int(seconds * SR))).astype(np.float32)
    changing = steady.copy()
    for index, join in enumerate(joins):  # after each join a different colour of noise, as unrelated clips
        start = int(join * SR)
        tilt = np.cumsum(rng.standard_normal((2, changing.shape[1] - start)), axis=1) * (0.002 * (index + 1))
        changing[:, start:] = (changing[:, start:] + tilt).astype(np.float32)
    assert np.median(continuity_ratios(steady, SR, joins, beat_s=0.5)) < 1.5
    assert np.median(continuity_ratios(changing, SR, joins, beat_s=0.5)) > 3


def test_the_script_runs_end_to_end_on_a_tiny_pipeline(tmp_path):
    model = tmp_path / "tiny"
    tiny_pipeline(seed=0).save_pretrained(model)
    out = tmp_path / "result.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.long_form", "--model", str(model), "--minutes", "0.2",
                             "--steps", "2", "--prompts", "1", "--cost-minutes", "0.2", "--out", str(out),
                             "--save-audio", str(tmp_path / "audio")],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    piece = report["pieces"][0]
    for way in ("long_form", "naive"):
        assert piece[way]["seconds"] == 12.0 and piece[way]["joins_s"]
        assert len(piece[way]["seam"]["flux"]) <= len(piece[way]["joins_s"])
        assert report["summary"][way]["joins"] == len(piece[way]["seam"]["flux"])
    assert all(0 < join < 12 for join in piece["long_form"]["joins_s"])
    assert report["cost"][0]["minutes"] == 0.2 and report["cost"][0]["wall_s"] > 0
    assert len(list((tmp_path / "audio").glob("*.flac"))) == 2
    again = tmp_path / "again.json"  # the saved pieces measured again, without generating
    result = subprocess.run([sys.executable, "-m", "benchmarks.long_form", "--remeasure", str(out),
                             str(tmp_path / "audio"), "--out", str(again)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    remeasured = json.loads(again.read_text())
    assert remeasured["cost"] == report["cost"] and remeasured["remeasured_from"] == "result.json"
    for way in ("long_form", "naive"):
        assert remeasured["pieces"][0][way]["generation_s"] == piece[way]["generation_s"]
        assert "continuity" in remeasured["pieces"][0][way] and "continuity_ratio_median" in remeasured["summary"][way]


def test_single_clip_baseline_measures_one_full_length_clip_per_prompt_with_a_tempo_and_seed(tmp_path):
    from benchmarks.long_form import PROMPTS, single_clip_baseline
    from audiodit.prompt_attributes import parse_bpm

    pipe = tiny_pipeline(seed=0)
    found = single_clip_baseline(pipe, seeds=2, steps=2)
    with_tempo = [p for p in PROMPTS if np.isfinite(parse_bpm(p))]
    assert found["clips"] == 2 * len(with_tempo) and found["seconds"] == pipe.max_audio_length_s
    assert [(row["prompt"], row["seed"]) for row in found["rows"]] == [(p, s) for p in with_tempo for s in (0, 1)]
    shares = [row["within_4pct"] for row in found["rows"]]
    assert found["tempo_within_4pct_share"] == np.mean(shares)
    # folding half and double time in can only add clips
    assert all(row["within_4pct_octave_folded"] >= row["within_4pct"] for row in found["rows"])
