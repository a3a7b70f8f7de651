"""Clip-by-clip comparison of two `audiodit.evaluate` reports on the same prompts.

    python -m benchmarks.compare_evals NEW_REPORT.json OLD_REPORT.json [--out FILE]

For key (tonic and mode), mode and instrument family: how many clips each model gets right, how
many the new one gains and loses, and an exact two-sided sign test on gained against lost (ties
dropped). Also mode accuracy by the prompt's stated mode and by corpus variant (the `-vN` suffix of
the clip id), and where each report's key estimates fall against the stated key: right, the
relative or parallel key (the other mode), a fifth away in the same mode, or elsewhere. Both reports must hold the same prompts in the same order.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from audiodit.analysis import pitch_class
from audiodit.configuration import atomic_write_text
from audiodit.evaluate import key_relation


def key_right(row: dict) -> bool:
    return key_relation_of(row) == "right"


def mode_right(row: dict) -> bool:
    return row["estimated_key"].split()[-1] == row["target_key"].split()[-1]


def family_right(row: dict) -> bool:
    return row["estimated_family"] == row["target_family"]


CHECKS = {"key": key_right, "mode": mode_right, "instrument": family_right}


def key_relation_of(row: dict) -> str:
    """`audiodit.evaluate.key_relation` of a row's estimated key to its target, or "none"."""
    (tonic, mode), (target_tonic, target_mode) = row["estimated_key"].split(), row["target_key"].split()
    if tonic == "none":
        return "none"
    return key_relation(pitch_class(tonic), mode, pitch_class(target_tonic), target_mode)


def compare(new: list[dict], old: list[dict]) -> dict:
    from scipy.stats import binomtest

    if [row["id"] for row in new] != [row["id"] for row in old]:
        raise ValueError("the two reports do not hold the same prompts in the same order")
    result = {"clips": len(new)}
    for name, check in CHECKS.items():
        pairs = [(check(o), check(n)) for n, o in zip(new, old)]
        gained, lost = sum(not o and n for o, n in pairs), sum(o and not n for o, n in pairs)
        result[name] = {"new_right": sum(n for _, n in pairs), "old_right": sum(o for o, _ in pairs),
                        "gained": gained, "lost": lost,
                        "sign_test_p": binomtest(gained, gained + lost).pvalue if gained + lost else 1.0}
    for label, rows in (("new", new), ("old", old)):
        groups = defaultdict(list)
        for row in rows:
            groups["stated " + row["target_key"].split()[-1]].append(mode_right(row))
            groups["variant " + row["id"].rsplit("-v", 1)[-1]].append(mode_right(row))
        result[f"mode_by_group_{label}"] = {group: {"clips": len(v), "mode_accuracy": sum(v) / len(v)}
                                            for group, v in sorted(groups.items())}
        relations = [key_relation_of(row) for row in rows]
        result[f"key_estimates_{label}"] = {name: relations.count(name) for name in
                                            ("right", "relative", "parallel", "fifth", "other", "none")}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("new", type=Path)
    parser.add_argument("old", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    new, old = (json.loads(path.read_text())["per_clip"]["model"] for path in (args.new, args.old))
    result = {"new": str(args.new), "old": str(args.old), **compare(new, old)}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        atomic_write_text(args.out, text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
