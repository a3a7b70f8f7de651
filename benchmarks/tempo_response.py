"""Does the stated tempo set the tempo? Same caption, same seed, only the BPM changes.

For each of a few held-out-style captions, the pipeline generates one clip per stated tempo with
the *same* noise, so text content, instrument and seed are fixed and only "N BPM" differs.
essentia's `RhythmExtractor2013` (via `audiodit.analysis.estimate_bpm`) estimates each clip's
tempo. Reported:

* hit rate: the estimate is within 8 % of the stated tempo times 1, 2 or 1/2 (the evaluation's
  tempo accuracy);
* floor: the same estimates scored against the *other* tempi stated for the same caption (what a
  model that ignores the number would score, with its content held fixed);
* the median relative error of the estimate against the nearest of x1, x2, x1/2 the stated
  tempo, and the same against the other stated tempi (floor).

    python -m benchmarks.tempo_response --model models/audiodit-small --out benchmarks/results/tempo_response_cpu.json
"""

from __future__ import annotations

import itertools

import numpy as np
from benchmarks.response import generate_responses, parse_args, report

from audiodit.analysis import estimate_bpm
from audiodit.evaluate import TEMPO_TOLERANCE, tempo_hits

CAPTIONS = [
    "A traditional folk tune in D major for piano, {} BPM, 4/4, centred.",
    "A Bach chorale in G minor for church organ, {} BPM, 4/4, centred.",
    "A traditional jig in A major for violin, {} BPM, 6/8, centred.",
    "A Schumann song in F major for flute, {} BPM, 2/4, centred.",
    "A Beethoven string quartet movement in C minor for string ensemble, {} BPM, 3/4, wide stereo.",
    "A traditional hornpipe in Bb major for harp, {} BPM, 2/4, placed left of centre.",
]
TEMPI = [60, 76, 96, 136]  # no two within 8 % of an octave apart, so the floor is not inflated
OCTAVES = (1.0, 2.0, 0.5)


def octave_error(estimate: float, target: float) -> float:
    """Relative error of `estimate` against the nearest of `target` x1, x2, x1/2."""
    return min(abs(estimate / (target * factor) - 1.0) for factor in OCTAVES)


def main(argv=None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv)
    rows, settings = generate_responses(args, CAPTIONS, TEMPI, lambda audio: float(estimate_bpm(audio)))
    estimates = np.array(rows)  # (captions, tempi)
    hits = np.mean([tempo_hits(e, t, OCTAVES) for row in estimates for e, t in zip(row, TEMPI)])
    floor = np.mean([tempo_hits(row[i], TEMPI[j], OCTAVES) for row in estimates
                     for i, j in itertools.permutations(range(len(TEMPI)), 2)])
    error = np.median([octave_error(e, t) for row in estimates for e, t in zip(row, TEMPI)])
    floor_error = np.median([octave_error(row[i], TEMPI[j]) for row in estimates
                             for i, j in itertools.permutations(range(len(TEMPI)), 2)])
    report({
        "model": str(args.model),
        "tempi": TEMPI,
        "captions": CAPTIONS,
        "estimates_bpm": [[round(e, 1) for e in row] for row in estimates],
        "hit_rate": round(float(hits), 3),
        "floor_other_tempi": round(float(floor), 3),
        "median_octave_relative_error": round(float(error), 3),
        "floor_median_octave_relative_error": round(float(floor_error), 3),
        "tolerance": TEMPO_TOLERANCE,
        **settings,
    }, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
