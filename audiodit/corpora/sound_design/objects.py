"""Recipes for people, objects, machines and blasts (module docstring of `audiodit.corpora.sound_design`).

Single events (a door slam, an explosion, a gunshot, breaking glass) happen once near the start and
ring out into a quiet room, so that "a door slam" for ten seconds is one slam and its tail, not
slams at a tempo; fireworks are several bangs over the clip."""

from __future__ import annotations

import math

import numpy as np

from audiodit.corpora.sound_design.dsp import (
    SAMPLE_RATE, band, coloured, decay, drift, modes, normalised, pan_of, pick, room, room_tone, samples, scatter,
    white,
)


#################################################################################
#                                People and rooms                               #
#################################################################################

SURFACES = {  # surface -> (impact modes Hz, their decay s, grit share, phrase)
    "wooden floor": ((90.0, 180.0, 420.0), 0.05, 0.1, "on a wooden floor"),
    "concrete": ((300.0, 900.0, 2400.0), 0.01, 0.2, "on concrete"),
    "gravel": ((200.0, 600.0), 0.01, 0.9, "on gravel"),
    "snow": ((150.0, 400.0), 0.01, 0.7, "in the snow"),
}


def _step(rng, surface: str) -> np.ndarray:
    frequencies, ring, grit, _ = SURFACES[surface]
    seconds = 0.25
    length = samples(seconds)
    thud = modes(np.array(frequencies) * rng.uniform(0.9, 1.1, len(frequencies)),
                 [ring * rng.uniform(0.7, 1.3)] * len(frequencies), rng.uniform(0.4, 1.0, len(frequencies)), seconds)
    thud = thud + 0.5 * band(white(rng, length), 200.0, 4000.0) * decay(length, 0.01)
    if grit:  # crunch: many tiny grains over the step
        low = 2000.0 if surface == "gravel" else 500.0
        grains = band(white(rng, length), low, low * 3) * (rng.random(length) < 0.02) * decay(length, 0.06, 0.01)
        thud = (1 - grit) * normalised(thud) + grit * normalised(grains)
    heel_toe = np.zeros(samples(seconds + 0.08))
    heel_toe[:length] += thud
    toe = samples(rng.uniform(0.04, 0.08))
    heel_toe[toe:toe + length] += 0.5 * thud
    return heel_toe


def footsteps(rng, seconds):
    length = samples(seconds)
    surface = pick(rng, list(SURFACES))
    running = bool(rng.random() < 0.25)
    interval = rng.uniform(0.28, 0.36) if running else rng.uniform(0.45, 0.65)
    steps = [_step(rng, surface) for _ in range(4)]
    onsets = np.arange(rng.uniform(0.1, 0.6), seconds - 0.3, interval)
    onsets = (onsets + rng.normal(0, 0.01, onsets.size)) * SAMPLE_RATE
    travel = np.linspace(rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.8), onsets.size)  # walking past
    gains = np.tile([1.0, 0.85], onsets.size)[: onsets.size] * np.linspace(rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.0),
                                                                           onsets.size)
    audio = room(rng, scatter(steps, onsets, gains, travel, length), 0.25, 0.2) + room_tone(rng, length)
    where = SURFACES[surface][3]
    who = "someone running" if running else "footsteps"
    phrases = [f"{who} {where}", f"footsteps {where}", "running footsteps" if running else "someone walking",
               "footsteps"]
    return audio, {"phrases": phrases, "surface": surface, "running": running}


def door(rng, seconds):
    length = samples(seconds)
    kind = pick(rng, ["slam", "knock", "creak"])
    audio = np.zeros((2, length))
    start = samples(rng.uniform(0.05, 0.4))
    pan = pan_of(rng)
    if kind == "slam":
        body = modes(rng.uniform(60.0, 260.0, 5), rng.uniform(0.05, 0.2, 5), rng.uniform(0.3, 1.0, 5), 1.0)
        crack = band(white(rng, samples(1.0)), 500.0, None) * decay(samples(1.0), 0.006, 0.0002)
        latch = np.zeros(samples(1.0))
        click = samples(rng.uniform(0.02, 0.06))
        latch[click:click + samples(0.01)] = band(white(rng, samples(0.01)), 2000.0, None) * 0.4
        event = normalised(body) + 0.5 * normalised(crack) + latch
        wet, reverb = rng.uniform(0.3, 0.5), rng.uniform(0.4, 0.9)
        phrases = ["a door slamming shut", "a door slam", "slamming a door"]
    elif kind == "knock":
        knock = modes(rng.uniform(150.0, 600.0, 4), rng.uniform(0.01, 0.04, 4), rng.uniform(0.3, 1.0, 4), 0.15)
        gap = rng.uniform(0.15, 0.28)
        hits = int(rng.integers(2, 5))
        event = np.zeros(samples(gap * hits + 0.2))
        for hit in range(hits):
            at = samples(hit * gap)
            event[at:at + knock.size] += knock * rng.uniform(0.7, 1.0)
        wet, reverb = rng.uniform(0.15, 0.3), rng.uniform(0.2, 0.5)
        phrases = ["knocking on a wooden door", "a knock at the door", "knocking"]
    else:
        creak_s = rng.uniform(1.0, 2.5)
        rate = rng.uniform(15.0, 40.0) + rng.uniform(10.0, 50.0) * drift(rng, samples(creak_s), 2.0)
        pulses = np.diff(np.floor(np.cumsum(rate) / SAMPLE_RATE), prepend=0.0)  # stick-slip ticks
        event = band(pulses, rng.uniform(400.0, 800.0), rng.uniform(1200.0, 2500.0), order=4)
        event = event * np.hanning(event.size) ** 0.3
        wet, reverb = rng.uniform(0.15, 0.3), rng.uniform(0.3, 0.6)
        phrases = ["a creaking door opening slowly", "a creaky door", "a door creaking"]
    end = min(length, start + event.size)
    angle = (pan + 1.0) * math.pi / 4
    audio[:, start:end] = np.outer([math.cos(angle), math.sin(angle)], normalised(event)[: end - start])
    audio = room(rng, audio, reverb, wet) + room_tone(rng, length)
    return audio, {"phrases": phrases, "kind": kind}


def applause(rng, seconds):
    length = samples(seconds)
    people = int(rng.integers(8, 60))
    claps = [band(white(rng, samples(0.012)), rng.uniform(800.0, 1500.0), rng.uniform(2000.0, 4000.0))
             * decay(samples(0.012), 0.003, 0.0003) for _ in range(12)]
    onsets, pans = [], []
    for _ in range(people):
        rate = rng.uniform(3.0, 6.0)
        times = np.arange(rng.uniform(0, 0.5), seconds, 1.0 / rate)
        times = np.clip(times + rng.normal(0, 0.01, times.size), 0.0, None)
        onsets.append(times)
        pans.append(np.full(times.size, rng.uniform(-0.9, 0.9)))
    onsets, pans = np.concatenate(onsets) * SAMPLE_RATE, np.concatenate(pans)
    swell = np.interp(onsets, [0, length * 0.1, length * 0.7, length], [0.3, 1.0, 1.0, 0.2])
    audio = scatter(claps, onsets, swell * rng.uniform(0.5, 1.0, onsets.size), pans, length)
    audio = room(rng, audio, 0.6, 0.35)
    crowd = "a large crowd" if people > 30 else "a small audience"
    phrases = [f"{crowd} applauding", "applause", "people clapping"]
    return audio, {"phrases": phrases, "people": people}


def typing(rng, seconds):
    length = samples(seconds)
    keys = [modes(rng.uniform(1500.0, 5000.0, 2), [0.004, 0.008], [1.0, 0.5], 0.05)
            + 0.5 * modes([rng.uniform(150.0, 400.0)], [0.01], [1.0], 0.05) for _ in range(8)]
    gaps = rng.uniform(0.07, 0.25, int(seconds * 12))
    gaps[rng.random(gaps.size) < 0.08] += rng.uniform(0.3, 1.0)  # pauses between words and lines
    onsets = np.cumsum(gaps)
    onsets = onsets[onsets < seconds - 0.1] * SAMPLE_RATE
    audio = scatter(keys, onsets, rng.uniform(0.5, 1.0, onsets.size), np.full(onsets.size, pan_of(rng) * 0.3), length)
    audio = room(rng, audio, 0.2, 0.15) + room_tone(rng, length)
    phrases = ["typing on a computer keyboard", "someone typing", "keyboard typing"]
    return audio, {"phrases": phrases}


def clock(rng, seconds):
    length = samples(seconds)
    tick = modes(rng.uniform(2500.0, 4500.0, 2), [0.003, 0.006], [1.0, 0.4], 0.05)
    tock = modes(rng.uniform(1500.0, 2500.0, 2), [0.003, 0.006], [1.0, 0.4], 0.05)
    onsets = np.arange(rng.uniform(0.05, 0.5), seconds, rng.choice([0.5, 1.0])) * SAMPLE_RATE
    audio = scatter([tick, tock], onsets, np.full(onsets.size, 1.0), np.zeros(onsets.size), length)
    audio = room(rng, audio, 0.3, 0.3) + room_tone(rng, length, 0.002)
    phrases = ["a clock ticking", "a ticking clock", "tick tock"]
    return audio, {"phrases": phrases}


def heartbeat(rng, seconds):
    length = samples(seconds)
    rate = rng.uniform(55.0, 110.0) / 60.0
    beat = np.zeros(samples(0.5))
    lub = modes([rng.uniform(40.0, 60.0), rng.uniform(80.0, 110.0)], [0.05, 0.03], [1.0, 0.5], 0.2)
    dub = modes([rng.uniform(55.0, 75.0), rng.uniform(100.0, 140.0)], [0.04, 0.02], [0.8, 0.4], 0.2)
    beat[:lub.size] += lub
    at = samples(rng.uniform(0.25, 0.35))
    beat[at:at + dub.size] += dub[: beat.size - at]
    onsets = np.arange(rng.uniform(0.05, 0.4), seconds, 1.0 / rate) * SAMPLE_RATE
    audio = scatter([beat], onsets, np.ones(onsets.size), np.zeros(onsets.size), length)
    fast = rate > 1.5
    phrases = ["a fast heartbeat" if fast else "a slow heartbeat", "a heartbeat", "heart beating"]
    return audio, {"phrases": phrases, "beats_per_second": round(rate, 2)}


#################################################################################
#                              Machines and signals                             #
#################################################################################

def engine(rng, seconds):
    length = samples(seconds)
    kind = pick(rng, ["idling", "passing"])
    firing = rng.uniform(25.0, 45.0) * (1.0 + 0.05 * drift(rng, length, 1.0, -1, 1))
    if kind == "passing":
        firing = firing * rng.uniform(2.0, 3.5)
    phase = np.cumsum(firing) / SAMPLE_RATE
    pulses = np.maximum(0.0, np.sin(2 * math.pi * phase)) ** 8  # one pulse per firing
    body = band(pulses + 0.3 * white(rng, length) * pulses, 30.0, 1500.0)
    rumble = band(coloured(rng, length, 2.0), 30.0, 300.0)
    mono = normalised(body) + 0.3 * normalised(rumble)
    if kind == "idling":
        audio = np.stack([mono, mono]) + 0.02 * white(rng, 2 * length).reshape(2, length)
        phrases = ["a car engine idling", "an engine running", "a car engine"]
    else:  # approach, pass and leave: loudness, brightness, pan and a Doppler drop
        time = np.arange(length) / SAMPLE_RATE
        centre = rng.uniform(0.35, 0.65) * seconds
        distance = np.sqrt(1.0 + ((time - centre) * rng.uniform(4.0, 10.0)) ** 2)
        doppler = 1.0 + 0.06 * np.tanh(-(time - centre) * 2.0)
        warped = np.interp(np.cumsum(doppler) - doppler[0], np.arange(length), mono)
        tyres = band(coloured(rng, length, 1.0), 300.0, 5000.0)
        mono = (warped + 0.4 * normalised(tyres)) / distance
        side = np.tanh((time - centre) * 1.5) * rng.choice([-1.0, 1.0])
        angle = (side * 0.8 + 1.0) * math.pi / 4
        audio = np.stack([mono * np.cos(angle), mono * np.sin(angle)])
        phrases = ["a car driving past", "a car passing by", "traffic"]
    return audio, {"phrases": phrases, "kind": kind}


def siren(rng, seconds):
    length = samples(seconds)
    pattern = pick(rng, ["wail", "yelp", "two-tone"])
    time = np.arange(length) / SAMPLE_RATE
    low, high = rng.uniform(550.0, 750.0), rng.uniform(1200.0, 1600.0)
    if pattern == "wail":
        pitch = low + (high - low) * (0.5 - 0.5 * np.cos(2 * math.pi * time / rng.uniform(3.0, 6.0)))
    elif pattern == "yelp":
        pitch = low + (high - low) * ((time * rng.uniform(2.5, 4.0)) % 1.0)
    else:
        pitch = np.where((time * rng.uniform(0.8, 1.2)) % 1.0 < 0.5, low * 1.3, low)
    phase = np.cumsum(pitch) / SAMPLE_RATE
    tone = np.sign(np.sin(2 * math.pi * phase)) * 0.5 + np.sin(2 * math.pi * phase)
    tone = band(tone, 300.0, rng.uniform(3000.0, 6000.0))
    passing = np.interp(time, [0, seconds * rng.uniform(0.3, 0.7), seconds], [0.3, 1.0, rng.uniform(0.2, 0.6)])
    audio = room(rng, np.stack([tone, tone]) * passing, 0.8, 0.3)
    name = "an ambulance siren" if pattern == "two-tone" else "a police siren"
    phrases = [f"{name} {'wailing' if pattern == 'wail' else 'going past'}", name, "a siren"]
    return audio, {"phrases": phrases, "pattern": pattern}


def ringing(rng, seconds):
    length = samples(seconds)
    kind = pick(rng, ["telephone", "alarm clock", "church bell"])
    time = np.arange(length) / SAMPLE_RATE
    if kind == "telephone":
        tone = np.sin(2 * math.pi * 440.0 * time) + np.sin(2 * math.pi * 480.0 * time)
        bell = (np.sin(2 * math.pi * 20.0 * time) > 0).astype(float)  # the striker at 20 Hz
        cadence = ((time + rng.uniform(0, 1)) % rng.choice([3.0, 6.0]) < 2.0).astype(float)
        mono = tone * (0.6 + 0.4 * bell) * cadence
        phrases = ["an old telephone ringing", "a phone ringing", "a telephone"]
    elif kind == "alarm clock":
        frequency = rng.uniform(2000.0, 4000.0)
        beeps = ((time * 8.0) % 1.0 < 0.5) & ((time % 1.0) < 0.5)
        mono = np.sign(np.sin(2 * math.pi * frequency * time)) * beeps * 0.5
        phrases = ["an alarm clock beeping", "a digital alarm beeping", "beeping"]
    else:
        fundamental = rng.uniform(180.0, 450.0)
        strike = modes(fundamental * np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.5, 2.67, 3.0]),
                       rng.uniform(1.0, 4.0, 8) * np.linspace(1.0, 0.3, 8), [0.8, 1.0, 0.6, 0.5, 0.4, 0.3, 0.2, 0.2],
                       min(seconds, 6.0))
        onsets = np.arange(rng.uniform(0.05, 0.3), seconds - 0.5, rng.uniform(1.5, 3.0)) * SAMPLE_RATE
        mono = scatter([strike], onsets, np.ones(onsets.size), np.zeros(onsets.size), length)[0] * math.sqrt(2)
        phrases = ["a church bell ringing", "a bell tolling", "bells"]
    audio = room(rng, np.stack([mono, mono]), 1.2 if kind == "church bell" else 0.3, 0.3)
    return audio, {"phrases": phrases, "kind": kind}


def helicopter(rng, seconds):
    length = samples(seconds)
    time = np.arange(length) / SAMPLE_RATE
    blades = rng.uniform(9.0, 20.0)
    chop = np.maximum(0.0, np.sin(2 * math.pi * blades * time)) ** 6
    thump = band(white(rng, length), 60.0, 800.0) * chop
    turbine = 0.05 * np.sin(2 * math.pi * rng.uniform(3000.0, 6000.0) * time)
    mono = normalised(thump) + turbine + 0.2 * normalised(band(coloured(rng, length, 1.0), 100.0, 3000.0))
    overhead = np.interp(time, [0, seconds * 0.5, seconds], [0.3, 1.0, 0.3])
    angle = (np.linspace(-0.8, 0.8, length) * rng.choice([-1.0, 1.0]) + 1.0) * math.pi / 4
    audio = np.stack([mono * np.cos(angle), mono * np.sin(angle)]) * overhead
    phrases = ["a helicopter flying overhead", "a helicopter", "helicopter rotor blades"]
    return audio, {"phrases": phrases, "blade_rate_hz": round(blades, 1)}


#################################################################################
#                                     Blasts                                    #
#################################################################################

def explosion(rng, seconds):
    length = samples(seconds)
    kind = pick(rng, ["explosion", "gunshot", "fireworks"])
    audio = np.zeros((2, length))
    if kind == "fireworks":
        onsets = np.sort(rng.uniform(0.1, seconds - 1.0, int(rng.integers(3, 9)))) * SAMPLE_RATE
        bang = band(white(rng, samples(0.4)), 100.0, 6000.0) * decay(samples(0.4), 0.05, 0.0005)
        crackle = band(white(rng, samples(1.2)), 2000.0, None) * (rng.random(samples(1.2)) < 0.004)
        event = np.concatenate([bang, np.zeros(samples(0.8))]) + 0.6 * np.concatenate([np.zeros(samples(0.4)),
                                                                                          crackle])[: samples(1.2)]
        audio = scatter([event], onsets, rng.uniform(0.5, 1.0, onsets.size), rng.uniform(-0.7, 0.7, onsets.size),
                        length)
        phrases = ["fireworks exploding", "fireworks", "firework bangs"]
        tail = 1.5
    else:
        start = samples(rng.uniform(0.05, 0.3))
        big = kind == "explosion"
        event_s = min(seconds, rng.uniform(2.5, 5.0) if big else 1.0)
        event_length = samples(event_s)
        blast = band(white(rng, event_length), 30.0, 8000.0) * decay(event_length, 0.3 if big else 0.02, 0.001)
        sweep = signal_sweep(blast, rng) if big else blast
        thump = modes([rng.uniform(35.0, 60.0)], [0.25 if big else 0.04], [1.0], event_s)
        rumble = band(coloured(rng, event_length, 2.0), 20.0, 200.0) * decay(event_length, 1.0, 0.05) if big else 0
        mono = normalised(sweep) + (1.0 if big else 0.4) * normalised(thump) + 0.6 * (
            normalised(rumble) if big else 0)
        distant = bool(big and rng.random() < 0.3)
        if distant:
            mono = band(mono, None, 600.0)
        end = min(length, start + event_length)
        audio[:, start:end] = mono[: end - start]
        phrases = (["a distant explosion", "an explosion", "a boom"] if distant else
                   ["a loud explosion", "an explosion", "a blast"]) if big else ["a gunshot", "a single gunshot",
                                                                                 "a shot being fired"]
        tail = 2.0 if big else 1.0
    audio = room(rng, audio, tail, 0.3) + room_tone(rng, length)
    return audio, {"phrases": phrases, "kind": kind}


def signal_sweep(audio: np.ndarray, rng) -> np.ndarray:
    """A blast whose brightness falls: the same noise through a low-pass that closes over time."""
    bright = band(audio, None, 6000.0)
    dark = band(audio, None, 400.0)
    fade = decay(audio.size, rng.uniform(0.1, 0.3), 0.0005)
    return bright * fade + dark * (1 - fade) * 3.0


def glass(rng, seconds):
    length = samples(seconds)
    start = samples(rng.uniform(0.05, 0.3))
    impact = band(white(rng, samples(0.05)), 1000.0, None) * decay(samples(0.05), 0.01, 0.0002)
    shards = [modes(rng.uniform(2500.0, 9000.0, 3), rng.uniform(0.01, 0.08, 3), rng.uniform(0.3, 1.0, 3), 0.3)
              for _ in range(12)]
    onsets = start + np.sort(rng.exponential(0.25, int(rng.integers(15, 40)))) * SAMPLE_RATE
    audio = scatter(shards, onsets, rng.uniform(0.1, 0.8, onsets.size), rng.uniform(-0.8, 0.8, onsets.size), length)
    audio[:, start:start + impact.size] += impact[: max(0, length - start)]
    audio = room(rng, audio, 0.4, 0.25) + room_tone(rng, length) * np.abs(audio).max()
    phrases = ["glass shattering", "a window breaking", "breaking glass"]
    return audio, {"phrases": phrases}
