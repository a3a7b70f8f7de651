"""Render genre arrangements with drums from Debian's MMA grooves to captioned stereo 48 kHz audio.

    python -m audiodit.corpora.mma_grooves --out data/grooves --count 2000 [--max-seconds 20]
        [--soundfonts A.sf2,B.sf3] [--seed S] [--workers W] [--families rock,funk] [--list]

Each arrangement is a chord progression in a seeded key, played by one groove of an MMA style file
(`audiodit.corpora.mma_styles.STYLES`: drums, bass and comping as the style's author wrote them) at a
seeded tempo, sometimes with a melody line (MMA's Aria track) on top, rendered by FluidSynth with a
seeded General MIDI soundfont. Styles are drawn in turn from each genre family, so the mix is
balanced across families rather than across MMA's 100-odd style files.

Truthful captions: the genre is the style's, the key and chords are the ones written into the MMA
file, the tempo is the file's, and the instruments and drums are read back from the MIDI file MMA
produced (`general_midi.describe_midi`), so a caption only names what sounds. The same facts are
fields of `<id>.json`.

Layout as `music21_corpus`: `OUT/{train,valid,test}/<id>.{flac,txt,json,mid}`, `OUT/metadata.jsonl`,
`OUT/failures.jsonl`, `OUT/render_config.json` (a re-run with the same settings renders only the
missing arrangements, so `--count` can grow), and `OUT/ATTRIBUTION.md`. Splits are 90/5/5 by a hash
of each arrangement (`music21_works.split_of`), so a held-out caption is a new combination of
style, key, tempo and progression, not a new style.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from audiodit.audio import load_audio, normalize_audio, save_audio, trim_trailing_silence
from audiodit.corpora.builder import claim_output, run_tasks, write_index
from audiodit.corpora.general_midi import PROGRAM_NAMES, describe_midi, join_words
from audiodit.corpora.mma_styles import FAMILIES, HARMONY, PROGRESSIONS, STYLES, Style
from audiodit.corpora.music21_midi import SAMPLE_RATE, TONIC_NAMES, check_fluidsynth, render_midi
from audiodit.corpora.music21_works import split_of

MMA_LIBRARY = Path("/usr/share/mma/lib")  # Debian package mma
# MuseScore_General_Lite.sf3 sounds better than TimGM6mb, but FluidSynth decompresses all of it for
# every render (3.2 s of CPU per clip against 0.2 s with FluidR3_GM.sf2); pass it with --soundfonts.
DEFAULT_SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/TimGM6mb.sf2")
SOUNDFONT_LICENSES = {  # from each Debian package's copyright file
    "FluidR3_GM.sf2": "MIT (fluid-soundfont-gm)",
    "MuseScore_General_Lite.sf3": "MIT (musescore-general-soundfont-small)",
    "TimGM6mb.sf2": "GPL-2 (timgm6mb-soundfont)",
}
MMA_LICENSE = "GPL-2.0-or-later (the grooves of Debian's mma package, by Bob van der Poel and contributors)"
SKIPPED_GROOVE = re.compile(r"Intro|INTRO|End|END|Fill|FILL|Break|BREAK")  # a bar or four, not a groove

# Melody instruments (0-based GM programs) by genre family; others use MELODY_DEFAULT.
MELODY = {
    "rock": (29, 30, 81, 0), "metal": (30, 29, 81), "electronic": (80, 81, 87, 4),
    "jazz": (65, 66, 56, 11, 71, 0), "hip hop": (4, 80, 11, 0), "funk": (65, 4, 56, 80),
}
MELODY_DEFAULT = (73, 65, 56, 40, 71, 0, 22, 11, 24)
MELODY_SHAPES = {  # beats per bar -> (Aria rhythm for two bars, direction); MMA picks the notes
    4: (("{ 1 4 90; 2 8 85; 2.5 8 85; 3 4. 90; 4.5 8 80 } { 1 2 90; 3 4 85; 4 4 85 }", "1 1 -1 2 -1"),
        ("{ 1 8 85; 1.5 8 80; 2 8 85; 2.5 8 80; 3 2 90 } { 1 4 85; 2 4 85; 3 2 90 }", "1 -1 1 1 -2"),
        ("{ 1 2. 90; 4 4 80 } { 1 4 85; 2 4 85; 3 4 85; 4 4 85 }", "2 -1 -1 1")),
    3: (("{ 1 4 90; 2 8 85; 2.5 8 85; 3 4 90 } { 1 2. 90 }", "1 1 -1 2"),
        ("{ 1 2 90; 3 4 85 } { 1 4 85; 2 4 85; 3 4 85 }", "2 -1 -1 1")),
}
# Our own bass line and comping for the drum-only zoom/* styles: (program choices, MMA sequence).
BACKING_BASS = ((33, 34, 36, 38), ("{ 1 4 1 90; 2 4 5 80; 3 4 1 90; 4 4 5 80 }",
                                   "{ 1 8 1 95; 1.5 8 1 70; 2.5 8 5 85; 3 8 1 95; 3.5 8 1 70; 4.5 8 5 85 }",
                                   "{ 1 2 1 95; 3 4. 5 85; 4.5 8 1 75 }"))
BACKING_COMP = ((4, 0, 27, 16, 89), ("{ 1 1 70 }", "{ 1.5 8 75; 2.5 8 75; 3.5 8 75; 4.5 8 75 }",
                                     "{ 1 4 80; 2.5 8 70; 3 4 80; 4.5 8 70 }"))


@dataclass
class Arrangement:
    """Everything a caption states, as fields (written to `<id>.json`)."""

    id: str
    index: int
    split: str
    caption: str
    domain: str  # "arrangement"
    genre: str
    genre_family: str
    style: str  # MMA style file, e.g. "stdlib/bossanova"
    groove: str
    groove_description: str
    key: str | None  # e.g. "A minor"; None for a drum beat without harmony
    tonic: str | None
    tonic_pitch_class: int | None
    mode: str | None
    progression: str | None
    chords: list[str]
    bpm: int
    meter: str
    bars: int
    has_drums: bool
    drums: list[str]
    instruments: list[str]  # every melodic instrument that plays, melody first when there is one
    programs: list[int]
    melody_program: int | None
    backing: bool  # our bass line and comping under a drum-only style
    stereo_width: float
    soundfont: str
    license: str
    duration_s: float
    sample_rate: int


# ---------------------------------------------------------------------------------------------
# Style files
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def read_style(path: str, library: str = str(MMA_LIBRARY)) -> tuple[int, tuple[tuple[str, str], ...]]:
    """(beats per bar, ((groove name, description), ...)) of one MMA style file.

    Grooves that are intros, endings, fills or breaks are left out. Raises FileNotFoundError when
    the file is missing, ValueError when it defines no usable groove or no metre.
    """
    text = (Path(library) / f"{path}.mma").read_text(errors="replace")
    beats = None
    grooves = []
    for line in text.splitlines():
        stripped = line.strip()
        time_match = re.match(r"time\s+(\d+)", stripped, re.IGNORECASE)
        if time_match and beats is None:
            beats = int(time_match.group(1))
        zoom_time = re.search(r"Time = (\d+)/4", stripped)
        if zoom_time and beats is None:
            beats = int(zoom_time.group(1))
        groove = re.match(r"defgroove\s+(\S+)\s*(.*)", stripped, re.IGNORECASE)
        if groove and not SKIPPED_GROOVE.search(groove.group(1)):
            grooves.append((groove.group(1), groove.group(2).rstrip("\\ ").strip()))
    beats = beats or 4  # MMA's default metre
    if not grooves:
        raise ValueError(f"{path}: no groove besides intros, endings and fills")
    return beats, tuple(grooves)


# ---------------------------------------------------------------------------------------------
# Choosing an arrangement (seeded per index)
# ---------------------------------------------------------------------------------------------


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, 0x6D6D61, index])


def pick_style(rng: np.random.Generator, index: int, families: tuple[str, ...]) -> Style:
    """Families in turn (index modulo their count), a style within the family by `rng`."""
    family = families[index % len(families)]
    candidates = [style for style in STYLES if style.family == family]
    return candidates[rng.integers(len(candidates))]


SHARP_KEYS = {"major": {"G", "D", "A", "E", "B", "F#"}, "minor": {"E", "B", "F#", "C#", "G#"}}
SHARP_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLAT_NAMES = ("C", "Db", "D", "Eb", "E", "F", "Gb", "G", "Ab", "A", "Bb", "B")


def chord_names(tonic_pitch_class: int, progression: str) -> list[str]:
    """The progression's chords spelled as the key's signature does (sharps in E minor, flats in
    Bb major); MMA reads either spelling."""
    mode, degrees = PROGRESSIONS[progression]
    names = SHARP_NAMES if TONIC_NAMES[mode][tonic_pitch_class] in SHARP_KEYS[mode] else FLAT_NAMES
    return [names[(tonic_pitch_class + offset) % 12] + suffix for offset, suffix in degrees]


def choose_arrangement(rng: np.random.Generator, style: Style, beats: int, grooves, soundfonts: list[str],
                       max_seconds: float) -> dict:
    groove, description = grooves[rng.integers(len(grooves))]
    bpm = int(rng.integers(style.tempo[0], style.tempo[1] + 1))
    backing = style.drums_only and bool(rng.random() < 0.6)
    harmonic = not style.drums_only or backing
    progression = tonic_pitch_class = None
    if harmonic:
        progressions = HARMONY[style.family]
        progression = progressions[rng.integers(len(progressions))]
        tonic_pitch_class = int(rng.integers(12))
    melody = None
    if harmonic and beats in MELODY_SHAPES and rng.random() < (0.3 if backing else 0.5):
        choices = MELODY.get(style.family, MELODY_DEFAULT)
        melody = (int(choices[rng.integers(len(choices))]), int(rng.integers(len(MELODY_SHAPES[beats]))))
    bass = comp = None
    if backing:
        bass = (int(BACKING_BASS[0][rng.integers(4)]), int(rng.integers(len(BACKING_BASS[1]))))
        comp_programs = (30, 29, 16) if style.family in ("rock", "metal") else BACKING_COMP[0]
        comp = (int(comp_programs[rng.integers(len(comp_programs))]), int(rng.integers(len(BACKING_COMP[1]))))
    return {
        "groove": groove, "groove_description": description, "bpm": bpm, "beats": beats,
        "bars": math.ceil((max_seconds + 1.0) * bpm / 60 / beats),
        "progression": progression, "tonic_pitch_class": tonic_pitch_class, "melody": melody,
        "bass": bass, "comp": comp, "soundfont": soundfonts[rng.integers(len(soundfonts))],
        "stereo_width": round(float(rng.uniform(0.6, 1.3)), 2), "template": int(rng.integers(3)),
    }


def mma_source(style: Style, choice: dict) -> str:
    """The MMA file that plays `choice`: one chord a bar, the progression repeated."""
    lines = [f"Tempo {choice['bpm']}", f"Use {style.path}", f"Groove {choice['groove']}"]
    if choice["bass"] is not None:
        program, pattern = choice["bass"]
        lines += ["Begin Bass-Backing", f"  Voice {program}", "  Octave 3",
                  f"  Sequence {BACKING_BASS[1][pattern]}", "End"]
        program, pattern = choice["comp"]
        lines += ["Begin Chord-Backing", f"  Voice {program}", "  Octave 5", "  Volume mp",
                  f"  Sequence {BACKING_COMP[1][pattern]}", "End"]
    if choice["melody"] is not None:
        program, shape = choice["melody"]
        rhythm, direction = MELODY_SHAPES[choice["beats"]][shape]
        lines += ["Begin Aria", f"  Voice {program}", "  Octave 5", "  Volume f", f"  Sequence {rhythm}",
                  f"  Direction {direction}", "  ScaleType Scale", "End"]
    if choice["progression"] is None:
        chords = ["z"] * choice["bars"]  # MMA's "no chord": drums only
    else:
        progression = chord_names(choice["tonic_pitch_class"], choice["progression"])
        chords = [progression[bar % len(progression)] for bar in range(choice["bars"])]
    lines += [f"{bar + 1} {chord}" for bar, chord in enumerate(chords)]
    return "\n".join(lines) + "\n"


def run_mma(source: str, midi_path: Path, timeout: float = 60) -> None:
    mma_path = midi_path.with_suffix(".mma")
    mma_path.write_text(source)
    result = subprocess.run(["mma", "-f", str(midi_path), str(mma_path)], capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0 or not midi_path.exists():
        message = (result.stdout + result.stderr).strip().replace("\n", " ")
        raise RuntimeError(f"mma failed ({result.returncode}): {message[-500:]}")


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------


def make_caption(sample: Arrangement, template: int) -> str:
    """One of three phrasings of the same facts; every one states the BPM (read by tempo
    conditioning) and, when there is harmony, the key (read by key conditioning)."""
    instruments = list(sample.instruments)
    if sample.melody_program is not None and instruments:
        instruments[0] = f"{'an' if instruments[0][0] in 'aeiou' else 'a'} {instruments[0]} melody"
    players = join_words(instruments)
    drums = f"drums ({join_words(sample.drums)})" if sample.has_drums else "no drums"
    article = "An" if sample.genre[0].lower() in "aeiou" else "A"
    if sample.key is None:  # a drum beat alone
        return f"{article} {sample.genre} drum beat, {sample.bpm} BPM, {sample.meter}: {join_words(sample.drums)}."
    chords = (" - ".join(sample.chords) if len(sample.chords) <= 4
              else f"a {sample.progression} progression in {sample.tonic}")
    if template == 0:
        return (f"{article} {sample.genre} groove in {sample.key}, {sample.bpm} BPM, {sample.meter}, with "
                f"{drums}{', ' + players if players else ''}; chords {chords}.")
    if template == 1:
        with_drums = f"a drum kit playing {join_words(sample.drums)}" if sample.has_drums else "no drums"
        return (f"{sample.genre[0].upper()}{sample.genre[1:]} in {sample.key} at {sample.bpm} BPM: "
                f"{players or 'drums'} with {with_drums}.")
    return (f"{sample.genre[0].upper()}{sample.genre[1:]} {'with drums' if sample.has_drums else 'without drums'}"
            f"{', ' + players if players else ''}, {sample.bpm} BPM, in {sample.key}.")


# ---------------------------------------------------------------------------------------------
# One arrangement -> one sample
# ---------------------------------------------------------------------------------------------


def sample_id(index: int, style: Style) -> str:
    return f"mma-{index:05d}-{style.path.split('/')[-1].replace('+', 'n')}"


def render_arrangement(index: int, out_dir: Path, soundfonts: list[str], seed: int, max_seconds: float,
                       families: tuple[str, ...]) -> tuple[dict | None, dict | None]:
    """Render arrangement `index`; returns (record, None), or (None, failure record)."""
    rng = _rng(seed, index)
    style = pick_style(rng, index, families)
    sid = sample_id(index, style)
    split = split_of(f"mma/{style.path}/{index}")
    done = out_dir / split / f"{sid}.json"
    if done.exists():
        return json.loads(done.read_text()), None
    stage = "style"
    try:
        beats, grooves = read_style(style.path)
        choice = choose_arrangement(rng, style, beats, grooves, soundfonts, max_seconds)
        with tempfile.TemporaryDirectory(prefix="mmarender-") as scratch:
            midi_path, wav_path = Path(scratch) / "groove.mid", Path(scratch) / "groove.wav"
            stage = "mma"
            run_mma(mma_source(style, choice), midi_path)
            played = describe_midi(midi_path)
            if not played["notes"] and not played["drum_notes"]:
                raise RuntimeError("MMA wrote no notes")
            stage = "render"
            render_midi(midi_path, wav_path, choice["soundfont"], timeout=120 + 4 * max_seconds)
            audio = load_audio(wav_path, SAMPLE_RATE).numpy()  # (2, S)
            audio = trim_trailing_silence(audio, SAMPLE_RATE, threshold_db=-60.0, keep=0.5)
            audio = audio[:, : round(max_seconds * SAMPLE_RATE)].copy()
            fade = min(audio.shape[1], SAMPLE_RATE // 2)
            audio[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
            mid, side = (audio[0] + audio[1]) / 2, (audio[0] - audio[1]) / 2 * choice["stereo_width"]
            audio = np.stack([mid + side, mid - side])
            if np.abs(audio).max() < 1e-4:
                raise RuntimeError("rendered audio is silent")
            audio = normalize_audio(audio, "peak", -1.0)
            instruments = played["instruments"]
            if choice["melody"] is not None:  # the melody first, as the caption says
                lead = PROGRAM_NAMES[choice["melody"][0]]
                instruments = [lead] + [name for name in instruments if name != lead]
            tonic_pc = choice["tonic_pitch_class"]
            mode = None if choice["progression"] is None else PROGRESSIONS[choice["progression"]][0]
            tonic = None if mode is None else TONIC_NAMES[mode][tonic_pc]
            soundfont = Path(choice["soundfont"]).name
            sample = Arrangement(
                id=sid, index=index, split=split, caption="", domain="arrangement", genre=style.genre,
                genre_family=style.family, style=style.path, groove=choice["groove"],
                groove_description=choice["groove_description"],
                key=None if mode is None else f"{tonic} {mode}", tonic=tonic,
                tonic_pitch_class=tonic_pc, mode=mode, progression=choice["progression"],
                chords=[] if mode is None else chord_names(tonic_pc, choice["progression"]),
                bpm=choice["bpm"], meter=f"{choice['beats']}/4", bars=choice["bars"],
                has_drums=bool(played["drums"]), drums=played["drums"], instruments=instruments,
                programs=played["programs"],
                melody_program=None if choice["melody"] is None else choice["melody"][0],
                backing=choice["bass"] is not None, stereo_width=choice["stereo_width"], soundfont=soundfont,
                license=f"{MMA_LICENSE}; soundfont {SOUNDFONT_LICENSES.get(soundfont, 'see its package')}",
                duration_s=round(audio.shape[1] / SAMPLE_RATE, 3), sample_rate=SAMPLE_RATE,
            )
            sample.caption = make_caption(sample, choice["template"])
            target = out_dir / split
            target.mkdir(parents=True, exist_ok=True)
            save_audio(target / f"{sid}.flac", audio, SAMPLE_RATE, "PCM_16", overwrite=True)
            shutil.copyfile(midi_path, target / f"{sid}.mid")
            (target / f"{sid}.txt").write_text(sample.caption + "\n")
            # The JSON goes last: its presence marks the sample as complete for resumed runs.
            (target / f"{sid}.json").write_text(json.dumps(asdict(sample), indent=1) + "\n")
            return asdict(sample), None
    except Exception as error:  # one bad groove must not stop the corpus
        return None, {"index": index, "style": style.path, "stage": stage,
                      "error": f"{type(error).__name__}: {error}"[:1000]}


def _render_task(arguments):
    return render_arrangement(*arguments)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def check_mma(library: Path = MMA_LIBRARY) -> None:
    if shutil.which("mma") is None or not library.is_dir():
        raise RuntimeError("mma is not installed: apt-get install -y mma")


def render_grooves(out_dir, *, count: int, soundfonts: list[str] | None = None, seed: int = 0,
                   workers: int = 1, max_seconds: float = 20.0, families: list[str] | None = None,
                   verbose: bool = True) -> dict:
    """Render arrangements 0..count-1 to `out_dir`; returns a summary dict (module docstring)."""
    soundfonts = list(soundfonts or [path for path in DEFAULT_SOUNDFONTS if Path(path).is_file()])
    if not soundfonts:
        raise RuntimeError(f"none of the default soundfonts {DEFAULT_SOUNDFONTS} is installed; "
                           "apt-get install -y fluid-soundfont-gm, or pass --soundfonts")
    for soundfont in soundfonts:
        check_fluidsynth(soundfont)
    check_mma()
    chosen = tuple(families or FAMILIES)
    unknown = sorted(set(chosen) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown genre families {unknown}; known: {', '.join(FAMILIES)}")
    out_dir = claim_output(out_dir, {"seed": seed, "max_seconds": max_seconds, "families": list(chosen),
                                     "soundfonts": [Path(path).name for path in soundfonts],
                                     "sample_rate": SAMPLE_RATE})

    started = time.perf_counter()
    tasks = [(index, out_dir, soundfonts, seed, max_seconds, chosen) for index in range(count)]
    results = run_tasks(_render_task, tasks, workers, chunksize=4, maxtasksperchild=100)
    wall = time.perf_counter() - started
    records = [record for record, _ in results if record]
    failures = [failure for _, failure in results if failure]
    if verbose:
        for failure in failures:
            print(f"FAILED {failure['index']} {failure['style']} ({failure['stage']}): {failure['error']}",
                  file=sys.stderr)
    index = write_index(out_dir, failures)
    write_attribution(out_dir, index)
    audio_seconds = sum(record["duration_s"] for record in records)
    summary = {"arrangements": count, "samples": len(records), "failed": len(failures),
               "audio_s": round(audio_seconds, 1), "wall_s": round(wall, 1),
               "audio_s_per_wall_s": round(audio_seconds / max(wall, 1e-9), 2), "indexed": len(index),
               "with_drums": sum(record["has_drums"] for record in index)}
    if verbose:
        print(json.dumps(summary))
    return summary


def write_attribution(out_dir: Path, records: list[dict]) -> None:
    styles = sorted({record["style"] for record in records})
    soundfonts = sorted({record["soundfont"] for record in records})
    lines = ["# Sources of this dataset", "",
             f"Arrangements generated with the grooves of Debian's `mma` package: {MMA_LICENSE}.",
             f"Style files used ({len(styles)}): " + ", ".join(f"`{style}`" for style in styles) + ".", "",
             "Rendered with FluidSynth and these General MIDI soundfonts:", ""]
    lines += [f"- `{name}`: {SOUNDFONT_LICENSES.get(name, 'see its Debian package')}" for name in soundfonts]
    (out_dir / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n")


def _comma_list(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiodit.corpora.mma_grooves", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--count", type=int, default=100, help="arrangements 0..count-1 (a re-run adds missing ones)")
    parser.add_argument("--soundfonts", default=None, help="comma-separated .sf2/.sf3 files, one drawn per arrangement")
    parser.add_argument("--seed", type=int, default=0, help="seed for every choice")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="length of each arrangement (fade-out)")
    parser.add_argument("--families", default=None, help=f"genre families to draw from (default all: {','.join(FAMILIES)})")
    parser.add_argument("--list", action="store_true", help="print every style with its family and grooves, and exit")
    args = parser.parse_args(argv)
    try:
        if args.count < 0 or not math.isfinite(args.max_seconds) or args.max_seconds <= 1:
            raise ValueError("--count must be >= 0 and --max-seconds a number above 1")
        if args.list:
            check_mma()
            for style in STYLES:
                beats, grooves = read_style(style.path)
                print(f"{style.family:11s} {style.path:28s} {style.genre!r} {beats}/4 "
                      f"{style.tempo[0]}-{style.tempo[1]} BPM: {' '.join(name for name, _ in grooves)}")
            return 0
        summary = render_grooves(args.out, count=args.count, soundfonts=_comma_list(args.soundfonts),
                                  seed=args.seed, workers=args.workers, max_seconds=args.max_seconds,
                                  families=_comma_list(args.families))
    except (RuntimeError, ValueError, OSError) as error:
        print(f"mma_grooves: error: {error}", file=sys.stderr)
        return 2
    return 0 if summary["samples"] or not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
