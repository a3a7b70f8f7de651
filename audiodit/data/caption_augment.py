"""Training-time caption augmentation: teach the model that a prompt may leave things out.

The training captions are complete descriptions ("A cha-cha-cha groove in Bb minor, 133 BPM, 4/4,
with drums (...), a flute melody ...; chords ..."), but users type "latin groove with congas". When
every music caption states a tempo and a key and no sound caption does, "no tempo" and "no key"
become a domain signal: bundled model v2 phase 1 turned every prompt without "N BPM" (funk, EDM,
reggae, salsa) into quiet sound-effect texture and every prompt with one, even "a dog barking,
110 BPM", into a drum groove (docs/evaluation.md, "Model v2 phase 1"). Dropping parts of captions
while training breaks that shortcut, so the words must carry the domain:

* the tempo phrase ("133 BPM", "at 127 BPM", "around 120 BPM") with probability `tempo_drop`;
* the key phrase ("in Bb minor", "F# major") with probability `key_drop`;
* every clause after the first (top-level pieces between ",", ";" and ":", never inside
  parentheses or quotes) with probability `clause_drop`; the first clause, which names what the
  clip is, always stays.

The trainer applies this before reading tempo and key from the caption (`prompt_attributes`), so
the tempo and key embeddings are dropped exactly where their words are.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from audiodit.prompt_attributes import _BPM, _KEY

# A tempo phrase with its leading separator and preposition: ", 133 BPM", " at 127 BPM", " around 120 bpm".
_TEMPO_PHRASE = re.compile(r"(?:\s*,\s*|\s+|^)(?:(?:at|around|about|approximately)\s+)?" + _BPM.pattern,
                           re.IGNORECASE)
# A key phrase: ", in E major", " in the key of D minor", " F# major".
_KEY_PHRASE = re.compile(r"(?:\s*,\s*|\s+|^)(?:in\s+(?:the\s+key\s+of\s+)?)?" + _KEY.pattern)
_SEPARATORS = ",;:"
_CLOSERS = {"(": ")", "[": "]", "'": "'", '"': '"'}


@dataclass(frozen=True)
class CaptionAugment:
    tempo_drop: float = 0.0  # probability of removing the stated tempo
    key_drop: float = 0.0  # probability of removing the stated key
    clause_drop: float = 0.0  # probability of removing each clause after the first

    def __post_init__(self):
        for name in ("tempo_drop", "key_drop", "clause_drop"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ValueError(f"caption augmentation {name} must be in [0, 1], got {value!r}")

    @property
    def active(self) -> bool:
        return self.tempo_drop > 0 or self.key_drop > 0 or self.clause_drop > 0

    def __call__(self, caption: str, rng: random.Random) -> str:
        """`caption` with parts left out; every probability 0 returns it unchanged. Draws a fixed
        number of values from `rng` per call (resume stays exact whatever the caption holds)."""
        drop_tempo, drop_key = rng.random() < self.tempo_drop, rng.random() < self.key_drop
        clause_seed = rng.random()
        if not self.active or not caption:
            return caption
        text = caption.strip()
        end = text[-1] if text[-1] in ".!" else ""
        text = text[:-1] if end else text
        if drop_tempo:
            text = remove_tempo(text)
        if drop_key:
            text = remove_key(text)
        if self.clause_drop > 0:
            clause_rng = random.Random(clause_seed)
            first, *rest = split_clauses(text)
            kept = [piece for piece in rest if clause_rng.random() >= self.clause_drop]
            text = first + "".join(kept)
        text = text.strip(" ,;:")
        return (text + end) if text else caption


def remove_tempo(text: str) -> str:
    """`text` without its tempo phrases ("..., 133 BPM", "... at 127 BPM")."""
    return _tidy(_TEMPO_PHRASE.sub("", text))


def remove_key(text: str) -> str:
    """`text` without its key phrases ("... in Bb minor", "..., F# major")."""
    return _tidy(_KEY_PHRASE.sub("", text))


def split_clauses(text: str) -> list[str]:
    """Top-level clauses of `text`, each after the first with its leading separator (", a flute
    melody"), so that `"".join` gives `text` back. Separators inside (), [] or quotes don't split."""
    pieces, start, closing = [], 0, []
    for index, char in enumerate(text):
        if closing and char == closing[-1]:
            closing.pop()
        elif char in _CLOSERS and not (char == "'" and _is_apostrophe(text, index)):
            closing.append(_CLOSERS[char])
        elif char in _SEPARATORS and not closing and index > start:
            pieces.append(text[start:index])
            start = index
    pieces.append(text[start:])
    return pieces


def _is_apostrophe(text: str, index: int) -> bool:
    """A ' between two letters ("Bach's") is an apostrophe, not a quote."""
    return 0 < index < len(text) - 1 and text[index - 1].isalnum() and text[index + 1].isalnum()


def _tidy(text: str) -> str:
    text = re.sub(r"\s*([,;:])(\s*[,;:])+", r"\1", text)  # separators left empty by a removal
    text = re.sub(r"\s+([,;:.])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip(" ,;:")
