"""Does the stated key set the key? Same caption, same seed, only the key changes.

For each of a few held-out-style captions, the pipeline generates one clip per stated key with the
*same* noise, so instrument, tempo, form and seed are fixed and only "in <key>" differs. essentia's
`KeyExtractor` (via `audiodit.evaluate.estimate_key`, the evaluation's key analyser) estimates each
clip's key. Reported:

* key accuracy (tonic and mode), mode accuracy and the MIREX weighted score against the stated key;
* floor: the same estimates scored against the *other* keys stated for the same caption (what a
  model that ignores the key would score, with its content held fixed).

The keys are three major and three minor keys a major third apart within each mode, so no two are
a fifth, relative or parallel pair and the MIREX floor is not inflated by partial credit.

    python benchmarks/key_response.py --model models/audiodit-small --out benchmarks/results/key_response_cpu.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

from audiodit.conditioners import parse_key
from audiodit.evaluate import estimate_key, mirex_key_score
from audiodit.pipeline import AudioDiTPipeline

CAPTIONS = [
    "A Bach chorale in {} for church organ, 80 BPM, 4/4, centred.",
    "A traditional folk tune in {} for piano, 96 BPM, 4/4, centred.",
    "A traditional jig in {} for violin, 120 BPM, 6/8, centred.",
    "A Schumann song in {} for flute, 72 BPM, 2/4, centred.",
    "A Beethoven string quartet movement in {} for string ensemble, 88 BPM, 3/4, wide stereo.",
    "A Mozart piano sonata movement in {} for harpsichord, 100 BPM, 4/4, placed left of centre.",
]
KEYS = ["C major", "E major", "Ab major", "D minor", "F# minor", "Bb minor"]


def scores(estimate: dict, key_id: int) -> tuple[float, float, float]:
    """(key hit, mode hit, MIREX score) of an `estimate_key` result against a key id."""
    tonic, mode = key_id % 12, "minor" if key_id >= 12 else "major"
    return (float(estimate["tonic"] == tonic and estimate["mode"] == mode), float(estimate["mode"] == mode),
            mirex_key_score(estimate["tonic"], estimate["mode"], tonic, mode))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/audiodit-small")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = AudioDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    key_ids = [parse_key(name) for name in KEYS]
    started = time.perf_counter()
    rows = []
    for index, caption in enumerate(CAPTIONS):
        prompts = [caption.format(name) for name in KEYS]
        generators = [torch.Generator().manual_seed(args.seed + index) for _ in prompts]  # same noise
        audios = pipe(prompts, audio_end_in_s=args.seconds, num_inference_steps=args.steps,
                      generator=generators).audios.float().numpy()
        rows.append([estimate_key(audio) for audio in audios])
    stated = np.array([[scores(e, k) for e, k in zip(row, key_ids)] for row in rows])  # (captions, keys, 3)
    others = np.array([scores(row[i], key_ids[j]) for row in rows
                       for i, j in itertools.permutations(range(len(KEYS)), 2)])  # (pairs, 3)
    names = ("key_accuracy", "mode_accuracy", "mirex_score")
    result = {
        "model": str(args.model),
        "keys": KEYS,
        "captions": CAPTIONS,
        "estimates": [[e["key"] for e in row] for row in rows],
        **{name: round(float(stated[..., i].mean()), 3) for i, name in enumerate(names)},
        **{f"floor_{name}": round(float(others[:, i].mean()), 3) for i, name in enumerate(names)},
        "distinct_estimates_per_caption": round(float(np.mean([len({e["key"] for e in row}) for row in rows])), 2),
        "seconds": args.seconds,
        "steps": args.steps or pipe.default_num_inference_steps,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=1) + "\n")
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
