"""Recipes for weather, water, fire and animals (module docstring of `audiodit.corpora.sound_design`)."""

from __future__ import annotations

import math

import numpy as np

from audiodit.corpora.sound_design.dsp import (
    SAMPLE_RATE, band, bubble, chirp, coloured, decay, drift, modes, normalised, pan_of, pick, poisson_onsets, room,
    room_tone, samples, scatter, white, wide,
)

#################################################################################
#                      Weather, water and fire (textures)                       #
#################################################################################

RAIN_SURFACES = {  # surface -> (drop pitch range Hz, ring time s, phrase)
    "tin roof": ((2500.0, 7000.0), 0.03, "on a tin roof"),
    "window": ((3000.0, 9000.0), 0.004, "against a window"),
    "leaves": ((800.0, 3000.0), 0.006, "on leaves"),
    "pavement": ((1000.0, 4000.0), 0.01, "on the pavement"),
}


def rain(rng, seconds):
    length = samples(seconds)
    strength = pick(rng, ["light", "steady", "heavy"])
    surface = pick(rng, list(RAIN_SURFACES))
    (low, high), ring, where = RAIN_SURFACES[surface]
    rate = {"light": 40.0, "steady": 160.0, "heavy": 500.0}[strength] * rng.uniform(0.7, 1.3)
    drops = []
    for _ in range(24):
        if surface == "tin roof":
            frequencies = rng.uniform(low, high, 3)
            drop = modes(frequencies, rng.uniform(0.3, 1.0, 3) * ring, rng.uniform(0.3, 1.0, 3), ring * 5)
        else:
            drop = bubble(rng, low, high)
        drops.append(drop + 0.3 * band(white(rng, drop.size), 2000.0, None) * decay(drop.size, 0.002))
    onsets = poisson_onsets(rng, rate, length)
    hits = scatter(drops, onsets, rng.uniform(0.05, 1.0, onsets.size) ** 2, rng.uniform(-1, 1, onsets.size), length)
    hiss_level = {"light": 0.05, "steady": 0.12, "heavy": 0.3}[strength]
    hiss = wide(rng, lambda r: band(coloured(r, length, 1.0), 500.0, 9000.0), 0.9) * hiss_level
    audio = normalised(hits) + hiss
    thunder_too = rng.random() < 0.2
    if thunder_too:
        audio = audio + 0.8 * thunder_clap(rng, length, distant=True)
    phrases = [f"{strength} rain falling {where}" + (" with distant thunder" if thunder_too else ""),
               f"rain {where}", f"{strength} rain", "rain"]
    return audio, {"phrases": phrases, "strength": strength, "surface": surface, "thunder": thunder_too}


def thunder_clap(rng, length: int, distant: bool) -> np.ndarray:
    """(2, length): one thunder roll starting somewhere in the first half."""
    start = int(rng.uniform(0.05, 0.5) * length)
    roll = samples(rng.uniform(3.0, 7.0))
    rumble = band(coloured(rng, roll, 2.0), None, 120.0 if distant else 250.0)
    swells = drift(rng, roll, 3.0, 0.2, 1.0) * decay(roll, rng.uniform(1.0, 2.5), 0.05 if distant else 0.005)
    clap = rumble * swells
    if not distant:  # the crack of a near strike
        crack = band(white(rng, roll), 800.0, None) * decay(roll, 0.08, 0.001)
        clap = clap + 0.6 * normalised(crack) * np.abs(clap).max()
    out = np.zeros((2, length))
    end = min(length, start + roll)
    out[:, start:end] = normalised(clap)[: end - start]
    return out


def thunderstorm(rng, seconds):
    length = samples(seconds)
    distant = bool(rng.random() < 0.5)
    audio = sum(thunder_clap(rng, length, distant) for _ in range(int(rng.integers(1, 3))))
    with_rain = bool(rng.random() < 0.6)
    if with_rain:
        audio = audio + 0.25 * wide(rng, lambda r: band(coloured(r, length, 1.0), 400.0, 9000.0), 0.9)
    audio = audio + room_tone(rng, length, 0.01)
    kind = "distant thunder rumbling" if distant else "a loud thunder clap"
    phrases = [kind + (" in a rainstorm" if with_rain else ""), "a thunderstorm" if with_rain else kind,
               "thunder"]
    return audio, {"phrases": phrases, "distant": distant, "rain": with_rain}


def wind(rng, seconds):
    length = samples(seconds)
    strength = pick(rng, ["a gentle breeze", "strong wind", "howling wind"])
    trees = bool(rng.random() < 0.4)
    gusts = drift(rng, length, rng.uniform(0.3, 1.0), 0.15, 1.0) ** 1.5
    low = band(coloured(rng, length, 2.0), 60.0, 400.0)
    mid = band(coloured(rng, length, 1.0), 300.0, 1500.0)
    body = (low * (1.2 - gusts) + mid * gusts * (2.0 if strength != "a gentle breeze" else 0.6)) * gusts
    audio = wide(rng, lambda r: body + 0.2 * band(white(r, length), 400.0, 1200.0) * gusts, 0.5)
    if strength == "howling wind":
        pitch = 350.0 + 500.0 * drift(rng, length, 0.5)
        whistle = np.sin(2 * math.pi * np.cumsum(pitch) / SAMPLE_RATE) * gusts ** 2
        audio = audio + 0.3 * np.stack([whistle, whistle]) * np.std(body) / (np.std(whistle) + 1e-9)
    if trees:
        flutter = drift(rng, length, 12.0, 0.3, 1.0)
        leaves = wide(rng, lambda r: band(white(r, length), 2000.0, 9000.0), 0.9) * gusts * flutter
        audio = audio + 0.5 * leaves * np.std(body) / (np.std(leaves) + 1e-9)
    where = " through the trees" if trees else ""
    phrases = [f"{strength} blowing{where}", f"{strength}{where}", "wind blowing", "wind"]
    return audio, {"phrases": phrases, "strength": strength, "trees": trees}


def waves(rng, seconds):
    length = samples(seconds)
    calm = bool(rng.random() < 0.4)
    period = rng.uniform(4.0, 7.0) if calm else rng.uniform(6.0, 10.0)
    time = np.arange(length) / SAMPLE_RATE
    phase = rng.uniform(0, 1)
    cycle = ((time / period + phase) % 1.0)
    swell = np.where(cycle < 0.35, (cycle / 0.35) ** 2, np.exp(-(cycle - 0.35) * 5))  # rise, break, wash
    roar = wide(rng, lambda r: band(coloured(r, length, 2.0), 40.0, 600.0), 0.6)
    foam = wide(rng, lambda r: band(white(r, length), 1500.0, 10000.0), 0.9)
    audio = roar * (0.2 + swell) + foam * 0.4 * swell ** 2 * (0.4 if calm else 1.0)
    phrases = ["gentle waves lapping on the shore" if calm else "ocean waves crashing on a beach",
               "waves on a beach", "the sea", "ocean waves"]
    return audio, {"phrases": phrases, "calm": calm, "period_s": round(period, 2)}


def stream(rng, seconds):
    length = samples(seconds)
    size = pick(rng, ["a babbling brook", "a fast-flowing river", "water trickling"])
    rate = {"a babbling brook": 300.0, "a fast-flowing river": 1500.0, "water trickling": 60.0}[size]
    bubbles = [bubble(rng, 400.0, 3000.0) for _ in range(32)]
    onsets = poisson_onsets(rng, rate * drift(rng, length, 2.0, 0.5, 1.5), length)
    audio = scatter(bubbles, onsets, rng.uniform(0.1, 1.0, onsets.size), rng.uniform(-0.8, 0.8, onsets.size), length)
    audio = normalised(audio)
    rush = 0.5 if size == "a fast-flowing river" else 0.08
    audio = audio + rush * wide(rng, lambda r: band(coloured(r, length, 1.0), 200.0, 6000.0), 0.8)
    phrases = [size, "flowing water", "a stream of water"]
    return audio, {"phrases": phrases, "kind": size}


def fire(rng, seconds):
    length = samples(seconds)
    place = pick(rng, ["a crackling campfire", "a fire crackling in a fireplace", "a large fire roaring"])
    roar_level = 0.8 if place == "a large fire roaring" else 0.25
    roar = wide(rng, lambda r: band(coloured(r, length, 2.0), 40.0, 400.0), 0.5) * drift(rng, length, 3.0, 0.6, 1.0)
    crackles = []
    for _ in range(16):
        click = band(white(rng, samples(rng.uniform(0.001, 0.006))), 1200.0, None)
        crackles.append(click * decay(click.size, 0.002, 0.0001))
    pops = [band(white(rng, samples(0.03)), 300.0, 3000.0) * decay(samples(0.03), 0.01) for _ in range(4)]
    onsets = poisson_onsets(rng, rng.uniform(8.0, 40.0), length)
    audio = scatter(crackles, onsets, rng.uniform(0.05, 1.0, onsets.size) ** 2, rng.uniform(-0.6, 0.6, onsets.size),
                    length)
    pop_onsets = poisson_onsets(rng, rng.uniform(0.3, 1.5), length)
    pop_gains, pop_pans = rng.uniform(0.3, 1.0, pop_onsets.size), rng.uniform(-0.5, 0.5, pop_onsets.size)
    audio = audio + 0.5 * scatter(pops, pop_onsets, pop_gains, pop_pans, length)
    audio = normalised(audio) + roar_level * normalised(roar)
    phrases = [place, "a fire crackling", "fire"]
    return audio, {"phrases": phrases, "kind": place}


#################################################################################
#                                    Animals                                    #
#################################################################################

def _syllable(rng, kind: str) -> np.ndarray:
    """One bird syllable: a fast downward or upward sweep, a trill, or a slow whistle."""
    base = rng.uniform(2000.0, 6000.0)
    if kind == "sweep":
        seconds = rng.uniform(0.03, 0.12)
        tone = chirp(base * rng.uniform(1.1, 1.6), base * rng.uniform(0.6, 0.9), seconds, rng.uniform(0.5, 2.0))
    elif kind == "trill":
        notes = [chirp(base, base * 0.85, 0.025) * np.hanning(samples(0.025)) for _ in range(int(rng.integers(6, 16)))]
        gap = np.zeros(samples(rng.uniform(0.01, 0.03)))
        tone = np.concatenate([piece for note in notes for piece in (note, gap)])
        return tone
    else:
        seconds = rng.uniform(0.2, 0.5)
        tone = chirp(base * 0.6, base * rng.uniform(0.7, 1.0), seconds, 1.0)
    harmonic = 0.15 * np.sin(2 * np.arcsin(np.clip(tone, -1, 1)))
    return (tone + harmonic) * np.hanning(tone.size)


def birds(rng, seconds):
    length = samples(seconds)
    count = int(rng.integers(1, 5))
    audio = np.zeros((2, length))
    for _ in range(count):
        kind = pick(rng, ["sweep", "trill", "whistle"])
        motif = [_syllable(rng, kind) for _ in range(int(rng.integers(1, 4)))]
        onsets, position = [], rng.uniform(0.0, 1.5)
        while position < seconds:
            for _ in range(int(rng.integers(2, 6))):  # a phrase of repeated syllables
                onsets.append(position)
                position += rng.uniform(0.08, 0.25)
            position += rng.uniform(0.5, 3.0)
        onsets = np.array(onsets) * SAMPLE_RATE
        distance = rng.uniform(0.2, 1.0)
        audio += scatter(motif, onsets, np.full(onsets.size, distance), np.full(onsets.size, pan_of(rng)), length)
    audio = room(rng, audio, 0.3, 0.25)
    audio = normalised(audio)
    audio += 0.03 * wide(rng, lambda r: band(coloured(r, length, 1.0), 200.0, 4000.0), 0.9)
    many = count > 2
    phrases = ["birds chirping in a forest" if many else "a bird singing", "birdsong",
               "birds chirping" if many else "a bird chirping"]
    return audio, {"phrases": phrases, "birds": count}


def crickets(rng, seconds):
    length = samples(seconds)
    audio = np.zeros((2, length))
    count = int(rng.integers(1, 6))
    time = np.arange(length) / SAMPLE_RATE
    for _ in range(count):
        carrier = np.sin(2 * math.pi * rng.uniform(3800.0, 5500.0) * time)
        pulses = (np.sin(2 * math.pi * rng.uniform(25.0, 60.0) * time) > 0.3).astype(float)
        chirping = (((time + rng.uniform(0, 1)) * rng.uniform(1.0, 3.0)) % 1.0 < rng.uniform(0.2, 0.5)).astype(float)
        mono = band(carrier * pulses * chirping, 3000.0, 7000.0) * rng.uniform(0.3, 1.0)
        angle = (pan_of(rng) + 1.0) * math.pi / 4
        audio += np.stack([mono * math.cos(angle), mono * math.sin(angle)])
    audio += 0.02 * wide(rng, lambda r: band(coloured(r, length, 1.5), 100.0, 2000.0), 0.9) * np.abs(audio).max()
    phrases = ["crickets chirping at night", "crickets chirping", "insects at night"]
    return audio, {"phrases": phrases, "insects": count}


def _bark(rng, size: str) -> np.ndarray:
    """One bark: a pitched, breathy source falling in pitch, through two formants."""
    pitch = {"small": (700.0, 1100.0), "medium": (400.0, 650.0), "big": (220.0, 380.0)}[size]
    seconds = rng.uniform(0.12, 0.22) * (1.3 if size == "big" else 1.0)
    length = samples(seconds)
    start = rng.uniform(*pitch)
    contour = start * (1.0 + 0.25 * np.sin(np.linspace(0, math.pi, length)) - 0.35 * np.linspace(0, 1, length) ** 2)
    phase = np.cumsum(contour) / SAMPLE_RATE
    source = 2 * (phase % 1.0) - 1.0  # sawtooth: every harmonic
    source = source + 0.35 * white(rng, length)
    first, second = rng.uniform(600.0, 1100.0), rng.uniform(1400.0, 2600.0)
    voiced = band(source, first * 0.7, first * 1.4) + 0.6 * band(source, second * 0.8, second * 1.25)
    envelope = np.minimum(np.arange(length) / samples(0.008), 1.0) * np.exp(-np.arange(length) / (length / 2.5))
    return voiced * envelope


def dog(rng, seconds):
    length = samples(seconds)
    size = pick(rng, ["small", "medium", "big"])
    barks = [_bark(rng, size) for _ in range(4)]
    onsets, position = [], rng.uniform(0.1, 0.8)
    while position < seconds - 0.3:
        for _ in range(int(rng.integers(1, 5))):
            onsets.append(position)
            position += rng.uniform(0.22, 0.45)
        position += rng.uniform(0.6, 2.5)
    onsets = np.array(onsets) * SAMPLE_RATE
    pan = pan_of(rng)
    audio = scatter(barks, onsets, rng.uniform(0.7, 1.0, onsets.size), np.full(onsets.size, pan), length)
    audio = room(rng, audio, rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.35))
    audio = audio + room_tone(rng, length) * np.abs(audio).max()
    name = {"small": "a small dog yapping", "medium": "a dog barking", "big": "a big dog barking loudly"}[size]
    phrases = [name, "a dog barking", "dog barks", "barking"]
    return audio, {"phrases": phrases, "size": size, "barks": int(onsets.size)}
