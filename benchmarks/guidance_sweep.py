"""Prompt adherence against a guidance scale, side by side in one run.

    python -m benchmarks.guidance_sweep --model models/audiodit-small --data data/music21_v3 \\
        --split train --num-prompts 64 --scales 4,2.5,6,9 --out benchmarks/results/guidance_sweep_cpu.json
    python -m benchmarks.guidance_sweep ... --parameter key_classifier_scale --scales 0,3,10,30
    python -m benchmarks.guidance_sweep ... --parameter guidance_interval --scales 0:1,0.2:0.85,0:0.85

`--parameter` is the pipeline argument swept: `guidance_scale` (classifier-free guidance),
`key_classifier_scale` (key classifier guidance) or `guidance_interval` (the noise levels LOW:HIGH
at which guidance applies; each step outside runs the conditional branch alone); the other settings
stay the model's defaults.
Every prompt is generated at every scale from the *same* noise (prompt i: seed + i), so the scales
differ in nothing else. Each scale's generations get the evaluation's analysers and scores
(`audiodit.evaluate`: essentia key and tempo, the instrument classifier fitted on train-split audio,
the Fréchet feature distance to held-out audio, the shuffled-prompt floor), and a clip-by-clip
comparison against the first scale (`compare_evals.compare`: gained, lost, sign test).

`--split train` tunes on captions the DiT was trained on, so that choosing a scale does not look at
the held-out prompts that `audiodit.evaluate` then reports on; the prompts are drawn so that none
of them is among the classifier's training clips.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from audiodit import evaluate as ev
from audiodit.analysis import analyse_clip, clip_features
from audiodit.configuration import atomic_write_text
from benchmarks.compare_evals import compare


def parse_scales(text: str) -> list[float]:
    try:
        scales = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SystemExit(f"--scales must be comma-separated numbers, got {text!r}") from None
    if len(scales) < 2 or any(scale < 0 for scale in scales):
        raise SystemExit(f"--scales needs at least two non-negative scales, got {text!r}")
    return scales


def parse_intervals(text: str) -> list[tuple[float, float]]:
    """`LOW:HIGH,LOW:HIGH,...` -> noise-level intervals, each checked as the pipeline checks it."""
    from audiodit.inputs import check_guidance_interval

    try:
        intervals = [tuple(float(end) for end in part.split(":")) for part in text.split(",") if part.strip()]
        for interval in intervals:
            check_guidance_interval(interval)
    except ValueError as err:
        raise SystemExit(f"--scales for guidance_interval must be LOW:HIGH pairs ({err}), got {text!r}") from None
    if len(intervals) < 2:
        raise SystemExit(f"--scales needs at least two intervals, got {text!r}")
    return intervals


def label(value) -> str:
    """A swept value as the result's key: a scale as before ("4.0"), an interval as "LOW:HIGH"."""
    return f"{value[0]:g}:{value[1]:g}" if isinstance(value, tuple) else str(value)


def main(argv=None) -> int:
    from audiodit.pipeline import AudioDiTPipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/audiodit-small")
    parser.add_argument("--data", required=True, help="corpus made by python -m audiodit.corpora.music21_corpus")
    parser.add_argument("--split", default="train", choices=("train", "valid", "test"))
    parser.add_argument("--num-prompts", type=int, default=64)
    parser.add_argument("--parameter", default="guidance_scale", choices=("guidance_scale", "key_classifier_scale", "guidance_interval"))
    parser.add_argument("--scales", default="4,2.5,6,9",
                        help="values of --parameter (intervals as LOW:HIGH); the first is the baseline")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train-clips", type=int, default=300, help="train-split clips for the classifier")
    parser.add_argument("--max-reference-clips", type=int, default=128, help="held-out clips (Fréchet reference)")
    parser.add_argument("--shuffle-rounds", type=int, default=500)
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here (never overwritten)")
    args = parser.parse_args(argv)
    scales = parse_intervals(args.scales) if args.parameter == "guidance_interval" else parse_scales(args.scales)
    if args.out is not None and args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another --out (results are never overwritten)")
    if args.num_prompts < 2:
        raise SystemExit(f"--num-prompts must be at least 2, got {args.num_prompts}")

    started = time.perf_counter()
    records = ev.load_split(args.data, args.split)
    order = np.random.default_rng([args.seed, 1]).permutation(len(records))
    prompts = [records[i] for i in order[: args.num_prompts]]
    chosen = {p["audio_path"] for p in prompts}
    train = ev.sample_records([r for r in ev.load_split(args.data, "train") if r["audio_path"] not in chosen],
                              args.max_train_clips, args.seed)
    reference = ev.sample_records([r for split in ev.HELD_OUT_SPLITS for r in ev.load_split(args.data, split)
                                   if r["audio_path"] not in chosen], args.max_reference_clips, args.seed)
    if len(prompts) < 2 or len(train) < 2 or len(reference) < 2:
        raise SystemExit(f"{args.data}: too few clips (prompts {len(prompts)}, classifier {len(train)}, "
                         f"reference {len(reference)})")

    train_features = np.stack([clip_features(ev.load_clip(r, args.seconds)) for r in train])
    reference_features = np.stack([clip_features(ev.load_clip(r, args.seconds)) for r in reference])
    classifier = ev.fit_instrument_classifier(train_features, [r["instrument_family"] for r in train], args.seed)
    mean, std = reference_features.mean(axis=0), reference_features.std(axis=0) + 1e-8

    pipe = AudioDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    steps = args.steps or pipe.default_num_inference_steps
    result = {"model": args.model, "data": args.data, "split": args.split, "num_prompts": len(prompts),
              "seconds": args.seconds, "steps": steps, "seed": args.seed, "parameter": args.parameter, "scales": [label(scale) for scale in scales],
              "classifier_train_clips": len(train), "reference_clips": len(reference),
              "model_default_guidance_scale": pipe.default_guidance_scale,
              "model_default_key_classifier_scale": pipe.default_key_classifier_scale, "by_scale": {}}
    rows_by_scale = {}
    for scale in scales:
        clock = time.perf_counter()
        guidance = scale if args.parameter == "guidance_scale" else pipe.default_guidance_scale
        key_classifier_scale = pipe.resolve_key_classifier_scale(scale if args.parameter == "key_classifier_scale"
                                                                 else None)
        settings = {"guidance_interval": scale} if args.parameter == "guidance_interval" else {}
        clips = ev.generate(pipe, prompts, args.seconds, steps, guidance, args.seed, 4, None,
                            pipe.resolve_key_guidance_scale(None, guidance), key_classifier_scale,
                            **settings)  # each (2, S)
        analyses = [analyse_clip(clip) for clip in clips]
        for analysis in analyses:
            analysis["family_estimate"] = str(classifier.predict(analysis["features"][None])[0])
        floor = ev.shuffled_floor(analyses, prompts, args.shuffle_rounds, args.seed)
        metrics = ev.adherence(analyses, prompts)
        metrics["frechet_distance"] = ev.frechet_distance(
            (np.stack([a["features"] for a in analyses]) - mean) / std, (reference_features - mean) / std)
        rows_by_scale[scale] = ev.per_clip_rows(prompts, analyses, prompts)
        result["by_scale"][label(scale)] = {"metrics": metrics, "shuffled": floor["mean"], "p_value": floor["p_value"],
                                          "wall_s": round(time.perf_counter() - clock, 1),
                                          "per_clip": rows_by_scale[scale]}
        print(f"[guidance_sweep] {args.parameter} {label(scale)}: key {metrics['key_accuracy']:.3f} mode {metrics['mode_accuracy']:.3f} "
              f"(floor {floor['mean']['mode_accuracy']:.3f}) tempo {metrics['tempo_accuracy_octave']:.3f} "
              f"instrument {metrics['instrument_accuracy']:.3f} frechet {metrics['frechet_distance']:.1f}",
              file=sys.stderr, flush=True)
    baseline = scales[0]
    result["against_first_scale"] = {label(scale): compare(rows_by_scale[scale], rows_by_scale[baseline])
                                     for scale in scales[1:]}
    result["wall_s"] = round(time.perf_counter() - started, 1)
    table = [f"{'value':>9} {'key':>6} {'mode':>6} {'floor':>6} {'p':>6} {'tempo':>6} {'instr':>6} {'frechet':>8} "
             f"{'wall s':>7}"]
    for scale in scales:
        entry = result["by_scale"][label(scale)]
        m = entry["metrics"]
        table.append(f"{label(scale):>9} {m['key_accuracy']:>6.3f} {m['mode_accuracy']:>6.3f} "
                     f"{entry['shuffled']['mode_accuracy']:>6.3f} {entry['p_value']['mode_accuracy']:>6.3f} "
                     f"{m['tempo_accuracy_octave']:>6.3f} {m['instrument_accuracy']:>6.3f} {m['frechet_distance']:>8.2f} "
                     f"{entry['wall_s']:>7.1f}")
    print("\n".join(table))
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
