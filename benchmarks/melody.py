"""Melody conditioning (issue 26): does a melody-conditioned model follow a held-out tune, and does
the text still hold?

    .venv/bin/python -m benchmarks.melody --model runs/melody/pipeline --data data/music21 \\
        [--num-prompts 32] [--seconds 10] [--steps K] [--melody-scales 0,2] [--train-clips 200] \\
        [--out benchmarks/results/melody_cpu.md]

`--num-prompts` held-out score clips (`audiodit.evaluate.select_prompts`: test split, then valid;
never trained on; `--split train` takes a seeded sample of the train split instead, for choosing a
default melody scale without looking at held-out clips) give each a caption and a reference tune:
the clip's own dominant pitch class per latent frame (`audiodit.melody.melody_ids`). From each reference a hum is sung
(`melody.notes_from_ids` -> `melody.synth_hum`: a near-sine voice in G3-F#4 with vibrato, 0-30 cents
off pitch), since no recording of a person humming exists here. Every clip is generated with the
same noise (CPU generator seeded `--seed + i`) for its caption

* without a melody (text only),
* with the reference's melody, and with the hum's melody, at each `--melody-scales` value
  (`melody_guidance_scale`: 0 = the melody in the conditional branch only).

Measures, the issue's chroma cosine (`melody.melody_agreement`: the share of the reference's pitched
frames whose dominant pitch class the output shares; MusicGen's melody model reports 0.44, JASCO
0.42):

* model: reference (or hum) against the generation made with it;
* text-only floor: reference against the generation made without a melody (the caption states the
  key, so this is above chance);
* shuffled floor: another clip's reference against the generation (all pairs i != j);
* ceiling: reference against itself through the model's VAE (about where a DiT that wrote the
  tune's latents exactly would land);
* p: a paired sign-flip permutation test of model over text-only, per clip.

Text adherence (`audiodit.evaluate.adherence`: key, tempo, instrument family by a classifier fitted
on `--train-clips` train-split clips) of the text-only generations and of those with each melody,
with the paired difference and its sign-flip p. Writes the markdown report to `--out`
(`benchmarks.machine.emit_report`) and every number, per clip too, to the JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audiodit.analysis import analyse_clip, clip_features
from audiodit.configuration import atomic_write_text
from audiodit.evaluate import (
    adherence,
    fit_instrument_classifier,
    load_clip,
    load_split,
    sample_records,
    select_prompts,
    vae_reconstruction,
)
from audiodit.melody import (
    NO_PITCH,
    melody_agreement,
    melody_ids,
    notes_from_ids,
    synth_hum,
)
from benchmarks.machine import cpu_model, emit_report

SPLIT_WORDS = {"train": "train-split", "valid": "valid-split"}  # the report's word for the captions' split
ADHERENCE = ("key_accuracy", "mode_accuracy", "tempo_accuracy_octave", "instrument_accuracy")


def _log(message: str) -> None:
    print(f"[melody] {message}", file=sys.stderr, flush=True)


def sign_flip_p(differences: np.ndarray, rounds: int = 10000, seed: int = 0) -> float:
    """One-sided p that the mean of paired `differences` is > 0: how often random sign flips give a
    mean at least as large ((b + 1) / (m + 1), Phipson & Smyth 2010)."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size == 0:
        return float("nan")
    signs = np.random.default_rng(seed).choice([-1.0, 1.0], size=(rounds, differences.size))
    as_large = (signs * differences).mean(axis=1) >= differences.mean() - 1e-12
    return float((as_large.sum() + 1) / (rounds + 1))


def shuffled_agreement(references: list[torch.Tensor], outputs: list[torch.Tensor]) -> float:
    """Mean agreement of every other clip's reference with each output (i != j)."""
    values = [melody_agreement(reference, output) for j, reference in enumerate(references)
              for i, output in enumerate(outputs) if i != j]
    return float(np.nanmean(values))


def per_clip_hits(analyses: list[dict], prompts: list[dict]) -> dict[str, np.ndarray]:
    """Each clip's 0/1 hit on each `ADHERENCE` metric (adherence of that clip alone)."""
    rows = [adherence([analysis], [prompt]) for analysis, prompt in zip(analyses, prompts)]
    return {metric: np.array([row[metric] for row in rows]) for metric in ADHERENCE}


def hum_of(reference_ids: torch.Tensor, seconds: float, index: int, sample_rate: int,
           frame_rate: float) -> np.ndarray:
    """The reference's tune (ids at `frame_rate`) hummed: `(2, S)` float32 (the hum in both
    channels), `seconds` long."""
    rng = np.random.default_rng(index)
    mono = synth_hum(notes_from_ids(reference_ids, frame_rate), sample_rate, detune_cents=float(rng.uniform(-30, 30)),
                     vibrato_cents=float(rng.uniform(15, 40)), seed=index)
    mono = np.pad(mono, (0, max(0, round(seconds * sample_rate) - mono.shape[0])))[: round(seconds * sample_rate)]
    return np.stack([mono, mono])


def generate_one(pipe, caption: str, seconds: float, steps: int, seed: int, melody=None, scale: float = 0.0):
    generator = torch.Generator("cpu").manual_seed(seed)
    audio = pipe(caption, audio_end_in_s=seconds, num_inference_steps=steps, melody=melody,
                 melody_guidance_scale=scale, generator=generator).audios[0]  # (2, S)
    return audio.float().cpu().numpy()


def choose_prompts(data_dir, split: str, num_prompts: int, seed: int) -> list[dict]:
    """Held-out records (`split` "test": test, then valid) or a seeded sample of `split`'s."""
    if split == "test":
        return select_prompts(data_dir, num_prompts, seed)
    records = load_split(data_dir, split)
    if len(records) < 2:
        raise ValueError(f"{data_dir}: need at least 2 {split} clips, found {len(records)}")
    return sample_records(records, num_prompts, seed + 1)


def run(pipe, data_dir, num_prompts: int, seconds: float, steps: int, scales: list[float], train_clips: int,
        seed: int, split: str = "test") -> dict:
    prompts = choose_prompts(data_dir, split, num_prompts, seed)
    rate, latent_rate = pipe.sampling_rate, float(pipe.vae.latent_rate)
    frames = pipe.vae.latent_frames(round(seconds * rate))

    def ids_of(audio) -> torch.Tensor:
        return melody_ids(torch.as_tensor(audio), rate, latent_rate, frames)

    references = [load_clip(record, seconds) for record in prompts]
    reference_ids = [ids_of(clip) for clip in references]
    hums = [hum_of(ids, seconds, i, rate, latent_rate) for i, ids in enumerate(reference_ids)]
    hum_ids = [ids_of(hum) for hum in hums]
    # ceiling: the reference through the VAE
    _, decoded = vae_reconstruction(pipe.vae, references)
    ceiling = [melody_agreement(ids, ids_of(clip)) for ids, clip in zip(reference_ids, decoded)]

    clock = time.perf_counter()
    generated = {"text": []} | {f"{source}@{scale:g}": [] for scale in scales for source in ("reference", "hum")}
    for i, record in enumerate(prompts):
        generated["text"].append(generate_one(pipe, record["caption"], seconds, steps, seed + i))
        for scale in scales:
            for source, ids in (("reference", reference_ids[i]), ("hum", hum_ids[i])):
                generated[f"{source}@{scale:g}"].append(
                    generate_one(pipe, record["caption"], seconds, steps, seed + i, ids, scale))
        _log(f"generated {i + 1}/{len(prompts)} ({time.perf_counter() - clock:.0f} s)")
    generation_s = time.perf_counter() - clock

    out_ids = {name: [ids_of(clip) for clip in clips] for name, clips in generated.items()}
    rows = {}
    for name, ids in out_ids.items():
        if name == "text":
            continue
        source = name.split("@")[0]
        targets = reference_ids if source == "reference" else hum_ids
        model = np.array([melody_agreement(t, o) for t, o in zip(targets, ids)])
        text_only = np.array([melody_agreement(t, o) for t, o in zip(targets, out_ids["text"])])
        keep = ~(np.isnan(model) | np.isnan(text_only))
        rows[name] = {"model": float(np.mean(model[keep])), "text_only": float(np.mean(text_only[keep])),
                      "shuffled": shuffled_agreement(targets, ids),
                      "p_over_text_only": sign_flip_p(model[keep] - text_only[keep], seed=seed),
                      "clips": int(keep.sum()),
                      "per_clip": [None if np.isnan(v) else round(float(v), 4) for v in model]}
    rows["ceiling_vae"] = float(np.nanmean(ceiling))
    rows["hum_vs_reference"] = float(np.nanmean([melody_agreement(r, h) for r, h in zip(reference_ids, hum_ids)]))

    # text adherence, with and without a melody
    chosen = {p["audio_path"] for p in prompts}
    train = [r for r in load_split(data_dir, "train") if r["audio_path"] not in chosen]
    train = sample_records(train, train_clips, seed)
    classifier = fit_instrument_classifier(np.stack([clip_features(load_clip(r, seconds)) for r in train]),
                                           [r["instrument_family"] for r in train], seed)
    analyses = {}
    for name, clips in generated.items():
        analyses[name] = [analyse_clip(clip) for clip in clips]
        for analysis in analyses[name]:
            analysis["family_estimate"] = str(classifier.predict(analysis["features"][None])[0])
    text_rows = {name: adherence(values, prompts) for name, values in analyses.items()}
    hits = {name: per_clip_hits(values, prompts) for name, values in analyses.items()}
    changes = {name: {metric: {"change": float((hits[name][metric] - hits["text"][metric]).mean()),
                               "p_drop": sign_flip_p(hits["text"][metric] - hits[name][metric], seed=seed)}
                      for metric in ADHERENCE} for name in analyses if name != "text"}
    return {"prompts": [{"id": p["id"], "caption": p["caption"]} for p in prompts], "split": split, "seconds": seconds,
            "steps": steps, "melody_scales": scales, "generation_s": generation_s, "chroma_cosine": rows,
            "adherence": text_rows, "adherence_change": changes,
            "pitched_share": float(np.mean([float((ids != NO_PITCH).float().mean()) for ids in reference_ids]))}


def format_report(result: dict) -> str:
    rows = result["chroma_cosine"]
    lines = [f"# Melody conditioning: {result['model']}", "",
             f"{len(result['prompts'])} {SPLIT_WORDS.get(result['split'], 'held-out')} score captions of "
             f"`{result['data']}`, {result['seconds']:g} s, "
             f"{result['steps']} steps, seed {result['seed']}; {result['cpu']}; generation "
             f"{result['generation_s']:.0f} s.", "",
             "Chroma cosine (share of the tune's pitched frames whose dominant pitch class the output shares):", "",
             "| melody | scale | model | text only | shuffled | p (model > text only) |",
             "|---|---|---|---|---|---|"]
    for name, row in rows.items():
        if isinstance(row, dict):
            source, scale = name.split("@")
            lines.append(f"| {source} | {scale} | {row['model']:.3f} | {row['text_only']:.3f} | "
                         f"{row['shuffled']:.3f} | {row['p_over_text_only']:.4f} |")
    lines += ["", f"Ceiling (the reference through the VAE): {rows['ceiling_vae']:.3f}; the hum against its "
              f"reference: {rows['hum_vs_reference']:.3f}. Anchors: MusicGen melody 0.44, JASCO 0.42.", "",
              "Text adherence, without and with a melody (change, and p of a drop by sign flips):", "",
              "| generation | " + " | ".join(ADHERENCE) + " |", "|---|" + "---|" * len(ADHERENCE)]
    for name, values in result["adherence"].items():
        cells = []
        for metric in ADHERENCE:
            cell = f"{values[metric]:.3f}"
            if name != "text":
                change = result["adherence_change"][name][metric]
                cell += f" ({change['change']:+.3f}, p {change['p_drop']:.3f})"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a pipeline directory with melody conditioning")
    parser.add_argument("--data", required=True, help="a music21 corpus (train, valid, test splits)")
    parser.add_argument("--num-prompts", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    parser.add_argument("--melody-scales", default="0,2", help="melody guidance scales, comma-separated")
    parser.add_argument("--train-clips", type=int, default=200, help="train clips for the instrument classifier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="test", choices=("test", "train", "valid"),
                        help="test: held-out captions (test, then valid); train/valid: a sample of that split")
    parser.add_argument("--out", default=None, help="markdown report; the JSON goes beside it")
    args = parser.parse_args(argv)
    try:
        scales = [float(value) for value in args.melody_scales.split(",")]
    except ValueError:
        parser.error(f"--melody-scales must be numbers separated by commas, got {args.melody_scales!r}")
    if any(scale < 0 for scale in scales):
        parser.error(f"--melody-scales must be >= 0, got {args.melody_scales!r}")
    from audiodit.pipeline import AudioDiTPipeline

    pipe = AudioDiTPipeline.from_pretrained(args.model)
    if not pipe.transformer.config.get("melody_conditioning", False):
        parser.error(f"{args.model} has no melody conditioning (dit.melody_conditioning)")
    pipe.set_progress_bar_config(disable=True)
    steps = args.steps or pipe.default_num_inference_steps
    result = {"model": args.model, "data": args.data, "seed": args.seed, "cpu": cpu_model(),
              **run(pipe, args.data, args.num_prompts, args.seconds, steps, scales, args.train_clips, args.seed,
                  args.split)}
    text = format_report(result)
    emit_report(text, args.out)
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
