"""Which frequency bands does a VAE give back? Energy of the reconstruction over the original, per
octave-wide band, side by side for every `--vae`, on real clips and on synthetic tones.

    python -m benchmarks.vae_bands --vae models/audiodit-small/vae [--vae runs/vae_v2/...] \\
        --clips data/lora_funk_heldout --report benchmarks/results/vae_bands_cpu

A band's number is 10 log10(reconstruction energy / original energy) in dB (0 = kept, -20 = a
hundredth of it left), from 4096-point power spectra averaged over the clip, summed over the band,
then averaged in dB over the clips of a set. Sets: `--clips` (up to `--max-clips` audio files,
cropped to `--seconds`), and two synthetic signals every VAE meets the same way: an organ-like tone
(110 Hz and its first 11 harmonics at 1/k) and a drum-like pattern (a decaying 55 Hz kick every
0.5 s under noise bursts). Kick drums and bass live below 150 Hz (see `prompt_breadth.py`), so a
VAE that loses that band cannot give a model drums or bass, whatever the model learns.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import cpu_model, emit_report


RATE = 48000
EDGES = (20, 80, 150, 300, 600, 1200, 2400, 4800, 9600, 20000)  # Hz
N_FFT, HOP = 4096, 1024


def band_energies(audio: torch.Tensor) -> np.ndarray:
    """(bands,) energy of a (channels, samples) clip in each band of EDGES (mono mix)."""
    spectrum = torch.stft(audio.float().mean(0), N_FFT, HOP, window=torch.hann_window(N_FFT),
                          return_complex=True).abs().pow(2).mean(-1)  # (N_FFT // 2 + 1,)
    frequencies = torch.fft.rfftfreq(N_FFT, 1 / RATE)
    return np.array([float(spectrum[(frequencies >= low) & (frequencies < high)].sum())
                     for low, high in zip(EDGES[:-1], EDGES[1:])])


def kept_db(original: torch.Tensor, reconstruction: torch.Tensor) -> np.ndarray:
    """(bands,) dB of the reconstruction's energy over the original's, per band."""
    return 10 * np.log10((band_energies(reconstruction) + 1e-12) / (band_energies(original) + 1e-12))


def synthetic(seconds: float) -> dict[str, torch.Tensor]:
    t = torch.arange(int(seconds * RATE)) / RATE
    organ = sum(0.3 / k * torch.sin(2 * torch.pi * 110 * k * t) for k in range(1, 12))
    phase = t % 0.5
    kick = 0.8 * torch.exp(-phase / 0.08) * torch.sin(2 * torch.pi * 55 * phase)
    noise = 0.1 * torch.randn(t.numel(), generator=torch.Generator().manual_seed(0)) * torch.exp(-((t + 0.25) % 0.5) / 0.03)
    drums = kick + noise
    return {"organ tone (110 Hz)": torch.stack([organ, organ]), "kick and noise bursts": torch.stack([drums, drums])}


def real_clips(directory: Path, limit: int, seconds: float) -> list[torch.Tensor]:
    from audiodit.audio import AUDIO_EXTENSIONS, load_audio

    files = sorted(path for path in directory.rglob("*") if path.suffix.lower() in AUDIO_EXTENSIONS)[:limit]
    return [load_audio(path)[:, :int(seconds * RATE)] for path in files]


def measure(vae_dir: str, sets: dict[str, list[torch.Tensor]]) -> dict:
    from audiodit.metrics import mel_l1_db
    from audiodit.models.vae import AudioVAE

    vae = AudioVAE.from_pretrained(vae_dir).float().eval()
    found, mel = {}, {}
    for name, clips in sets.items():
        rows, distances = [], []
        for clip in clips:
            with torch.no_grad():
                latents = vae.encode(clip[None]).latent_dist.mode()
                reconstruction = vae.decode(latents).sample[0, :, :clip.shape[-1]]
            rows.append(kept_db(clip, reconstruction))
            distances.append(float(mel_l1_db(clip, reconstruction)))
        found[name] = np.mean(rows, axis=0).round(1).tolist()
        mel[name] = round(float(np.mean(distances)), 2)
    return {"vae": vae_dir, "output_phase": vae.config.output_phase, "kept_db": found, "mel_l1_db": mel}


def latent_probe(vae_dir: str, train: list[torch.Tensor], test: list[torch.Tensor], reach: int = 2) -> list[float]:
    """Held-out R^2, per band, of a ridge regression from latent frames (with `reach` frames either
    side) to each frame's log band energy: whether the latents hold a band the decoder may drop."""
    from audiodit.models.vae import AudioVAE

    vae = AudioVAE.from_pretrained(vae_dir).float().eval()

    def pairs(clips):
        inputs, targets = [], []
        frequencies = torch.fft.rfftfreq(2048, 1 / RATE)
        for clip in clips:
            with torch.no_grad():
                latents = vae.encode(clip[None]).latent_dist.mode()[0]  # (C, T)
            power = torch.stft(clip.float().mean(0), 2048, vae.hop_length, window=torch.hann_window(2048),
                               return_complex=True).abs().pow(2)  # (1025, frames)
            energy = torch.stack([power[(frequencies >= low) & (frequencies < high)].sum(0)
                                  for low, high in zip(EDGES[:-1], EDGES[1:])])  # (bands, frames)
            frames = min(latents.shape[-1], energy.shape[-1])
            context = torch.cat([torch.roll(latents[:, :frames], shift, -1) for shift in range(-reach, reach + 1)])
            inputs.append(context.T.numpy())  # (frames, C * (2 reach + 1))
            targets.append(torch.log10(energy[:, :frames] + 1e-6).T.numpy())  # (frames, bands)
        return np.concatenate(inputs), np.concatenate(targets)

    x_train, y_train = pairs(train)
    x_test, y_test = pairs(test)
    design = np.c_[x_train, np.ones(len(x_train))]
    weights = np.linalg.solve(design.T @ design + np.eye(design.shape[1]), design.T @ y_train)
    predicted = np.c_[x_test, np.ones(len(x_test))] @ weights
    residual = ((predicted - y_test) ** 2).sum(0)
    return (1 - residual / ((y_test - y_test.mean(0)) ** 2).sum(0)).round(3).tolist()


def format_report(report: dict) -> str:
    bands = [f"{low}-{high}" for low, high in zip(EDGES[:-1], EDGES[1:])]
    lines = [f"# VAE energy kept per band, dB ({report['machine']})", "",
             "| VAE | set | " + " | ".join(f"{band} Hz" for band in bands) + " | mel L1 dB |",
             "|---|---|" + "---|" * (len(bands) + 1)]
    for row in report["vaes"]:
        for name, values in row["kept_db"].items():
            lines.append(f"| {row['vae']} ({row['output_phase']}) | {name} | " + " | ".join(f"{v:+.1f}" for v in values)
                         + f" | {row['mel_l1_db'][name]:.2f} |")
    for row in report.get("probes", []):
        lines += ["", f"Latent probe of {row['vae']} (ridge, latent frames +-2 -> log band energy; trained on "
                      f"{row['train']}, R^2 on {row['test']}): " + ", ".join(
                          f"{band} Hz {value:.2f}" for band, value in zip(bands, row["r2"]))]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae", action="append", required=True, help="AudioVAE directory (repeat to compare)")
    parser.add_argument("--clips", type=Path, action="append", default=[], help="folder of real audio (repeat for sets)")
    parser.add_argument("--max-clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--probe", type=Path, nargs=2, metavar=("TRAIN_DIR", "TEST_DIR"), default=None,
                        help="also fit the latent probe on TRAIN_DIR's clips and score it on TEST_DIR's")
    parser.add_argument("--report", help="report path without suffix (.md and .json)")
    args = parser.parse_args(argv)
    sets = {name: [clip] for name, clip in synthetic(args.seconds).items()}
    for folder in args.clips:
        clips = real_clips(folder, args.max_clips, args.seconds)
        sets[f"{folder.name} ({len(clips)} clips)"] = clips
    report = {"machine": cpu_model(), "edges_hz": list(EDGES), "vaes": [measure(vae, sets) for vae in args.vae]}
    if args.probe:
        train, test = (real_clips(folder, 10**6, 10.0) for folder in args.probe)
        report["probes"] = [{"vae": vae, "train": str(args.probe[0]), "test": str(args.probe[1]),
                             "r2": latent_probe(vae, train, test)} for vae in args.vae]
    emit_report(format_report(report), f"{args.report}.md" if args.report else None)
    if args.report:
        from audiodit.configuration import atomic_write_text

        atomic_write_text(Path(f"{args.report}.json"), json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
