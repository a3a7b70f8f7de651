"""Where does the VAE lose the key: in its magnitudes or in its phase?

    python -m experiments.probes.vae_phase_probe VAE_OR_PIPELINE_DIR CORPUS_DIR [--num-clips 64] [--out FILE.json]
    python -m experiments.probes.vae_phase_probe VAE_OR_PIPELINE_DIR CORPUS_DIR --split train --bands 250,425,500,750,1000,24000

On the evaluation's held-out clips (`audiodit.evaluate.select_prompts`, the first 10 s of each),
essentia's key (the evaluation's `estimate_key`) of six signals, each scored against the clip's
labelled key as the evaluation scores a generation:
- `real`: the clip itself; `decoder`: its VAE reconstruction with the decoder's phase;
- `magnitude`: the reconstruction with `output_phase="magnitude"` (`audiodit.phase_reconstruction`);
- `vae_magnitude_real_phase` and `real_magnitude_vae_phase`: STFT (the VAE's n_fft and hop)
  magnitudes of one with the phase of the other, so the loss can be put on one or the other;
- `real_magnitude_rebuilt_phase`: the clip's own magnitudes with a phase built from them alone,
  what the reconstruction method can do with exact magnitudes.
Also the seconds each decode takes. Prints a markdown table; `--out` writes JSON beside it.

`--measure periodicity` scores the same six signals for the VAE's 40 ms frame-rate artefact instead
of the key (`audiodit.periodicity.frame_periodicity`: onset-envelope autocorrelation at 40/80/120 ms
and the 25 and 50 Hz modulation lines), which tells whether the artefact is in the decoded
magnitudes or in the decoded phase.

`--bands` instead scores `output_phase="magnitude"` with each `magnitude_phase_below_hz` in the
list (24000: the whole spectrum) beside the decoder's phase, on `--num-clips` clips of `--split`
(a seeded sample; choose the band on the train split, not on the held-out prompts).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audiodit import analysis
from audiodit import evaluate as ev
from audiodit.configuration import atomic_write_text
from audiodit.models.stft import istft_same, stft_same
from audiodit.models.vae import AudioVAE
from audiodit.periodicity import frame_periodicity
from audiodit.phase_reconstruction import magnitude_phase
from benchmarks.machine import cpu_model


SECONDS = 10.0


def load_vae(path: Path) -> AudioVAE:
    path = path / "vae" if (path / "model_index.json").is_file() else path
    return AudioVAE.from_pretrained(str(path)).float().eval()


@torch.no_grad()
def signals(vae: AudioVAE, clip: torch.Tensor, timings: dict) -> dict[str, torch.Tensor]:
    """The six (2, S) signals of one clip (S a multiple of the STFT hop)."""
    n_fft, hop, window = vae.config.n_fft, vae.config.stft_hop_length, vae.window
    latents = vae.encode(clip[None]).latent_dist.mode()
    start = time.perf_counter()
    decoder = vae.decode(latents, length=clip.shape[-1], output_phase="decoder").sample[0]
    middle = time.perf_counter()
    magnitude = vae.decode(latents, length=clip.shape[-1], output_phase="magnitude").sample[0]
    timings["decoder"].append(middle - start)
    timings["magnitude"].append(time.perf_counter() - middle)
    real_spec, vae_spec = stft_same(clip, n_fft, hop, window), stft_same(decoder, n_fft, hop, window)  # (2, bins, F)

    def render(spec):
        return istft_same(spec, n_fft, hop, window)

    return {"real": clip, "decoder": decoder, "magnitude": magnitude,
            "vae_magnitude_real_phase": render(torch.polar(vae_spec.abs(), real_spec.angle())),
            "real_magnitude_vae_phase": render(torch.polar(real_spec.abs(), vae_spec.angle())),
            "real_magnitude_rebuilt_phase": render(magnitude_phase(real_spec.abs(), hop, n_fft))}


@torch.no_grad()
def band_signals(vae: AudioVAE, clip: torch.Tensor, bands: list[float]) -> dict[str, torch.Tensor]:
    latents = vae.encode(clip[None]).latent_dist.mode()
    out = {"decoder": vae.decode(latents, length=clip.shape[-1], output_phase="decoder").sample[0]}
    for band in bands:
        vae.register_to_config(magnitude_phase_below_hz=band)
        out[f"below_{band:g}_hz"] = vae.decode(latents, length=clip.shape[-1], output_phase="magnitude").sample[0]
    return out


def score(rows: list[tuple]) -> dict[str, float]:
    """rows of (target tonic, target mode, estimated tonic, estimated mode)."""
    targets = [{"tonic": tonic, "mode": mode} for tonic, mode, _, _ in rows]
    estimates = [{"tonic": tonic, "mode": mode} for _, _, tonic, mode in rows]
    key = np.mean([analysis.pitch_class(t["tonic"]) == e["tonic"] and t["mode"] == e["mode"] for t, e in zip(targets, estimates)])
    mode = np.mean([t["mode"] == e["mode"] for t, e in zip(targets, estimates)])
    mirex = np.mean([ev.mirex_key_score(e["tonic"], e["mode"], analysis.pitch_class(t["tonic"]), t["mode"])
                     for t, e in zip(targets, estimates)])
    return {"key_accuracy": float(key), "mode_accuracy": float(mode), "key_mirex_score": float(mirex)}


PERIODICITY = ("acf_mean", "line_25hz_db", "line_50hz_db")


def score_periodicity(audios: list[np.ndarray]) -> dict[str, float]:
    """Mean over clips of the frame-rate artefact measures (`frame_periodicity`)."""
    measured = [frame_periodicity(audio, 48000) for audio in audios]
    return {name: float(np.mean([m[name] for m in measured])) for name in PERIODICITY}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("vae", type=Path, help="VAE directory or pipeline directory (its vae/)")
    parser.add_argument("corpus", type=Path, help="music21_corpus output (test/ and valid/ splits)")
    parser.add_argument("--num-clips", type=int, default=64, help="held-out clips (the evaluation's prompts)")
    parser.add_argument("--seed", type=int, default=0, help="the evaluation's prompt seed")
    parser.add_argument("--split", default=None, help="with --bands: corpus split to sample (e.g. train)")
    parser.add_argument("--bands", default=None, help="comma-separated magnitude_phase_below_hz values to compare")
    parser.add_argument("--measure", choices=("key", "periodicity"), default="key",
                        help="what to score each signal for: essentia's key, or the 40 ms artefact")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON (refuses to overwrite)")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another --out")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    vae = load_vae(args.vae)
    bands = [float(band) for band in args.bands.split(",")] if args.bands else None
    if bands is not None and args.split is None:
        raise SystemExit("--bands needs --split (choose the band on training clips, not the held-out prompts)")
    if args.split is not None:
        records = ev.sample_records(ev.load_split(args.corpus, args.split), args.num_clips, args.seed)
    else:
        records = ev.select_prompts(args.corpus, args.num_clips, args.seed)
    rows, timings = {}, {"decoder": [], "magnitude": []}
    for index, record in enumerate(records):
        clip = torch.from_numpy(ev.load_clip(record, SECONDS)).float()  # (2, S)
        clip_signals = band_signals(vae, clip, bands) if bands else signals(vae, clip, timings)
        for name, audio in clip_signals.items():
            if args.measure == "periodicity":
                rows.setdefault(name, []).append(audio.numpy())
                continue
            estimate = analysis.estimate_key(audio.numpy())
            rows.setdefault(name, []).append((record["tonic"], record["mode"], estimate["tonic"], estimate["mode"]))
        if (index + 1) % 16 == 0:
            print(f"[vae_phase_probe] {index + 1}/{len(records)} clips", file=sys.stderr, flush=True)
    report = {"vae": str(args.vae), "corpus": str(args.corpus), "split": args.split or "held-out prompts",
              "num_clips": len(records), "seconds": SECONDS, "seed": args.seed, "cpu": cpu_model(),
              "threads": torch.get_num_threads(), "key_profile": analysis.KEY_PROFILE,
              "measure": args.measure,
              "signals": {name: (score_periodicity if args.measure == "periodicity" else score)(name_rows)
                          for name, name_rows in rows.items()}}
    if not bands:
        report["decode_seconds_mean"] = {name: float(np.mean(values)) for name, values in timings.items()}
    where = f"{args.split}-split" if args.split else "held-out"
    print(f"{len(records)} {where} clips x {SECONDS:g} s, {report['cpu']}, {report['threads']} threads\n")
    columns = PERIODICITY if args.measure == "periodicity" else ("key_accuracy", "mode_accuracy", "key_mirex_score")
    print("| signal | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for name, metrics in report["signals"].items():
        print(f"| {name} | " + " | ".join(f"{metrics[column]:.3f}" for column in columns) + " |")
    if not bands:
        print(f"\ndecode of {SECONDS:g} s: " + ", ".join(f"{name} {value:.2f} s"
                                                     for name, value in report["decode_seconds_mean"].items()))
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
