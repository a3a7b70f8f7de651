"""Encode/decode speed of our VAE presets against diffusers' AutoencoderOobleck, on CPU.

Times encode and decode of 10 s of stereo 48 kHz audio (480,000 samples) for our `small` and `base`
presets and for `AutoencoderOobleck()` at its default config (156M parameters, hop 2048), all with
random weights, in one process with torch's default thread count: one warm-up, then the median of
`--repeats` runs, interleaved across models. Then, in a fresh subprocess so the number is not inflated by the other models, a
tiled decode of 10 minutes of audio with `small`, reporting time and peak resident memory.

    .venv/bin/python -m benchmarks.vae_speed                # writes benchmarks/results/vae_speed_cpu.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from benchmarks.machine import cpu_model

from audiodit.models.vae import PHASE_BLOCK_FRAMES, AudioVAE

SAMPLE_RATE = 48000
SECONDS = 10
RESULTS = Path(__file__).resolve().parent / "results"


def memory_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB. Unlike getrusage's ru_maxrss, which
    survives exec and so would report the parent benchmark's peak, VmHWM starts fresh per process."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def build_runner(name: str, audio: torch.Tensor) -> dict:
    """Encode/decode closures for one model, on 10 s of audio (1, 2, 480000)."""
    if name == "oobleck":
        from diffusers import AutoencoderOobleck

        model, hop = AutoencoderOobleck().eval(), 2048
        latents = model.encode(audio).latent_dist.mode()
        decode = lambda: model.decode(latents).sample  # noqa: E731
    else:
        model = AudioVAE.from_preset(name).eval()
        hop = model.hop_length
        latents = model.encode(audio).latent_dist.mode()
        decode = lambda: model.decode(latents, length=audio.shape[-1]).sample  # noqa: E731
    return {"model": name, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            # our models take ~1/50 of Oobleck's time: time them several times per round so their
            # median rests on enough samples that a brief load spike does not decide it
            "runs_per_round": 1 if name == "oobleck" else 4, "hop_length": hop, "latent_shape": list(latents.shape),
            "encode": lambda: model.encode(audio).latent_dist.mode(), "decode": decode}


@torch.no_grad()
def time_models(names: list[str], repeats: int) -> list[dict]:
    """Median encode/decode seconds per model. Repeats are interleaved across models (A B C A B C
    ...), so a load spike from other processes on the machine hits every model alike."""
    torch.manual_seed(0)
    audio = 0.1 * torch.randn(1, 2, SECONDS * SAMPLE_RATE)  # (1, 2, 480000)
    runners = [build_runner(name, audio) for name in names]
    times = {(r["model"], op): [] for r in runners for op in ("encode", "decode")}
    for repeat in range(repeats + 1):  # the first round is the warm-up (allocator, oneDNN kernels)
        for runner in runners:
            for op in ("encode", "decode"):
                for _ in range(runner["runs_per_round"]):
                    start = time.perf_counter()
                    runner[op]()
                    if repeat > 0:
                        times[runner["model"], op].append(time.perf_counter() - start)
    rows = []
    for runner in runners:
        row = {k: v for k, v in runner.items() if k not in ("encode", "decode")}
        for op in ("encode", "decode"):
            row[f"{op}_s"] = statistics.median(times[runner["model"], op])
            row[f"{op}_min_s"] = min(times[runner["model"], op])
            row[f"{op}_all_s"] = times[runner["model"], op]
            row[f"{op}_rtf"] = SECONDS / row[f"{op}_s"]
        rows.append(row)
    return rows


@torch.no_grad()
def long_decode(preset: str, minutes: float, output_phase: str = "decoder") -> dict:
    """Tiled decode of `minutes` of audio; peak RSS of this process (run it in a fresh one)."""
    model = AudioVAE.from_preset(preset, output_phase=output_phase).eval()
    model.enable_tiling()
    frames = model.latent_frames(int(minutes * 60 * SAMPLE_RATE))
    latents = torch.randn(1, model.latent_channels, frames, generator=torch.Generator().manual_seed(0))
    rss_before = memory_mib("VmRSS")
    start = time.perf_counter()
    audio = model.decode(latents).sample
    seconds = time.perf_counter() - start
    return {
        "preset": preset, "minutes": minutes, "output_phase": output_phase, "phase_block_frames": PHASE_BLOCK_FRAMES,
        "latent_frames": frames,
        "tile_latent_frames": model.tile_latent_frames, "overlap_latent_frames": model.overlap_latent_frames,
        "output_shape": list(audio.shape), "output_mib": audio.numel() * 4 / 2**20,
        "decode_s": seconds, "rss_before_mib": rss_before, "peak_rss_mib": memory_mib("VmHWM"),
    }


def write_markdown(result: dict, path: Path):
    rows = {r["model"]: r for r in result["models"]}
    oobleck = rows["oobleck"]
    lines = [
        "# VAE speed on CPU",
        "",
        f"- CPU: {result['cpu']} ({result['threads']} torch threads), torch {result['torch']}",
        f"- {SECONDS} s of stereo {SAMPLE_RATE} Hz audio ({SECONDS * SAMPLE_RATE} samples), random weights, "
        f"batch 1, fp32, `torch.no_grad()`; median of {result['repeats']} rounds "
        "after one warm-up round, interleaved across models (A B C A B C ...; our models run 4 times per round, "
        "Oobleck once).",
        f"- The machine is shared with other jobs: 1-min load average {result['load_before'][0]:.1f} before, "
        f"{result['load_after'][0]:.1f} after, on {os.cpu_count()} cores, so absolute times are noisy; the ratios "
        "are measured under the same load.",
        "- Produced by `benchmarks/vae_speed.py`; raw numbers in `vae_speed_cpu.json`.",
        "",
        "| model | params (M) | hop | latent (C, T) | encode s | decode s | encode RTF | decode RTF | decode speed-up vs Oobleck | best-run decode s (speed-up) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["models"]:
        lines.append(
            f"| {r['model']} | {r['params_m']:.1f} | {r['hop_length']} | {tuple(r['latent_shape'][1:])} | "
            f"{r['encode_s']:.3f} | {r['decode_s']:.3f} | {r['encode_rtf']:.1f}x | {r['decode_rtf']:.1f}x | "
            f"{oobleck['decode_s'] / r['decode_s']:.1f}x | {r['decode_min_s']:.3f} "
            f"({oobleck['decode_min_s'] / r['decode_min_s']:.1f}x) |")
    long = result["long_decode"]
    lines += [
        "",
        f"Targets: `small` decoder >= 20x faster than Oobleck (measured "
        f"{oobleck['decode_s'] / rows['small']['decode_s']:.0f}x), `base` >= 3x (measured "
        f"{oobleck['decode_s'] / rows['base']['decode_s']:.1f}x).",
        "",
        f"Long audio: tiled decode of {long['minutes']:g} minutes ({long['latent_frames']} latent frames, "
        f"tiles of {long['tile_latent_frames']} frames overlapping by {long['overlap_latent_frames']}) with "
        f"`{long['preset']}` took {long['decode_s']:.1f} s; peak RSS of the process "
        f"{long['peak_rss_mib']:.0f} MiB ({long['rss_before_mib']:.0f} MiB resident before decoding, i.e. "
        f"torch, diffusers and the model; the "
        f"output waveform itself is {long['output_mib']:.0f} MiB).",
    ]
    rebuilt = result.get("long_decode_magnitude_phase")
    if rebuilt is not None:
        lines.append(f"With `output_phase: magnitude` (the bass phase rebuilt in blocks of "
                     f"{rebuilt['phase_block_frames']} STFT frames): {rebuilt['decode_s']:.1f} s, peak RSS "
                     f"{rebuilt['peak_rss_mib']:.0f} MiB.")
    lines.append("")
    path.write_text("\n".join(lines))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["small", "base", "oobleck"])
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--long-decode-only", metavar="PRESET", help=argparse.SUPPRESS)
    parser.add_argument("--output-phase", default="decoder", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.long_decode_only:
        print(json.dumps(long_decode(args.long_decode_only, args.long_minutes, args.output_phase)))
        return
    result = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "repeats": args.repeats, "seconds": SECONDS, "models": []}
    result["load_before"] = os.getloadavg()
    result["models"] = time_models(args.models, args.repeats)
    result["load_after"] = os.getloadavg()
    for row in result["models"]:
        print(json.dumps(row), flush=True)
    for key, output_phase in (("long_decode", "decoder"), ("long_decode_magnitude_phase", "magnitude")):
        child = subprocess.run([sys.executable, __file__, "--long-decode-only", "small", "--long-minutes",
                                str(args.long_minutes), "--output-phase", output_phase],
                               capture_output=True, text=True, check=True)
        result[key] = json.loads(child.stdout.strip().splitlines()[-1])
        print(json.dumps(result[key]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vae_speed_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    if {"small", "base", "oobleck"} <= {r["model"] for r in result["models"]}:
        write_markdown(result, args.out / "vae_speed_cpu.md")


if __name__ == "__main__":
    main()
