"""Train the latent key classifier that key classifier guidance uses, in one command.

    python -m audiodit.training.key_classifier --train LATENTS_DIR [--val LATENTS_DIR] --out DIR \\
        [--steps 3000] [--batch-size 32] [--clip-seconds 10] [--lr 1e-3] [--width 128] [--seed 0]

A front end to the `key_classifier` training stage (`audiodit.training.key_classifier_stage`,
which documents the data and the noising): it runs the shared trainer with DIR as the run
directory (as `python train.py --config configs/key_classifier_small.yaml data.train_dir=LATENTS_DIR
training.output_dir=DIR` does, with the settings below: checkpoints, config.yaml, exact resume with
`python train.py --config DIR/config.yaml --resume latest`), then writes DIR/key_classifier/ (the
last checkpoint's export, what `python -m audiodit.export --key-classifier DIR` adds) and
DIR/report.json (settings, and key and mode accuracy on `--val` at t = 0, 0.5 and 0.8). A fixed
number of steps, no early stopping: the validation split only reports. DIR must not exist.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from audiodit.config import Config, DataConfig, KeyClassifierConfig, TrainingConfig
from audiodit.configuration import atomic_write_text, staged_directory
from audiodit.data.latents import LatentDataset, collate_latents
from audiodit.diffusion import FlowMatching
from audiodit.models.key_classifier import LatentKeyClassifier
from audiodit.prompt_attributes import prompt_keys
from audiodit.training.key_classifier_stage import check_same_scale, labelled_indices, latent_scale

REPORT_NOISE_LEVELS = (0.0, 0.5, 0.8)


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
    """Train a `LatentKeyClassifier` with the key_classifier stage into `out_dir` (module docstring);
    returns the report written to `out_dir/report.json`."""
    from audiodit.training.trainer import train

    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; choose a new --out (a trained classifier is never overwritten)")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"--steps and --batch-size must be positive, got {steps} and {batch_size}")
    if not 0.0 <= max_t < 1.0 or not 0.0 <= clean_fraction <= 1.0:
        raise ValueError(f"--max-t must be in [0, 1) and --clean-fraction in [0, 1], got {max_t} and {clean_fraction}")
    train_latents = LatentDataset(train_dir, clip_seconds=clip_seconds)
    scale = latent_scale(train_latents)
    val = LatentDataset(val_dir, clip_seconds=clip_seconds, random_crop=False) if val_dir else None
    if val is not None:  # checked here: the trainer's validation only warns, and the report would be wrong
        check_same_scale(val, scale)
    cfg = Config(
        stage="key_classifier",
        data=DataConfig(train_dir=str(train_dir), val_dir=str(val_dir or ""), format="latents",
                        clip_seconds=clip_seconds, batch_size=batch_size),
        key_classifier=KeyClassifierConfig(width=width, max_t=max_t, clean_fraction=clean_fraction),
        training=TrainingConfig(output_dir=str(out_dir), seed=seed, max_steps=steps, lr=lr,
                                weight_decay=weight_decay, warmup_steps=max(1, steps // 20), lr_schedule="cosine",
                                ema_decay=0.0, checkpoint_every=steps, keep_checkpoints=1, log_every=log_every),
    )
    started = time.perf_counter()
    result = train(cfg)
    train_s = time.perf_counter() - started
    model = LatentKeyClassifier.from_pretrained(str(result.last_checkpoint / "key_classifier"))
    report = {"settings": {"train": str(train_dir), "val": str(val_dir) if val_dir else None, "steps": steps,
                           "batch_size": batch_size, "clip_seconds": clip_seconds, "lr": lr,
                           "weight_decay": weight_decay, "max_t": max_t, "clean_fraction": clean_fraction,
                           "width": width, "seed": seed, "scaling_factor": scale, "stage": "key_classifier"},
              "train_clips": len(labelled_indices(train_latents)), "parameters": sum(p.numel() for p in model.parameters()),
              "train_s": round(train_s, 1),
              "val": accuracy(model, val, scale, seed=seed) if val is not None else None,
              "val_clips": len(labelled_indices(val)) if val is not None else 0}
    with staged_directory(out_dir / "key_classifier") as staging:
        shutil.copytree(result.last_checkpoint / "key_classifier", staging, dirs_exist_ok=True)
    atomic_write_text(out_dir / "report.json", json.dumps(report, indent=1) + "\n")
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
