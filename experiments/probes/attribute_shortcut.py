"""Do the words of a prompt decide what the model makes, or only whether it states a tempo and a key?

A model with tempo and key conditioning can learn a shortcut when, in its training captions, a
stated tempo or key goes with one domain (every rendered piece of music states both, no sound
effect does). Then "a dog barking, 110 BPM" gives a drum groove and "upbeat funk groove with slap
bass and drums" (no tempo) gives sound-effect texture. This benchmark measures that.

Each of `PROMPTS` (music with and without drums, and sounds, as users type them) is generated
three ways with the same noise: as written, with ", 110 BPM" appended and with ", 110 BPM, in E
minor" appended. Per clip: RMS level, the share of energy below 150 Hz and, when `audiodit.judge`
(musicnn) is installed, its MTT "drums" probability; all `prompt_breadth.clip_measures`.

Reported per model:

* **word / attribute ratio**: the spectral distance (`prompt_breadth.spectral_distances`: RMS dB
  over 64 mel bands of level-centred average spectra) between clips of different prompts with the
  same suffix, over that between clips of one prompt with different suffixes; with the judge,
  also the cosine distance of its embeddings. Above 1 the words change a clip more than appending
  a tempo does; below 1 the suffix decides;
* the mean of each measure per suffix, and how often appending ", 110 BPM" makes the judge hear
  drums in a prompt that asks for none (drums probability above 0.3, where the bundled models'
  drum grooves lie);
* every clip's numbers and top tags in the JSON.

    python -m experiments.probes.attribute_shortcut --model runs/v2_candidate/audiodit-small-v2 \\
        --model runs/v2_phase2_candidate/audiodit-small-v2 --report experiments/results/attribute_shortcut_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from benchmarks.machine import cpu_model, emit_report

from benchmarks import prompt_breadth
from audiodit.analysis import SAMPLE_RATE
from audiodit.configuration import atomic_write_text

# (prompt, asks for drums: True / False / None for sounds)
PROMPTS = [
    ("upbeat funk groove with slap bass and drums", True),
    ("electronic dance music with a four-on-the-floor kick", True),
    ("roots reggae with a one-drop drum beat and an offbeat guitar skank", True),
    ("latin salsa with congas, timbales and a piano montuno", True),
    ("a solo piano ballad, slow and gentle", False),
    ("a string quartet playing a slow romantic melody", False),
    ("a snare drum hit", None),
    ("a video game laser sound effect", None),
]
SUFFIXES = ("", ", 110 BPM", ", 110 BPM, in E minor")
DRUMS_HEARD = 0.3  # judge "drums" probability above which a clip counts as drums


def ratio(distances: np.ndarray, prompt_of: np.ndarray, suffix_of: np.ndarray) -> dict:
    """Mean distance between different prompts of one suffix over that between different
    suffixes of one prompt (clips indexed alike in the three arrays)."""
    upper = np.triu(np.ones_like(distances, bool), k=1)
    same_suffix = upper & (suffix_of[:, None] == suffix_of[None, :]) & (prompt_of[:, None] != prompt_of[None, :])
    same_prompt = upper & (prompt_of[:, None] == prompt_of[None, :]) & (suffix_of[:, None] != suffix_of[None, :])
    words, attributes = float(distances[same_suffix].mean()), float(distances[same_prompt].mean())
    return {"ratio": words / attributes if attributes > 0 else float("inf"), "words": words, "attributes": attributes}


def summarise(rows: list[dict], spectra: np.ndarray, embeddings) -> dict:
    prompt_of = np.array([row["prompt_index"] for row in rows])
    suffix_of = np.array([row["suffix_index"] for row in rows])
    out = {"spectra": ratio(prompt_breadth.spectral_distances(spectra), prompt_of, suffix_of)}
    if embeddings is not None:
        out["judge_embedding"] = ratio(prompt_breadth.cosine_distances(np.asarray(embeddings)), prompt_of, suffix_of)
    measures = ["rms_db", "low_energy_share"] + (["judge_drums"] if "judge_drums" in rows[0] else [])
    out["by_suffix"] = {suffix or "(as written)": {m: float(np.mean([r[m] for r in rows if r["suffix_index"] == k]))
                                                  for m in measures}
                        for k, suffix in enumerate(SUFFIXES)}
    if "judge_drums" in rows[0]:
        drumless = [r for r in rows if r["wants_drums"] is not True]
        plain = {r["prompt_index"]: r["judge_drums"] for r in drumless if r["suffix_index"] == 0}
        tempo = {r["prompt_index"]: r["judge_drums"] for r in drumless if r["suffix_index"] == 1}
        out["drums_appear_with_tempo"] = {
            "prompts": len(plain),
            "count": sum(plain[i] <= DRUMS_HEARD < tempo[i] for i in plain)}
    return out


def measure_model(model_dir: Path, args) -> dict:
    from audiodit.audio import save_audio

    prompts = [prompt + suffix for prompt, _ in PROMPTS for suffix in SUFFIXES]
    clip_args = argparse.Namespace(seeds=1, seed=args.seed, seconds=args.seconds, steps=args.steps)
    clips, settings = prompt_breadth.generate_clips(model_dir, prompts, clip_args)
    rows, spectra = [], []
    for index, clip in enumerate(clips):
        prompt_index, suffix_index = divmod(index, len(SUFFIXES))
        measures = prompt_breadth.clip_measures(clip)
        spectra.append(measures.pop("spectrum_db"))
        measures.pop("mel_db")
        rows.append({"prompt": prompts[index], "prompt_index": prompt_index, "suffix_index": suffix_index,
                     "wants_drums": PROMPTS[prompt_index][1], **measures})
    judged = {"skipped": "--no-judge"}
    if args.judge:
        with tempfile.TemporaryDirectory() as scratch:
            paths = [save_audio(Path(scratch) / f"{i:02d}.flac", clip, SAMPLE_RATE, "PCM_24", overwrite=True)
                     for i, clip in enumerate(clips)]
            judged = prompt_breadth.judge_clips(paths, args.judge_python)
    if "skipped" not in judged:
        for row, drums, tags in zip(rows, judged["drums"], judged["top_tags"]):
            row.update(judge_drums=drums, judge_top_tags=tags)
    return {"model": str(model_dir), **settings, "judge": judged.get("skipped", "ran"),
            **summarise(rows, np.array(spectra), judged.get("embedding")), "clips": rows}


def format_report(report: dict) -> str:
    lines = [f"# Attribute shortcut: {', '.join(m['label'] for m in report['models'])}", "",
             f"- machine: {report['machine']}",
             f"- {len(PROMPTS)} prompts x {len(SUFFIXES)} suffixes ({', '.join(repr(s) for s in SUFFIXES)}), "
             f"seed {report['seed']} for every clip, {report['seconds']} s each",
             "- Produced by `experiments/probes/attribute_shortcut.py` (definitions in its docstring).", "",
             "| measure | " + " | ".join(m["label"] for m in report["models"]) + " |",
             "|---|" + "---|" * len(report["models"])]

    def cell(model, key):
        found = model.get(key)
        return "n/a" if found is None else f"{found['ratio']:.2f} ({found['words']:.3g} / {found['attributes']:.3g})"

    lines.append("| word / attribute ratio, spectra (prompts / suffixes) | "
                 + " | ".join(cell(m, "spectra") for m in report["models"]) + " |")
    lines.append("| word / attribute ratio, judge embedding | "
                 + " | ".join(cell(m, "judge_embedding") for m in report["models"]) + " |")
    for suffix in report["models"][0]["by_suffix"]:
        for measure in report["models"][0]["by_suffix"][suffix]:
            lines.append(f"| {measure}, {suffix} | "
                         + " | ".join(f"{m['by_suffix'][suffix][measure]:.3f}" for m in report["models"]) + " |")
    if all("drums_appear_with_tempo" in m for m in report["models"]):
        lines.append("| prompts without drums that get drums from ', 110 BPM' | " + " | ".join(
            f"{m['drums_appear_with_tempo']['count']} of {m['drums_appear_with_tempo']['prompts']}"
            for m in report["models"]) + " |")
    lines += ["", "## Per clip", "", "| prompt | " + " | ".join(
        f"{m['label']}: rms dB / low share / drums" for m in report["models"]) + " |",
        "|---|" + "---|" * len(report["models"])]
    for index, row in enumerate(report["models"][0]["clips"]):
        cells = []
        for model in report["models"]:
            clip = model["clips"][index]
            cells.append(f"{clip['rms_db']:.1f} / {clip['low_energy_share']:.2f} / "
                         + (f"{clip['judge_drums']:.2f}" if "judge_drums" in clip else "n/a"))
        lines.append(f"| {row['prompt']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", type=Path, required=True, help="pipeline directory (repeatable)")
    parser.add_argument("--label", action="append", default=[], help="a name per --model (default: folder names)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    parser.add_argument("--no-judge", dest="judge", action="store_false", help="skip the audiodit.judge tagger")
    parser.add_argument("--judge-python", default=None)
    parser.add_argument("--report", type=Path, default=None, help="write REPORT.md and REPORT.json")
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.model):
        parser.error("give one --label per --model, or none")
    if args.seconds <= 0:
        parser.error("--seconds must be > 0")
    labels = args.label or [str(path) for path in args.model]
    load_before = os.getloadavg()[0]
    models = [{"label": label, **measure_model(path, args)} for path, label in zip(args.model, labels)]
    report = {"benchmark": "attribute_shortcut", "seed": args.seed, "seconds": args.seconds,
              "machine": f"cpu: {cpu_model()}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}, "
                         f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
              "models": models}
    emit_report(format_report(report), str(args.report.with_name(args.report.name + ".md")) if args.report else None)
    if args.report:
        atomic_write_text(args.report.with_name(args.report.name + ".json"),
                          json.dumps(prompt_breadth._plain(report), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
