"""LoRA fine-tuning: what it costs and what it teaches the bundled model, side by side in one run.

    python -m benchmarks.lora --clips data/lora_funk/train --heldout data/lora_funk_heldout \\
        --work runs/lora_bench --report benchmarks/results/lora_cpu

1. The recipe (docs/lora.md), timed as a user runs it: `audiodit.data.preencode` of `--clips`,
   then `train.py --config configs/lora_small_cpu.yaml` in a process of its own (wall time, peak
   RSS, trainable parameters, adapter size).
2. LoRA against full fine-tuning at the bundled (`small`) size on this CPU: `--probe-steps`
   training steps of each from the same config and data (median step time after the first
   three, peak RSS of the process, bytes of one checkpoint and of its export).
3. Projected at the `base` preset (1.2 B parameters; no GPU here): parameters and training-state
   memory from arithmetic (AdamW in fp32: weights 4 + gradients 4 + two moments 8 + EMA 4 bytes
   per trained parameter; frozen weights 4, or 2 in bf16). Activations are left out: they are
   about the same for both, as the backward pass runs through every layer either way.
4. The taught style: for the captions of `--heldout` (clips of the style that were not trained
   on), one clip each from the bundled model with the adapter at scale 0 and at scale 1, same
   noise. Measured beside the held-out clips themselves and the same clips through the VAE (what
   the model could reach at best): the percussive share, the low-band (< 150 Hz) energy share
   and onset strength (`prompt_breadth.clip_measures`), and the distance of the clips' average
   mel spectra to the held-out clips': the RMS dB difference of level-centred mean spectra, and
   the Frechet distance between the two sets of per-clip spectra. Paired permutation p-values
   for adapter against scale 0.
5. The model's other prompts (its score domain) with the adapter loaded: at scale 0 the audio
   must equal the bundled model's bit for bit; at scale 1 the spectral distance to the bundled
   model's clip of the same noise, against the distance between two noises of the bundled model
   (what "unchanged within noise" means), and the change of the drum measures.

When `audiodit.judge` (musicnn's taggers, in an interpreter of their own) is installed, every
clip is also judged: the tagger's P(drums) per set, and the Frechet distance of its embeddings to
the held-out clips' (the "pretrained-embedding Frechet" of issue 24); at 24 clips against 200
dimensions the covariances are rank-deficient, so compare those numbers only within this report.
The clips are kept under `--work`/clips. A PNG of mel spectrograms (held-out clip, scale 0, scale
1 for the first captions) is written beside the report.

`--adapter DIR` measures an adapter without running the recipe; with `--report` naming an earlier
report of this script, its recipe and cost sections are kept.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from benchmarks.machine import cpu_model, emit_report
from benchmarks.prompt_breadth import N_MELS, clip_measures, save_spectrogram_grid

from audiodit.configuration import atomic_write_text
from audiodit.evaluate import frechet_distance

ROOT = Path(__file__).resolve().parents[1]
RECIPE_CONFIG = ROOT / "configs" / "lora_small_cpu.yaml"
OTHER_PROMPTS = [  # the bundled model's own domain
    "A Bach chorale in D minor for church organ, 80 BPM, 4/4, centred.",
    "A traditional folk tune in G major for flute, 100 BPM",
    "A Mozart piano sonata movement in C major",
    "A traditional jig in A major for violin, 120 BPM, 6/8",
    "A Palestrina mass movement for choir, 66 BPM",
    "A traditional hornpipe in Bb major for brass ensemble, 92 BPM",
    "A string quartet in E minor, slow and sad, 60 BPM",
    "A Renaissance dance in F major for recorders, 110 BPM",
]
DRUM_MEASURES = ("percussive_share", "low_energy_share", "low_onset_strength")
PERMUTATIONS = 4000


#################################################################################
#                     Training cost (each in a process of its own)              #
#################################################################################

def probe(mode: str, train_dir: str, steps: int, out: str) -> dict:
    """Child process: `steps` training steps of the recipe config, LoRA or full fine-tuning."""
    from audiodit.config import load_config
    from audiodit.training.trainer import Trainer

    overrides = [f"data.train_dir={train_dir}", f"training.output_dir={out}", f"training.max_steps={steps}",
                 f"training.checkpoint_every={steps}", "training.warmup_steps=0"]
    if mode == "full":
        overrides += ["training.lora.rank=0", "training.lr=5e-5"]
    trainer = Trainer(load_config(RECIPE_CONFIG, overrides))
    durations = []
    original = trainer._train_step

    def timed(batches):
        started = time.perf_counter()
        result = original(batches)
        durations.append(time.perf_counter() - started)
        return result

    trainer._train_step = timed
    trainable = sum(p.numel() for p in trainer.stage.model.parameters() if p.requires_grad)
    result = trainer.train()
    checkpoint = result.last_checkpoint
    export = checkpoint / trainer.stage.export_dirname
    return {"mode": mode, "steps": steps, "step_seconds_median": statistics.median(durations[3:] or durations),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "trainable_parameters": trainable, "checkpoint_bytes": _bytes(checkpoint), "export_bytes": _bytes(export)}


def _bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in Path(path).rglob("*") if item.is_file())


def _child(arguments: list[str], what: str) -> tuple[dict | None, float, float]:
    """Run this file or a command in a fresh process; (last JSON line or None, wall s, peak RSS MB)."""
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    completed = subprocess.run(arguments, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{completed.stderr[-3000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    # RUSAGE_CHILDREN is the largest child so far: exact for the first, a bound for later ones
    return (json.loads(lines[-1]) if lines else None), wall, max(peak, before) / 1024


def run_recipe(args) -> dict:
    """The documented recipe, timed: pre-encode the clips, train the adapter."""
    latents = Path(args.work) / "latents"
    run_dir = Path(args.work) / "run"
    if latents.exists() or run_dir.exists():
        raise SystemExit(f"{args.work} holds an earlier run; remove it or choose another --work")
    _, encode_s, _ = _child([sys.executable, "-m", "audiodit.data.preencode", "--vae", f"{args.model}/vae",
                             "--data", args.clips, "--out", str(latents), "--no-captions"], "pre-encoding")
    _, train_s, peak = _child([sys.executable, "train.py", "--config", str(RECIPE_CONFIG),
                               f"data.train_dir={latents}", f"training.output_dir={run_dir}"], "LoRA training")
    export = sorted((run_dir / "checkpoints").glob("step-*"))[-1] / "lora"
    clips = len([p for p in Path(args.clips).rglob("*") if p.suffix in (".flac", ".wav", ".ogg", ".mp3")])
    return {"clips": clips, "preencode_s": round(encode_s, 1), "train_s": round(train_s, 1),
            "total_s": round(encode_s + train_s, 1), "train_peak_rss_mb": round(peak), "adapter": str(export),
            "adapter_bytes": _bytes(export)}


def training_costs(args, latents: Path) -> list[dict]:
    found = []
    for mode in ("lora", "full"):
        with tempfile.TemporaryDirectory() as out:
            result, _, _ = _child([sys.executable, __file__, "--probe", mode, "--train-dir", str(latents),
                                   "--probe-steps", str(args.probe_steps), "--probe-out", out], f"{mode} probe")
            found.append(result)
    return found


def lora_parameters(model: torch.nn.Module, rank: int, targets) -> int:
    """Parameters of rank-`rank` adapters on the linear layers `targets` name: rank x (in + out) each."""
    from audiodit.lora import matching_layers

    layers = dict(model.named_modules())
    return sum(rank * (layers[name].in_features + layers[name].out_features) for name in matching_layers(model, targets))


def projection(rank: int) -> dict:
    """Parameters and training-state bytes at the `small` and `base` presets (no weights made)."""
    from audiodit.lora import DIT_TARGETS
    from audiodit.models.dit import AudioDiTModel

    rows = {}
    for preset in ("small", "base"):
        with torch.device("meta"):
            model = AudioDiTModel.from_preset(preset)
        params = sum(p.numel() for p in model.parameters())
        adapter = lora_parameters(model, rank, DIT_TARGETS)
        gib = 1024 ** 3
        rows[preset] = {
            "parameters": params, "lora_parameters": adapter, "lora_share": adapter / params,
            "full_finetune_state_gib": params * 20 / gib,  # weights, grads, AdamW moments, EMA (fp32)
            "lora_state_gib_fp32_base": (params * 4 + adapter * 20) / gib,
            "lora_state_gib_bf16_base": (params * 2 + adapter * 20) / gib,
            "full_checkpoint_gib": params * 20 / gib,  # weights + EMA + moments in a checkpoint
            "lora_adapter_mib": adapter * 4 / 1024 ** 2,
        }
    return rows


#################################################################################
#                            What the adapter teaches                           #
#################################################################################

def heldout_clips(directory: Path, limit: int) -> list[tuple[str, Path]]:
    pairs = []
    for caption in sorted(directory.rglob("*.txt")):
        audio = next((caption.with_suffix(s) for s in (".flac", ".wav") if caption.with_suffix(s).is_file()), None)
        if audio is not None:
            pairs.append((caption.read_text(encoding="utf-8").strip(), audio))
    if not pairs:
        raise SystemExit(f"--heldout {directory}: no audio with a caption (.txt) beside it")
    return pairs[:limit]


def centred(spectra: np.ndarray) -> np.ndarray:
    return spectra - spectra.mean(axis=-1, keepdims=True)


def spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS dB difference of two level-centred average spectra (bands,)."""
    return float(np.sqrt(((centred(a) - centred(b)) ** 2).mean()))


def paired_p(differences: np.ndarray, seed: int = 0) -> float:
    """One-sided sign-flip permutation p of mean(differences) > 0 ((b + 1) / (m + 1))."""
    rng = np.random.default_rng(seed)
    observed = differences.mean()
    flips = rng.choice([-1.0, 1.0], size=(PERMUTATIONS, len(differences)))
    return float(((flips * differences).mean(axis=1) >= observed).sum() + 1) / (PERMUTATIONS + 1)


def summarise(measures: list[dict], reference_spectra: np.ndarray) -> dict:
    spectra = np.stack([m["spectrum_db"] for m in measures])
    mean_reference = reference_spectra.mean(0)
    summary = {name: float(np.median([m[name] for m in measures])) for name in DRUM_MEASURES}
    summary["spectral_distance_db"] = spectral_distance(spectra.mean(0), mean_reference)
    summary["frechet_spectra"] = frechet_distance(centred(spectra), centred(reference_spectra))
    return summary


def judge(sets: dict[str, list[Path]], python: str | None) -> dict:
    """musicnn's view of each set of clip files: median P(drums) and the Frechet distance of the
    MTT embeddings to the held-out clips'; {"skipped": why} without the judge."""
    from audiodit import judge as tagger

    if not tagger.judge_available(python):
        return {"skipped": "no judge interpreter (--judge-python, $AUDIODIT_JUDGE_PYTHON or .venv-judge)"}
    names = list(sets)
    files = [path for name in names for path in sets[name]]
    output = tagger.judge_files(files, python=python)
    drums, embeddings = output.tag("drums"), output.embeddings["MTT_musicnn"]
    found, start = {}, 0
    for name in names:
        end = start + len(sets[name])
        found[name] = {"drums_median": float(np.median(drums[start:end])), "embeddings": embeddings[start:end]}
        start = end
    reference = found["heldout"]["embeddings"]
    for name in names:
        found[name]["frechet_embeddings"] = frechet_distance(found[name].pop("embeddings"), reference)
    return found


def generate(pipe, prompt: str, seed: int, seconds: float, steps: int) -> np.ndarray:
    return pipe(prompt, audio_end_in_s=seconds, num_inference_steps=steps,
                generator=torch.Generator().manual_seed(seed)).audios[0].float().numpy()


def style_and_other_prompts(args, adapter: Path, report_dir: Path) -> tuple[dict, dict]:
    from audiodit.audio import load_audio, save_audio
    from audiodit.pipeline import AudioDiTPipeline

    clip_dir = Path(args.work) / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, list[Path]] = {}

    def keep(name: str, index: int, audio: np.ndarray) -> None:
        path = clip_dir / f"{name}_{index:02d}.wav"
        save_audio(path, audio, sample_rate=pipe.sampling_rate, overwrite=True)
        files.setdefault(name, []).append(path)

    pipe = AudioDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    seconds, steps = args.seconds, args.steps
    frames = int(seconds * pipe.sampling_rate)
    # the bundled model alone, before any adapter: the reference for "scale 0 changes nothing"
    plain = [generate(pipe, prompt, 0, seconds, steps) for prompt in OTHER_PROMPTS]
    pipe.load_lora_weights(adapter, adapter_name="style")

    def with_scale(scale: float, prompt: str, seed: int) -> np.ndarray:
        pipe.set_adapters(["style"], adapter_weights=[scale])
        return generate(pipe, prompt, seed, seconds, steps)

    # 4. the style
    clips = heldout_clips(Path(args.heldout), args.style_clips)
    sets = {"heldout": [], "heldout_through_vae": [], "scale_0": [], "scale_1": []}
    images, titles = [], []
    for index, (caption, path) in enumerate(clips):
        real = load_audio(path, sample_rate=pipe.sampling_rate)[:, :frames]
        with torch.no_grad():
            latents = pipe.vae.encode(real[None].to(pipe.vae.dtype)).latent_dist.mode()
            through = pipe.vae.decode(latents).sample[0, :, :frames].float().numpy()
        audio = {"heldout": real.numpy(), "heldout_through_vae": through,
                 "scale_0": with_scale(0.0, caption, index), "scale_1": with_scale(1.0, caption, index)}
        for name, clip in audio.items():
            sets[name].append(clip_measures(clip))
            keep(name, index, clip)
        if index < args.grid_captions:
            for name in ("heldout", "scale_0", "scale_1"):
                images.append(sets[name][-1]["mel_db"])
                titles.append(f"{name}: {caption}")
    reference = np.stack([m["spectrum_db"] for m in sets["heldout"]])
    style = {name: summarise(measures, reference) for name, measures in sets.items()}
    style["paired_p_scale_1_above_scale_0"] = {
        name: paired_p(np.array([b[name] - a[name] for a, b in zip(sets["scale_0"], sets["scale_1"])]))
        for name in DRUM_MEASURES}
    style["captions"] = len(clips)
    style["judge"] = judge(files, args.judge_python)
    save_spectrogram_grid(report_dir / "lora_style_spectrograms.png", images, titles, columns=3)

    # 5. the other prompts
    rows = []
    for index, prompt in enumerate(OTHER_PROMPTS):
        zero, one = with_scale(0.0, prompt, 0), with_scale(1.0, prompt, 0)
        pipe.set_adapters(["style"], adapter_weights=[0.0])
        other_noise = generate(pipe, prompt, 1, seconds, steps)
        measured = {name: clip_measures(clip) for name, clip in
                    (("plain", plain[index]), ("scale_1", one), ("other_noise", other_noise))}
        rows.append({
            "prompt": prompt,
            "scale_0_max_abs_difference": float(np.abs(zero - plain[index]).max()),
            "scale_1_distance_db": spectral_distance(measured["plain"]["spectrum_db"], measured["scale_1"]["spectrum_db"]),
            "noise_distance_db": spectral_distance(measured["plain"]["spectrum_db"], measured["other_noise"]["spectrum_db"]),
            **{f"{name}_change": measured["scale_1"][name] - measured["plain"][name] for name in DRUM_MEASURES},
        })
    other = {
        "prompts": rows,
        "scale_0_identical": all(row["scale_0_max_abs_difference"] == 0.0 for row in rows),
        "scale_1_distance_db_mean": float(np.mean([row["scale_1_distance_db"] for row in rows])),
        "noise_distance_db_mean": float(np.mean([row["noise_distance_db"] for row in rows])),
        **{f"{name}_change_mean": float(np.mean([row[f"{name}_change"] for row in rows])) for name in DRUM_MEASURES},
    }
    return style, other


#################################################################################
#                                    Report                                     #
#################################################################################

def format_report(report: dict) -> str:
    recipe, costs, proj = report["recipe"], report["training_costs"], report["projection"]
    style, other = report["style"], report["other_prompts"]
    lines = [f"# LoRA: cost and the taught style ({report['machine']})", "",
             f"Recipe (`configs/lora_small_cpu.yaml`, {recipe['clips']} clips): pre-encode {recipe['preencode_s']} s "
             f"+ train {recipe['train_s']} s = **{recipe['total_s']} s**; peak RSS {recipe['train_peak_rss_mb']} MB; "
             f"adapter {recipe['adapter_bytes'] / 1e6:.2f} MB.", "",
             "| at small, this CPU | trainable parameters | step s (median) | peak RSS MB | checkpoint MB | export MB |",
             "|---|---|---|---|---|---|"]
    for row in costs:
        lines.append(f"| {row['mode']} | {row['trainable_parameters']:,} | {row['step_seconds_median']:.3f} | "
                     f"{row['peak_rss_mb']:.0f} | {row['checkpoint_bytes'] / 1e6:.1f} | {row['export_bytes'] / 1e6:.1f} |")
    lines += ["", "| projected (DiT only) | parameters | LoRA parameters | full fine-tune state GiB | "
              "LoRA state GiB (fp32 / bf16 base) | adapter MiB |", "|---|---|---|---|---|---|"]
    for preset, row in proj.items():
        lines.append(f"| {preset} | {row['parameters']:,} | {row['lora_parameters']:,} ({row['lora_share']:.1%}) | "
                     f"{row['full_finetune_state_gib']:.2f} | {row['lora_state_gib_fp32_base']:.2f} / "
                     f"{row['lora_state_gib_bf16_base']:.2f} | {row['lora_adapter_mib']:.1f} |")
    lines += ["", f"Taught style: {style['captions']} held-out captions, one clip each", "",
              "| clips | percussive share | low-band energy share | low-band onsets | spectral distance dB | Frechet (spectra) |",
              "|---|---|---|---|---|---|"]
    for name in ("heldout", "heldout_through_vae", "scale_0", "scale_1"):
        row = style[name]
        lines.append(f"| {name} | {row['percussive_share']:.3f} | {row['low_energy_share']:.3f} | "
                     f"{row['low_onset_strength']:.2f} | {row['spectral_distance_db']:.2f} | {abs(row['frechet_spectra']):.0f} |")
    judged = style.get("judge", {})
    if "skipped" in judged or not judged:
        lines += ["", f"Tagger (musicnn): {judged.get('skipped', 'not run')}."]
    else:
        lines += ["", "Tagger (musicnn MTT): " + "; ".join(
            f"{name} P(drums) {row['drums_median']:.2f}, embedding Frechet to held-out {abs(row['frechet_embeddings']):.1f}"
            for name, row in judged.items()) + "."]
    p = style["paired_p_scale_1_above_scale_0"]
    lines += ["", "Scale 1 above scale 0, paired permutation p: " + ", ".join(f"{k} {v:.4f}" for k, v in p.items()), "",
              f"Other prompts ({len(other['prompts'])}, the model's score domain): scale 0 identical to the model "
              f"without the adapter: **{other['scale_0_identical']}**; at scale 1 the spectral distance to the "
              f"model's clip of the same noise is {other['scale_1_distance_db_mean']:.2f} dB against "
              f"{other['noise_distance_db_mean']:.2f} dB between two noises; percussive share "
              f"{other['percussive_share_change_mean']:+.3f}, low-band energy share "
              f"{other['low_energy_share_change_mean']:+.3f}, low-band onsets {other['low_onset_strength_change_mean']:+.2f}."]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=str(ROOT / "models" / "audiodit-small"))
    parser.add_argument("--clips", help="the style's training clips (audio + .txt captions)")
    parser.add_argument("--heldout", help="held-out clips of the style (audio + .txt captions)")
    parser.add_argument("--work", default="runs/lora_bench", help="where the recipe's latents and run go")
    parser.add_argument("--adapter", help="measure this adapter instead of running the recipe")
    parser.add_argument("--report", help="report path without suffix (.md and .json are written)")
    parser.add_argument("--probe-steps", type=int, default=20)
    parser.add_argument("--style-clips", type=int, default=24)
    parser.add_argument("--grid-captions", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--judge-python", default=None, help="interpreter with musicnn (default: audiodit.judge's)")
    parser.add_argument("--probe", choices=("lora", "full"), help=argparse.SUPPRESS)
    parser.add_argument("--train-dir", help=argparse.SUPPRESS)
    parser.add_argument("--probe-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        print(json.dumps(probe(args.probe, args.train_dir, args.probe_steps, args.probe_out)))
        return 0
    if not args.heldout or not (args.clips or args.adapter):
        parser.error("--heldout and one of --clips (run the recipe) or --adapter are needed")
    torch.set_num_threads(os.cpu_count() or 1)
    report_dir = Path(args.report).parent if args.report else Path(args.work)
    earlier = Path(f"{args.report}.json") if args.report else None
    if args.adapter and earlier is not None and earlier.is_file():
        previous = json.loads(earlier.read_text())
        recipe, costs = previous["recipe"], previous["training_costs"]
        if Path(recipe["adapter"]).resolve() != Path(args.adapter).resolve():
            raise SystemExit(f"{earlier} measured {recipe['adapter']}, not {args.adapter}")
    elif args.adapter:
        recipe = {"adapter": args.adapter, "clips": 0, "preencode_s": 0, "train_s": 0, "total_s": 0,
                  "train_peak_rss_mb": 0, "adapter_bytes": _bytes(Path(args.adapter))}
        costs = []
    else:
        recipe = run_recipe(args)
        costs = training_costs(args, Path(args.work) / "latents")
    rank = json.loads((Path(recipe["adapter"]) / "lora_info.json").read_text())["rank"]
    style, other = style_and_other_prompts(args, Path(recipe["adapter"]), report_dir)
    report = {"machine": cpu_model(), "cores": os.cpu_count(), "recipe": recipe, "training_costs": costs,
              "projection": projection(rank), "style": style, "other_prompts": other,
              "settings": {"seconds": args.seconds, "steps": args.steps, "probe_steps": args.probe_steps,
                           "mel_bands": N_MELS}}
    text = format_report(report)
    emit_report(text, f"{args.report}.md" if args.report else None)
    if args.report:
        atomic_write_text(Path(f"{args.report}.json"), json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
