"""Train the latent key classifier that key classifier guidance uses.

    python -m audiodit.training.key_classifier --train LATENTS_DIR [--val LATENTS_DIR] --out DIR \\
        [--steps 3000] [--batch-size 32] [--clip-seconds 10] [--lr 1e-3] [--width 128] [--seed 0]

LATENTS_DIR holds shards written by `python -m audiodit.data.preencode` (with the pipeline's own
VAE; the scaling factor in their index is applied here, as the DiT stage does). Labels are the key
each caption states (`audiodit.prompt_attributes.parse_key`); clips whose caption states none are
left out. Each step trains on random crops at random noise levels: `x_t = (1 - t) x0 + t noise`
with `t` uniform in [0, `--max-t`], and `--clean-fraction` of the crops clean (t = 0), because the
sampler asks about every noise level it passes through.

Writes DIR/key_classifier/ (`LatentKeyClassifier.save_pretrained`: config and safetensors) and
DIR/report.json (settings, loss, and key and mode accuracy on `--val` at t = 0, 0.5 and 0.8). A
fixed number of steps, no early stopping: the validation split only reports. DIR must not exist;
the files are written beside it and renamed into place.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from audiodit.configuration import staged_directory
from audiodit.data.latents import LatentDataset, collate_latents
from audiodit.diffusion import FlowMatching
from audiodit.models.key_classifier import LatentKeyClassifier
from audiodit.prompt_attributes import NO_KEY, prompt_keys

REPORT_NOISE_LEVELS = (0.0, 0.5, 0.8)


def labelled_indices(dataset: LatentDataset) -> list[int]:
    """Indices of the samples whose caption states a key."""
    keys = prompt_keys([sample["caption"] for sample in dataset.samples])
    return [index for index, key in enumerate(keys.tolist()) if key != NO_KEY]


def load_batch(dataset: LatentDataset, indices: list[int], epoch: int, scale: float):
    """Scaled latents `(B, C, T)`, frame mask `(B, T)` and key ids `(B,)` of `indices`."""
    batch = collate_latents([dataset[(index, epoch)] for index in indices])
    frames = batch["latents"].shape[-1]
    frame_mask = torch.arange(frames)[None] < batch["num_frames"][:, None]  # (B, T)
    return batch["latents"] * scale, frame_mask, prompt_keys(batch["caption"])


def noise_to(latents: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """`(1 - t) x0 + t noise` for latents `(B, C, T)` and `t (B,)` (the rectified-flow path)."""
    noise = torch.randn(latents.shape, generator=generator)
    return FlowMatching.add_noise(latents, noise, t)  # (B, C, T)


@torch.no_grad()
def accuracy(model: LatentKeyClassifier, dataset: LatentDataset, scale: float, noise_levels=REPORT_NOISE_LEVELS,
             batch_size: int = 32, seed: int = 0) -> dict[str, dict[str, float]]:
    """Key and mode accuracy over `dataset`'s labelled samples (first crop), per noise level."""
    model.eval()
    indices = labelled_indices(dataset)
    result = {}
    for level in noise_levels:
        generator = torch.Generator().manual_seed(seed)
        hits = {"key": 0, "mode": 0}
        for start in range(0, len(indices), batch_size):
            latents, frame_mask, keys = load_batch(dataset, indices[start : start + batch_size], 0, scale)
            t = torch.full((len(keys),), float(level))
            predicted = model(noise_to(latents, t, generator), t, frame_mask).logits.argmax(-1)  # (B,)
            hits["key"] += int((predicted == keys).sum())
            hits["mode"] += int(((predicted >= 12) == (keys >= 12)).sum())
        result[f"t={level:g}"] = {f"{name}_accuracy": round(count / max(1, len(indices)), 4)
                                  for name, count in hits.items()}
    model.train()
    return result


def train_key_classifier(train_dir, out_dir, val_dir=None, steps: int = 3000, batch_size: int = 32,
                         clip_seconds: float = 10.0, lr: float = 1e-3, weight_decay: float = 0.05,
                         max_t: float = 0.9, clean_fraction: float = 0.3, width: int = 128, seed: int = 0,
                         log_every: int = 250) -> dict:
    """Train and save a `LatentKeyClassifier`; returns the report written to `out_dir/report.json`."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; choose a new --out (a trained classifier is never overwritten)")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"--steps and --batch-size must be positive, got {steps} and {batch_size}")
    if not 0.0 <= max_t < 1.0 or not 0.0 <= clean_fraction <= 1.0:
        raise ValueError(f"--max-t must be in [0, 1) and --clean-fraction in [0, 1], got {max_t} and {clean_fraction}")
    torch.manual_seed(seed)
    train = LatentDataset(train_dir, clip_seconds=clip_seconds, seed=seed)
    val = LatentDataset(val_dir, clip_seconds=clip_seconds, random_crop=False) if val_dir else None
    indices = labelled_indices(train)
    if len(indices) < 2:
        raise ValueError(f"{train_dir}: {len(indices)} clip(s) with a stated key in the caption; need at least 2")
    scale = float(train.vae_info.get("scaling_factor", 1.0))
    if val is not None and float(val.vae_info.get("scaling_factor", 1.0)) != scale:
        raise ValueError(f"{val_dir}: latents scaled by {val.vae_info.get('scaling_factor')}, the training "
                         f"latents by {scale}; pre-encode both with the same VAE")

    model = LatentKeyClassifier(in_channels=int(train.vae_info["latent_channels"]), width=width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.05)
    generator = torch.Generator().manual_seed(seed)
    losses, log, started = [], [], time.perf_counter()
    for step in range(1, steps + 1):
        chosen = torch.randint(len(indices), (batch_size,), generator=generator).tolist()
        latents, frame_mask, keys = load_batch(train, [indices[i] for i in chosen], step, scale)
        t = torch.rand(batch_size, generator=generator) * max_t
        t = torch.where(torch.rand(batch_size, generator=generator) < clean_fraction, torch.zeros_like(t), t)
        logits = model(noise_to(latents, t, generator), t, frame_mask).logits  # (B, 24)
        loss = torch.nn.functional.cross_entropy(logits, keys)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if step % log_every == 0 or step == steps:
            entry = {"step": step, "loss": round(sum(losses[-log_every:]) / len(losses[-log_every:]), 4),
                     "elapsed_s": round(time.perf_counter() - started, 1)}
            log.append(entry)
            print(f"[key_classifier] {json.dumps(entry)}", file=sys.stderr, flush=True)

    report = {"settings": {"train": str(train_dir), "val": str(val_dir) if val_dir else None, "steps": steps,
                           "batch_size": batch_size, "clip_seconds": clip_seconds, "lr": lr,
                           "weight_decay": weight_decay, "max_t": max_t, "clean_fraction": clean_fraction,
                           "width": width, "seed": seed, "scaling_factor": scale},
              "train_clips": len(indices), "parameters": sum(p.numel() for p in model.parameters()),
              "train_s": round(time.perf_counter() - started, 1), "log": log,
              "val": accuracy(model, val, scale, seed=seed) if val is not None else None,
              "val_clips": len(labelled_indices(val)) if val is not None else 0}
    with staged_directory(out_dir) as staging:
        model.save_pretrained(staging / "key_classifier")
        (staging / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True, type=Path, help="pre-encoded training latents")
    parser.add_argument("--val", type=Path, default=None, help="pre-encoded held-out latents (reported only)")
    parser.add_argument("--out", required=True, type=Path, help="new output directory")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--max-t", type=float, default=0.9, help="largest noise level trained on")
    parser.add_argument("--clean-fraction", type=float, default=0.3, help="share of crops trained clean (t = 0)")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=250)
    args = parser.parse_args(argv)
    try:
        report = train_key_classifier(args.train, args.out, args.val, args.steps, args.batch_size, args.clip_seconds,
                                      args.lr, args.weight_decay, args.max_t, args.clean_fraction, args.width,
                                      args.seed, args.log_every)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"audiodit.training.key_classifier: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"val": report["val"], "train_s": report["train_s"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
