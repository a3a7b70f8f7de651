"""`sample.py` / `audiodit` command: generate and edit audio from text.

    python sample.py --prompt "A Bach chorale in D minor for organ, 80 BPM" --duration 10
    python sample.py --prompts-file prompts.txt --variations 2 --out outputs/
    python sample.py --prompt "..." --init-audio in.wav --strength 0.6          # audio-to-audio
    python sample.py --prompt "..." --init-audio in.wav --inpaint 2.0 4.5       # regenerate 2-4.5 s
    python sample.py --prompt "..." --init-audio in.wav --continue 8            # extend by 8 s
    python sample.py --prompt "..." --interpolate-to "..." --interpolation-steps 5

Each output file gets a `.json` sidecar holding every parameter needed to reproduce it (a file
made as variation k of seed S records seed S + k, so it reproduces alone). Existing files are
never overwritten without `--overwrite`. Bad arguments exit with status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from audiodit.configuration import atomic_write_text

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "audiodit-small"


class UsageError(Exception):
    """A user error reported as one line, without a traceback."""


@dataclass
class Job:
    prompt: str
    seed: int
    path: Path


def default_model_dir() -> Path:
    return Path(os.environ.get("AUDIODIT_MODEL", DEFAULT_MODEL))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audiodit", description="Generate stereo 48 kHz audio from text.")
    text = parser.add_argument_group("text")
    text.add_argument("--prompt", action="append", default=[], help="text prompt (repeat for several)")
    text.add_argument("--prompts-file", type=Path, help="file with one prompt per line")
    text.add_argument("--negative-prompt", default=None, help="what to steer away from")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--duration", type=float, default=10.0, help="seconds of audio (default 10)")
    gen.add_argument("--start", type=float, default=0.0, help="timing conditioning: seconds_start")
    gen.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    gen.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    gen.add_argument("--guidance-rescale", type=float, default=0.0, help="guidance rescale in [0, 1]")
    gen.add_argument("--key-guidance", type=float, default=None,
                     help="key guidance scale for a key-conditioned model (default: the model's; 0 = off)")
    gen.add_argument("--key-classifier-scale", type=float, default=None,
                     help="key classifier guidance scale for a pipeline with a key classifier (default: the model's; 0 = off)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first variation")
    gen.add_argument("--variations", type=int, default=1, help="waveforms per prompt (seeds seed, seed+1, ...)")
    gen.add_argument("--scheduler", default=None, help="diffusers scheduler class (flow matching)")
    edit = parser.add_argument_group("editing")
    edit.add_argument("--init-audio", type=Path, help="audio to edit (audio-to-audio, inpaint, continue)")
    edit.add_argument("--strength", type=float, default=None, help="audio-to-audio noise level in (0, 1]")
    edit.add_argument("--inpaint", type=float, nargs=2, metavar=("START", "END"), help="seconds to regenerate")
    edit.add_argument("--continue", dest="continue_s", type=float, help="extend --init-audio by N seconds")
    edit.add_argument("--interpolate-to", help="second prompt of an interpolation")
    edit.add_argument("--interpolate-seed", type=int, help="second seed of an interpolation")
    edit.add_argument("--interpolation-steps", type=int, default=5, help="clips along an interpolation")
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, default=Path("outputs"), help="output directory, or a file for one clip")
    out.add_argument("--format", choices=("wav", "flac"), default=None, help="file format (default wav)")
    out.add_argument("--overwrite", action="store_true", help="replace existing files")
    run = parser.add_argument_group("runtime")
    run.add_argument("--model", type=Path, default=None, help="pipeline directory (default: bundled model)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    run.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"))
    run.add_argument("--output-phase", choices=("decoder", "magnitude", "rebuilt"), default=None,
                     help="VAE output phase (default: the model's; see AudioVAE.decode)")
    run.add_argument("--compile", action="store_true",
                     help="torch.compile the transformer as one graph (first clip waits for the compile; pays off "
                          "over many clips, see README)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


# ---------------------------------------------------------------------------------------------
# Argument checks (before anything heavy is loaded)
# ---------------------------------------------------------------------------------------------


def _slug(text: str, limit: int = 48) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit] or "audio"


def read_prompts(args) -> list[str]:
    prompts = list(args.prompt)
    if args.prompts_file is not None:
        if not args.prompts_file.is_file():
            raise UsageError(f"prompts file not found: {args.prompts_file}")
        lines = args.prompts_file.read_text(encoding="utf-8").splitlines()
        prompts += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise UsageError("give at least one --prompt or a non-empty --prompts-file")
    return prompts


def validate(args) -> None:
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be positive, got {args.duration}")
    if args.start < 0:
        raise UsageError(f"--start must be >= 0, got {args.start}")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.guidance is not None and args.guidance < 0:
        raise UsageError(f"--guidance must be >= 0, got {args.guidance}")
    if not 0.0 <= args.guidance_rescale <= 1.0:
        raise UsageError(f"--guidance-rescale must be in [0, 1], got {args.guidance_rescale}")
    if args.key_guidance is not None and args.key_guidance < 0:
        raise UsageError(f"--key-guidance must be >= 0, got {args.key_guidance}")
    if args.key_classifier_scale is not None and args.key_classifier_scale < 0:
        raise UsageError(f"--key-classifier-scale must be >= 0, got {args.key_classifier_scale}")
    if args.variations < 1:
        raise UsageError(f"--variations must be >= 1, got {args.variations}")
    if args.strength is not None and not 0.0 < args.strength <= 1.0:
        raise UsageError(f"--strength must be in (0, 1], got {args.strength}")
    edits = [args.strength is not None, args.inpaint is not None, args.continue_s is not None]
    if any(edits) and args.init_audio is None:
        raise UsageError("--strength, --inpaint and --continue need --init-audio")
    if sum(edits) > 1:
        raise UsageError("use only one of --strength, --inpaint and --continue")
    if args.init_audio is not None and not args.init_audio.is_file():
        raise UsageError(f"--init-audio file not found: {args.init_audio}")
    if args.inpaint is not None and not 0 <= args.inpaint[0] < args.inpaint[1]:
        raise UsageError(f"--inpaint needs 0 <= START < END, got {args.inpaint[0]} {args.inpaint[1]}")
    if args.continue_s is not None and args.continue_s <= 0:
        raise UsageError(f"--continue must be positive, got {args.continue_s}")
    interpolating = args.interpolate_to is not None or args.interpolate_seed is not None
    if interpolating and (args.init_audio is not None):
        raise UsageError("interpolation cannot be combined with --init-audio")
    if interpolating and args.interpolation_steps < 2:
        raise UsageError(f"--interpolation-steps must be >= 2, got {args.interpolation_steps}")
    model = args.model or default_model_dir()
    if not (Path(model) / "model_index.json").is_file():
        raise UsageError(f"no pipeline at {model} (model_index.json missing); pass --model DIR")


def plan_outputs(args, prompts: list[str]) -> list[Job]:
    """Every file this run will write, checked up front so no work is lost to a name clash."""
    interpolating = args.interpolate_to is not None or args.interpolate_seed is not None
    fmt = args.format or (args.out.suffix.lstrip(".") if args.out.suffix in (".wav", ".flac") else "wav")
    count = args.interpolation_steps if interpolating else args.variations
    jobs = []
    for prompt in prompts:
        for index in range(count):
            seed = args.seed if interpolating else args.seed + index
            name = f"{_slug(prompt)}_seed{seed}" + (f"_interp{index}" if interpolating else "")
            jobs.append(Job(prompt=prompt, seed=seed, path=args.out / f"{name}.{fmt}"))
    if args.out.suffix in (".wav", ".flac"):
        if len(jobs) != 1:
            raise UsageError(f"--out {args.out} names one file but this run makes {len(jobs)}; give a directory")
        jobs[0].path = args.out
    if not args.overwrite:
        taken = [str(job.path) for job in jobs if job.path.exists() or job.path.with_suffix(".json").exists()]
        if taken:
            raise UsageError(f"refusing to overwrite {taken[0]} (use --overwrite)")
    return jobs


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


def pick_device_and_dtype(device: str, dtype: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
    return device, getattr(torch, dtype)


def load_pipeline(model_dir: Path, device: str, dtype, scheduler: str | None = None,
                  output_phase: str | None = None, compile_transformer: bool = False):
    import diffusers

    from audiodit.pipeline import AudioDiTPipeline

    diffusers.utils.logging.disable_progress_bar()  # the component-loading bar; sampling keeps its own
    pipe = AudioDiTPipeline.from_pretrained(model_dir, dtype=dtype)
    if scheduler:
        scheduler_cls = getattr(diffusers, scheduler, None)
        if scheduler_cls is None or not hasattr(scheduler_cls, "from_config"):
            raise UsageError(f"unknown scheduler '{scheduler}' (a diffusers scheduler class name)")
        pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    if output_phase is not None:
        pipe.vae.register_to_config(output_phase=output_phase)
    pipe = pipe.to(device)
    if compile_transformer:
        # In place, so pipe.transformer stays our model (config, dtype, save_pretrained); its batched
        # forward traces as one graph (tests/models/test_dit.py).
        pipe.transformer.compile(fullgraph=True)
    return pipe


def generate(args, jobs: list[Job], pipe) -> list[Path]:
    import torch

    from audiodit.audio import load_audio, save_audio

    steps = args.steps or pipe.default_num_inference_steps
    guidance = pipe.default_guidance_scale if args.guidance is None else args.guidance
    pipe.set_progress_bar_config(disable=args.quiet)
    # The scales a call resolves to (the model's defaults where not given), so the sidecars hold the
    # values that were used.
    key_guidance = pipe.resolve_key_guidance_scale(args.key_guidance, guidance)
    key_classifier_scale = pipe.resolve_key_classifier_scale(args.key_classifier_scale)
    common = dict(num_inference_steps=steps, guidance_scale=guidance, guidance_rescale=args.guidance_rescale,
                  key_guidance_scale=key_guidance, key_classifier_scale=key_classifier_scale,
                  negative_prompt=args.negative_prompt, audio_start_in_s=args.start)
    init_audio = None
    if args.init_audio is not None:
        init_audio = load_audio(args.init_audio, sample_rate=pipe.sampling_rate)
    written = []
    interpolating = args.interpolate_to is not None or args.interpolate_seed is not None
    by_prompt: dict[str, list[Job]] = {}
    for job in jobs:
        by_prompt.setdefault(job.prompt, []).append(job)
    for prompt, prompt_jobs in by_prompt.items():
        started = time.perf_counter()
        params = dict(common)
        if interpolating:
            audios = pipe.interpolate(
                prompt, args.interpolate_to, seed_start=args.seed, seed_end=args.interpolate_seed,
                num_points=len(prompt_jobs), audio_end_in_s=args.start + args.duration, **common,
            ).audios
            params.update(interpolate_to=args.interpolate_to, interpolate_seed=args.interpolate_seed,
                          interpolation_steps=len(prompt_jobs))
        else:
            generators = [torch.Generator("cpu").manual_seed(job.seed) for job in prompt_jobs]
            edit = {}
            if init_audio is not None:
                edit = dict(initial_audio=init_audio, strength=args.strength or 1.0,
                            inpaint_range=tuple(args.inpaint) if args.inpaint else None,
                            continuation_in_s=args.continue_s)
                params.update(init_audio=str(args.init_audio), strength=edit["strength"],
                              inpaint=args.inpaint, continue_s=args.continue_s)
            end = None if init_audio is not None else args.start + args.duration
            audios = pipe(prompt, audio_end_in_s=end, num_waveforms_per_prompt=len(prompt_jobs),
                          generator=generators, **common, **edit).audios
        seconds = time.perf_counter() - started
        for index, (job, audio) in enumerate(zip(prompt_jobs, audios)):
            save_audio(job.path, audio.cpu(), sample_rate=pipe.sampling_rate,
                       subtype="PCM_24" if job.path.suffix == ".flac" else "PCM_16", overwrite=args.overwrite)
            sidecar = dict(prompt=prompt, seed=job.seed, duration=audio.shape[-1] / pipe.sampling_rate,
                           model=str(args.model or default_model_dir()), scheduler=type(pipe.scheduler).__name__,
                           device=str(pipe.device), dtype=str(pipe.transformer.dtype).replace("torch.", ""),
                           output_phase=pipe.vae.config.output_phase, compiled=args.compile,
                           generation_seconds=round(seconds, 3), **params)
            if interpolating:
                sidecar["interpolation_index"] = index
            atomic_write_text(job.path.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
            written.append(job.path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        prompts = read_prompts(args)
        validate(args)
        jobs = plan_outputs(args, prompts)
        device, dtype = pick_device_and_dtype(args.device, args.dtype)
        logging.basicConfig(level=logging.WARNING)
        pipe = load_pipeline(args.model or default_model_dir(), device, dtype, args.scheduler, args.output_phase,
                             args.compile)
        for path in generate(args, jobs, pipe):
            print(path)
    except (UsageError, ValueError, FileExistsError) as err:
        print(f"audiodit: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
