"""Command line of `train.py`: `--config`, `--resume`, `--overwrite`, `--cpu` and key=value overrides."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from audiodit.config import Config, load_config
from audiodit.configuration import ConfigError
from audiodit.training.checkpoints import LATEST, CheckpointError, resolve_resume, run_dir_of


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train the audiodit VAE or DiT (stage chosen by the config). "
        "Run with python or `accelerate launch` (see docs/training.md).",
    )
    parser.add_argument("--config", help="YAML config (e.g. configs/dit_small.yaml)")
    parser.add_argument("--resume", metavar="latest|PATH",
                        help="continue a run: 'latest' (in training.output_dir), a checkpoint or a run directory")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the checkpoints and logs already in training.output_dir and start over")
    parser.add_argument("--cpu", action="store_true",
                        help="train on CPU even when a GPU is present (with `accelerate launch --multi_gpu "
                        "--num_processes N` this gives N gloo processes)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. training.lr=3e-4")
    return parser


def resolve_run(args: argparse.Namespace) -> tuple[Config, Path | None]:
    """The config to train with and the checkpoint to resume from (None: fresh run).

    Resuming without --config reuses the run's saved config.yaml (plus the overrides)."""
    if args.resume and args.overwrite:
        raise SystemExit("--resume and --overwrite contradict each other; pick one")
    if args.config:
        cfg = load_config(args.config, args.overrides)
    elif args.resume and args.resume != LATEST:
        checkpoint = resolve_resume(args.resume, ".")
        cfg = load_config(run_dir_of(checkpoint) / "config.yaml", args.overrides)
        return cfg, checkpoint
    elif args.resume == LATEST:
        cfg = load_config(None, args.overrides)
        saved = Path(cfg.training.output_dir) / "config.yaml"
        if not saved.is_file():
            raise SystemExit("--resume latest without --config: pass --config or training.output_dir=RUN_DIR")
        cfg = load_config(saved, args.overrides)
    else:
        raise SystemExit("--config is required for a fresh run (e.g. --config configs/dit_small.yaml)")
    checkpoint = resolve_resume(args.resume, cfg.training.output_dir) if args.resume else None
    return cfg, checkpoint


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 1 diverged (non-finite losses), 2 bad config / checkpoint / output dir."""
    from audiodit.training.trainer import NonFiniteLossError, train

    args = build_parser().parse_args(argv)
    try:
        cfg, checkpoint = resolve_run(args)
        train(cfg, resume=checkpoint, overwrite=args.overwrite, cpu=args.cpu)
    except (ConfigError, CheckpointError) as err:
        print(f"train.py: error: {err}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"train.py: stopped: {err}", file=sys.stderr)
        return 1
    return 0
