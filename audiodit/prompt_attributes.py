"""Tempo and key stated in a prompt, read by regular expressions.

Models built with `tempo_conditioning` or `key_conditioning` receive these beside the text
embedding: "A Bach chorale in D minor for church organ, 80 BPM" gives 80.0 (`parse_bpm`) and key id
14 (`parse_key`: tonic pitch class, C = 0, plus 12 for minor). The pipeline, the trainer and key
guidance all read prompts through this module, so training and sampling agree on what a prompt says.
"""

from __future__ import annotations

import math
import re

import torch

from audiodit.models.embedders import NO_KEY, NUM_KEYS


_BPM = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:bpm|beats per minute)\b", re.IGNORECASE)


def parse_bpm(prompt: str) -> float:
    """The tempo a prompt states ("... 80 BPM ...", "92.5 bpm", "120 beats per minute"), or NaN.

    The first statement counts; a number of 0 is no tempo (NaN). Models built with
    `tempo_conditioning` receive this number beside the text (`AudioDiTModel` `bpm=`).
    """
    match = _BPM.search(prompt or "")
    value = float(match.group(1)) if match else float("nan")
    return value if value > 0 else float("nan")


def prompt_tempi(prompts: list[str]) -> torch.Tensor:
    """`(B,)` fp32 tempi of `prompts` (NaN where a prompt states none)."""
    return torch.tensor([parse_bpm(prompt) for prompt in prompts], dtype=torch.float32)


# A tonic letter (upper case, so that "a minor change" is not A minor), an optional accidental
# ("#", "b", "-sharp", " flat", ...), then "major" or "minor".
_KEY = re.compile(r"(?<![\w#-])([A-G])(?:[\s-]?(#|♯|b|♭|(?i:sharp|flat)))?[\s-]+((?i:major|minor))\b")
_LETTER_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_PITCH_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def parse_key(prompt: str) -> int:
    """The key a prompt states ("... in D minor ...", "F# major", "B-flat minor") as a key id:
    tonic pitch class (C = 0) + 12 for minor, or -1 (`NO_KEY`) when it states none.

    The first statement counts. Models built with `key_conditioning` receive this id beside the text
    (`AudioDiTModel` `key_ids=`).
    """
    match = _KEY.search(prompt or "")
    if match is None:
        return NO_KEY
    letter, accidental, mode = match.groups()
    shift = {"#": 1, "♯": 1, "sharp": 1, "b": -1, "♭": -1, "flat": -1}.get((accidental or "").lower(), 0)
    return (_LETTER_PITCH[letter] + shift) % 12 + (12 if mode.lower() == "minor" else 0)


def key_name(key_id: int) -> str:
    """`parse_key`'s inverse for display: 2 -> "D major", 14 -> "D minor", -1 -> "none"."""
    if key_id == NO_KEY:
        return "none"
    if not 0 <= key_id < NUM_KEYS:
        raise ValueError(f"not a key id: {key_id} (tonic + 12 for minor, 0..23, or -1 for none)")
    return f"{_PITCH_NAMES[key_id % 12]} {'minor' if key_id >= 12 else 'major'}"


def prompt_keys(prompts: list[str]) -> torch.Tensor:
    """`(B,)` long key ids of `prompts` (-1 where a prompt states none)."""
    return torch.tensor([parse_key(prompt) for prompt in prompts], dtype=torch.long)


def with_attributes(prompt: str, bpm: float | None, key: str | None) -> str:
    """The prompt with a stated tempo and key appended, as a user would write them (the model reads
    both from the text); a prompt that states them already keeps its own."""
    text = prompt.strip()
    if bpm and not math.isfinite(parse_bpm(text)):
        text += f", {bpm:g} BPM"
    if key and parse_key(text) == NO_KEY:
        text += f", in {key}"
    return text
