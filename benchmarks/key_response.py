"""Does the stated key set the key? Same caption, same seed, only the key changes.

For each of twelve held-out-style captions, the pipeline generates one clip per stated key with the
*same* noise, so instrument, tempo, form and seed are fixed and only "in <key>" differs. essentia's
`KeyExtractor` (via `audiodit.analysis.estimate_key`, the evaluation's key analyser) estimates each
clip's key. Reported:

* key accuracy (tonic and mode), mode accuracy and the MIREX weighted score against the stated key;
* floor: the same estimates scored against the *other* keys stated for the same caption (what a
  model that ignores the key would score, with its content held fixed);
* p-values: a permutation test of the stated keys within each caption (the null: which key a
  clip's caption stated does not matter), the share of random reassignments that score at least
  as well as the true one (Phipson & Smyth 2010's (b + 1) / (m + 1)).

The keys are three major and three minor keys a major third apart within each mode, so no two are
a fifth, relative or parallel pair and the MIREX floor is not inflated by partial credit.

    python -m benchmarks.key_response --model models/audiodit-small --out benchmarks/results/key_response_cpu.json
"""

from __future__ import annotations

import itertools

import numpy as np
from benchmarks.response import generate_responses, parse_args, report

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
    # Six more (added with key classifier guidance, before it was measured here), so that mode, a
    # coin flip per clip, has 72 clips instead of 36.
    "A Palestrina mass movement in {} for choir, 66 BPM, 4/4, centred.",
    "A traditional reel in {} for nylon-string guitar, 112 BPM, 2/2, placed right of centre.",
    "A Monteverdi madrigal in {} for woodwind ensemble, 72 BPM, 4/4, wide stereo.",
    "A traditional hornpipe in {} for brass ensemble, 92 BPM, 4/4, centred.",
    "A Haydn string quartet movement in {} for string ensemble, 76 BPM, 2/4, centred.",
    "A traditional folk air in {} for harp, 84 BPM, 6/8, placed left of centre.",
]
KEYS = ["C major", "E major", "Ab major", "D minor", "F# minor", "Bb minor"]


def scores(estimate: dict, key_id: int) -> tuple[float, float, float]:
    """(key hit, mode hit, MIREX score) of an `estimate_key` result against a key id."""
    tonic, mode = key_id % 12, "minor" if key_id >= 12 else "major"
    return (float(estimate["tonic"] == tonic and estimate["mode"] == mode), float(estimate["mode"] == mode),
            mirex_key_score(estimate["tonic"], estimate["mode"], tonic, mode))


def permutation_p_values(stated: np.ndarray, estimates: list[list[dict]], key_ids: list[int], rounds: int = 2000,
                         seed: int = 0) -> list[float]:
    """p of each score's mean in `stated (captions, keys, 3)` under random reassignments of the
    keys to the clips of each caption."""
    rng = np.random.default_rng(seed)
    observed = stated.mean(axis=(0, 1))  # (3,)
    as_good = np.zeros(3)
    for _ in range(rounds):
        shuffled = np.array([[scores(estimate, key_ids[j]) for estimate, j in zip(row, rng.permutation(len(key_ids)))]
                             for row in estimates]).mean(axis=(0, 1))
        as_good += shuffled >= observed - 1e-12
    return [float((count + 1) / (rounds + 1)) for count in as_good]


def main(argv=None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    key_ids = [parse_key(name) for name in KEYS]
    rows, settings = generate_responses(args, CAPTIONS, KEYS, estimate_key)
    stated = np.array([[scores(e, k) for e, k in zip(row, key_ids)] for row in rows])  # (captions, keys, 3)
    others = np.array([scores(row[i], key_ids[j]) for row in rows
                       for i, j in itertools.permutations(range(len(KEYS)), 2)])  # (pairs, 3)
    names = ("key_accuracy", "mode_accuracy", "mirex_score")
    p_values = permutation_p_values(stated, rows, key_ids, seed=args.seed)
    report({
        "model": str(args.model),
        "keys": KEYS,
        "captions": CAPTIONS,
        "estimates": [[e["key"] for e in row] for row in rows],
        **{name: round(float(stated[..., i].mean()), 3) for i, name in enumerate(names)},
        **{f"floor_{name}": round(float(others[:, i].mean()), 3) for i, name in enumerate(names)},
        **{f"p_{name}": round(p, 4) for name, p in zip(names, p_values)},
        "distinct_estimates_per_caption": round(float(np.mean([len({e["key"] for e in row}) for row in rows])), 2),
        **settings,
    }, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
