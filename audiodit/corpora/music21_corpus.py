"""Render the music21 corpus to captioned stereo 48 kHz audio with FluidSynth.

    python -m audiodit.corpora.music21_corpus --out data/music21 [--limit N] [--variants K]
        [--soundfont PATH] [--seed S] [--workers W] [--max-seconds SEC] [--collections a,b]
        [--works ID,ID]

Every rendered variant of a work is a `<id>.flac` (48 kHz stereo PCM_16), `<id>.txt` (caption),
`<id>.json` (the caption's facts as fields, see `Sample`) and `<id>.mid` (exactly what was
rendered) under `OUT/{train,valid,test}/`; `OUT/metadata.jsonl` indexes every sample in OUT,
`OUT/failures.jsonl` lists the works this run skipped and why, `OUT/render_config.json` the
settings (a re-run with the same settings resumes; different settings need a new OUT).

What counts as a work, and which split each work lands in (by work, 90/5/5, seed-independent):
`audiodit.corpora.music21_works`.

Truthful captions: the instrument program, tempo, transposition and panning are written into the
MIDI file by this module, so they are facts about the audio, not guesses. The key is music21's
key analysis (`analyze('key')`, Aarden-Essen key profiles) of exactly the notes in the rendered
MIDI file: transposed, with repeats expanded (music21's MIDI export does that) and cut at
`--max-seconds`. Its correlation is kept as `key_correlation` (low = ambiguous key). BPM counts
beats of the first time signature's beat unit (quarter in 4/4, dotted quarter in 6/8, half in
2/2 and 4/1; see `counted_beat`); `quarter_bpm` gives the same tempo in quarter notes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from audiodit.audio import load_audio, normalize_audio, save_audio, trim_trailing_silence
from audiodit.corpora.builder import claim_output, run_tasks, write_index
from audiodit.corpora.music21_midi import (
    SAMPLE_RATE,
    TONIC_NAMES,
    analyse_key,
    check_fluidsynth,
    render_midi,
    write_midi,
)
from audiodit.corpora.music21_works import (
    COLLECTIONS,
    Work,
    balanced_order,
    describe_form,
    list_works,
    sample_id,
    split_of,
)

DEFAULT_SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # Debian fluid-soundfont-gm

# General MIDI families (programs are 0-based): caption phrase, program per part (cycled).
INSTRUMENTS = {
    "piano": ("piano", (0,)),
    "organ": ("church organ", (19,)),
    "harpsichord": ("harpsichord", (6,)),
    "strings": ("string ensemble", (48,)),
    "choir": ("choir", (52,)),
    "flute": ("flute", (73,)),
    "clarinet": ("clarinet", (71,)),
    "brass": ("brass ensemble", (61,)),
    "guitar": ("nylon-string guitar", (24,)),
    "violin": ("violin", (40,)),
    "harp": ("harp", (46,)),
    "accordion": ("accordion", (21,)),
    "woodwinds": ("woodwind ensemble", (73, 68, 71, 70)),  # flute, oboe, clarinet, bassoon
}
MIN_PARTS = {"woodwinds": 2}  # a "woodwind ensemble" of one line would be a solo flute
PLURALS = {"flute": "flutes", "clarinet": "clarinets", "violin": "violins", "harp": "harps",
           "accordion": "accordions", "nylon-string guitar": "nylon-string guitars"}  # one per part
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

BEAT_UNITS = {0.5: "eighth", 0.75: "dotted eighth", 1.0: "quarter", 1.5: "dotted quarter",
              2.0: "half", 3.0: "dotted half", 4.0: "whole"}


@dataclass
class Sample:
    """Everything a caption states, as fields (written to `<id>.json`)."""

    id: str
    work_id: str
    variant: int
    split: str
    caption: str
    composer: str | None
    form: str
    title: str | None
    key: str  # e.g. "F# minor"
    tonic: str  # e.g. "F#"
    tonic_pitch_class: int  # 0 = C
    mode: str  # "major" | "minor"
    key_correlation: float  # correlation of the notes with the key's profile (confidence)
    bpm: int  # beats per minute, beat = `beat_unit`
    beat_unit: str
    quarter_bpm: float
    meter: str | None  # first time signature, e.g. "3/4"
    meter_changes: bool
    instrument: str  # caption phrase
    instrument_family: str  # key of INSTRUMENTS
    program: int  # GM program (0-based) of the first part
    programs: list[int]  # per part
    transpose: int  # semitones applied to every note
    pan: list[int]  # MIDI CC10 per part (0 left, 64 centre, 127 right)
    stereo: str
    num_parts: int
    repeats_expanded: bool  # False: the score's repeat signs were inconsistent, every bar plays once
    duration_s: float
    sample_rate: int
    soundfont: str


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------


def parse_work(work: Work):
    """The work as a music21 Score, cleaned of what breaks music21's own MIDI export.

    Two repairs, each seen in the corpus: parts without notes are dropped (a part without
    measures makes repeat expansion fail), and a time or key signature object shared by several
    measures (some ABC tunes) is copied, as the MIDI conductor track cannot hold one object twice.
    """
    from music21 import converter, key, meter, stream

    if work.number is not None:
        parsed = converter.parse(work.path, number=work.number)
    else:
        parsed = converter.parse(work.path)
    if isinstance(parsed, stream.Opus):
        parsed = parsed.mergeScores() if work.merge_voices else parsed.scores[0]
    for part in list(parsed.parts):
        if not part.recurse().notes.first():
            parsed.remove(part)
    if not parsed.recurse().notes.first():
        raise ValueError("score has no notes")
    if work.abc_voices and len(parsed.parts) != work.abc_voices:  # music21 stacks each line as a part
        raise ValueError(f"music21 parsed {len(parsed.parts)} parts from an ABC tune with {work.abc_voices} voices")
    seen = set()
    for container in [parsed, *parsed.recurse().getElementsByClass(stream.Stream)]:
        for signature in list(container.getElementsByClass((meter.TimeSignature, key.KeySignature))):
            if id(signature) in seen:
                container.replace(signature, copy.deepcopy(signature))
            seen.add(id(signature))
    return parsed


# ---------------------------------------------------------------------------------------------
# Variants: instrument, tempo, transposition, stereo placement (seeded per work and variant)
# ---------------------------------------------------------------------------------------------


def counted_beat(time_signature) -> float:
    """Quarter notes per counted beat: the metre's beat (music21), but never longer than a half.

    4/1 and 2/1 (Palestrina, some folk songs) are counted in halves and 6/4 or 9/4 in quarters, as
    a listener or a beat tracker would, instead of 35 whole notes a minute. No metre: quarters.
    """
    if time_signature is None:
        return 1.0
    beat = float(time_signature.beatDuration.quarterLength)
    if beat > 2.0:
        return 2.0 if beat % 2.0 == 0 else 1.0
    return beat


def _rng(seed: int, work_id: str, variant: int) -> np.random.Generator:
    work_hash = int.from_bytes(hashlib.sha256(work_id.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, work_hash, variant])


def choose_variant(rng: np.random.Generator, num_parts: int, beat_quarters: float) -> dict:
    families = [name for name in INSTRUMENTS if num_parts >= MIN_PARTS.get(name, 1)]
    family = families[rng.integers(len(families))]
    phrase, programs = INSTRUMENTS[family]
    if num_parts > 1 and phrase in PLURALS:  # "four violins": one instrument per part
        count = NUMBER_WORDS[num_parts] if num_parts < len(NUMBER_WORDS) else str(num_parts)
        phrase = f"{count} {PLURALS[phrase]}"
    # Tempo range: 60-140 quarter notes a minute, expressed in the metre's beat unit.
    low, high = max(30, round(60 / beat_quarters)), min(240, round(140 / beat_quarters))
    bpm = int(rng.integers(low, high + 1))
    transpose = int(rng.integers(-5, 7))  # every key equally likely, within a tritone of the score
    if num_parts == 1:
        placements = [("centred", [64]), ("placed left of centre", [40]), ("placed right of centre", [88])]
        stereo, pan = placements[rng.integers(3)]
    else:
        placements = [("centred", (64, 64)), ("narrow stereo", (44, 84)), ("wide stereo", (16, 112))]
        stereo, (left, right) = placements[rng.integers(3)]
        pan = [round(left + (right - left) * i / (num_parts - 1)) for i in range(num_parts)]  # top voice left
    return {
        "instrument_family": family, "instrument": phrase, "bpm": bpm, "transpose": transpose,
        "stereo": stereo, "pan": pan, "programs": [programs[i % len(programs)] for i in range(num_parts)],
    }


def make_caption(sample: Sample) -> str:
    words = " ".join(filter(None, [sample.composer, sample.form]))
    article = "An" if words[0].lower() in "aeiou" else "A"
    metre = "" if sample.meter is None else ", changing metre" if sample.meter_changes else f", {sample.meter}"
    return (f"{article} {words} in {sample.key} for {sample.instrument}, "
            f"{sample.bpm} BPM{metre}, {sample.stereo}.")


# ---------------------------------------------------------------------------------------------
# One work -> its samples
# ---------------------------------------------------------------------------------------------


def render_work(work: Work, out_dir: Path, soundfont: str, seed: int, variants: int,
                max_seconds: float) -> tuple[list[dict], dict | None]:
    """Render every variant of `work`; returns (sample records, failure record or None)."""
    from music21 import midi, tempo

    split = split_of(work.work_id)
    ids = [sample_id(work.work_id, variant) for variant in range(variants)]
    done = [out_dir / split / f"{sid}.json" for sid in ids]
    if all(path.exists() for path in done):  # resumed run
        return [json.loads(path.read_text()) for path in done], None
    # A resumed run renders only the missing variants; every variant's choices are still drawn
    # (each from its own seeded stream), so a variant's audio does not depend on which ran before.
    stage = "parse"
    try:
        score = parse_work(work)
        title = score.metadata.title if score.metadata and score.metadata.title else None
        first_signature = score.recurse().getElementsByClass("TimeSignature").first()
        beat_quarters = counted_beat(first_signature)
        num_parts = len(score.parts) or 1
        choices = [choose_variant(_rng(seed, work.work_id, variant), num_parts, beat_quarters)
                   for variant in range(variants)]
        score = _truncate(score, max(max_seconds * c["bpm"] * beat_quarters / 60 for c in choices))
        signatures = {s.ratioString for s in score.recurse().getElementsByClass("TimeSignature")}
        for mark in list(score.recurse().getElementsByClass(tempo.TempoIndication)):
            mark.activeSite.remove(mark)  # we set one tempo for the whole piece in the MIDI file
        stage = "export"
        try:
            midi_bytes, repeats_expanded = midi.translate.streamToMidiFile(score).writestr(), True
        except Exception:  # music21 could not expand the repeat signs: play every bar once instead
            _remove_repeats(score)
            midi_bytes, repeats_expanded = midi.translate.streamToMidiFile(score).writestr(), False
        records = []
        for (variant, sid), choice in zip(enumerate(ids), choices):
            if done[variant].exists():
                records.append(json.loads(done[variant].read_text()))
                continue
            stage = f"variant {variant}"
            quarter_bpm = choice["bpm"] * beat_quarters
            with tempfile.TemporaryDirectory(prefix="m21render-") as scratch:
                midi_path, wav_path = Path(scratch) / "work.mid", Path(scratch) / "work.wav"
                truncated, seconds = write_midi(midi_bytes, midi_path, choice["programs"], choice["pan"],
                                                choice["transpose"], quarter_bpm, max_seconds)
                tonic, mode, correlation = analyse_key(midi_path)
                stage = f"render variant {variant}"
                render_midi(midi_path, wav_path, soundfont, timeout=120 + 2 * seconds)
                audio = load_audio(wav_path, SAMPLE_RATE).numpy()  # (2, S)
                audio = trim_trailing_silence(audio, SAMPLE_RATE, threshold_db=-60.0, keep=0.5)
                if np.abs(audio).max() < 1e-4:
                    raise RuntimeError("rendered audio is silent")
                if truncated:  # the cut released every note at once: fade the release tail out
                    audio = audio[:, : round((max_seconds + 0.5) * SAMPLE_RATE)].copy()
                    fade = min(audio.shape[1], SAMPLE_RATE // 2)
                    audio[:, -fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
                audio = normalize_audio(audio, "peak", -1.0)
                sample = Sample(
                    id=sid, work_id=work.work_id, variant=variant, split=split, caption="",
                    composer=COLLECTIONS.get(work.collection, (None, ""))[0], form=describe_form(work),
                    title=title, key=f"{tonic} {mode}", tonic=tonic,
                    tonic_pitch_class=TONIC_NAMES[mode].index(tonic),
                    mode=mode, key_correlation=round(correlation, 4), bpm=choice["bpm"],
                    beat_unit=BEAT_UNITS.get(beat_quarters, f"{beat_quarters} quarters"),
                    quarter_bpm=quarter_bpm, meter=first_signature.ratioString if first_signature else None,
                    meter_changes=len(signatures) > 1,
                    instrument=choice["instrument"], instrument_family=choice["instrument_family"],
                    program=choice["programs"][0], programs=choice["programs"], transpose=choice["transpose"],
                    pan=choice["pan"], stereo=choice["stereo"], num_parts=num_parts,
                    repeats_expanded=repeats_expanded,
                    duration_s=round(audio.shape[1] / SAMPLE_RATE, 3), sample_rate=SAMPLE_RATE,
                    soundfont=Path(soundfont).name,
                )
                sample.caption = make_caption(sample)
                target = out_dir / split
                save_audio(target / f"{sid}.flac", audio, SAMPLE_RATE, "PCM_16", overwrite=True)
                shutil.copyfile(midi_path, target / f"{sid}.mid")
                (target / f"{sid}.txt").write_text(sample.caption + "\n")
                # The JSON goes last: its presence marks the sample as complete for resumed runs.
                (target / f"{sid}.json").write_text(json.dumps(asdict(sample), indent=1) + "\n")
                records.append(asdict(sample))
        return records, None
    except Exception as error:  # one bad work (parse, export, render, audio) must not stop the corpus
        return [], {"work_id": work.work_id, "path": work.path, "stage": stage,
                    "error": f"{type(error).__name__}: {error}"[:1000]}


def _truncate(score, quarters: float):
    """The measures of `score` that start before `quarters` (all of it when shorter).

    Saves parsing-to-MIDI work on long scores that --max-seconds cuts anyway. Repeats only jump
    back, so the first `quarters` of the expanded music lie in these measures.
    """
    measures = list(score.parts[0].getElementsByClass("Measure")) if score.parts else []
    if not measures or score.highestTime <= quarters:
        return score
    keep = sum(1 for measure in measures if measure.offset < quarters)
    return score.measures(0, max(keep, 1) - 1, indicesNotNumbers=True)


def _remove_repeats(score) -> None:
    """Turn repeat barlines into plain ones and drop repeat expressions and volta brackets."""
    from music21 import bar, repeat, spanner

    for measure in score.recurse().getElementsByClass("Measure"):
        if isinstance(measure.leftBarline, bar.Repeat):
            measure.leftBarline = None
        if isinstance(measure.rightBarline, bar.Repeat):
            measure.rightBarline = bar.Barline("regular")
    marks = (repeat.RepeatExpression, spanner.RepeatBracket, bar.Repeat)  # bar.Repeat: outside measures
    for mark in list(score.recurse().getElementsByClass(marks)):
        if mark.activeSite is not None and mark in mark.activeSite:
            mark.activeSite.remove(mark)


def _render_task(arguments):
    return render_work(*arguments)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def render_corpus(out_dir, *, limit: int | None = None, works: list[str] | None = None,
                  collections: list[str] | None = None, soundfont: str = DEFAULT_SOUNDFONT, seed: int = 0,
                  variants: int = 1, workers: int = 1, max_seconds: float = 120.0,
                  verbose: bool = True) -> dict:
    """Render works to `out_dir`; returns a summary dict. See the module docstring for the layout.

    `works` selects work ids explicitly (an unknown id is reported as a failure); otherwise the
    corpus (optionally only `collections`) in `balanced_order`, truncated to `limit`.
    """
    check_fluidsynth(soundfont)
    out_dir = claim_output(out_dir, {"seed": seed, "variants": variants, "max_seconds": max_seconds,
                                     "soundfont": Path(soundfont).name, "sample_rate": SAMPLE_RATE})

    failures = []
    if works:
        known = {work.work_id: work for work in list_works()}
        selected = [known[work_id] for work_id in works if work_id in known]
        failures += [{"work_id": work_id, "path": None, "stage": "select",
                      "error": "no such work in the music21 corpus"} for work_id in works if work_id not in known]
    else:
        selected = balanced_order(list_works(collections), seed)[:limit]

    started = time.perf_counter()
    tasks = [(work, out_dir, soundfont, seed, variants, max_seconds) for work in selected]
    results = run_tasks(_render_task, tasks, workers)
    wall = time.perf_counter() - started
    records = [record for result, _ in results for record in result]
    failures += [failure for _, failure in results if failure]
    if verbose:
        for failure in failures:
            print(f"FAILED {failure['work_id']} ({failure['stage']}): {failure['error']}", file=sys.stderr)

    index = write_index(out_dir, failures)
    audio_seconds = sum(record["duration_s"] for record in records)
    summary = {"works": len(works) if works else len(selected),
               "samples": len(records), "failed": len(failures), "audio_s": round(audio_seconds, 1),
               "wall_s": round(wall, 1), "audio_s_per_wall_s": round(audio_seconds / max(wall, 1e-9), 2),
               "indexed": len(index)}
    if verbose:
        print(json.dumps(summary))
    return summary


def _comma_list(text: str | None) -> list[str] | None:
    return [item.strip() for item in text.split(",") if item.strip()] if text else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="first N works of the balanced order")
    parser.add_argument("--works", default=None, help="comma-separated work ids (e.g. bach/bwv66.6)")
    parser.add_argument("--collections", default=None, help="corpus folders, e.g. bach,palestrina")
    parser.add_argument("--soundfont", default=DEFAULT_SOUNDFONT, help="SoundFont (.sf2) file")
    parser.add_argument("--seed", type=int, default=0, help="seed for work order and variant choices")
    parser.add_argument("--variants", type=int, default=1, help="renders per work")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="cut longer works (fade-out)")
    parser.add_argument("--list", action="store_true", help="print the work ids in render order and exit")
    args = parser.parse_args(argv)
    if args.list:
        for work in balanced_order(list_works(_comma_list(args.collections)), args.seed)[: args.limit]:
            print(work.work_id, split_of(work.work_id))
        return 0
    summary = render_corpus(
        args.out, limit=args.limit, works=_comma_list(args.works),
        collections=_comma_list(args.collections), soundfont=args.soundfont,
        seed=args.seed, variants=args.variants, workers=args.workers, max_seconds=args.max_seconds,
    )
    return 0 if summary["samples"] or not summary["failed"] else 1


if __name__ == "__main__":
    sys.exit(main())
