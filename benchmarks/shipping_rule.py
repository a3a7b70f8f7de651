"""Model v2's shipping rule (docs/evaluation.md), read off the result files: one verdict, no hand copying.

    python -m benchmarks.shipping_rule --candidate audiodit-small-v6 \\
        --prompt-breadth experiments/results/prompt_breadth_v2_phase6_cpu.json \\
        --domain-eval v2p6=experiments/results/domain_eval_v2_phase6_48_cpu.json \\
        --v1-domain-eval v1=experiments/results/domain_eval_v2_phase4_48_cpu.json \\
        --evaluate experiments/results/eval_v2_phase6_64.json --v1-evaluate experiments/results/eval_v1_beside_v3_64.json \\
        --speed experiments/results/generation_speed_v2_phase6_cpu.json \\
        --out experiments/results/shipping_rule_v2_phase6.md

Criteria 3-11 of the rule, each from the file that measures it: `prompt_breadth` (3-6; the
candidate is the model whose label is `--candidate`), `domain_eval` (7-9; `LABEL=FILE`, v1's numbers
from `--v1-domain-eval`, run on the same captions, seeds and machine type), `audiodit.evaluate`
(10; the candidate's report against v1's) and `generation_speed` (11). The thresholds are the rule's
(`CRITERIA`), written down before any v2 model was evaluated. The model ships only if every one
holds. Writes the markdown table to `--out` and the numbers to the JSON beside it. Exit status: 0
"ship", 1 "do not ship", 2 a result file that cannot be read, lacks a field the rule reads, or (for
`domain_eval`) was not run with v1's settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audiodit.configuration import atomic_write_text
from benchmarks.machine import emit_report

MTT = "MTT_musicnn"
# number: (what, rule in words)
CRITERIA = {
    3: ("drums where asked: judge P(drums), drum vs drumless prompts", "AUC >= 0.75, p <= 0.01"),
    4: ("low-band onset strength, drum vs drumless prompts", "p <= 0.05"),
    5: ("sound prompts' average spectra, mean correlation", "<= 0.90"),
    6: ("domain separation of judge embeddings", ">= 1.5, p <= 0.01"),
    7: ("arrangements: judge drums AUC, captions with vs without drums", ">= 0.75, p <= 0.01"),
    8: ("Fréchet to held-out real audio: arrangement / recording / sound", "each below v1's"),
    9: ("scores: judge instrument macro AUC", ">= v1 - 0.05"),
    10: ("evaluate: key / tempo / instrument against v1; mode p against shuffled",
         "-0.10 / -0.08 / -0.10 or better; p <= 0.05"),
    11: ("10 s of audio, VAE included, default settings", "<= 5 s"),
}


class RuleInputError(ValueError):
    """A result file that cannot be read or lacks what the rule reads: exit status 2, not "do not ship"."""


def load(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise RuleInputError(f"cannot read {path}: {error}") from None


def labelled(text: str) -> tuple[str, dict]:
    label, _, path = text.partition("=")
    if not label or not path:
        raise RuleInputError(f"expected LABEL=FILE, got {text!r}")
    return label, load(path)


def breadth_criteria(report: dict, candidate: str) -> dict:
    models = {model["label"]: model for model in report["models"]}
    if candidate not in models:
        raise RuleInputError(f"no model labelled {candidate!r} in the prompt_breadth report (it has {sorted(models)})")
    model = models[candidate]
    judge = model["drums"].get("judge_drums")
    separation = model.get("judge_separation", {}).get("domain_separation")
    out = {4: (model["drums"]["low_onset_strength"]["p"] <= 0.05,
               f"p {model['drums']['low_onset_strength']['p']:.4f} (AUC {model['drums']['low_onset_strength']['auc']:.2f})"),
           5: (model["sound_spectrum_correlation"] <= 0.90, f"{model['sound_spectrum_correlation']:.3f}")}
    out[3] = ((judge["auc"] >= 0.75 and judge["p"] <= 0.01), f"AUC {judge['auc']:.3f}, p {judge['p']:.4f}") \
        if judge else (None, "judge did not run")
    out[6] = ((separation["ratio"] >= 1.5 and separation["p"] <= 0.01),
              f"{separation['ratio']:.3f}, p {separation['p']:.4f} (spectra {model['domain_separation']['ratio']:.2f})") \
        if separation else (None, "judge did not run")
    return out


def domain_criteria(candidate: tuple[str, dict], v1: tuple[str, dict]) -> dict:
    (label, report), (v1_label, v1_report) = candidate, v1
    if report["settings"] != v1_report["settings"]:
        differ = sorted(key for key in {*report["settings"], *v1_report["settings"]}
                        if report["settings"].get(key) != v1_report["settings"].get(key))
        raise RuleInputError(f"the candidate's and v1's domain_eval runs differ in {differ}; "
                             "criteria 7-9 compare runs on the same captions, seeds and data")
    domains, v1_domains = report["domains"], v1_report["domains"]

    def frechet(found, name, domain):
        return found[domain]["frechet"][MTT][f"{name}/generated"]

    drums = domains["arrangement"]["adherence"][f"{label}/generated"]["drums_auc_drums"]
    measured = ("arrangement", "recording", "sound")
    new = [frechet(domains, label, domain) for domain in measured]
    old = [frechet(v1_domains, v1_label, domain) for domain in measured]
    instrument = domains["score"]["adherence"][f"{label}/generated"]["instrument_macro_auc"]["value"]
    v1_instrument = v1_domains["score"]["adherence"][f"{v1_label}/generated"]["instrument_macro_auc"]["value"]
    return {7: (drums["value"] >= 0.75 and drums["p"] <= 0.01, f"{drums['value']:.3f}, p {drums['p']:.3f}"),
            8: (all(mine < theirs for mine, theirs in zip(new, old)),
                " / ".join(f"{value:.1f}" for value in new) + " (v1 " + " / ".join(f"{value:.1f}" for value in old) + ")"),
            9: (instrument >= v1_instrument - 0.05, f"{instrument:.3f} (v1 {v1_instrument:.3f})")}


def evaluate_criterion(report: dict, v1_report: dict) -> dict:
    new, old = report["metrics"]["model"], v1_report["metrics"]["model"]
    deltas = {name: new[f"{name}_accuracy"] - old[f"{name}_accuracy"] for name in ("key", "instrument")}
    deltas["tempo"] = new["tempo_accuracy_octave"] - old["tempo_accuracy_octave"]
    mode_p = report["p_value_model_vs_shuffled"]["mode_accuracy"]
    holds = deltas["key"] >= -0.10 and deltas["tempo"] >= -0.08 and deltas["instrument"] >= -0.10 and mode_p <= 0.05
    text = (f"{new['key_accuracy']:.3f} / {new['tempo_accuracy_octave']:.3f} / {new['instrument_accuracy']:.3f}, "
            f"mode p {mode_p:.3f} (v1 {old['key_accuracy']:.3f} / {old['tempo_accuracy_octave']:.3f} / "
            f"{old['instrument_accuracy']:.3f}; {deltas['key']:+.3f} / {deltas['tempo']:+.3f} / {deltas['instrument']:+.3f})")
    return {10: (holds, text)}


def speed_criterion(report: dict) -> tuple[bool | None, str]:
    """11: only a timing of 10 s of audio counts (other lengths are not measured)."""
    if report.get("seconds_of_audio") != 10.0:
        return None, f"timed {report.get('seconds_of_audio')} s of audio, not 10 s"
    return report["wall_s"] <= 5.0, f"{report['wall_s']:.2f} s"


def format_report(rows: dict, args, verdict: str) -> str:
    lines = [f"# Shipping rule for model v2: {args.candidate}", "",
             "- The rule: docs/evaluation.md, \"Bundled model v2: the shipping rule\" (criteria 3-11; 1-2 are the VAE's).",
             "- Produced by `benchmarks/shipping_rule.py` from:",
             *[f"  - `{path}`" for path in (args.prompt_breadth, args.domain_eval, args.v1_domain_eval, args.evaluate,
                                            args.v1_evaluate, args.speed)],
             "", "| criterion | measured | rule | result |", "|---|---|---|---|"]
    for number, (holds, text) in sorted(rows.items()):
        result = "pass" if holds else ("not measured" if holds is None else "**fail**")
        lines.append(f"| {number}. {CRITERIA[number][0]} | {text} | {CRITERIA[number][1]} | {result} |")
    return "\n".join(lines + ["", f"**Verdict: {verdict}.**"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidate", required=True, help="the candidate's label in the prompt_breadth report")
    parser.add_argument("--prompt-breadth", required=True, help="prompt_breadth JSON")
    parser.add_argument("--domain-eval", required=True, metavar="LABEL=FILE", help="the candidate's domain_eval JSON")
    parser.add_argument("--v1-domain-eval", required=True, metavar="LABEL=FILE", help="v1's domain_eval JSON")
    parser.add_argument("--evaluate", required=True, help="the candidate's audiodit.evaluate report.json")
    parser.add_argument("--v1-evaluate", required=True, help="v1's audiodit.evaluate report.json")
    parser.add_argument("--speed", required=True, help="the candidate's generation_speed JSON")
    parser.add_argument("--out", default=None, help="markdown report (JSON beside it)")
    args = parser.parse_args(argv)

    try:
        rows = breadth_criteria(load(args.prompt_breadth), args.candidate)
        rows.update(domain_criteria(labelled(args.domain_eval), labelled(args.v1_domain_eval)))
        rows.update(evaluate_criterion(load(args.evaluate), load(args.v1_evaluate)))
        rows[11] = speed_criterion(load(args.speed))
    except RuleInputError as error:
        print(f"shipping_rule: error: {error}", file=sys.stderr)
        return 2
    except KeyError as error:
        print(f"shipping_rule: error: a result file lacks {error}; is each file the report its option names?",
              file=sys.stderr)
        return 2
    failed = [number for number, (holds, _) in sorted(rows.items()) if holds is False]
    missing = [number for number, (holds, _) in sorted(rows.items()) if holds is None]
    verdict = ("ship" if not failed and not missing else
               "do not ship: " + "; ".join(filter(None, [f"fails {', '.join(map(str, failed))}" if failed else "",
                                                         f"{', '.join(map(str, missing))} not measured" if missing else ""])))
    emit_report(format_report(rows, args, verdict), args.out)
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(
            {"benchmark": "shipping_rule", "candidate": args.candidate, "verdict": verdict,
             "criteria": {str(n): {"holds": holds, "measured": text, "rule": CRITERIA[n][1]}
                          for n, (holds, text) in sorted(rows.items())}}, indent=1) + "\n")
    return 0 if not failed and not missing else 1


if __name__ == "__main__":
    sys.exit(main())
