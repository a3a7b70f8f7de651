"""Tests for audiodit.prompt_attributes: tempo and key read from prompts, and key names."""

import pytest

from audiodit.prompt_attributes import key_name, parse_bpm, parse_key, prompt_keys, prompt_tempi


@pytest.mark.parametrize("prompt, bpm", [
    ("A Bach chorale in D minor for organ, 80 BPM, 4/4.", 80.0),
    ("a groove at 92.5 bpm", 92.5),
    ("120 beats per minute, then 60 BPM", 120.0),  # the first statement counts
    ("a 440 Hz tone", None),
    ("mix2 BPM", None),  # not a number of its own
    ("0 BPM", None),
    ("", None),
])
def test_parse_bpm(prompt, bpm):
    value = parse_bpm(prompt)
    assert (value != value) if bpm is None else value == bpm  # NaN when none is stated
    assert prompt_tempi([prompt, "x, 100 BPM"]).tolist()[1] == 100.0


@pytest.mark.parametrize("prompt, name", [
    ("A Bach chorale in D minor for organ, 80 BPM, 4/4.", "D minor"),
    ("A jig in F# major", "F# major"),
    ("in B-flat minor", "Bb minor"),
    ("B flat major", "Bb major"),
    ("Bb major", "Bb major"),
    ("E♭ MAJOR", "Eb major"),
    ("A minor then C major", "A minor"),  # the first statement counts
    ("Cb major", "B major"),  # enharmonic: pitch classes wrap
    ("a minor change", "none"),  # a lower-case letter is English, not a tonic
    ("Cmajor", "none"),
    ("A Bach chorale", "none"),
    ("", "none"),
])
def test_parse_key(prompt, name):
    assert key_name(parse_key(prompt)) == name
    assert prompt_keys([prompt, "in G minor"]).tolist()[1] == 7 + 12


def test_key_name_round_trips_every_key_and_rejects_other_ids():
    assert [parse_key(f"in {key_name(key_id)}") for key_id in range(24)] == list(range(24))
    assert key_name(-1) == "none"
    with pytest.raises(ValueError, match="not a key id: 24"):
        key_name(24)
