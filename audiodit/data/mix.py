"""Mix several rendered or imported datasets into one training folder, weighted by domain.

    python -m audiodit.data.mix --out data/mix_v2 \
        --source data/music21_v3:1 --source data/grooves:2 --source data/recordings:1.5 --source data/sounds:1

Every source is a dataset folder with `{train,valid,test}/<id>.<audio>`, `<id>.txt` captions and
`<id>.json` records (the layout of `music21_corpus`, `mma_grooves`, `recordings`, `sound_library`,
which write the record last: a sample without one is unfinished and left out, so a dataset that is
still being built can be mixed as it stands). The mix holds, per split,
symbolic links to the sources' files (no audio is copied) and a `metadata.jsonl` that the folder
dataset reads (`file`, `caption`, `source`, `domain`). A source's weight is how many times each of
its training clips is listed: 2 lists every clip twice, 1.5 every clip once and a seeded half of
them twice, 0.5 a seeded half once. Validation and test splits are listed once, unweighted, so
evaluation sees each held-out clip once. `OUT/mix.json` records the sources, weights, clip counts
and hours per domain and split, before and after weighting (what the model card reports).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from audiodit.audio import AUDIO_EXTENSIONS
from audiodit.configuration import atomic_write_text

SPLITS = ("train", "valid", "test")


def parse_source(text: str) -> tuple[Path, float]:
    """'PATH' or 'PATH:WEIGHT' -> (path, weight); the weight must be a finite number >= 0."""
    path, _, weight = text.rpartition(":") if ":" in text else (text, "", "1")
    try:
        value = float(weight)
    except ValueError:
        value = math.nan
    if not path or not math.isfinite(value) or value < 0:
        raise ValueError(f"--source {text!r}: expected PATH or PATH:WEIGHT with a weight >= 0")
    return Path(path), value


def repeats(count: int, weight: float, rng: np.random.Generator) -> np.ndarray:
    """How many times each of `count` clips is listed: floor(weight) each, plus one more for a
    seeded share of them equal to the fractional part (so the expected total is count * weight)."""
    whole, fraction = int(weight), weight - int(weight)
    extra = np.zeros(count, dtype=np.int64)
    extra[rng.permutation(count)[: round(fraction * count)]] = 1
    return whole + extra


def read_clips(source: Path, split: str) -> list[dict]:
    """The clips of one split of a dataset folder: audio file, caption, domain and duration."""
    folder = source / split
    if not folder.is_dir():
        return []
    clips = []
    for audio in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS):
        caption_path, record_path = audio.with_suffix(".txt"), audio.with_suffix(".json")
        if not (caption_path.is_file() and record_path.is_file()):
            continue  # not a finished sample: the builders write the record last
        record = json.loads(record_path.read_text())
        clips.append({"audio": audio, "caption": caption_path.read_text().strip(),
                      "domain": record.get("domain", "score"),  # music21 renders predate the field
                      "seconds": float(record.get("duration_s", 0.0))})
    return clips


def build_mix(out_dir, sources: list[tuple[Path, float]], seed: int = 0) -> dict:
    """Write the mix (module docstring) and return its summary (also written to OUT/mix.json)."""
    out_dir = Path(out_dir)
    names = [source.name for source, _ in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"two sources share a folder name ({names}); their links would collide")
    for source, _ in sources:
        if not (source / "train").is_dir():
            raise FileNotFoundError(f"{source}: no train/ folder (is it a dataset folder?)")
    if (out_dir / "mix.json").exists() or (out_dir.exists() and any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} is not empty; mix into a new folder")
    rng = np.random.default_rng(seed)
    hours: dict = defaultdict(lambda: defaultdict(float))
    counts: dict = defaultdict(lambda: defaultdict(int))
    for split in SPLITS:
        rows = []
        target = out_dir / split
        target.mkdir(parents=True, exist_ok=True)
        for (source, weight), name in zip(sources, names):
            clips = read_clips(source, split)
            times = repeats(len(clips), weight, rng) if split == "train" else np.ones(len(clips), dtype=np.int64)
            for clip, count in zip(clips, times):
                hours[split][f"{clip['domain']} (unweighted)"] += clip["seconds"] / 3600
                counts[split][f"{clip['domain']} (unweighted)"] += 1
                for copy in range(int(count)):
                    link = target / f"{name}__{clip['audio'].stem}__{copy}{clip['audio'].suffix}"
                    os.symlink(os.path.relpath(clip["audio"].resolve(), target), link)
                    rows.append({"file": link.name, "caption": clip["caption"], "source": name,
                                 "domain": clip["domain"]})
                    hours[split][clip["domain"]] += clip["seconds"] / 3600
                    counts[split][clip["domain"]] += 1
        atomic_write_text(target / "metadata.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    summary = {
        "sources": [{"path": str(source), "weight": weight} for source, weight in sources], "seed": seed,
        "clips": {split: dict(sorted(counts[split].items())) for split in SPLITS},
        "hours": {split: {domain: round(value, 3) for domain, value in sorted(hours[split].items())}
                  for split in SPLITS},
    }
    atomic_write_text(out_dir / "mix.json", json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiodit.data.mix", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="new folder for the mix")
    parser.add_argument("--source", action="append", required=True, help="PATH[:WEIGHT] of a dataset folder (repeatable)")
    parser.add_argument("--seed", type=int, default=0, help="seed for fractional weights")
    args = parser.parse_args(argv)
    try:
        summary = build_mix(args.out, [parse_source(text) for text in args.source], seed=args.seed)
    except (ValueError, OSError) as error:
        print(f"mix: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary["hours"]["train"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
