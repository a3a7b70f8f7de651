"""Synthesised test signals with known answers: harmonic notes, block-chord cadences, click tracks
(stereo float32 at 48 kHz), shared by the analyser and evaluation tests; and captioned datasets in
the dataset builders' layout made of tones."""

import json
from pathlib import Path

import numpy as np

SR = 48000



def harmonic_note(midi: float, seconds: float, harmonics: int = 4, decay: float = 3.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    frequency = 440.0 * 2 ** ((midi - 69) / 12)
    return np.exp(-decay * t) * sum(np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, harmonics + 1))


def chord_sequence(chords, seconds_each=0.5, repeats=2, harmonics=4) -> np.ndarray:
    """Stereo (2, S) block chords, peak 0.3."""
    mono = np.concatenate([sum(harmonic_note(m, seconds_each, harmonics) for m in chord)
                           for _ in range(repeats) for chord in chords])
    mono = 0.3 * mono / np.abs(mono).max()
    return np.stack([mono, mono]).astype(np.float32)


def click_track(bpm: float, seconds: float = 8.0) -> np.ndarray:
    """Stereo 1 kHz blips (2 ms decay) every beat."""
    audio = np.zeros(int(seconds * SR))
    length = int(0.01 * SR)
    blip = np.sin(2 * np.pi * 1000 * np.arange(length) / SR) * np.exp(-np.arange(length) / (0.002 * SR))
    for onset in np.arange(0.0, seconds - 0.02, 60.0 / bpm):
        start = int(onset * SR)
        audio[start : start + length] += blip
    return np.stack([audio, audio]).astype(np.float32) * 0.5


C_MAJOR_CADENCE = [[60, 64, 67], [65, 69, 72], [67, 71, 74], [60, 64, 67]]  # I IV V I
A_MINOR_CADENCE = [[57, 60, 64], [62, 65, 69], [64, 68, 71], [57, 60, 64]]  # i iv V i


def write_dataset(root: Path, records_by_split: dict, seconds: float = 0.5) -> Path:
    """`root/<split>/<id>.flac` (a tone), `<id>.json` (the record and its split) and `<id>.txt` (its
    caption) for every record: the layout of audiodit's dataset builders (docs/data.md)."""
    from audiodit.audio import save_audio

    t = np.arange(int(seconds * SR)) / SR
    for split, records in records_by_split.items():
        for i, record in enumerate(records):
            tone = 0.2 * np.sin(2 * np.pi * (110 * (i + 1)) * t)
            save_audio(root / split / f"{record['id']}.flac", np.stack([tone, tone]).astype(np.float32), SR)
            (root / split / f"{record['id']}.json").write_text(json.dumps({**record, "split": split}))
            (root / split / f"{record['id']}.txt").write_text(record["caption"] + "\n")
    return root
