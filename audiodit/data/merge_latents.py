"""Merge pre-encoded latent folders into one training folder, weighted, without encoding again.

    python -m audiodit.data.merge_latents --out data/mix_v8_latents \\
        --source data/mix_v7_latents --source data/designed_latents:1.5 [--seed 0]

Adding a dataset to a pre-encoded mix used to mean pre-encoding the whole mix again (34 min on two
cores for model v2 phase 7's 6,009 files); the new dataset alone takes minutes. Each source is a
folder written by `audiodit.data.preencode` (`index.json` and its shards). The merged folder holds
`sources/<n>`, a relative link to source n, and an `index.json` whose rows are the sources' rows
with their shard paths under those links, each row listed as many times as its source's weight says
(as `audiodit.data.mix` does: 1.5 lists every row once and a seeded half twice; copies get
`#<copy>` after their id). No shard is copied. `merge.json` records the sources, weights and rows.

The sources must agree on the VAE (every field of `vae`) and on melody targets, and none may carry
a text-embedding cache (pre-encode with `--no-captions`): rows from different caches cannot share
one. Any disagreement is one error line naming the source.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from audiodit.configuration import OneLineParser, atomic_write_text, staged_directory
from audiodit.data.latents import INDEX, INDEX_VERSION, read_index
from audiodit.data.mix import parse_source, repeats
from audiodit.data.report import SkipReport


def _read_source(folder: Path) -> dict:
    """A source's index (`latents.read_index`), every problem a ValueError naming it."""
    try:
        index = read_index(folder)
    except FileNotFoundError as error:
        raise ValueError(f"{folder}: no {INDEX} ({error})") from None
    if not isinstance(index.get("samples"), list):
        raise ValueError(f"{folder / INDEX}: no list of samples; pre-encode again")
    return index


def merge_latents(out_dir, sources: list[tuple[Path, float]], seed: int = 0) -> dict:
    """Write the merged folder (module docstring); returns its summary (also OUT/merge.json)."""
    out_dir = Path(out_dir)
    if not sources:
        raise ValueError("give at least one --source")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"{out_dir} is not empty; merge into a new folder")
    indexes = [_read_source(folder) for folder, _ in sources]
    first = indexes[0]
    for (folder, _), index in zip(sources, indexes):
        if index.get("captions"):
            raise ValueError(f"{folder} carries a text-embedding cache ({index['captions']}); "
                             "pre-encode it with --no-captions to merge it")
        if index.get("vae") != first.get("vae"):
            raise ValueError(f"{folder} was encoded with vae {index.get('vae')}, but {sources[0][0]} with "
                             f"{first.get('vae')}; pre-encode both with one VAE")
        if bool(index.get("melody", False)) != bool(first.get("melody", False)):
            raise ValueError(f"{folder} has melody={bool(index.get('melody', False))} but {sources[0][0]} has "
                             f"melody={bool(first.get('melody', False))}; pre-encode both alike (--melody)")
    if out_dir.exists():
        out_dir.rmdir()  # empty (checked above): made whole beside it and renamed into place
    with staged_directory(out_dir) as staging:  # a failed merge leaves nothing behind
        return _write_merge(staging, sources, indexes, seed)


def _write_merge(out_dir: Path, sources: list[tuple[Path, float]], indexes: list[dict], seed: int) -> dict:
    first, rng = indexes[0], np.random.default_rng(seed)
    (out_dir / "sources").mkdir()
    rows, report, counts = [], SkipReport(), []
    for number, ((folder, weight), index) in enumerate(zip(sources, indexes)):
        link = out_dir / "sources" / str(number)
        # relative, between resolved paths: valid after the rename (same parent) and when the tree moves
        os.symlink(os.path.relpath(folder.resolve(), link.parent.resolve()), link)
        report.merge(index.get("report", {}))
        times = repeats(len(index["samples"]), weight, rng)
        for row, copies in zip(index["samples"], times):
            rows += [{**row, "id": row["id"] if copy == 0 else f"{row['id']}#{copy}",
                      "shard": f"sources/{number}/{row['shard']}"} for copy in range(int(copies))]
        counts.append({"path": str(folder), "weight": weight, "rows": len(index["samples"]),
                       "listed": int(times.sum())})
    merged = {"version": INDEX_VERSION, "vae": first["vae"], "captions": None,
              "melody": bool(first.get("melody", False)),
              "samples": rows, "report": report.to_dict()}
    summary = {"sources": counts, "seed": seed, "rows": len(rows)}
    atomic_write_text(out_dir / "merge.json", json.dumps(summary, indent=1) + "\n")
    atomic_write_text(out_dir / INDEX, json.dumps(merged) + "\n")  # last: its presence marks a finished merge
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the merged folder (new or empty)")
    parser.add_argument("--source", action="append", default=[], help="PATH or PATH:WEIGHT of a pre-encoded folder")
    parser.add_argument("--seed", type=int, default=0, help="seed of the fractional weights' draw")
    args = parser.parse_args(argv)
    try:
        summary = merge_latents(args.out, [parse_source(text) for text in args.source], args.seed)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
