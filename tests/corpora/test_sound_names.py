"""Tests for audiodit/corpora/sound_names.py: names split into words, the name -> phrase tables per
folder context, modifiers, and the fallback that quotes a name instead of guessing."""

import pytest

from audiodit.corpora.sound_names import CONTEXTS, TABLES, describe, with_modifiers, words_of


@pytest.mark.parametrize("name, words", [
    ("DoorClose.mp3", ["door", "close"]),
    ("Dog1.wav", ["dog", "1"]),
    ("bd_808.flac", ["bd", "808"]),
    ("909beat01.ogg", ["909", "beat", "01"]),
    ('Kick (Tama Superstar 22")', ["kick"]),
    ("HiHat_Closed02.wav", ["hi", "hat", "closed", "02"]),
])
def test_words_of(name, words):
    assert words_of(name) == words


@pytest.mark.parametrize("name, context, phrase, category", [
    ("bd_808.flac", "drums", "an 808 kick drum hit", "drum hit"),
    ("kick.wav", "drums", "a kick drum hit", "drum hit"),
    ("BassDrum", "drums", "a kick drum hit", "drum hit"),
    ("sn_dub.flac", "drums", "a snare drum hit", "drum hit"),
    ("drum_snare_soft.flac", "drums", "a soft snare drum hit", "drum hit"),
    ("Snare Roll", "drums", "a snare drum roll", "drum roll"),
    ("Closed HH", "drums", "a closed hi-hat hit", "drum hit"),
    ("hihat_opened01.ogg", "drums", "an open hi-hat hit", "drum hit"),
    ("drum_cymbal_pedal.flac", "drums", "a pedal hi-hat hit", "drum hit"),
    ("Hi-Hat Semiopen", "drums", "a half-open hi-hat hit", "drum hit"),
    ("Ride Bell", "drums", "a ride cymbal bell hit", "drum hit"),
    ("Tom Hi", "drums", "a high tom hit", "drum hit"),
    ("tabla_na_o.flac", "drums", 'a tabla stroke ("na o")', "drum hit"),
    ("elec_soft_kick.flac", "electronic", "a soft electronic kick drum hit", "drum hit"),
    ("Dog1.wav", "animals", "a dog sound", "animal"),  # the name does not say it barks
    ("DogBark.wav", "animals", "a dog barking", "animal"),
    ("Cat.mp3", "animals", "a cat sound", "animal"),
    ("Meow.wav", "animals", "a cat meowing", "animal"),
    ("Cough-female.wav", "human", "a woman coughing", "human"),
    ("rain.wav", "effects", "rain", "ambience"),
    ("wind_chimes01.ogg", "effects", "wind chimes", "effect"),  # not wind
    ("DoorClose.mp3", "effects", "a door closing", "effect"),
    ("explosion0.wav", "game effects", "an explosion from a video game", "effect"),
    ("splash.wav", "game effects", "a splash from a video game", "effect"),  # water, not a cymbal
    ("ambi_drone.flac", "ambience", "an ambient drone", "ambience"),
    ("loop_amen.flac", "loops", "an Amen break drum loop", "drum loop"),
    ("Xylo1.mp3", "loops", "a xylophone loop", "music loop"),
    ("piano01.ogg", "instruments", "a piano sound", "instrument one-shot"),
])
def test_phrases_from_names(name, context, phrase, category):
    description = describe(name, context)
    assert (description.phrase, description.category, description.matched) == (phrase, category, True)


def test_fallback_quotes_the_name_and_says_nothing_more():
    description = describe("elec_twang.flac", "electronic")
    assert description.phrase == 'an electronic sound called "twang"' and not description.matched
    assert describe("Takeover_Game_Lost_Sound_0.ogg", "game effects").phrase == \
        'a video game sound effect called "takeover game lost"'
    assert describe("Sample: beats_08-37", "drums", allow_fallback=False) is None  # Hydrogen: no guessing
    assert describe("37.ogg", "effects") is None and describe("empty.wav", "game effects") is None


def test_modifiers_follow_the_article():
    assert with_modifiers("a kick drum hit", ["808"]) == "an 808 kick drum hit"
    assert with_modifiers("rain", ["heavy"]) == "rain"  # no article, nothing inserted
    assert describe("electro_beat01.ogg", "drum loops").phrase == "an electro drum loop"  # not "electronic electro"


def test_tables_are_valid():
    for table in TABLES.values():
        for _, phrase, category in table:
            assert phrase[0].islower(), phrase  # captions capitalise the first letter themselves
            assert category in {"drum hit", "drum roll", "drum loop", "music loop", "instrument one-shot",
                                "effect", "ambience", "animal", "human"}
    for context in CONTEXTS.values():
        assert set(context.tables) <= set(TABLES) and "{name}" in context.fallback
