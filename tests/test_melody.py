"""Tests for audiodit/melody.py: a hummed tune gives its notes' pitch classes at the latent frame
rate, off-pitch and vibrato included; silence has no pitch; chroma_cosine is 1 for the same tune,
low for another, and the hum synthesiser sings what it is given."""

import numpy as np
import pytest
import torch

from audiodit.melody import (
    FRAME_RATE,
    NO_PITCH,
    SAMPLE_RATE,
    chroma_cosine,
    chromagram,
    dominant_pitch_classes,
    melody_agreement,
    melody_ids,
    notes_from_ids,
    synth_hum,
)

TUNE = [(60, 0.4), (64, 0.4), (67, 0.4), (72, 0.8)]  # C4 E4 G4 C5


def frames_of(start: float, end: float) -> slice:
    """Latent frames well inside [start, end) seconds: two frames (80 ms) of margin each side, the
    half-width of the 170 ms analysis window."""
    return slice(round(start * FRAME_RATE) + 2, round(end * FRAME_RATE) - 2)


@pytest.mark.parametrize("detune_cents", [0.0, 30.0, -30.0])
def test_a_hum_gives_its_notes_pitch_classes_frame_by_frame(detune_cents):
    hum = synth_hum(TUNE, detune_cents=detune_cents, seed=1)
    assert hum.dtype == np.float32 and len(hum) == round(2.0 * SAMPLE_RATE) and np.abs(hum).max() == pytest.approx(0.5)
    ids = dominant_pitch_classes(chromagram(hum))
    assert ids.shape == (round(2.0 * FRAME_RATE),)
    start = 0.0
    for pitch, seconds in TUNE:
        inside = ids[frames_of(start, start + seconds - 0.04)]
        assert (inside == pitch % 12).float().mean() >= 0.9, (pitch, inside.tolist())
        start += seconds


def test_stereo_input_rests_and_silence():
    hum = synth_hum([(69, 0.5), (None, 0.5), (69, 0.5)])
    ids = dominant_pitch_classes(chromagram(np.stack([hum, hum])))  # stereo is mixed to mono
    assert (ids[frames_of(0.0, 0.46)] == 9).all()
    assert (ids[frames_of(0.5, 1.0)] == NO_PITCH).all()  # the rest
    assert (dominant_pitch_classes(chromagram(np.zeros(SAMPLE_RATE))) == NO_PITCH).all()


def test_chroma_cosine_scores_the_same_tune_high_and_another_low():
    hum = synth_hum(TUNE, seed=0)
    assert chroma_cosine(hum, hum) == 1.0
    again = synth_hum(TUNE, detune_cents=20.0, vibrato_cents=40.0, seed=5)  # the same tune, sung differently
    assert chroma_cosine(hum, again) >= 0.85
    other = synth_hum([(62, 0.4), (65, 0.4), (69, 0.4), (71, 0.8)], seed=0)  # D F A B: no note in common
    assert chroma_cosine(hum, other) <= 0.1
    assert np.isnan(chroma_cosine(np.zeros(SAMPLE_RATE), hum))


def test_bad_settings_are_errors():
    with pytest.raises(ValueError, match="note length must be positive"):
        synth_hum([(60, 0.0)])
    with pytest.raises(ValueError, match="whole number of samples"):
        chromagram(np.zeros(1000), sample_rate=44100, frame_rate=25.3)


def test_a_melody_track_sung_back_keeps_its_pitch_classes():
    # runs of pitch classes, a rest, and a 2-frame blip that a hum folds into the note before it
    ids = torch.tensor([0] * 10 + [4] * 2 + [7] * 12 + [NO_PITCH] * 6 + [11] * 15 + [2] * 10)
    notes = notes_from_ids(ids)
    assert [pitch for pitch, _ in notes] == [60, 55, None, 59, 62]  # C4, G3, rest, B3, D4: MIDI 55..66
    assert sum(seconds for _, seconds in notes) == pytest.approx(len(ids) / 25.0)
    sung = melody_ids(synth_hum(notes, detune_cents=15.0, seed=3), frames=len(ids))
    # the blip's frames now sing C; breaths and onsets smear a frame or two at each note's edges
    expected = torch.tensor([0] * 12 + [7] * 12 + [NO_PITCH] * 6 + [11] * 15 + [2] * 10)
    assert melody_agreement(expected, sung) >= 0.85
    assert melody_agreement(expected, torch.full_like(expected, 5)) == 0.0
    assert np.isnan(melody_agreement(torch.full((4,), NO_PITCH), expected[:4]))
    # "none" (-2, where a melody was padded) is not a pitch either: not scored, and hummed as a rest
    padded = torch.cat([torch.full((10,), 7), torch.full((10,), -2)])
    assert melody_agreement(padded, torch.full((20,), 7)) == 1.0
    assert [pitch for pitch, _ in notes_from_ids(padded)] == [55, None]


def test_melody_key_names_the_key_a_tune_sits_in():
    """Krumhansl-Schmuckler on pitch-class durations: scale and arpeggio tunes give their keys;
    under a second of pitched frames gives none."""
    from audiodit.melody import melody_key
    from audiodit.prompt_attributes import key_name

    c_major = torch.tensor([0, 2, 4, 5, 7, 9, 11, 0, 4, 7, 0, 7, 4, 0] * 4)
    g_major = torch.tensor([7, 11, 2, 7, 11, 2, 6, 7, 9, 11, 7, 2] * 4)
    a_minor = torch.tensor([9, 0, 4, 9, 11, 0, 2, 4, 5, 4, 2, 0, 11, 9, 8, 9] * 4)
    assert [key_name(melody_key(ids)) for ids in (c_major, g_major, a_minor)] == ["C major", "G major", "A minor"]
    transposed = (a_minor + 3) % 12  # the same tune a minor third up: C minor
    assert key_name(melody_key(transposed)) == "C minor"
    with_rests = torch.cat([c_major, torch.full((100,), -1)])
    assert melody_key(with_rests) == melody_key(c_major)  # rests do not count
    assert melody_key(torch.tensor([0, 4, 7] + [-1] * 60)) == -1
    assert melody_key(torch.arange(48) % 12) == -1  # a chromatic run: every pitch class as long, no key
