"""Speech: sentences this builder writes, read aloud by Debian's speech synthesisers, as captioned
stereo 48 kHz clips.

    python -m audiodit.corpora.speech --out data/speech --count 600 [--seed 0] [--workers 2]
        [--max-seconds 15] [--voices flite:slt,espeak:en-us+f2,...] [--list]

No recording of a person speaking ships in a package this project may train on, and a sound
domain without any speech answers "a man speaking" with whatever it knows (a drone, a drum loop).
Debian's `flite` (CMU Flite: four English voices) and `espeak-ng` (formant voices with male and
female variants) speak offline; their voices are synthetic and the captions say so.

Clip `i` (seeded by --seed and its id, so resumed or parallel runs agree) takes voice `i mod
len(voices)`, a kind of talk (a weather report, a station announcement, a story, directions, a
list of numbers...; TALKS), sentences of that kind drawn from word lists until it lasts a drawn
6 s to --max-seconds, a speaking rate (slow, ordinary, fast: the caption says slow or fast), pauses
of PAUSE_SECONDS between sentences (each trimmed of the synthesiser's own silence), a stereo
placement and a peak level. The caption states what was made:

- "A man with an American accent speaking English, reading a weather report, in a synthetic
  voice; centred."
- "A woman's synthetic voice making a station announcement, slowly, placed left of centre."
- "Speech: a man talking (a story), synthetic voice."

Layout and resuming as every builder (`audiodit.corpora.builder`): `OUT/{train,valid,test}/<id>.flac`,
`.txt`, `.json` (the words spoken are in `text`), `metadata.jsonl`, `failures.jsonl`,
`render_config.json`. Splits 90/5/5 by a hash of the clip id. Licence: the words are this
project's; the synthesisers are free software (Flite BSD-style, eSpeak NG GPL-3+) and what they
say is not theirs; `license` records both.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audiodit.audio import load_audio, normalize_audio, save_audio
from audiodit.configuration import OneLineParser
from audiodit.corpora.builder import claim_output, finish_build, run_main, run_tasks
from audiodit.corpora.music21_works import split_of
from audiodit.corpora.sound_library import PLACEMENTS, place_in_stereo, trim_silence
from audiodit.corpora.sound_packages import clip_rng

SAMPLE_RATE = 48000
MIN_SECONDS = 6.0
# Silence between sentences; each synthesised sentence is trimmed of its own leading and trailing
# silence first. Format 1 kept the synthesisers' silence and drew 0.25-0.8 s, so 17 % of clips had
# a pause of 1 s or more, which model v2 phase 3 carried into music (docs/evaluation.md).
PAUSE_SECONDS = (0.2, 0.6)
CLIP_FORMAT = 2  # render_config.json
RATES = (("slowly", 0.8), ("", 1.0), ("", 1.0), ("quickly", 1.25))  # (caption word, speed factor)
LICENSE = "words written by audiodit; voice synthesised by {program} ({program_license})"


@dataclass(frozen=True)
class Voice:
    """One synthetic voice: the program, its voice name, and what a listener hears."""

    program: str  # "flite" or "espeak"
    name: str  # flite -voice NAME / espeak-ng -v NAME
    gender: str  # "man" or "woman"
    accent: str  # "American", "British", "Scottish"

    @property
    def key(self) -> str:
        return f"{self.program}:{self.name}"


VOICES = {voice.key: voice for voice in [
    Voice("flite", "kal16", "man", "American"), Voice("flite", "rms", "man", "American"),
    Voice("flite", "awb", "man", "Scottish"), Voice("flite", "slt", "woman", "American"),
    Voice("espeak", "en-us+m3", "man", "American"), Voice("espeak", "en-us+f2", "woman", "American"),
    Voice("espeak", "en-gb+m1", "man", "British"), Voice("espeak", "en-gb+f4", "woman", "British"),
]}
PROGRAMS = {"flite": ("flite", "BSD-style CMU Flite licence"), "espeak": ("espeak-ng", "GPL-3+")}

# Word lists for each kind of talk. A sentence is a template with {slots} filled from WORDS.
WORDS = {
    "city": ["Lisbon", "Glasgow", "Denver", "Osaka", "Nairobi", "Toronto", "Bergen", "Adelaide", "Porto",
             "Leeds", "Austin", "Dublin", "Quebec", "Seville", "Utrecht", "Boston"],
    "number": ["two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"],
    "time": ["half past six", "a quarter to eight", "nine o'clock", "ten fifteen", "noon", "twenty past four",
             "five thirty", "midnight"],
    "weather": ["light rain", "heavy showers", "bright sunshine", "thick fog", "strong winds", "scattered clouds",
                "snow on high ground", "a few thunderstorms"],
    "period": ["this morning", "this afternoon", "tonight", "tomorrow", "over the weekend", "later today"],
    "temp": ["twelve", "fifteen", "eighteen", "twenty one", "twenty four", "nine", "six", "thirty"],
    "person": ["the old fisherman", "my grandmother", "a young doctor", "the baker", "a tired traveller",
               "the captain", "a curious child", "the teacher"],
    "place": ["by the river", "in the market", "at the station", "on the hill", "in a small village",
              "near the harbour", "under the bridge", "in the garden"],
    "object": ["a wooden box", "an old letter", "a silver key", "a map", "a blue umbrella", "a broken clock",
               "a basket of apples", "a lantern"],
    "verb": ["found", "carried", "lost", "opened", "painted", "sold", "hid", "mended"],
    "street": ["the main street", "the second road on the left", "the old bridge", "the park",
               "the roundabout", "the church", "the library", "the car park"],
    "direction": ["turn left", "turn right", "go straight on", "cross the road", "keep walking"],
    "item": ["milk", "bread", "three eggs", "rice", "a bag of onions", "coffee", "tomatoes", "soap", "cheese",
             "two lemons"],
    "topic": ["the budget", "the new schedule", "the results", "our plans for next year", "the delivery",
              "the training", "the website", "the meeting room"],
}
TALKS = {
    "a weather report": [
        "Expect {weather} {period}, with temperatures around {temp} degrees.",
        "In {city}, {weather} will clear by {time}.",
        "There is a chance of {weather} {period}.",
        "Temperatures will fall to {temp} degrees {period}.",
    ],
    "a station announcement": [
        "The next train to {city} will depart from platform {number} at {time}.",
        "The service to {city} is delayed by {number} minutes.",
        "Please stand clear of the doors.",
        "This train will call at {city} and {city}.",
        "Passengers for {city}, please change at the next stop.",
    ],
    "a story": [
        "Long ago, {person} lived {place}.",
        "One day, {person} {verb} {object} {place}.",
        "Nobody knew why {person} {verb} {object}.",
        "At {time}, {person} came back {place}.",
        "And so {person} kept {object} for many years.",
    ],
    "directions": [
        "From here, {direction} at {street}.",
        "Walk for {number} minutes, then {direction}.",
        "You will see {street} on your left.",
        "After {street}, {direction} and keep going.",
    ],
    "a shopping list": [
        "We need {item}, {item} and {item}.",
        "Don't forget {item}.",
        "Could you also get {item}?",
        "That makes {number} things in all.",
    ],
    "a meeting update": [
        "Good morning, everyone.",
        "Today we will talk about {topic}.",
        "The report on {topic} is ready.",
        "We will meet again at {time} to discuss {topic}.",
        "Thank you all for coming.",
    ],
    "counting": [
        "{number}, {number}, {number}.",
        "Counting again: {number}, {number}.",
        "And {number}.",
    ],
}

DOING = {"a station announcement": "making a station announcement", "directions": "giving directions",
         "a story": "telling a story", "a meeting update": "giving a meeting update", "counting": "counting"}


def sentence(template: str, rng: np.random.Generator) -> str:
    """`template` with each {slot} filled by a word drawn from WORDS."""
    parts = template.split("{")
    out = [parts[0]]
    for part in parts[1:]:
        slot, rest = part.split("}", 1)
        options = WORDS[slot]
        out.append(options[int(rng.integers(len(options)))] + rest)
    text = "".join(out)
    return text[0].upper() + text[1:]


@dataclass(frozen=True)
class Clip:
    """One clip to make: everything drawn for it."""

    id: str
    split: str
    voice: Voice
    talk: str
    seconds: float  # target length
    rate_word: str
    rate: float
    placement: str
    pan: float
    peak_db: float
    pause_s: float
    sentences: tuple[str, ...]  # more than needed; rendering stops at `seconds`


def plan_clips(count: int, voices: list[Voice], seed: int, max_seconds: float) -> list[Clip]:
    """Clip i: voice i mod len(voices), the rest drawn from clip_rng(seed, id)."""
    clips = []
    talks = sorted(TALKS)
    for index in range(count):
        voice = voices[index % len(voices)]
        clip_id = f"speech-{index:05d}-{voice.program}-{voice.name.replace('+', '_')}"
        rng = clip_rng(seed, clip_id)
        talk = talks[int(rng.integers(len(talks)))]
        rate_word, rate = RATES[int(rng.integers(len(RATES)))]
        placement, pan = PLACEMENTS[int(rng.integers(len(PLACEMENTS)))]
        templates = TALKS[talk]
        sentences = tuple(sentence(templates[int(rng.integers(len(templates)))], rng) for _ in range(12))
        clips.append(Clip(clip_id, split_of(f"speech/{clip_id}"), voice, talk,
                          round(float(rng.uniform(MIN_SECONDS, max_seconds)), 2), rate_word, rate, placement, pan,
                          round(float(rng.uniform(-6.0, -1.0)), 1), round(float(rng.uniform(*PAUSE_SECONDS)), 2),
                          sentences))
    return clips


def synthesise(voice: Voice, text: str, rate: float, folder: Path) -> np.ndarray:
    """`text` spoken by `voice` at `rate` (1 = the voice's own), as (2, S) float32 at 48 kHz."""
    path = folder / "line.wav"
    if voice.program == "flite":
        command = ["flite", "-voice", voice.name, "--setf", f"duration_stretch={1 / rate:.3f}", "-t", text,
                   "-o", str(path)]
    else:
        command = ["espeak-ng", "-v", voice.name, "-s", str(round(165 * rate)), "-w", str(path), text]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not path.exists():
        raise RuntimeError(f"{command[0]} failed: {(result.stderr or result.stdout).strip()[:300]}")
    return load_audio(path, SAMPLE_RATE).numpy()


def make_caption(clip: Clip, rng: np.random.Generator) -> str:
    """One of three phrasings of the same facts (drawn by `rng`)."""
    voice = clip.voice
    person = "a man" if voice.gender == "man" else "a woman"
    article = "an" if voice.accent[0] in "AEIOU" else "a"
    rate = f", {clip.rate_word}" if clip.rate_word else ""
    doing = DOING.get(clip.talk, f"reading {clip.talk}")
    phrasings = [
        f"{person.capitalize()} with {article} {voice.accent} accent speaking English, {doing}, in a synthetic "
        f"voice{rate}; {clip.placement}.",
        f"{'A man' if voice.gender == 'man' else 'A woman'}'s synthetic voice {doing}{rate}, {clip.placement}.",
        f"Speech: {person} talking ({clip.talk}), synthetic voice{rate}.",
    ]
    return phrasings[int(rng.integers(len(phrasings)))]


def render_clip(clip: Clip, out_dir: Path, seed: int) -> tuple[dict | None, dict | None]:
    """Speak, place, caption and write one clip; returns (record, None) or (None, failure record)."""
    target = out_dir / clip.split
    done = target / f"{clip.id}.json"
    if done.exists():  # resumed run
        return json.loads(done.read_text()), None
    rng = clip_rng(seed, clip.id + "/render")
    try:
        pause = np.zeros((2, round(clip.pause_s * SAMPLE_RATE)), np.float32)
        pieces, spoken, length = [], [], 0
        with tempfile.TemporaryDirectory(prefix="audiodit-speech-") as folder:
            for text in clip.sentences:
                line = trim_silence(synthesise(clip.voice, text, clip.rate, Path(folder)))
                if spoken and (length + line.shape[1]) / SAMPLE_RATE > clip.seconds:
                    break
                pieces += [line, pause]
                spoken.append(text)
                length += line.shape[1] + pause.shape[1]
        audio = np.concatenate([np.zeros((2, pause.shape[1] // 2), np.float32)] + pieces, axis=1)
        audio = place_in_stereo(audio.mean(axis=0, keepdims=True), clip.pan)
        if np.abs(audio).max() < 1e-4:
            raise ValueError("the synthesiser returned silence")
        audio = normalize_audio(audio.astype(np.float32), "peak", clip.peak_db)
        caption = make_caption(clip, rng)
        program, program_license = PROGRAMS[clip.voice.program]
        record = {
            "id": clip.id, "split": clip.split, "caption": caption, "domain": "sound", "category": "speech",
            "voice": clip.voice.key, "gender": clip.voice.gender, "accent": clip.voice.accent, "talk": clip.talk,
            "text": " ".join(spoken), "rate": clip.rate, "stereo": clip.placement, "pan": clip.pan,
            "peak_db": clip.peak_db, "license": LICENSE.format(program=program, program_license=program_license),
            "duration_s": round(audio.shape[1] / SAMPLE_RATE, 3), "sample_rate": SAMPLE_RATE,
        }
        target.mkdir(parents=True, exist_ok=True)
        save_audio(target / f"{clip.id}.flac", audio, SAMPLE_RATE, "PCM_16", overwrite=True)
        (target / f"{clip.id}.txt").write_text(caption + "\n")
        # The JSON goes last: its presence marks the clip as complete for resumed runs.
        done.write_text(json.dumps(record, indent=1) + "\n")
        return record, None
    except Exception as error:  # one failed clip must not stop the rest
        return None, {"id": clip.id, "voice": clip.voice.key, "error": f"{type(error).__name__}: {error}"[:1000]}


def _render_task(arguments):
    return render_clip(*arguments)


def check_voices(keys: list[str]) -> list[Voice]:
    """VOICES entries for `keys`. Raises ValueError for an unknown voice or a missing program."""
    unknown = [key for key in keys if key not in VOICES]
    if unknown:
        raise ValueError(f"unknown voice(s) {', '.join(unknown)}; known: {', '.join(VOICES)}")
    voices = [VOICES[key] for key in keys]
    missing = sorted({PROGRAMS[v.program][0] for v in voices if shutil.which(PROGRAMS[v.program][0]) is None})
    if missing:
        raise ValueError(f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})")
    return voices


def build_speech(out_dir, count: int, voices: list[Voice], *, seed: int = 0, workers: int = 1,
                 max_seconds: float = 15.0, verbose: bool = True) -> dict:
    """Make `count` clips under `out_dir`; returns a summary. Layout: module docstring.

    Raises:
        ValueError: bad settings, or `out_dir` was built with other settings.
    """
    if count < 1 or not voices:
        raise ValueError("--count must be >= 1 and at least one voice given")
    if max_seconds < MIN_SECONDS:
        raise ValueError(f"--max-seconds must be at least {MIN_SECONDS}, got {max_seconds}")
    out_dir = claim_output(out_dir, {"seed": seed, "max_seconds": max_seconds, "sample_rate": SAMPLE_RATE,
                                     "voices": [voice.key for voice in voices], "clip_format": CLIP_FORMAT})
    clips = plan_clips(count, voices, seed, max_seconds)
    started = time.perf_counter()
    results = run_tasks(_render_task, [(clip, out_dir, seed) for clip in clips], workers, chunksize=4)
    return finish_build(out_dir, results, started, verbose, lambda records: {
        "voices": {key: sum(r["voice"] == key for r in records) for key in (v.key for v in voices)}})


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--count", type=int, default=600, help="clips to make")
    parser.add_argument("--voices", default=",".join(VOICES), help="comma-separated program:voice keys")
    parser.add_argument("--seed", type=int, default=0, help="seed for every per-clip choice")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="longest clip")
    parser.add_argument("--list", action="store_true", help="print the clips to make and exit")
    args = parser.parse_args(argv)

    def work():
        if args.workers < 1:
            raise ValueError("--workers must be >= 1")
        voices = check_voices([key.strip() for key in args.voices.split(",") if key.strip()])
        if args.list:
            for clip in plan_clips(args.count, voices, args.seed, args.max_seconds):
                print(f"{clip.id}\t{clip.split}\t{clip.talk}\t{clip.seconds}\t{clip.sentences[0]}")
            return None
        return build_speech(args.out, args.count, voices, seed=args.seed, workers=args.workers,
                            max_seconds=args.max_seconds)

    return run_main(work)


if __name__ == "__main__":
    sys.exit(main())
