"""Does the stated key set the key? Same caption, same seed, only the key changes.

For each of a few held-out-style captions, the pipeline generates one clip per stated key with the
*same* noise, so instrument, tempo, form and seed are fixed and only "in <key>" differs. essentia's
`KeyExtractor` (via `audiodit.analysis.estimate_key`, the evaluation's key analyser) estimates each
clip's key. Reported:

* key accuracy (tonic and mode), mode accuracy and the MIREX weighted score against the stated key;
* floor: the same estimates scored against the *other* keys stated for the same caption (what a
  model that ignores the key would score, with its content held fixed).

The keys are three major and three minor keys a major third apart within each mode, so no two are
a fifth, relative or parallel pair and the MIREX floor is not inflated by partial credit.

    python benchmarks/key_response.py --model models/audiodit-small --out benchmarks/results/key_response_cpu.json
"""

from __future__ import annotations

import itertools

import numpy as np
from response import generate_responses, parse_args, report

from audiodit.analysis import estimate_key
from audiodit.prompt_attributes import parse_key
from audiodit.evaluate import mirex_key_score

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
    args = parse_args(__doc__.split("\n\n")[0], argv)
    key_ids = [parse_key(name) for name in KEYS]
    rows, settings = generate_responses(args, CAPTIONS, KEYS, estimate_key)
    stated = np.array([[scores(e, k) for e, k in zip(row, key_ids)] for row in rows])  # (captions, keys, 3)
    others = np.array([scores(row[i], key_ids[j]) for row in rows
                       for i, j in itertools.permutations(range(len(KEYS)), 2)])  # (pairs, 3)
    names = ("key_accuracy", "mode_accuracy", "mirex_score")
    report({
        "model": str(args.model),
        "keys": KEYS,
        "captions": CAPTIONS,
        "estimates": [[e["key"] for e in row] for row in rows],
        **{name: round(float(stated[..., i].mean()), 3) for i, name in enumerate(names)},
        **{f"floor_{name}": round(float(others[:, i].mean()), 3) for i, name in enumerate(names)},
        "distinct_estimates_per_caption": round(float(np.mean([len({e["key"] for e in row}) for row in rows])), 2),
        **settings,
    }, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
