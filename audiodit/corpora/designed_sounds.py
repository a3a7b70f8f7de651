"""Designed sounds: everyday sounds made by this project's procedural recipes, as captioned stereo
48 kHz clips.

    python -m audiodit.corpora.designed_sounds --out data/designed --count 1260 [--seed 0] [--workers 2]
        [--recipes rain,wind,...] [--max-seconds 12] [--list]

Why and how the sounds are made: `audiodit.corpora.sound_design`. Clip `i` (seeded by --seed and its
id, so resumed or parallel runs agree) takes recipe `i mod len(recipes)`, a length drawn from
MIN_SECONDS to --max-seconds, a peak level between -6 and -1 dBFS, and one phrasing of what the
recipe made: its most specific phrase half the time ("heavy rain falling on a tin roof"), else one
of the shorter ones users type ("rain"). No caption states a tempo or a key.

Layout and resuming as every builder (`audiodit.corpora.builder`): `OUT/{train,valid,test}/<id>.flac`,
`.txt`, `.json` (the recipe, its drawn facts, `domain` "sound", `category`), `metadata.jsonl`,
`failures.jsonl`, `render_config.json`. Splits 90/5/5 by a hash of the clip id. Licence: the
recipes and every sample they make are this project's (the repository's licence); nothing recorded
or copied goes in.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from audiodit.audio import save_audio
from audiodit.configuration import atomic_write_text
from audiodit.configuration import OneLineParser
from audiodit.corpora.builder import claim_output, finish_build, run_main, run_tasks
from audiodit.corpora.music21_works import split_of
from audiodit.corpora.sound_design import RECIPES, SAMPLE_RATE, design
from audiodit.corpora.sound_packages import clip_rng

MIN_SECONDS = 4.0
# render_config.json. Format 1 (model v2 phase 8's data) normalised the room's tail before filtering
# it, about 5 dB quieter than `wet` asks, and could list one phrase twice, so the most specific
# caption came out up to 75 % of the time.
CLIP_FORMAT = 2
SPECIFIC_SHARE = 0.5  # how often the caption is the recipe's most specific phrase
LICENSE = "made by audiodit's sound-design recipes (audiodit.corpora.sound_design); the project's licence"


@dataclass(frozen=True)
class Clip:
    """One clip to make: its recipe and what is drawn for it before rendering."""

    id: str
    split: str
    recipe: str
    seconds: float
    peak_db: float


def plan_clips(count: int, recipes: list[str], seed: int, max_seconds: float) -> list[Clip]:
    """Clip i: recipe i mod len(recipes), its length and level drawn from clip_rng(seed, id)."""
    clips = []
    for index in range(count):
        recipe = recipes[index % len(recipes)]
        clip_id = f"designed-{index:05d}-{recipe}"
        rng = clip_rng(seed, clip_id)
        seconds = round(float(rng.uniform(MIN_SECONDS, max_seconds)), 2)
        peak_db = round(float(rng.uniform(-6.0, -1.0)), 1)
        clips.append(Clip(clip_id, split_of(f"designed/{clip_id}"), recipe, seconds, peak_db))
    return clips


def make_caption(phrases: list[str], rng) -> str:
    """The most specific phrase with chance SPECIFIC_SHARE, else a shorter one; sentence case."""
    specific = len(phrases) == 1 or rng.random() < SPECIFIC_SHARE
    phrase = phrases[0] if specific else phrases[1 + int(rng.integers(len(phrases) - 1))]
    return phrase[0].upper() + phrase[1:] + "."


def render_clip(clip: Clip, out_dir: Path, seed: int) -> tuple[dict | None, dict | None]:
    """Design, caption and write one clip; returns (record, None) or (None, failure record)."""
    target = out_dir / clip.split
    done = target / f"{clip.id}.json"
    try:
        if done.exists():  # resumed run
            return json.loads(done.read_text()), None
    except (OSError, ValueError):
        pass  # unreadable: made again below
    rng = clip_rng(seed, clip.id + "/render")
    try:
        audio, facts = design(clip.recipe, rng, clip.seconds, clip.peak_db)
        caption = make_caption(facts["phrases"], rng)
        record = {
            "id": clip.id, "split": clip.split, "caption": caption, "domain": "sound", "category": facts["category"],
            "recipe": clip.recipe, "facts": {k: v for k, v in facts.items() if k not in ("phrases", "category")},
            "phrases": facts["phrases"], "peak_db": clip.peak_db, "license": LICENSE,
            "duration_s": round(audio.shape[1] / SAMPLE_RATE, 3), "sample_rate": SAMPLE_RATE,
        }
        target.mkdir(parents=True, exist_ok=True)
        save_audio(target / f"{clip.id}.flac", audio, SAMPLE_RATE, "PCM_16", overwrite=True)
        (target / f"{clip.id}.txt").write_text(caption + "\n")
        # The JSON goes last, whole or not at all: its presence marks the clip as complete for resumed runs.
        atomic_write_text(done, json.dumps(record, indent=1) + "\n")
        return record, None
    except Exception as error:  # one failed clip must not stop the rest
        return None, {"id": clip.id, "recipe": clip.recipe, "error": f"{type(error).__name__}: {error}"[:1000]}


def _render_task(arguments):
    return render_clip(*arguments)


def check_recipes(names: list[str]) -> list[str]:
    """`names` if every one is in RECIPES and there is at least one; else ValueError."""
    unknown = [name for name in names if name not in RECIPES]
    if unknown or not names:
        raise ValueError(f"unknown recipe(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(RECIPES)}")
    return names


def check_settings(count: int, recipes: list[str], max_seconds: float) -> None:
    """ValueError (one line) for settings no build takes."""
    check_recipes(recipes)
    if count < 1:
        raise ValueError(f"--count must be >= 1, got {count}")
    if not max_seconds >= MIN_SECONDS:
        raise ValueError(f"--max-seconds must be at least {MIN_SECONDS}, got {max_seconds}")


def build_designed(out_dir, count: int, recipes: list[str], *, seed: int = 0, workers: int = 1,
                   max_seconds: float = 12.0, verbose: bool = True) -> dict:
    """Make `count` clips under `out_dir`; returns a summary. Layout: module docstring.

    Raises:
        ValueError: bad settings, or `out_dir` was built with other settings.
    """
    check_settings(count, recipes, max_seconds)
    out_dir = claim_output(out_dir, {"seed": seed, "max_seconds": max_seconds, "sample_rate": SAMPLE_RATE,
                                     "recipes": recipes, "clip_format": CLIP_FORMAT})
    clips = plan_clips(count, recipes, seed, max_seconds)
    started = time.perf_counter()
    results = run_tasks(_render_task, [(clip, out_dir, seed) for clip in clips], workers, chunksize=8)
    return finish_build(out_dir, results, started, verbose,
                        lambda records: {"recipes": {name: sum(r["recipe"] == name for r in records) for name in recipes}})


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--count", type=int, default=1260, help="clips to make")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    parser.add_argument("--seed", type=int, default=0, help="seed for every per-clip choice")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--max-seconds", type=float, default=12.0, help="longest clip")
    parser.add_argument("--list", action="store_true", help="print the clips to make and exit")
    args = parser.parse_args(argv)

    def work():
        if args.workers < 1:
            raise ValueError("--workers must be >= 1")
        recipes = [name.strip() for name in args.recipes.split(",") if name.strip()]
        check_settings(args.count, recipes, args.max_seconds)
        if args.list:
            for clip in plan_clips(args.count, recipes, args.seed, args.max_seconds):
                print(f"{clip.id}\t{clip.split}\t{clip.recipe}\t{clip.seconds}")
            return None
        return build_designed(args.out, args.count, recipes, seed=args.seed, workers=args.workers,
                              max_seconds=args.max_seconds)

    return run_main(work)


if __name__ == "__main__":
    sys.exit(main())
