"""Tests for audiodit.analysis: essentia's key and tempo extractors and the fixed clip feature
vector, on synthesised signals with known answers."""

import numpy as np
import pytest

pytest.importorskip("essentia")
pytest.importorskip("librosa")

from synthetic_audio import A_MINOR_CADENCE, C_MAJOR_CADENCE, SR, chord_sequence, click_track  # noqa: E402

from audiodit import analysis  # noqa: E402


@pytest.mark.parametrize("shift", [0, 3, -2])
def test_key_of_major_triad_cadence(shift):
    audio = chord_sequence([[m + shift for m in chord] for chord in C_MAJOR_CADENCE])
    key = analysis.estimate_key(audio)
    assert (key["tonic"], key["mode"]) == (shift % 12, "major"), key


def test_key_of_minor_cadence_and_silence():
    key = analysis.estimate_key(chord_sequence(A_MINOR_CADENCE))
    assert (key["tonic"], key["mode"]) == (9, "minor"), key
    silent = analysis.estimate_key(np.zeros((2, SR), np.float32))
    assert silent["tonic"] == -1 and silent["mode"] == "none"  # never matches a prompt


@pytest.mark.parametrize("bpm", [120, 90])
def test_click_track_tempo(bpm):
    estimate = analysis.estimate_bpm(click_track(bpm))
    assert abs(estimate - bpm) <= 0.02 * bpm, estimate
    assert analysis.estimate_bpm(np.zeros((2, SR), np.float32)) == 0.0


def test_clip_features_fixed_and_finite():
    mono = chord_sequence(C_MAJOR_CADENCE, repeats=1)
    features = analysis.clip_features(mono)
    assert features.shape == (len(analysis.FEATURE_NAMES),) == (91,)
    assert np.isfinite(analysis.clip_features(np.zeros((2, SR), np.float32))).all()
    wide = mono.copy()
    wide[1] = np.roll(wide[1], 2400)  # decorrelated channels have a side signal
    width = analysis.FEATURE_NAMES.index("side_to_mid_db")
    assert features[width] < -60 < analysis.clip_features(wide)[width]
    assert not np.allclose(features, analysis.clip_features(chord_sequence(C_MAJOR_CADENCE, repeats=1, harmonics=1)))


def test_pitch_class_and_errors():
    assert [analysis.pitch_class(n) for n in ("C", "F#", "Bb", "Cb", "G#", "Eb")] == [0, 6, 10, 11, 8, 3]
    with pytest.raises(ValueError, match="pitch name"):
        analysis.pitch_class("H")
