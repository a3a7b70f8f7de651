"""Sounds, not songs: drum hits, drum loops and patterns, instrument one-shots, sound effects and
ambiences from Debian packages, as captioned stereo 48 kHz clips with a per-file licence manifest.

    python -m audiodit.corpora.sound_library --out data/sounds [--packages hydrogen-drumkits,scratch,...]
        [--seed 0] [--workers 2] [--max-seconds 15] [--patterns-per-kit 6] [--list]

Layout (as audiodit.corpora.music21_corpus): every clip is `<id>.flac` (48 kHz stereo PCM_16),
`<id>.txt` (caption) and `<id>.json` (the caption's facts as fields) under `OUT/{train,valid,test}/`;
`OUT/metadata.jsonl` indexes every clip in OUT, `OUT/failures.jsonl` lists what this run could not
build, `OUT/render_config.json` the settings (same settings resume, skipping finished clips; other
settings need a new OUT). `OUT/licenses.jsonl` has one row per audio file of each package (its
licence and copyright from the package's DEP-5 copyright file, used or not and why) and
`OUT/ATTRIBUTION.md` credits every used file.

Which files: the folders each package's PACKAGES entry names (effects, not music; single-cycle
waveforms and spoken lines left out, with the reason in licenses.jsonl), under a redistributable
licence. RESERVED_PACKAGES are held out for evaluation and refused. Captions come from names
(`audiodit.corpora.sound_names`): only what a name says is stated.

What a clip is (seeded per clip by --seed and its id, so resumed or parallel runs agree):
  * a one-shot (under ONE_SHOT_SECONDS after trimming silence) is kept as it is (at least
    MIN_CLIP_SECONDS), or, for a drum hit, half the time repeated at a drawn tempo; the caption says
    which ("a snare drum hit, repeated at 90 BPM (6 hits)", "a dog sound"). No silence is appended:
    the training loss ignores frames past a clip's end, and seconds of appended silence taught
    model v2 phase 3 to fall silent inside music (docs/evaluation.md);
  * a loop is tiled to about LOOP_TARGET_SECONDS ("played 4 times in a row"), with the BPM its
    name states ("loop_120bpm"), if any;
  * anything longer is kept whole, cut at --max-seconds with a short fade;
  * per Hydrogen kit, --patterns-per-kit drum patterns (`audiodit.corpora.hydrogen_kits.PATTERNS`)
    played on the kit's kick, snare and hi-hat samples at a drawn tempo.
A mono source is placed centre, left or right of centre (said in the caption); every clip's peak
is drawn between -6 and -1 dBFS. Which files, licences and splits: `audiodit.corpora.sound_packages`.
--patterns-per-kit is a selection, not a setting: pattern k is the same whatever the count.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from audiodit.audio import load_audio, normalize_audio, save_audio, trim_trailing_silence
from audiodit.corpora import hydrogen_kits
from audiodit.configuration import OneLineParser
from audiodit.corpora.builder import claim_output, run_main, run_tasks, write_attribution, write_index
from audiodit.corpora.sound_names import Description
from audiodit.corpora.sound_packages import (
    PACKAGES,
    RESERVED_PACKAGES,
    Job,
    Package,
    check_packages,
    clip_rng,
    list_package,
)

SAMPLE_RATE = 48000
ONE_SHOT_SECONDS = 2.0  # shorter sounds are kept alone or repeated; the training crops are up to 10 s
MIN_CLIP_SECONDS = 0.5  # a shorter one-shot gets this much (its own ring-out, then silence)
CLIP_FORMAT = 2  # render_config.json: 2 = one-shots without appended silence (1 padded them to 3-5 s)
LOOP_TARGET_SECONDS = 8.0  # loops are tiled to at least this (within --max-seconds)
REPEAT_BPM = (70, 160)  # tempo range of repeated drum hits
LEAD_SILENCE_DB = -50.0  # a one-shot starts where it first reaches this (relative to its peak)
PATTERN_ONSET_DB = -30.0  # a pattern's sample starts here: some kits' samples lead with up to 70 ms of silence
FADE_SECONDS = 0.5  # fade-out where --max-seconds cuts a sound


def bpm_from_name(name: str) -> int | None:
    """The tempo a file name states ("loop_120bpm", "beat-95-BPM"), else None."""
    found = re.search(r"(?<!\d)(\d{2,3})[ _-]?bpm", name.lower())
    return int(found.group(1)) if found and 40 <= int(found.group(1)) <= 300 else None


# ---------------------------------------------------------------------------------------------
# Making a clip
# ---------------------------------------------------------------------------------------------


def trim_silence(audio: np.ndarray, sample_rate: int = SAMPLE_RATE, lead_db: float = LEAD_SILENCE_DB) -> np.ndarray:
    """`audio` (2, S) from where it first reaches `lead_db` below its peak, without its silent tail."""
    peak = float(np.abs(audio).max())
    if peak == 0.0:
        return audio
    loud = np.flatnonzero(np.abs(audio).max(axis=0) >= peak * 10 ** (lead_db / 20))
    audio = audio[:, loud[0]:]
    return trim_trailing_silence(audio / peak, sample_rate, threshold_db=-60.0, keep=0.05) * peak


def place_copies(sound: np.ndarray, onsets: list[float], total_seconds: float,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Copies of `sound` (2, S) summed at `onsets` (seconds) into `total_seconds` of silence."""
    out = np.zeros((sound.shape[0], round(total_seconds * sample_rate)), dtype=np.float32)
    for onset in onsets:
        start = round(onset * sample_rate)
        length = min(sound.shape[1], out.shape[1] - start)
        out[:, start:start + length] += sound[:, :length]
    return out


def cut_with_fade(audio: np.ndarray, samples: int, fade_seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The first `samples` of `audio` (2, S), faded out linearly over their last `fade_seconds` (a copy)."""
    out = audio[:, :samples].copy()
    fade = min(out.shape[1], round(fade_seconds * sample_rate))
    out[:, out.shape[1] - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return out


def make_clip(sound: np.ndarray, description: Description, loop: bool, rng: np.random.Generator,
              max_seconds: float, sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, dict]:
    """The clip made from one source sound (2, S), and what was done (`treatment` and its numbers).

    treatment: "single" (the sound alone), "repeated" (drum hit at `bpm`, `hits` times),
    "tiled" (loop played `repeats` times), "cut" (longer than `max_seconds`) or "whole".
    """
    if loop:
        seconds = sound.shape[1] / sample_rate
        repeats = max(1, min(math.ceil(LOOP_TARGET_SECONDS / seconds), math.floor(max_seconds / seconds)))
        audio = np.tile(sound, (1, repeats))
        made = {"treatment": "tiled", "repeats": repeats}
    else:
        sound = trim_silence(sound, sample_rate)
        seconds = sound.shape[1] / sample_rate
        if seconds < ONE_SHOT_SECONDS and description.category == "drum hit" and rng.random() < 0.5:
            bpm = int(rng.integers(REPEAT_BPM[0], REPEAT_BPM[1] + 1))
            hits = int(rng.integers(4, 9))
            onsets = [hit * 60.0 / bpm for hit in range(hits)]
            audio = place_copies(sound, onsets, max(3.0, onsets[-1] + seconds + 0.25), sample_rate)
            return audio, {"treatment": "repeated", "bpm": bpm, "hits": hits, "source_s": round(seconds, 3)}
        if seconds < ONE_SHOT_SECONDS:
            total = max(seconds, MIN_CLIP_SECONDS)
            return place_copies(sound, [0.0], total, sample_rate), {"treatment": "single",
                                                                    "source_s": round(seconds, 3)}
        audio, made = sound, {"treatment": "whole"}
    if audio.shape[1] > max_seconds * sample_rate:
        audio = cut_with_fade(audio, round(max_seconds * sample_rate), FADE_SECONDS, sample_rate)
        if made["treatment"] == "whole":
            made["treatment"] = "cut"
    made["source_s"] = round(seconds, 3)
    return audio, made


def render_pattern(pattern: dict, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A drum pattern job's audio (2, S): every hit on its grid, then up to 1 s of ring-out.

    Each sample starts at its attack (PATTERN_ONSET_DB), so hits sound on the grid the caption states.
    """
    cache = {}

    def load(path):
        if path not in cache:
            cache[path] = trim_silence(load_audio(path, sample_rate).numpy(), sample_rate, PATTERN_ONSET_DB)
        return cache[path]

    hits = hydrogen_kits.pattern_hits(pattern["style"], pattern["bpm"], pattern["bars"])
    seconds = pattern["bars"] * 4 * 60.0 / pattern["bpm"] + 1.0
    mix = hydrogen_kits.mix_hits(hits, pattern["players"], load, sample_rate, seconds)
    return trim_trailing_silence(mix, sample_rate, threshold_db=-60.0, keep=0.1)


def make_caption(job: Job, made: dict, stereo: str | None) -> str:
    phrase = " ".join(filter(None, [job.description.phrase, job.qualifier]))
    bpm = made.get("bpm") if made["treatment"] == "tiled" else None
    parts = [phrase + (f" at {bpm} BPM" if bpm else "")]
    if made["treatment"] == "repeated":
        parts.append(f"repeated at {made['bpm']} BPM ({made['hits']} hits)")
    elif made["treatment"] == "tiled" and made["repeats"] > 1:
        parts.append(f"played {made['repeats']} times in a row")
    elif made["treatment"] == "pattern":
        parts.append(f"{made['bars']} bars")
    if stereo:
        parts.append(stereo)
    caption = ", ".join(parts) + "."
    return caption[0].upper() + caption[1:]


PLACEMENTS = (("centred", 0.0), ("placed left of centre", -0.5), ("placed right of centre", 0.5))


def place_in_stereo(audio: np.ndarray, pan: float) -> np.ndarray:
    """A mono sound, (2, S) with equal channels or (1, S), panned to `pan` in [-1, 1] with constant
    power, unity gain at the centre: (2, S)."""
    angle = (pan + 1.0) * math.pi / 4
    return audio * (np.array([[math.cos(angle)], [math.sin(angle)]], dtype=np.float32) * math.sqrt(2))


def render_job(job: Job, out_dir: Path, seed: int, max_seconds: float) -> tuple[dict | None, dict | None]:
    """Make, caption and write one clip; returns (record, None) or (None, failure record)."""
    target = out_dir / job.split
    done = target / f"{job.id}.json"
    if done.exists():  # resumed run
        return json.loads(done.read_text()), None
    rng = clip_rng(seed, job.id)
    try:
        stereo, pan = None, None
        if job.pattern is not None:
            audio = render_pattern(job.pattern)
            made = {"treatment": "pattern", "bpm": job.pattern["bpm"], "bars": job.pattern["bars"]}
        else:
            sound = load_audio(job.sources[0], SAMPLE_RATE).numpy()  # (2, S)
            if np.abs(sound).max() < 1e-4:
                raise ValueError("the source is silent")
            bpm = bpm_from_name(Path(job.sources[0]).name)
            audio, made = make_clip(sound, job.description, job.loop, rng, max_seconds)
            if bpm and job.loop:
                made["bpm"] = bpm
            if np.abs(sound[0] - sound[1]).max() <= 1e-4 * np.abs(sound).max():  # mono: place it
                stereo, pan = PLACEMENTS[int(rng.integers(len(PLACEMENTS)))]
                audio = place_in_stereo(audio, pan)
        peak_db = round(float(rng.uniform(-6.0, -1.0)), 1)
        audio = normalize_audio(audio.astype(np.float32), "peak", peak_db)
        caption = make_caption(job, made, stereo)
        record = {
            "id": job.id, "split": job.split, "caption": caption, "domain": "sound",
            "category": job.description.category, "phrase": job.description.phrase,
            "named": job.description.matched, "source_package": job.package, "source_path": job.sources[0],
            "source_paths": list(job.sources), "license": job.license, "copyright": job.copyright,
            "bpm": made.get("bpm"), "treatment": made["treatment"], "hits": made.get("hits"),
            "repeats": made.get("repeats"), "source_s": made.get("source_s"), "stereo": stereo, "pan": pan,
            "peak_db": peak_db, "duration_s": round(audio.shape[1] / SAMPLE_RATE, 3), "sample_rate": SAMPLE_RATE,
        }
        if job.pattern is not None:
            record.update(style=job.pattern["style"], bars=job.pattern["bars"],
                          instruments=job.pattern["instruments"],
                          players={role: [instrument.name, pan]
                                   for role, (instrument, pan) in job.pattern["players"].items()})
        save_audio(target / f"{job.id}.flac", audio, SAMPLE_RATE, "PCM_16", overwrite=True)
        (target / f"{job.id}.txt").write_text(caption + "\n")
        # The JSON goes last: its presence marks the clip as complete for resumed runs.
        done.write_text(json.dumps(record, indent=1) + "\n")
        return record, None
    except Exception as error:  # one bad file must not stop the library
        return None, {"id": job.id, "package": job.package, "path": job.sources[0],
                      "error": f"{type(error).__name__}: {error}"[:1000]}


def _render_task(arguments):
    return render_job(*arguments)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def write_licences(out_dir: Path, rows: list[dict], records: dict[str, dict],
                    failures: dict[str, dict]) -> list[dict]:
    """OUT/licenses.jsonl (this run's packages replace their earlier rows) and OUT/ATTRIBUTION.md."""
    for row in rows:
        made = [clip for clip in row["clips"] if clip in records]
        row["used"] = bool(made)
        if row["reason"] == "used" and not made:
            errors = [failures[clip]["error"] for clip in row["clips"] if clip in failures]
            row["reason"] = f"failed: {errors[0]}" if errors else "not built"
    path = out_dir / "licenses.jsonl"
    packages = {row["package"] for row in rows}
    if path.exists():
        rows = rows + [row for row in map(json.loads, path.read_text().splitlines())
                       if row["package"] not in packages]
    rows.sort(key=lambda row: (row["package"], row["path"]))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))

    groups = defaultdict(list)
    for row in rows:
        if row["used"]:
            groups[(row["package"], row["license"], row["copyright"])].append(row["path"])
    write_attribution(out_dir, [
        "Clips in this folder are made from the files below (Debian packages, licence and copyright",
        "as each package's /usr/share/doc/<package>/copyright states them). Changes: decoded, resampled",
        "to 48 kHz stereo, silence trimmed, panned, level-normalised; one-shots kept alone (at least 0.5 s) or",
        "repeated at a tempo, loops repeated, long sounds cut with a fade-out, Hydrogen kit samples",
        "arranged into drum patterns. Captions were written from the file and folder names."], groups)
    return rows


def build_library(out_dir, packages: list[Package], *, seed: int = 0, workers: int = 1, max_seconds: float = 15.0,
                  patterns_per_kit: int = 6, verbose: bool = True) -> dict:
    """Make every clip of `packages` under `out_dir`; returns a summary. Layout: module docstring.

    Raises:
        ValueError: a reserved package, or `out_dir` was built with other settings.
    """
    for package in packages:
        if package.name in RESERVED_PACKAGES:
            raise ValueError(f"{package.name} is reserved for evaluation and must never be trained on")
    if max_seconds < ONE_SHOT_SECONDS:
        raise ValueError(f"--max-seconds must be at least {ONE_SHOT_SECONDS}, got {max_seconds}")
    out_dir = claim_output(out_dir, {"seed": seed, "max_seconds": max_seconds, "sample_rate": SAMPLE_RATE,
                                     "clip_format": CLIP_FORMAT})

    jobs, rows = [], []
    for package in packages:
        package_jobs, package_rows = list_package(package, seed, patterns_per_kit)
        jobs += package_jobs
        rows += package_rows
    started = time.perf_counter()
    tasks = [(job, out_dir, seed, max_seconds) for job in jobs]
    results = run_tasks(_render_task, tasks, workers, chunksize=4, maxtasksperchild=200)
    wall = time.perf_counter() - started
    records = {record["id"]: record for record, _ in results if record}
    failures = {failure["id"]: failure for _, failure in results if failure}
    if verbose:
        for failure in failures.values():
            print(f"FAILED {failure['id']}: {failure['error']}", file=sys.stderr)

    index = write_index(out_dir, failures.values())
    write_licences(out_dir, rows, records, failures)

    per_package = defaultdict(lambda: defaultdict(lambda: [0, 0.0]))
    for record in records.values():
        counts = per_package[record["source_package"]][record["category"]]
        counts[0] += 1
        counts[1] += record["duration_s"] / 60
    # Reasons grouped across files: instrument names in quotes are blanked out.
    excluded = Counter((row["package"], re.sub(r"'[^']*'", "'…'", row["reason"])) for row in rows if not row["used"])
    minutes = sum(record["duration_s"] for record in records.values()) / 60
    summary = {
        "clips": len(records), "failed": len(failures), "minutes": round(minutes, 1),
        "wall_s": round(wall, 1), "indexed": len(index),
        "packages": {package: {category: {"clips": n, "minutes": round(m, 1)}
                               for category, (n, m) in sorted(categories.items())}
                     for package, categories in sorted(per_package.items())},
        "excluded": {f"{package}: {reason}": n for (package, reason), n in sorted(excluded.items())},
    }
    if verbose:
        print(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--packages", default=None,
                        help=f"comma-separated Debian packages (default: those installed of {', '.join(PACKAGES)})")
    parser.add_argument("--seed", type=int, default=0, help="seed for every per-clip choice")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="cut longer sounds (fade-out)")
    parser.add_argument("--patterns-per-kit", type=int, default=6, help="drum patterns per Hydrogen kit")
    parser.add_argument("--list", action="store_true", help="print the clips to make and exit")
    args = parser.parse_args(argv)

    def work():
        if args.packages:
            packages = check_packages([name.strip() for name in args.packages.split(",") if name.strip()])
        else:
            packages = [package for package in PACKAGES.values() if Path(package.root).is_dir()]
            if not packages:
                raise ValueError(f"none of {', '.join(PACKAGES)} is installed")
        if args.workers < 1 or args.patterns_per_kit < 0:
            raise ValueError("--workers must be >= 1 and --patterns-per-kit >= 0")
        if args.list:
            for package in packages:
                for job in list_package(package, args.seed, args.patterns_per_kit)[0]:
                    print(f"{job.id}\t{job.split}\t{job.description.category}\t{job.license}\t{job.sources[0]}")
            return None
        return build_library(args.out, packages, seed=args.seed, workers=args.workers,
                             max_seconds=args.max_seconds, patterns_per_kit=args.patterns_per_kit)

    return run_main(work)


if __name__ == "__main__":
    sys.exit(main())
