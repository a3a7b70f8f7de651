"""Packed against padded DiT training steps, side by side in one run (`training.packed`).

    python -m benchmarks.packed_training --out benchmarks/results/packed_training_cpu.md
    python -m benchmarks.packed_training --device cuda --dtype bf16 --batch 32 --out benchmarks/results/packed_training_gpu.md

A batch of clips whose lengths are those of a mixed training set (by default 60 % music crops at
the full `--clip-seconds`, 40 % sounds of 1-4 s, seeded), at the `--preset` DiT: one training step
(forward, masked flow-matching loss, backward) padded to the longest clip (`forward` with a frame
mask) and packed (`forward_packed`: every clip's real frames as one sequence, block-diagonal
attention; xformers' `BlockDiagonalMask` on CUDA, a dense boolean mask with SDPA elsewhere). The two
are timed in alternation so a busy machine slows both alike; the report gives the median step time
of each, their ratio and the share of padded frames. The two give the same loss and gradients
(`tests/training/test_trainer.py`); this measures only what packing costs or saves.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from audiodit.conditioners import TextEncoderOutput
from audiodit.diffusion import FlowMatching
from audiodit.models.dit import PRESETS, AudioDiTModel, DiTConfig
from audiodit.training.dit_stage import DiTTrainModule
from benchmarks.machine import cpu_model, emit_report


def clip_frames(batch: int, clip_seconds: float, latent_rate: float, sound_share: float, seed: int) -> list[int]:
    """Latent frames of each clip: music crops at the full length, sounds of 1-4 s."""
    generator = torch.Generator().manual_seed(seed)
    full = int(round(clip_seconds * latent_rate))
    frames = []
    for _ in range(batch):
        if float(torch.rand((), generator=generator)) < sound_share:
            seconds = 1.0 + 3.0 * float(torch.rand((), generator=generator))
            frames.append(min(full, int(round(seconds * latent_rate))))
        else:
            frames.append(full)
    return frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small", choices=sorted(PRESETS))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--sound-share", type=float, default=0.4, help="share of clips that are 1-4 s sounds")
    parser.add_argument("--text-tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write the markdown report here too")
    args = parser.parse_args(argv)
    if args.batch < 1 or args.reps < 1 or not 0 <= args.sound_share <= 1:
        raise SystemExit("--batch and --reps must be >= 1 and --sound-share in [0, 1]")

    device = torch.device(args.device)
    config = DiTConfig(**PRESETS[args.preset]).standalone()
    torch.manual_seed(args.seed)
    module = DiTTrainModule(AudioDiTModel(**dataclasses.asdict(config)).to(device).train(), None)
    frames = clip_frames(args.batch, args.clip_seconds, config.latent_rate, args.sound_share, args.seed)
    longest = max(frames)
    generator = torch.Generator().manual_seed(args.seed + 1)
    x0 = torch.randn(args.batch, config.in_channels, longest, generator=generator).to(device)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    frame_mask = (torch.arange(longest)[None] < torch.tensor(frames)[:, None]).to(device)  # (B, T)
    t = torch.rand(args.batch, generator=generator).to(device)
    text = TextEncoderOutput(
        embeddings=torch.randn(args.batch, args.text_tokens, config.cross_attention_dim, generator=generator).to(device),
        mask=torch.ones(args.batch, args.text_tokens, dtype=torch.bool, device=device),
        pooled=torch.randn(args.batch, config.pooled_dim, generator=generator).to(device))
    seconds = torch.tensor(frames, dtype=torch.float32, device=device) / config.latent_rate
    noisy = FlowMatching.add_noise(x0, noise, t)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step(packed: bool) -> float:
        module.zero_grad(set_to_none=True)
        sync()
        started = time.perf_counter()
        with autocast:
            velocity = module(noisy, t, torch.zeros_like(seconds), seconds, frame_mask, text=text, packed=packed)
        FlowMatching.loss(velocity, x0, noise, frame_mask).backward()
        sync()
        return time.perf_counter() - started

    times = {"padded": [], "packed": []}
    for packed in (False, True):  # warm-up
        step(packed)
    for _ in range(args.reps):
        for name in times:
            times[name].append(step(name == "packed"))
    padded, packed = (statistics.median(times[name]) for name in ("padded", "packed"))
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{cpu_model()}, {torch.get_num_threads()} threads"
    real = sum(frames)
    lines = [
        f"# Packed against padded training steps ({machine})",
        "",
        f"`python -m benchmarks.packed_training --preset {args.preset} --batch {args.batch} --device {args.device} "
        f"--dtype {args.dtype}`: DiT {args.preset}, {args.batch} clips of {min(frames)}-{longest} latent frames "
        f"({real} real of {args.batch * longest} padded: {1 - real / (args.batch * longest):.0%} padding), "
        f"{args.text_tokens} text tokens, median of {args.reps} alternating steps (forward + loss + backward), "
        f"torch {torch.__version__}.",
        "",
        "| step | median ms | vs padded |",
        "|---|---|---|",
        f"| padded (`forward`, frame mask) | {padded * 1e3:.1f} | 1.00x |",
        f"| packed (`forward_packed`, block-diagonal) | {packed * 1e3:.1f} | {packed / padded:.2f}x |",
        "",
    ]
    emit_report("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
