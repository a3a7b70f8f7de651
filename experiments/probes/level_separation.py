"""Is the judge's domain separation (`benchmarks/prompt_breadth.py`, shipping criterion 6) held
down by how quiet the clips are? Re-measures clips prompt_breadth saved (`--out DIR`) as they are
and at one level, each clip's peak at -1 dBFS (what `sample.py` now writes by default).

    python -m experiments.probes.level_separation --clips outputs/breadth_v8 [--out R.json]

Reads `DIR/<model>/<index>_<domain>_seed<k>.flac`, so the clips and the noise are the ones of the
benchmark run; runs the judge (musicnn, `audiodit.judge`) on both versions and prints, per model,
the judge's prompt and domain separation and each domain's mean RMS. Diagnostic only: the shipping
rule measures the clips as the pipeline returns them.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from audiodit.configuration import atomic_write_text
from benchmarks.prompt_breadth import cosine_distances, judge_clips, separations

NAME = re.compile(r"(?P<index>\d+)_(?P<domain>[a-z]+)_seed(?P<seed>\d+)\.flac$")


def measure(paths: list[Path], rows: list[dict], seed: int) -> dict:
    judged = judge_clips(paths, None)
    if "skipped" in judged:
        raise SystemExit(f"the judge did not run: {judged['skipped']}")
    result = separations(cosine_distances(np.asarray(judged["embedding"])), rows, seed)
    return {name: {k: round(float(v), 4) for k, v in values.items() if isinstance(v, (int, float))}
            for name, values in result.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, required=True, help="prompt_breadth's --out folder")
    parser.add_argument("--peak-db", type=float, default=-1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON report")
    args = parser.parse_args(argv)
    report = {}
    for folder in sorted(p for p in args.clips.iterdir() if p.is_dir()):
        paths = sorted(p for p in folder.glob("*.flac") if NAME.search(p.name))
        rows = [{"prompt_index": int(m["index"]), "domain": m["domain"], "seed": int(m["seed"])}
                for m in (NAME.search(p.name) for p in paths)]
        levels: dict[str, list[float]] = {}
        with tempfile.TemporaryDirectory() as scratch:
            levelled = []
            for path, row in zip(paths, rows):
                audio, rate = sf.read(path, dtype="float32", always_2d=True)
                levels.setdefault(row["domain"], []).append(20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12))
                peak = float(np.abs(audio).max()) or 1.0
                target = Path(scratch) / path.name
                sf.write(target, audio * (10 ** (args.peak_db / 20) / peak), rate, subtype="PCM_24")
                levelled.append(target)
            report[folder.name] = {
                "as_generated": measure(paths, rows, args.seed),
                f"peak_{args.peak_db:g}_dbfs": measure(levelled, rows, args.seed),
                "rms_db_by_domain": {domain: round(float(np.mean(values)), 1) for domain, values in levels.items()},
            }
        print(folder.name, json.dumps(report[folder.name]))
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
