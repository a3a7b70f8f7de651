"""Where generated latents sit, per domain: per-channel statistics of generated against real latents.

    .venv/bin/python -m benchmarks.latent_stats --model v2p5=runs/v5_candidate/audiodit-small-v5 \\
        --data arrangement=data/grooves --data recording=data/recordings --data sound=data/sounds_v4 \\
        --data score=data/music21 [--num-prompts 16] [--guidance 4,8] [--length fixed|clip] \\
        [--steps 25] [--out benchmarks/results/latent_stats_cpu.md]

Written to answer one question: when a model's generations for a domain's captions are quiet or sound
like another domain, is it because its latents are small, because they sit elsewhere (another
domain's channel means) or because they vary less than real latents do?

For each `--data DOMAIN=DIR` (captions drawn as `benchmarks/domain_eval.py` draws them, seeded, from
`--split`): the real clips (first `--seconds`) are encoded with each model's VAE (posterior mode,
times its scaling factor: the DiT's space), and each model generates latents for the same captions at
every `--guidance` scale (caption i: seed `--seed + i`, the same noise at every scale). Only the frames
the real clip covers count, for real and generated latents alike (a 2 s sound in a 10 s window is
compared over its 2 s). `--length clip` asks the model for each clip's own length (at most
`--seconds`) instead of `--seconds`, as the captions were trained (`seconds_total`).

Per domain, model and scale, over the counted frames of all clips:

- `rms`: root mean square of the latents (real: the same for the real clips);
- `std_ratio`: mean over channels of the generated per-channel standard deviation over that of the
  real latents of the domain (1: as varied as real; below: flatter);
- `offset_own`: root mean square over channels of (generated channel mean - real channel mean) / the
  pooled per-channel std (the root mean of every domain's real per-channel variance, one unit for
  all domains, so distances to different domains compare), against the domain's own real latents;
  `offset_<domain>` the same against each other domain's real latents; `nearest`: the domain whose
  real channel means are closest;
- `flux_ratio`: mean absolute frame-to-frame change, generated over real (transients);
- `level_db`: the decoded audio's mean power over the counted samples of each clip, averaged over
  clips (each clip weighs the same), in dB full scale; real: the real clips through the VAE.

Writes the markdown report to `--out` (`benchmarks.machine.emit_report`) and the numbers, per channel
means and stds too, to the JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audiodit.analysis import SAMPLE_RATE
from audiodit.audio import audio_info
from audiodit.configuration import atomic_write_text
from benchmarks.domain_eval import load_clip, parse_data_argument, parse_model_argument, select_captions
from benchmarks.machine import cpu_model, emit_report

REPO = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(f"[latent_stats] {message}", file=sys.stderr, flush=True)


def parse_scales(text: str) -> list[float]:
    try:
        scales = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--guidance {text!r}: not a comma-separated list of numbers") from None
    if not scales or any(scale < 0 for scale in scales):
        raise argparse.ArgumentTypeError(f"--guidance {text!r}: give one or more scales >= 0")
    return scales


def clip_frames(num_samples: int, seconds: float, latent_rate: float) -> int:
    """Latent frames a clip of `num_samples` covers within the first `seconds` (at least 1)."""
    return max(1, min(int(round(min(num_samples / SAMPLE_RATE, seconds) * latent_rate)), int(seconds * latent_rate)))


def summarise(latents: list[torch.Tensor]) -> dict:
    """Per-channel mean and std, RMS and mean absolute frame-to-frame change of (C, T_i) latents
    (change 0 when no clip has two frames)."""
    frames = torch.cat([clip.double() for clip in latents], dim=1)  # (C, sum T)
    changes = [(clip[:, 1:] - clip[:, :-1]).abs().double().flatten() for clip in latents if clip.shape[1] > 1]
    return {"mean": frames.mean(dim=1).numpy(), "std": frames.std(dim=1).numpy(),
            "rms": float(frames.pow(2).mean().sqrt()), "flux": float(torch.cat(changes).mean()) if changes else 0.0}


def pooled_std(references: list[dict]) -> np.ndarray:
    """Per channel, the root mean of the references' variances: one unit for distances to any of them."""
    return np.sqrt(np.mean([reference["std"] ** 2 for reference in references], axis=0))


def offset(stats: dict, reference: dict, unit: np.ndarray) -> float:
    """RMS over channels of the channel-mean difference in units of `unit` (a per-channel std)."""
    return float(np.sqrt(np.mean(((stats["mean"] - reference["mean"]) / np.maximum(unit, 1e-6)) ** 2)))


def level_db(audios: list[np.ndarray]) -> float:
    """Each (2, S) clip's mean power, averaged over clips (each clip weighs the same), in dBFS."""
    power = np.mean([float(np.mean(np.square(audio, dtype=np.float64))) for audio in audios])
    return float(10 * np.log10(max(power, 1e-12)))


def real_latents(pipe, clips: list[np.ndarray], frames: list[int]) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Each clip's scaled latents (C, frames_i) and its VAE reconstruction over those frames."""
    vae, latents, decoded = pipe.vae, [], []
    hop = SAMPLE_RATE / pipe.transformer.config.latent_rate
    for clip, count in zip(clips, frames):
        audio = torch.from_numpy(clip)[None].to(vae.device, vae.dtype)
        with torch.no_grad():
            mode = vae.encode(audio).latent_dist.mode()
            out = vae.decode(mode, length=audio.shape[-1]).sample[0].float().cpu().numpy()
        latents.append((mode[0, :, :count] * pipe.latent_scale).float().cpu())
        decoded.append(out[:, : int(count * hop)])
    return latents, decoded


def generated_latents(pipe, captions: list[str], lengths: list[float], frames: list[int], steps: int,
                      guidance: float, seed: int) -> tuple[list[torch.Tensor], list[np.ndarray]]:
    """Scaled latents (C, frames_i) for each caption (caption i: seed + i), and their decoded audio."""
    latents, decoded = [], []
    hop = SAMPLE_RATE / pipe.transformer.config.latent_rate
    for i, (caption, seconds, count) in enumerate(zip(captions, lengths, frames)):
        generator = torch.Generator("cpu").manual_seed(seed + i)
        with torch.no_grad():
            out = pipe(caption, audio_end_in_s=seconds, num_inference_steps=steps, guidance_scale=guidance,
                       key_classifier_scale=0.0, generator=generator, output_type="latent").audios
            audio = pipe.vae.decode((out / pipe.latent_scale).to(pipe.vae.dtype)).sample[0].float().cpu().numpy()
        latents.append(out[0, :, :count].float().cpu())
        decoded.append(audio[:, : int(count * hop)])
    return latents, decoded


def format_report(report: dict) -> str:
    settings = report["settings"]
    lines = [f"# Latent statistics per domain, generated against real: {', '.join(m['label'] for m in report['models'])}",
             "", f"- Machine: {report['machine']}; wall time {report['wall_s']:.0f} s.",
             f"- {settings['num_prompts']} captions per domain from `{settings['split']}`, seeded ({settings['seed']}); "
             f"{settings['steps']} steps; length: {settings['length']} (at most {settings['seconds']:g} s); "
             "only frames the real clip covers count.",
             *[f"- {m['label']}: `{m['path']}`" for m in report["models"]],
             "- Produced by `benchmarks/latent_stats.py` (definitions in its docstring); per-channel numbers in the JSON.",
             "", "| domain | model | set | rms | std ratio | offset own | nearest | " +
             " | ".join(f"offset {d}" for d in report["domains"]) + " | flux ratio | level dB |",
             "|---|---|---|---|---|---|---|" + "---|" * len(report["domains"]) + "---|---|"]
    for domain, by_model in report["results"].items():
        for label, rows in by_model.items():
            for name, row in rows.items():
                lines.append(f"| {domain} | {label} | {name} | {row['rms']:.3f} | {row['std_ratio']:.2f} | "
                             f"{row['offset_own']:.2f} | {row['nearest']} | " +
                             " | ".join(f"{row['offsets'][d]:.2f}" for d in report["domains"]) +
                             f" | {row['flux_ratio']:.2f} | {row['level_db']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from audiodit.cli import load_pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="[LABEL=]DIR")
    parser.add_argument("--data", action="append", required=True, metavar="[DOMAIN=]DIR")
    parser.add_argument("--num-prompts", type=int, default=16, help="captions per domain")
    parser.add_argument("--split", default="test")
    parser.add_argument("--seconds", type=float, default=10.0, help="longest clip, generated and real")
    parser.add_argument("--length", choices=("fixed", "clip"), default="fixed",
                        help="generate --seconds (fixed) or each real clip's own length, at most --seconds (clip)")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=parse_scales, default=[4.0], help="comma-separated guidance scales")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "latent_stats_cpu.md"))
    args = parser.parse_args(argv)
    if args.num_prompts < 2 or args.seconds <= 0 or args.steps < 1:
        parser.error("--num-prompts must be >= 2, --seconds > 0 and --steps >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    datasets = dict(parse_data_argument(text, args.split) for text in args.data)
    if len(datasets) < len(args.data):
        parser.error("each domain takes one --data")
    pipes, models = {}, []
    for text in args.model:
        label, path = parse_model_argument(text)
        if label in pipes:
            parser.error(f"two models are labelled {label!r}; give each its own LABEL=")
        pipe = load_pipeline(path, "cpu", torch.float32)
        pipe.set_progress_bar_config(disable=True)
        if args.seconds > pipe.max_audio_length_s + 1e-6:
            parser.error(f"--seconds {args.seconds:g} exceeds {path}'s maximum of {pipe.max_audio_length_s:g} s")
        pipes[label] = pipe
        models.append({"label": label, "path": str(path)})

    real, generated, levels = {}, {}, {}
    for domain, folder in datasets.items():
        prompts = select_captions(folder, args.split, args.num_prompts, args.seed)
        clips = [load_clip(record, args.seconds) for record in prompts]
        durations = [audio_info(record["audio_path"]).duration for record in prompts]
        lengths = [min(duration, args.seconds) if args.length == "clip" else args.seconds for duration in durations]
        for label, pipe in pipes.items():
            rate = float(pipe.transformer.config.latent_rate)
            frames = [clip_frames(int(duration * SAMPLE_RATE), length, rate)
                      for duration, length in zip(durations, lengths)]
            log(f"{domain}: {label} encodes {len(clips)} real clips")
            latents, decoded = real_latents(pipe, clips, frames)
            real[domain, label] = summarise(latents)
            levels[domain, label, "real"] = level_db(decoded)
            for scale in args.guidance:
                log(f"{domain}: {label} generates {len(prompts)} at guidance {scale:g}")
                latents, decoded = generated_latents(pipe, [record["caption"] for record in prompts], lengths, frames,
                                                     args.steps, scale, args.seed)
                generated[domain, label, scale] = summarise(latents)
                levels[domain, label, f"guidance {scale:g}"] = level_db(decoded)

    results = {}
    for domain in datasets:
        results[domain] = {}
        for label in pipes:
            own, rows = real[domain, label], {}
            unit = pooled_std([real[other, label] for other in datasets])
            sets = {"real": own, **{f"guidance {scale:g}": generated[domain, label, scale] for scale in args.guidance}}
            for name, stats in sets.items():
                offsets = {other: offset(stats, real[other, label], unit) for other in datasets}
                rows[name] = {"rms": stats["rms"], "std_ratio": float(np.mean(stats["std"] / np.maximum(own["std"], 1e-6))),
                              "offset_own": offsets[domain], "offsets": offsets,
                              "nearest": min(offsets, key=offsets.get), "flux_ratio": stats["flux"] / max(own["flux"], 1e-9),
                              "level_db": levels[domain, label, name],
                              "channel_mean": stats["mean"].round(4).tolist(), "channel_std": stats["std"].round(4).tolist()}
            results[domain][label] = rows
    report = {"benchmark": "latent_stats",
              "machine": f"cpu: {cpu_model()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), "
                         f"torch {torch.__version__}, load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
              "settings": {"num_prompts": args.num_prompts, "split": args.split, "seconds": args.seconds,
                           "length": args.length, "steps": args.steps, "guidance": args.guidance, "seed": args.seed,
                           "data": {d: str(f) for d, f in datasets.items()}},
              "models": models, "domains": list(datasets), "results": results,
              "wall_s": time.perf_counter() - started}
    emit_report(format_report(report), args.out)
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
