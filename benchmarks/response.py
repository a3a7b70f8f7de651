"""What the response benchmarks share (`tempo_response.py`, `key_response.py`).

Each fills caption templates with several values of one stated attribute ("N BPM", "in <key>")
and generates every filled caption of a template from the *same* noise, so only that attribute
differs between the clips it compares.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from audiodit.configuration import atomic_write_text
from audiodit.pipeline import AudioDiTPipeline


def parse_args(description: str, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", default="models/audiodit-small")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    parser.add_argument("--key-guidance", type=float, default=None,
                        help="key guidance scale (default: the model's; 0 = off)")
    parser.add_argument("--key-classifier-scale", type=float, default=None,
                        help="key classifier guidance scale (default: the model's; 0 = off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    return parser.parse_args(argv)


def generate_responses(args: argparse.Namespace, captions: list[str], values: list, analyse) -> tuple[list[list], dict]:
    """`analyse(audio (2, samples))` of the clip for every (caption template, value), as rows of
    `len(values)`; template `i` uses noise seed `args.seed + i` for all its values. Also returns
    the settings to report (seconds, steps, wall time)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    pipe = AudioDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    started = time.perf_counter()
    rows = []
    for index, caption in enumerate(captions):
        prompts = [caption.format(value) for value in values]
        generators = [torch.Generator().manual_seed(args.seed + index) for _ in prompts]  # same noise
        audios = pipe(prompts, audio_end_in_s=args.seconds, num_inference_steps=args.steps,
                      key_guidance_scale=args.key_guidance, key_classifier_scale=args.key_classifier_scale,
                      generator=generators).audios.float().numpy()
        rows.append([analyse(audio) for audio in audios])
    key_guidance = pipe.resolve_key_guidance_scale(args.key_guidance, pipe.default_guidance_scale)
    settings = {"seconds": args.seconds, "steps": args.steps or pipe.default_num_inference_steps,
                "key_guidance_scale": key_guidance,
                "key_classifier_scale": pipe.resolve_key_classifier_scale(args.key_classifier_scale),
                "wall_s": round(time.perf_counter() - started, 1)}
    return rows, settings


def report(result: dict, out: Path | None) -> None:
    """Print `result` as JSON and, with `out`, write it there atomically."""
    text = json.dumps(result, indent=1)
    print(text)
    if out:
        atomic_write_text(out, text + "\n")
