"""Captions for game-music clips: what the files and packages say, plus essentia's estimates.

A caption is built from facts with a source and nothing else (see `make_caption`):
- the game's name (audiodit.corpora.recordings.GAME_NAMES or the copyright file's Upstream-Name);
- the track's title: its Vorbis/ID3 title tag, else the title in an album.json beside it, else the
  cleaned file name ("battle_theme_02.ogg" -> "Battle theme"); titles that say nothing ("Track 17")
  are left out;
- its genre tag, without filler such as "soundtrack" (the caption says "game soundtrack" anyway);
- mood words from MOOD_WORDS when the track's names contain one of their words;
- key and tempo estimated by essentia (`analyse`), phrased as estimates ("around 120 BPM").
"""

from __future__ import annotations

import re

import numpy as np

# Beat tracker confidence (essentia BeatTrackerMultiFeature, 0-5.32): essentia's reference calls
# 1.5-3.5 good and above 3.5 excellent (Zapata et al., ISMIR 2012); below it a tempo is not stated.
MIN_BEAT_CONFIDENCE = 1.5

# Words in a track's title, file name or folder -> the mood word its caption gets. The names are
# the composers' and developers' own labels for the scene a track was written for (a "battle"
# track, a "victory" jingle); each maps to the mood game music conventionally has there, and the
# words that fired are kept in the clip's `caption_keywords`. Nothing here is heard in the audio.
MOOD_WORDS = {
    "intense": ("battle", "battles", "battlescape", "combat", "fight", "firefight", "war", "warfare",
                "attack", "assault", "frantic", "boss"),
    "epic": ("epic",),
    "tense": ("tension", "tense", "suspense", "intrigue", "sinister", "danger", "dangerous"),
    "sad": ("sad", "defeat", "lament", "funeral", "sorrow"),
    "triumphant": ("victory", "triumph", "win"),
    "calm": ("peace", "peaceful", "calm", "serene", "tranquil"),
    "ambient": ("ambient", "ambience", "ambiance"),
    "mysterious": ("mystery", "mysterious"),
}
# Genre-tag words that add nothing to "game soundtrack", or are a tagging tool's default ("Sound FX"
# on music, "Other").
GENRE_FILLER = {"game", "games", "soundtrack", "ost", "music", "video", "videogame", "other", "unknown",
                "sound", "fx", "sfx", "effects"}
EMPTY_TAGS = {"", "unknown", "<unknown>", "(none)", "none", "n/a"}
GENERIC_TITLE_WORDS = {"track", "song", "music", "untitled", "enhanced", "theme"}


def name_words(name: str) -> list[str]:
    """'Crystan-Battlescape01' -> ['Crystan', 'Battlescape', '01']; 'battle_theme' -> ['battle', 'theme']."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", " ", name)
    return [word for word in re.split(r"[\s_.\-]+", spaced) if word]


def clean_title(stem: str) -> str | None:
    """A file or tag name as a title: 'battle_theme_02' -> 'Battle theme'; None if only numbers
    or generic words ('track17', 'Track 3 - Enhanced') remain."""
    words = [w for w in name_words(stem) if not w.isdigit() and (len(w) > 1 or w.lower() in "ai")]
    if not words or all(w.lower() in GENERIC_TITLE_WORDS for w in words):
        return None
    title = " ".join(words)
    return title[0].upper() + title[1:]


def tag_text(text: str | None) -> str | None:
    """A tag's value, or None for empty and placeholder values ('<Unknown>', '(None)')."""
    return None if text is None or text.strip().lower() in EMPTY_TAGS else text.strip()


def usable_title(text: str | None) -> str | None:
    """A tag or album.json title as written ('fightmare_2', a file name, cleaned), unless it says
    nothing ('Track 1', '14 - Track 14')."""
    text = tag_text(text)
    if text is None or clean_title(text) is None:
        return None
    return clean_title(text) if " " not in text else text.rstrip(".")


def clean_genre(genre: str | None) -> str | None:
    """'Romantic Classical' -> 'romantic classical'; 'Game Soundtrack', ID3 '(24)' -> None."""
    genre = tag_text(genre)
    if genre is None or genre.startswith("("):
        return None
    words = [w for w in re.split(r"[\s/_-]+", genre.lower()) if w and w not in GENRE_FILLER]
    return " ".join(words) or None


def moods_of(names: list[str]) -> tuple[list[str], list[str]]:
    """(mood words in MOOD_WORDS order, the name words that gave them)."""
    words = {w.lower() for name in names for w in name_words(name)}
    moods, keywords = [], []
    for mood, triggers in MOOD_WORDS.items():
        hits = sorted(words.intersection(triggers))
        if hits:
            moods.append(mood)
            keywords += hits
    return moods, keywords


def make_caption(game: str, title: str | None, moods: list[str], genre: str | None,
                 bpm: int | None, key: str | None) -> str:
    """One sentence from the facts, leaving out those without a source; e.g. "Intense romantic
    classical game soundtrack 'Battle Epic' from Battle for Wesnoth, around 132 BPM, in D minor." """
    head = " ".join(filter(None, [", ".join(moods), genre, "game soundtrack"]))
    text = head[0].upper() + head[1:] + (f" '{title}'" if title else "") + f" from {game}"
    facts = ([f"around {bpm} BPM"] if bpm else []) + ([f"in {key}"] if key else [])
    return text + "".join(", " + fact for fact in facts) + "."


def analyse(audio: np.ndarray, sample_rate: int) -> dict:
    """Key and tempo estimates of one clip (2, S) (essentia).

    The tempo is `analysis.estimate_tempo`'s, whose beat confidence decides whether a caption
    states it.
    """
    from audiodit import analysis

    key = analysis.estimate_key(audio, sample_rate)
    bpm, confidence = analysis.estimate_tempo(audio, sample_rate)
    return {"key": None if key["mode"] == "none" else key["key"], "key_strength": round(key["strength"], 4),
            "bpm_estimate": round(bpm, 2), "beat_confidence": round(float(confidence), 3),
            "bpm": round(bpm) if bpm > 0 and confidence >= MIN_BEAT_CONFIDENCE else None}


def describe_track(tags: dict, sidecar: dict, stem: str, folder: str | None) -> dict:
    """The caption facts every clip of a track shares, from its tags, album.json entry and names."""
    title, title_source = next(((text, source) for text, source in (
        (usable_title(tags.get("title")), "tag"), (usable_title(sidecar.get("title")), "album.json"),
        (clean_title(stem), "file name")) if text), (None, None))
    moods, keywords = moods_of([name for name in (title, stem, folder) if name and name != "music"])
    return {"title": title, "title_source": title_source,
            "artist": tag_text(tags.get("artist")) or tag_text(sidecar.get("artist")),
            "album": tag_text(tags.get("album")) or tag_text(sidecar.get("album")),
            "genre": clean_genre(tags.get("genre")), "moods": moods, "caption_keywords": keywords}
