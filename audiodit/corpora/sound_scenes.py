"""Sound scenes: several takes of one kind of sound spread over seconds, made from a sound library.

    python -m audiodit.corpora.sound_scenes --out data/scenes --source data/sounds_v4 --source data/sounds_extra
        [--seed 0] [--workers 2] [--categories animal,human,effect,ambience] [--max-event-seconds 3]

A sound library's effects are one-shots of about a second and a half; a scene is what ten seconds
of one of them sound like: takes at irregular times with short pauses, not hits at a tempo (why it
was built: docs/data.md, "Sound scenes").

Each clip of a chosen category (`--categories`; drum hits, loops and instruments are music
material, not scenes) kept whole by the library (a one-shot, or a longer sound not cut or tiled)
whose sound lasts at most `--max-event-seconds` anchors one scene, seeded by `--seed` and the
scene's id (`scene-<anchor id>`), so resumed or parallel runs agree:
  * its group: the clips of the same split, package, licence, copyright holders and phrase ("a
    horse sound from a video game"); a scene never mixes splits (no held-out clip leaks into
    training), licences or holders;
  * a length drawn from SCENE_SECONDS; the anchor first, near the start, then takes each drawn
    from the rest of the group with chance OTHER_TAKE_CHANCE (else the anchor again), trimmed of
    the library's silence, played at a drawn speed (SPEED_RANGE: pitch and length change together,
    so a group of one still varies) and gain (GAIN_DB), separated by pauses drawn from
    PAUSE_SECONDS (under one second: long silences inside a clip taught an earlier model to fall
    silent inside music); a take that would keep less than LAST_TAKE_SHARE of itself before the
    scene's end is left out (the caption counts only takes heard whole enough), a longer one is
    faded out where the scene ends;
  * a peak drawn between -6 and -1 dBFS, as the library's clips;
  * the caption: the anchor's phrase and how many takes ("A horse sound from a video game, heard
    5 times."); training's clause dropout leaves the phrase alone, which is what users type.

Layout as the other builders (`audiodit.corpora.builder`): `OUT/{train,valid,test}/<id>.{flac,txt,json}`
(the record, with every take's source clip, onset, speed and gain, written last), `metadata.jsonl`,
`failures.jsonl`, `render_config.json` (same settings resume; others need a new OUT) and
`ATTRIBUTION.md` (every original file a scene uses, with its package, licence and copyright, as the
source library's records state them).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soxr

from audiodit.audio import load_audio, normalize_audio, save_audio
from audiodit.configuration import OneLineParser
from audiodit.corpora.builder import claim_output, run_main, run_tasks, write_attribution, write_index
from audiodit.corpora.sound_library import cut_with_fade, trim_silence
from audiodit.corpora.sound_packages import RESERVED_PACKAGES, clip_rng

SAMPLE_RATE = 48000
SCENE_FORMAT = 2  # render_config.json: 2 = takes trimmed, no sliver of a last take, groups by holders too
DEFAULT_CATEGORIES = ("animal", "human", "effect", "ambience")
SCENE_SECONDS = (6.0, 10.0)  # a scene's length is drawn in this range
PAUSE_SECONDS = (0.1, 0.9)  # silence between the end of one take and the next
LEAD_SECONDS = (0.0, 0.3)  # before the first take
SPEED_RANGE = (0.93, 1.07)  # playback speed of a take (resampled: pitch and length together)
GAIN_DB = (-5.0, 0.0)  # gain of a take against its source clip
FADE_SECONDS = 0.05  # fade-out of a take the scene's end cuts
MIN_TAKES = 2  # an anchor too long for this many takes in the shortest scene makes none
OTHER_TAKE_CHANCE = 0.7  # chance that a take after the first is another clip of the group
LAST_TAKE_SHARE = 0.5  # a take the scene's end would cut to less than this share of it is left out
WHOLE_TREATMENTS = ("single", "whole")  # the library's clips that are one sound, neither cut nor tiled


def read_library(source: Path) -> list[dict]:
    """The finished clips of a sound library folder (`metadata.jsonl` rows whose record and audio
    exist), each with `audio_path`."""
    index = source / "metadata.jsonl"
    if not index.is_file():
        raise FileNotFoundError(f"{source}: no metadata.jsonl (is it a sound library folder?)")
    clips = []
    for line in index.read_text().splitlines():
        record = json.loads(line)
        audio = source / record["split"] / f"{record['id']}.flac"
        if audio.is_file():
            clips.append({**record, "audio_path": str(audio)})
    return clips


def plan_scenes(clips: list[dict], categories: tuple[str, ...], max_event_seconds: float) -> list[dict]:
    """One job per anchor: a whole sound of a chosen category lasting at most `max_event_seconds`
    (the library's `source_s`, its sound without padding), with its group (same split, package,
    licence, holders and phrase), anchor first. Sorted by id."""
    reserved = sorted({clip["source_package"] for clip in clips} & set(RESERVED_PACKAGES))
    if reserved:
        raise ValueError(f"the sources hold clips of {reserved}, reserved for evaluation")
    groups = defaultdict(list)
    for clip in clips:
        seconds = float(clip.get("source_s") or clip["duration_s"])
        if clip.get("category") in categories and clip.get("treatment") in WHOLE_TREATMENTS \
                and seconds <= max_event_seconds:
            key = (clip["split"], clip["source_package"], clip["license"], clip.get("copyright") or "", clip["phrase"])
            groups[key].append(clip)
    jobs = []
    for members in groups.values():
        members.sort(key=lambda clip: clip["id"])
        for anchor in members:
            jobs.append({"id": f"scene-{anchor['id']}", "anchor": anchor,
                         "others": [clip for clip in members if clip is not anchor]})
    return sorted(jobs, key=lambda job: job["id"])


def take(audio: np.ndarray, speed: float, gain_db: float) -> np.ndarray:
    """`audio` (2, S) played at `speed` (resampled) with `gain_db`: (2, S')."""
    if abs(speed - 1.0) > 1e-6:
        audio = soxr.resample(audio.T, SAMPLE_RATE * speed, SAMPLE_RATE).T
    return (audio * 10 ** (gain_db / 20)).astype(np.float32)


def make_scene(job: dict, rng: np.random.Generator, load) -> tuple[np.ndarray, list[dict]]:
    """The scene's audio (2, S) and its takes (source id, onset, speed, gain), drawn from `rng`;
    `load(clip)` gives a clip's audio (2, S). Raises ValueError when fewer than MIN_TAKES fit."""
    seconds = float(rng.uniform(*SCENE_SECONDS))
    total = round(seconds * SAMPLE_RATE)
    out = np.zeros((2, total), dtype=np.float32)
    takes, onset = [], float(rng.uniform(*LEAD_SECONDS))
    clip = job["anchor"]
    while round(onset * SAMPLE_RATE) < total:
        speed, gain = float(rng.uniform(*SPEED_RANGE)), float(rng.uniform(*GAIN_DB))
        audio = take(load(clip), speed, gain)
        start = round(onset * SAMPLE_RATE)
        length = min(audio.shape[1], total - start)
        if length < LAST_TAKE_SHARE * audio.shape[1]:  # only a sliver would be heard
            break
        # a take the scene's end cuts is faded out there
        out[:, start:start + length] += cut_with_fade(audio, length, FADE_SECONDS) if length < audio.shape[1] else audio
        takes.append({"id": clip["id"], "onset_s": round(onset, 3), "speed": round(speed, 4),
                      "gain_db": round(gain, 2)})
        onset += audio.shape[1] / SAMPLE_RATE + float(rng.uniform(*PAUSE_SECONDS))
        others = job["others"]
        clip = others[int(rng.integers(len(others)))] if others and rng.random() < OTHER_TAKE_CHANCE else job["anchor"]
    if len(takes) < MIN_TAKES:
        raise ValueError(f"only {len(takes)} take(s) of {job['anchor']['id']} fit in {seconds:.1f} s")
    return out, takes


def make_caption(phrase: str, count: int) -> str:
    """The phrase, capitalised, and how many takes are heard."""
    caption = f"{phrase}, heard {count} times."
    return caption[0].upper() + caption[1:]


def render_scene(job: dict, out_dir: Path, seed: int) -> tuple[dict | None, dict | None]:
    """Make, caption and write one scene; returns (record, None) or (None, failure record)."""
    anchor = job["anchor"]
    target = out_dir / anchor["split"]
    done = target / f"{job['id']}.json"
    if done.exists():  # resumed run
        return json.loads(done.read_text()), None
    try:
        cache = {}

        def load(clip):
            if clip["id"] not in cache:  # the sound alone: the library pads one-shots to 0.5 s
                cache[clip["id"]] = trim_silence(load_audio(clip["audio_path"], SAMPLE_RATE).numpy())
            return cache[clip["id"]]

        rng = clip_rng(seed, job["id"])
        audio, takes = make_scene(job, rng, load)
        peak_db = round(float(rng.uniform(-6.0, -1.0)), 1)
        audio = normalize_audio(audio, "peak", peak_db)
        caption = make_caption(anchor["phrase"], len(takes))
        by_id = {clip["id"]: clip for clip in [anchor, *job["others"]]}
        source_paths = sorted({path for t in takes for path in by_id[t["id"]].get("source_paths", [])})
        record = {
            "id": job["id"], "split": anchor["split"], "caption": caption, "domain": "sound",
            "category": anchor["category"], "phrase": anchor["phrase"], "named": anchor.get("named"),
            "treatment": "scene", "takes": takes, "source_package": anchor["source_package"],
            "source_paths": source_paths, "license": anchor["license"], "copyright": anchor["copyright"],
            "peak_db": peak_db, "duration_s": round(audio.shape[1] / SAMPLE_RATE, 3), "sample_rate": SAMPLE_RATE,
        }
        save_audio(target / f"{job['id']}.flac", audio, SAMPLE_RATE, "PCM_16", overwrite=True)
        (target / f"{job['id']}.txt").write_text(caption + "\n")
        done.write_text(json.dumps(record, indent=1) + "\n")  # last: marks the scene finished
        return record, None
    except Exception as error:  # one bad clip must not stop the set
        return None, {"id": job["id"], "error": f"{type(error).__name__}: {error}"[:1000]}


def _render_task(arguments):
    return render_scene(*arguments)


def credit(out_dir: Path, records: list[dict]) -> None:
    """OUT/ATTRIBUTION.md: every original file the scenes use, per package, licence and holders."""
    groups = defaultdict(set)
    for record in records:
        groups[(record["source_package"], record["license"], record["copyright"] or "")].update(record["source_paths"])
    write_attribution(out_dir, [
        "Scenes in this folder are made from the files below (Debian packages, licence and copyright as",
        "each package's /usr/share/doc/<package>/copyright states them), through the sound library's clips",
        "of them. Changes: decoded, resampled to 48 kHz stereo, silence trimmed, panned, played at a drawn",
        "speed and gain, several takes placed in sequence with pauses, level-normalised. Captions were",
        "written from the file and folder names."], groups)


def build_scenes(out_dir, sources: list[Path], *, seed: int = 0, workers: int = 1,
                 categories: tuple[str, ...] = DEFAULT_CATEGORIES, max_event_seconds: float = 3.0,
                 verbose: bool = True) -> dict:
    """Make every scene of `sources` under `out_dir`; returns a summary. Layout: module docstring."""
    if not categories:
        raise ValueError("--categories names no category")
    if not 0 < max_event_seconds <= SCENE_SECONDS[0] / MIN_TAKES:
        raise ValueError(f"--max-event-seconds must be in (0, {SCENE_SECONDS[0] / MIN_TAKES:g}], "
                         f"got {max_event_seconds}")
    clips = [clip for source in sources for clip in read_library(Path(source))]
    ids = [clip["id"] for clip in clips]
    if len(set(ids)) != len(ids):
        raise ValueError("two sources hold clips with the same id; give each library once")
    jobs = plan_scenes(clips, tuple(categories), max_event_seconds)
    out_dir = claim_output(out_dir, {"seed": seed, "sources": sorted(str(Path(s).resolve()) for s in sources),
                                     "categories": sorted(categories), "max_event_seconds": max_event_seconds,
                                     "sample_rate": SAMPLE_RATE, "scene_format": SCENE_FORMAT})
    results = run_tasks(_render_task, [(job, out_dir, seed) for job in jobs], workers, chunksize=4)
    records = [record for record, _ in results if record]
    failures = [failure for _, failure in results if failure]
    if verbose:
        for failure in failures:
            print(f"FAILED {failure['id']}: {failure['error']}", file=sys.stderr)
    index = write_index(out_dir, failures)
    credit(out_dir, index)
    per_split = defaultdict(lambda: {"scenes": 0, "minutes": 0.0})
    for record in index:
        per_split[record["split"]]["scenes"] += 1
        per_split[record["split"]]["minutes"] += record["duration_s"] / 60
    summary = {"clips": len(records), "failed": len(failures),
               "splits": {split: {"scenes": found["scenes"], "minutes": round(found["minutes"], 1)}
                          for split, found in sorted(per_split.items())}}
    if verbose:
        print(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--source", action="append", required=True, help="sound library folder (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed for every per-scene choice")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--categories", default=",".join(DEFAULT_CATEGORIES),
                        help="comma-separated sound categories whose one-shots anchor scenes")
    parser.add_argument("--max-event-seconds", type=float, default=3.0, help="longest one-shot used as a take")
    args = parser.parse_args(argv)

    def work():
        if args.workers < 1:
            raise ValueError("--workers must be >= 1")
        categories = tuple(name.strip() for name in args.categories.split(",") if name.strip())
        return build_scenes(args.out, [Path(s) for s in args.source], seed=args.seed, workers=args.workers,
                            categories=categories, max_event_seconds=args.max_event_seconds)

    return run_main(work, (ValueError, FileNotFoundError))


if __name__ == "__main__":
    sys.exit(main())
