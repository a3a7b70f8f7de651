"""Caption augmentation: what it removes, what it never removes, and that tempo/key follow the words."""

from __future__ import annotations

import math
import random

import pytest

from audiodit.data.caption_augment import CaptionAugment, remove_key, remove_tempo, split_clauses
from audiodit.prompt_attributes import NO_KEY, parse_bpm, parse_key

CAPTIONS = [
    "A cha-cha-cha groove in Bb minor, 133 BPM, 4/4, with drums (snare, toms, ride cymbal, congas), a flute "
    "melody, acoustic grand piano and jazz guitar; chords Cm7b5 - F7 - Bbm7 - Bbm7.",
    "Digital rock in C major at 127 BPM: overdriven guitar, distorted guitar and fingered electric bass.",
    "Intense game soundtrack 'Crystan Battlescape' from UFO: Alien Invasion, around 116 BPM, in E major.",
    "Romantic classical game soundtrack 'Journey's End' from Battle for Wesnoth, in A minor.",
    "A backbeat drum beat at 89 BPM on a drum kit (Hydrogen kit 'rumpf, z01'), kick, snare and closed hi-hat, 3 bars.",
    "A Bach chorale in F# minor for church organ, 80 beats per minute, 4/4, centred.",
    "An electronic snare drum hit, followed by silence, placed right of centre.",
]


@pytest.mark.parametrize("caption", CAPTIONS)
def test_removals_leave_no_tempo_or_key_and_keep_the_rest(caption):
    without_tempo = remove_tempo(caption)
    assert math.isnan(parse_bpm(without_tempo))
    assert parse_key(without_tempo) == parse_key(caption)  # the key is untouched
    without_key = remove_key(caption)
    assert parse_key(without_key) == NO_KEY
    assert parse_bpm(without_key) == parse_bpm(caption) or math.isnan(parse_bpm(caption))
    assert split_clauses(caption)[0].split()[0] in without_key  # what the clip is stays named
    for text in (without_tempo, without_key):
        assert ",," not in text and " ," not in text and ", ." not in text and not text.startswith(",")


def test_exact_removals():
    assert remove_tempo(CAPTIONS[1]) == "Digital rock in C major: overdriven guitar, distorted guitar and fingered electric bass."
    assert remove_key(remove_tempo(CAPTIONS[2])) == "Intense game soundtrack 'Crystan Battlescape' from UFO: Alien Invasion."
    assert remove_key("a minor change in the key of D minor, slowly") == "a minor change, slowly"  # lower case: no key


@pytest.mark.parametrize("caption", CAPTIONS)
def test_clauses_split_only_at_top_level_and_join_back(caption):
    pieces = split_clauses(caption)
    assert "".join(pieces) == caption
    assert all(piece.count("(") == piece.count(")") for piece in pieces)
    assert all(piece[0] in ",;:" for piece in pieces[1:])
    assert not any("rumpf" in piece and "z01" not in piece for piece in pieces)  # the quoted "rumpf, z01" is one


def test_zero_probabilities_change_nothing_and_draws_are_fixed():
    rng, twin = random.Random(5), random.Random(5)
    identity = CaptionAugment()
    assert not identity.active
    for caption in CAPTIONS:
        assert identity(caption, rng) == caption
        twin.random(), twin.random(), twin.random()
    assert rng.random() == twin.random()  # three draws per caption whatever happens: resume stays exact


def test_full_dropping_keeps_the_first_clause_without_tempo_or_key():
    everything = CaptionAugment(tempo_drop=1.0, key_drop=1.0, clause_drop=1.0)
    out = [everything(caption, random.Random(0)) for caption in CAPTIONS]
    assert out[0] == "A cha-cha-cha groove."
    assert out[1] == "Digital rock."
    assert out[3] == "Romantic classical game soundtrack 'Journey's End' from Battle for Wesnoth."
    assert out[6] == "An electronic snare drum hit."
    assert all(math.isnan(parse_bpm(text)) and parse_key(text) == NO_KEY for text in out)


def test_rates_are_the_configured_ones():
    augment = CaptionAugment(tempo_drop=0.3, key_drop=0.6, clause_drop=0.5)
    rng = random.Random(1)
    outs = [augment(CAPTIONS[1], rng) for _ in range(2000)]  # tempo and key in the first clause
    assert abs(sum(math.isnan(parse_bpm(o)) for o in outs) / 2000 - 0.3) < 0.04
    assert abs(sum(parse_key(o) == NO_KEY for o in outs) / 2000 - 0.6) < 0.04
    assert abs(sum("distorted guitar" not in o for o in outs) / 2000 - 0.5) < 0.04
    assert all(o.startswith("Digital rock") for o in outs)
    # a tempo in a later clause also goes with that clause: kept with (1 - 0.3) * (1 - 0.5)
    outs = [augment(CAPTIONS[0], rng) for _ in range(2000)]
    assert abs(sum(not math.isnan(parse_bpm(o)) for o in outs) / 2000 - 0.35) < 0.04


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "half"])
def test_bad_probabilities_are_refused(bad):
    with pytest.raises(ValueError, match="tempo_drop must be in"):
        CaptionAugment(tempo_drop=bad)
