"""Procedural sound design: everyday sounds made from noise, resonances and events, each with the
facts a caption states.

The packages this project may train on hold drum hits, game effects and synthetic speech, but
almost no rain, wind, water, fire, birds, footsteps, doors, dogs, engines or sirens, which are what
users type ("rain on a tin roof", "a dog barking"). These recipes make such sounds the way sound
designers do without recordings (physically informed models in the manner of A. Farnell, "Designing
Sound", MIT Press 2010: filtered noise for air and water, damped resonant modes for impacts,
Minnaert-frequency chirps for drops and bubbles, harmonic sources through formants for voices).
They do not sound like field recordings; they do give each category its own texture, rhythm and
spectrum, which is what a model must learn before it can tell "rain" from "a drum loop".

Every recipe is `recipe(rng, seconds) -> (audio (2, S) at SAMPLE_RATE, facts)`, seeded only by
`rng`; `facts` holds what a caption may state (`phrases`: user-style descriptions, the most
specific first) and the recipe's drawn settings. `RECIPES` maps a name to (recipe, category);
`design` runs one and levels it. Modules: `dsp` (signal pieces), `nature` (weather, water, fire,
animals), `objects` (people, rooms, machines, blasts).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from audiodit.corpora.sound_design.dsp import SAMPLE_RATE, room_tone
from audiodit.corpora.sound_design.nature import birds, crickets, dog, fire, rain, stream, thunderstorm, waves, wind
from audiodit.corpora.sound_design.objects import (
    applause, clock, door, engine, explosion, footsteps, glass, heartbeat, helicopter, ringing, siren, typing,
)

# Every clip keeps a floor of room noise this far below its peak: digital silence between events
# is not what a microphone hears, and a model should not learn it as part of a sound.
NOISE_FLOOR_DB = -66.0

Recipe = Callable[[np.random.Generator, float], tuple[np.ndarray, dict]]

RECIPES: dict[str, tuple[Recipe, str]] = {
    "rain": (rain, "weather"), "thunderstorm": (thunderstorm, "weather"),
    "wind": (wind, "weather"), "waves": (waves, "water"), "stream": (stream, "water"),
    "fire": (fire, "fire"), "birds": (birds, "animal"), "crickets": (crickets, "animal"),
    "dog": (dog, "animal"), "footsteps": (footsteps, "human"), "door": (door, "household"),
    "applause": (applause, "human"), "typing": (typing, "household"),
    "clock": (clock, "household"), "heartbeat": (heartbeat, "human"),
    "engine": (engine, "machine"), "siren": (siren, "machine"),
    "ringing": (ringing, "machine"), "helicopter": (helicopter, "machine"),
    "explosion": (explosion, "blast"), "glass": (glass, "household"),
}


def design(name: str, rng: np.random.Generator, seconds: float, peak_db: float) -> tuple[np.ndarray, dict]:
    """Recipe `name` for `seconds`: `(2, S)` float32 at SAMPLE_RATE with its peak at `peak_db` dBFS,
    and its facts (with `category`). Raises ValueError for an unknown name or a length under 1 s."""
    if name not in RECIPES:
        raise ValueError(f"unknown sound recipe {name!r}; known: {', '.join(RECIPES)}")
    if not seconds >= 1.0:
        raise ValueError(f"a designed sound must last at least 1 s, got {seconds}")
    recipe, category = RECIPES[name]
    audio, facts = recipe(rng, seconds)
    audio = np.asarray(audio, dtype=np.float64)[:, : round(seconds * SAMPLE_RATE)]
    peak = float(np.abs(audio).max())
    if not np.isfinite(peak) or peak == 0.0:
        raise ValueError(f"recipe {name!r} made silence or non-finite samples")
    floor = room_tone(rng, audio.shape[1], 1.0)
    audio = audio + floor * (peak * 10 ** (NOISE_FLOOR_DB / 20) / np.sqrt(np.mean(floor**2)))
    peak = float(np.abs(audio).max())
    phrases = list(dict.fromkeys(facts["phrases"]))  # each once, most specific first
    return (audio * (10 ** (peak_db / 20) / peak)).astype(np.float32), {**facts, "phrases": phrases,
                                                                        "category": category}
