"""Hydrogen drum kits: what `drumkit.xml` says, and drum patterns played on a kit's samples.

A kit folder holds `drumkit.xml` and its samples. Each `<instrument>` has a name ("Kick", "Closed
HH", "Snare (Pearl 14x3.5)"), a volume and one or more `<layer>`s: a sample file for a velocity
range (`<min>`..`<max>`, 0..1) with a gain. Old kits give one `<filename>` per instrument instead.
Both forms, with or without the XML namespace, are read here.

Patterns (PATTERNS) are one bar of 4/4 in sixteenth notes per role: "X" an accented hit (velocity
1.0), "x" a normal hit (0.7), "." a rest. A hit plays the layer whose velocity range holds its
velocity, at gain velocity x layer gain x instrument volume, as Hydrogen itself does. The
stated tempo counts quarter notes, also for the half-time beat (its snare lands on beat 3).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ACCENT_VELOCITY, NORMAL_VELOCITY = 1.0, 0.7
STEPS_PER_BAR = 16  # sixteenth notes of a 4/4 bar

PATTERNS = {  # role -> one bar, "X" accent, "x" hit, "." rest
    "rock": {"kick": "X.......X.x.....", "snare": "....X.......X...", "hat": "X.x.X.x.X.x.X.x."},
    "four-on-the-floor": {"kick": "X...X...X...X...", "snare": "....X.......X...", "open hat": "..x...x...x...x."},
    "backbeat": {"kick": "X.......X.......", "snare": "....X.......X...", "hat": "X...X...X...X..."},
    "half-time": {"kick": "X.........x.....", "snare": "........X.......", "hat": "X.x.X.x.X.x.X.x."},
}
TEMPO_RANGES = {"rock": (90, 140), "four-on-the-floor": (118, 132), "backbeat": (80, 120),
                "half-time": (130, 160)}  # quarter-note BPM, typical for each style
# Which instrument plays a role: the first of these sound_names base phrases the kit has.
ROLE_PHRASES = {
    "kick": ("a kick drum hit",),
    "snare": ("a snare drum hit",),
    "hat": ("a closed hi-hat hit", "a hi-hat hit"),
    "open hat": ("an open hi-hat hit", "a closed hi-hat hit", "a hi-hat hit"),
}
ROLE_WORDS = {"a kick drum hit": "kick", "a snare drum hit": "snare", "a closed hi-hat hit": "closed hi-hat",
              "a hi-hat hit": "hi-hat", "an open hi-hat hit": "open hi-hat"}


@dataclass(frozen=True)
class Layer:
    path: str  # absolute sample file
    min_velocity: float
    max_velocity: float
    gain: float


@dataclass(frozen=True)
class Instrument:
    name: str
    volume: float
    layers: tuple[Layer, ...]  # sorted by velocity range


@dataclass(frozen=True)
class Kit:
    folder: str  # absolute kit folder
    name: str  # <name> of drumkit.xml
    author: str | None
    license: str | None  # <license> as the kit states it (debian/copyright decides, not this)
    instruments: tuple[Instrument, ...]


def _child(element, tag: str):
    """The first direct child named `tag`, namespace or not."""
    for child in element:
        if child.tag == tag or child.tag.endswith("}" + tag):
            return child
    return None


def _text(element, tag: str, default: str | None = None) -> str | None:
    child = _child(element, tag)
    return child.text.strip() if child is not None and child.text and child.text.strip() else default


def _number(element, tag: str, default: float) -> float:
    try:
        return float(_text(element, tag, str(default)))
    except ValueError:
        return default


def _all(element, tag: str):
    return [node for node in element.iter() if node.tag == tag or node.tag.endswith("}" + tag)]


def read_kit(folder: str | Path) -> Kit:
    """Parse `folder/drumkit.xml`. Layers whose file is missing are dropped; so are instruments
    left without layers.

    Raises:
        ValueError: no readable drumkit.xml.
    """
    folder = Path(folder)
    try:
        root = ElementTree.parse(folder / "drumkit.xml").getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise ValueError(f"{folder}: no readable drumkit.xml ({error})") from error
    instruments = []
    for node in _all(root, "instrument"):
        layers = []
        for layer in _all(node, "layer"):
            filename = _text(layer, "filename")
            if filename and (folder / filename).is_file():
                layers.append(Layer(str(folder / filename), _number(layer, "min", 0.0),
                                    _number(layer, "max", 1.0), _number(layer, "gain", 1.0)))
        filename = _text(node, "filename")  # pre-0.9.4 kits: one sample, no layers
        if not layers and filename and (folder / filename).is_file():
            layers.append(Layer(str(folder / filename), 0.0, 1.0, 1.0))
        if layers:
            layers.sort(key=lambda layer: (layer.max_velocity, layer.min_velocity))
            instruments.append(Instrument(_text(node, "name", ""), _number(node, "volume", 1.0), tuple(layers)))
    return Kit(str(folder), _text(root, "name", folder.name), _text(root, "author"), _text(root, "license"),
               tuple(instruments))


def layer_for(instrument: Instrument, velocity: float) -> Layer:
    """The layer Hydrogen plays at `velocity`: the last whose range holds it, else the nearest."""
    holding = [layer for layer in instrument.layers if layer.min_velocity <= velocity <= layer.max_velocity]
    if holding:
        return holding[-1]
    return min(instrument.layers,
               key=lambda layer: min(abs(velocity - layer.min_velocity), abs(velocity - layer.max_velocity)))


@dataclass(frozen=True)
class Hit:
    seconds: float  # onset from the start of the clip
    role: str  # key of the pattern: kick, snare, hat, open hat
    velocity: float


def pattern_hits(style: str, bpm: float, bars: int) -> list[Hit]:
    """Every hit of `bars` bars of PATTERNS[style] at `bpm` quarter notes a minute, by onset."""
    step_seconds = 60.0 / bpm / 4  # a sixteenth note
    hits = []
    for bar in range(bars):
        for role, steps in PATTERNS[style].items():
            for step, mark in enumerate(steps):
                if mark != ".":
                    velocity = ACCENT_VELOCITY if mark == "X" else NORMAL_VELOCITY
                    hits.append(Hit((bar * STEPS_PER_BAR + step) * step_seconds, role, velocity))
    return sorted(hits, key=lambda hit: (hit.seconds, hit.role))


def bars_for(bpm: float, target_seconds: float) -> int:
    """Whole bars that last at least `target_seconds` (at least 2)."""
    return max(2, math.ceil(target_seconds / (4 * 60.0 / bpm)))


def mix_hits(hits: list[Hit], players: dict, load, sample_rate: int, total_seconds: float) -> np.ndarray:
    """Sum every hit's sample into a `(2, round(total_seconds * sample_rate))` float32 mix.

    Args:
        players: role -> (Instrument, pan in -1..1, constant-power).
        load: path -> `(2, S)` float32 sample at `sample_rate` (callers cache it).
    """
    mix = np.zeros((2, round(total_seconds * sample_rate)), dtype=np.float32)
    for hit in hits:
        instrument, pan = players[hit.role]
        layer = layer_for(instrument, hit.velocity)
        sample = load(layer.path)  # (2, S)
        angle = (pan + 1.0) * math.pi / 4  # constant-power pan law
        gains = np.array([[math.cos(angle)], [math.sin(angle)]], dtype=np.float32) * math.sqrt(2.0)
        start = round(hit.seconds * sample_rate)
        length = min(sample.shape[1], mix.shape[1] - start)
        if length > 0:
            gain = hit.velocity * layer.gain * instrument.volume
            mix[:, start:start + length] += gain * gains * sample[:, :length]
    return mix
