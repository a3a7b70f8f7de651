"""`sample.py` / `audiodit` command: generate and edit audio from text.

    python sample.py --prompt "A Bach chorale in D minor for organ, 80 BPM" --duration 10
    python sample.py --prompts-file prompts.txt --variations 2 --out outputs/
    python sample.py --prompt "..." --init-audio in.wav --strength 0.6          # audio-to-audio
    python sample.py --prompt "..." --init-audio in.wav --inpaint 2.0 4.5       # regenerate 2-4.5 s
    python sample.py --prompt "..." --init-audio in.wav --continue 8            # extend by 8 s
    python sample.py --prompt "..." --interpolate-to "..." --interpolation-steps 5

Each output file gets a `.json` sidecar holding every parameter needed to reproduce it (a file
made as variation k of seed S records seed S + k, so it reproduces alone). Existing files are
never overwritten without `--overwrite`; `--skip-existing` leaves them and makes the rest. Clips
are generated `CHUNK` at a time and each is written (audio, then its sidecar) as soon as it is
made, so a long run that is stopped keeps what it finished. Bad arguments exit with status 2 and
one line on stderr, checked before the model loads where they can be: values, the init audio
(decoded and checked up front), the output directory (written to up front), the device, and that
no two clips of the run map to one file name (later ones get `-2`, `-3`, ...). A failure while
writing (a full disk) exits with status 1 and one line, and leaves no audio without its sidecar.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from audiodit.configuration import atomic_write_text
from audiodit.inputs import check_edits, check_guidance_interval, check_inpaint_range, check_setting

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "models" / "audiodit-small"
FORMATS = ("wav", "flac", "mp3", "ogg", "opus")  # --format; audiodit.audio.save_audio writes each
NOT_WRITTEN = (".m4a", ".aac", ".mp4", ".wma", ".aif", ".aiff", ".mp2", ".webm", ".alac")  # audio suffixes we cannot write
CHUNK = 4  # clips generated per pipeline call: bounded memory, and written as they finish
MAX_STEPS = 1000
MAX_COUNT = 1000  # --variations, --interpolation-steps
MAX_INIT_SECONDS = 3600.0  # longer init audio (or a header claiming it) is refused before decoding
MAX_LONG_SECONDS = 3600.0  # --duration beyond the model's window: long-form, up to an hour
LORA_WEIGHTS = "pytorch_lora_weights.safetensors"  # audiodit.lora.WEIGHTS_NAME (that module imports torch)


class UsageError(Exception):
    """A user error reported as one line, without a traceback."""


# The pipeline's argument names and the flags that set them: its errors are shown in flag terms.
FLAG_NAMES = {
    "`initial_audio`": "--init-audio", "`continuation_in_s`": "--continue", "`strength`": "--strength",
    "`inpaint_range`": "--inpaint", "`guidance_scale`": "--guidance", "`guidance_rescale`": "--guidance-rescale",
    "`key_guidance_scale`": "--key-guidance", "`guidance_interval`": "--guidance-interval",
    "`key_classifier_scale`": "--key-classifier-scale", "`audio_start_in_s`": "--start",
    "`audio_end_in_s`": "--start + --duration", "`num_inference_steps`": "--steps",
    "`melody_guidance_scale`": "--melody-scale", "`melody`": "--melody",
    "`negative_prompt`": "--negative-prompt", "`num_points`": "--interpolation-steps",
    "`num_waveforms_per_prompt`": "--variations", "overwrite=True": "--overwrite", "`prompt`": "--prompt",
}


def in_flag_terms(message: str) -> str:
    """A library error message with the pipeline's argument names replaced by the CLI's flags."""
    for name, flag in FLAG_NAMES.items():
        message = message.replace(name, flag)
    return message


@dataclass
class Job:
    prompt: str
    seed: int
    path: Path
    group: int = 0  # which prompt (occurrence) of the run it belongs to
    replace: bool = False  # --skip-existing: audio left without its sidecar by a killed run is made again


def default_model_dir() -> Path:
    return Path(os.environ.get("AUDIODIT_MODEL", DEFAULT_MODEL))


def build_parser(parser_class=argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`parser_class`: another ArgumentParser subclass (the web app's raises instead of exiting)."""
    parser = parser_class(prog="audiodit", description="Generate stereo 48 kHz audio from text.")
    text = parser.add_argument_group("text")
    text.add_argument("--prompt", action="append", default=[], help="text prompt (repeat for several)")
    text.add_argument("--prompts-file", type=Path, help="file with one prompt per line")
    text.add_argument("--negative-prompt", default=None, help="what to steer away from")
    gen = parser.add_argument_group("generation")
    gen.add_argument("--duration", type=float, default=10.0, help="seconds of audio (default 10)")
    gen.add_argument("--start", type=float, default=0.0, help="timing conditioning: seconds_start")
    long = parser.add_argument_group("long-form (a --duration beyond the model's maximum)")
    long.add_argument("--window", type=float, default=None,
                      help="seconds per window (default: 24, at most the model's maximum)")
    long.add_argument("--window-context", type=float, default=None,
                      help="seconds of the piece so far each later window goes on from (default: 6, or a "
                           "quarter of a shorter window)")
    long.add_argument("--section", nargs=2, action="append", default=[], metavar=("SECONDS", "PROMPT"),
                      help="from SECONDS on, windows take PROMPT (repeat; --prompt holds from 0)")
    gen.add_argument("--steps", type=int, default=None, help=f"inference steps, at most {MAX_STEPS} (default: the model's)")
    gen.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    gen.add_argument("--guidance-rescale", type=float, default=0.0, help="guidance rescale in [0, 1]")
    gen.add_argument("--guidance-interval", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                     help="guide only at noise levels in [LOW, HIGH] (0 = clean, 1 = noise); the other steps "
                          "run one transformer pass instead of one per guidance branch (default: every step)")
    gen.add_argument("--key-guidance", type=float, default=None,
                     help="key guidance scale for a key-conditioned model (default: the model's; 0 = off)")
    gen.add_argument("--key-classifier-scale", type=float, default=None,
                     help="key classifier guidance scale for a pipeline with a key classifier (default: the model's; 0 = off)")
    gen.add_argument("--seed", type=int, default=0, help="seed of the first variation")
    gen.add_argument("--variations", type=int, default=1, help="waveforms per prompt (seeds seed, seed+1, ...)")
    gen.add_argument("--scheduler", default=None, help="diffusers scheduler class (flow matching)")
    tune = parser.add_argument_group("melody (a model with melody conditioning)")
    tune.add_argument("--melody", type=Path, help="audio whose tune the clip follows (a hum, whistle or line played)")
    tune.add_argument("--melody-scale", type=float, default=None,
                      help="melody guidance scale: more of what the melody alone changes (0 = off; default: the "
                           "model's)")
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
    out.add_argument("--format", choices=FORMATS, default=None,
                     help="file format (default: --out's suffix, else wav); mp3/ogg/opus are lossy")
    out.add_argument("--normalize", choices=("none", "peak", "rms"), default=None,
                     help="level of written clips: peak (at -1 dBFS; the default for new clips), rms (at -20 "
                          "dBFS) or none (the default when editing --init-audio and for long-form pieces)")
    out.add_argument("--level", type=float, default=None, help="target dBFS of --normalize (peak -1, rms -20)")
    out.add_argument("--overwrite", action="store_true", help="replace existing files")
    out.add_argument("--skip-existing", action="store_true",
                     help="leave clips whose file and sidecar exist (resume a stopped run) and make the rest")
    run = parser.add_argument_group("runtime")
    run.add_argument("--model", type=Path, default=None, help="pipeline directory (default: bundled model)")
    run.add_argument("--lora", action="append", default=[], metavar="DIR[:SCALE]",
                     help="LoRA adapter (its directory, or the training run that made it) at SCALE (default 1); "
                          "repeat to combine adapters")
    run.add_argument("--vae", type=Path, default=None,
                     help="another VAE for the model (a directory, or the vae-stage run that made it) with the "
                          "model's encoder, e.g. a fine-tuned decoder")
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
            raise UsageError(f"prompts file not found: {_shown(args.prompts_file)}")
        try:
            lines = args.prompts_file.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as err:
            raise UsageError(f"--prompts-file {_shown(args.prompts_file)} is not UTF-8 text "
                             f"(byte {err.start}: {err.reason})") from None
        except OSError as err:
            raise UsageError(f"cannot read --prompts-file {_shown(args.prompts_file)}: {err.strerror}") from None
        prompts += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise UsageError("give at least one --prompt or a non-empty --prompts-file")
    return prompts


def _shown(path) -> str:
    """A path as text that can always be printed (undecodable bytes of a file name escaped)."""
    return os.fsdecode(path).encode("utf-8", "backslashreplace").decode("utf-8")


def _model_limits(model: Path, component: str = "transformer") -> dict:
    """A component's saved config (the transformer's max_seconds, the VAE's sampling_rate), read
    without loading the model."""
    try:
        config = json.loads((Path(model) / component / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # loading the pipeline will report what is wrong with it
    if not isinstance(config, dict):
        return {}
    return {key: value for key, value in config.items()
            if not (key in ("max_seconds", "sampling_rate") and (isinstance(value, bool) or not isinstance(value, (int, float))))}


def model_sampling_rate(model: Path) -> int:
    """The sampling rate the pipeline at `model` works at, from its VAE config (48 kHz if unreadable)."""
    return int(_model_limits(model, "vae").get("sampling_rate", 48000))


def validate(args) -> None:
    floats = {"--duration": args.duration, "--start": args.start, "--continue": args.continue_s}
    for flag, value in floats.items():  # the generation settings' own: audiodit.inputs below
        if value is not None and not math.isfinite(value):
            raise UsageError(f"{flag} must be a finite number, got {value}")
    if args.steps is not None and args.steps > MAX_STEPS:
        raise UsageError(f"--steps must be at most {MAX_STEPS}, got {args.steps}")
    if args.variations > MAX_COUNT:
        raise UsageError(f"--variations must be at most {MAX_COUNT} (run again with another --seed for more), "
                         f"got {args.variations}")
    if args.interpolation_steps > MAX_COUNT:
        raise UsageError(f"--interpolation-steps must be at most {MAX_COUNT}, got {args.interpolation_steps}")
    if args.overwrite and args.skip_existing:
        raise UsageError("use only one of --overwrite and --skip-existing")
    if args.duration is not None and args.duration <= 0:
        raise UsageError(f"--duration must be positive, got {args.duration}")
    if args.start < 0:
        raise UsageError(f"--start must be >= 0, got {args.start}")
    if args.variations < 1:
        raise UsageError(f"--variations must be >= 1, got {args.variations}")
    settings = {"num_inference_steps": args.steps, "guidance_scale": args.guidance,
                "guidance_rescale": args.guidance_rescale, "key_guidance_scale": args.key_guidance,
                "key_classifier_scale": args.key_classifier_scale, "strength": args.strength,
                "melody_guidance_scale": args.melody_scale}
    try:  # the pipeline's own rules (audiodit.inputs), in flag terms
        for name, value in settings.items():
            if value is not None:
                check_setting(name, value)
        check_edits({"strength": args.strength is not None, "inpaint_range": args.inpaint is not None,
                     "continuation_in_s": args.continue_s is not None}, args.init_audio is not None)
        if args.inpaint is not None:
            check_inpaint_range(*args.inpaint)
        if args.guidance_interval is not None:
            check_guidance_interval(args.guidance_interval)
    except ValueError as err:
        raise UsageError(in_flag_terms(str(err))) from None
    if args.init_audio is not None and not args.init_audio.is_file():
        raise UsageError(f"--init-audio file not found: {_shown(args.init_audio)}")
    if args.continue_s is not None and not 0 < args.continue_s <= MAX_LONG_SECONDS:
        raise UsageError(f"--continue must be in (0, {MAX_LONG_SECONDS:g}] seconds, got {args.continue_s}")
    interpolating = args.interpolate_to is not None or args.interpolate_seed is not None
    if args.melody_scale and args.melody is None:
        raise UsageError("--melody-scale needs --melody")
    if args.melody is not None:
        if not args.melody.is_file():
            raise UsageError(f"--melody file not found: {_shown(args.melody)}")
        if interpolating:
            raise UsageError("--melody is not taken by interpolation (a walk between two prompts)")
    if interpolating and (args.init_audio is not None):
        raise UsageError("interpolation cannot be combined with --init-audio")
    if interpolating and args.interpolation_steps < 2:
        raise UsageError(f"--interpolation-steps must be >= 2, got {args.interpolation_steps}")
    model = args.model or default_model_dir()
    if not (Path(model) / "model_index.json").is_file():
        raise UsageError(f"no pipeline at {_shown(model)} (model_index.json missing); pass --model DIR")
    args.loras = [parse_lora(spec) for spec in args.lora]
    args.vae = resolve_vae(args.vae) if args.vae is not None else None
    max_seconds = _model_limits(model).get("max_seconds")
    args.long_form = (isinstance(max_seconds, (int, float)) and args.init_audio is None
                      and args.duration is not None and args.duration > max_seconds + 1e-6)
    validate_long_form(args, max_seconds)
    validate_level(args)


def validate_level(args) -> None:
    """--normalize and --level; resolves `args.normalize` to what is written: peak for new clips,
    none for edits (the given audio keeps its level) and long-form pieces (written as they are made,
    before their peak is known)."""
    if args.long_form and args.normalize not in (None, "none"):
        raise UsageError(f"--normalize {args.normalize} is not available for long-form pieces: they are written "
                         "as they are made, before their level is known")
    if args.normalize is None:
        args.normalize = "none" if args.long_form or args.init_audio is not None else "peak"
    if args.level is not None:
        if args.normalize == "none":
            raise UsageError("--level needs --normalize peak or rms")
        if not (math.isfinite(args.level) and args.level <= 0):
            raise UsageError(f"--level must be a finite dBFS value <= 0, got {args.level}")


def parse_lora(spec: str) -> tuple[Path, float]:
    """`--lora DIR[:SCALE]` -> (the adapter directory, its scale). DIR may be an adapter, a LoRA
    training checkpoint (its `lora/`) or run (its latest checkpoint's)."""
    head, colon, tail = spec.rpartition(":")
    path, scale = Path(spec), 1.0
    if colon:
        try:
            path, scale = Path(head), float(tail)
        except ValueError:
            pass  # a ':' inside the path
    if not math.isfinite(scale):
        raise UsageError(f"--lora {spec}: the scale must be a finite number, got {tail}")
    if not (path / LORA_WEIGHTS).is_file():
        from audiodit.training.checkpoints import resolve_export

        try:
            path = resolve_export(path, "--lora", ("lora",))
        except ValueError:
            pass  # answered below
    if (path / LORA_WEIGHTS).is_file():
        return path, scale
    raise UsageError(f"--lora {_shown(path)}: not a LoRA adapter (no {LORA_WEIGHTS}) nor a LoRA training run "
                     "or checkpoint (docs/lora.md)")


def resolve_vae(path: Path) -> Path:
    """`--vae`: a VAE directory (config.json), a pipeline's `vae/`, or a vae-stage run or checkpoint
    (its latest `vae/` export)."""
    from audiodit.training.checkpoints import resolve_vae_dir

    try:
        return resolve_vae_dir(path, "--vae", ("vae",))
    except ValueError as err:
        raise UsageError(str(err)) from None


def validate_long_form(args, max_seconds) -> None:
    """--window, --window-context and --section: only for a --duration beyond the model's maximum."""
    from audiodit.longform import DEFAULT_WINDOW_SECONDS, check_window, default_context

    long_flags = [flag for flag, given in (("--window", args.window is not None),
                                           ("--window-context", args.window_context is not None),
                                           ("--section", bool(args.section))) if given]
    if not args.long_form:
        if long_flags:
            raise UsageError(f"{long_flags[0]} is for long-form generation: a --duration beyond the model's "
                             f"maximum of {max_seconds:g} s without --init-audio")
        return
    if args.duration > MAX_LONG_SECONDS:
        raise UsageError(f"--duration {args.duration:g} exceeds the long-form maximum of {MAX_LONG_SECONDS:g} s")
    interpolating = args.interpolate_to is not None or args.interpolate_seed is not None
    if interpolating:
        raise UsageError(f"interpolation makes clips of at most {max_seconds:g} s; --duration {args.duration:g} "
                         "is long-form")
    window = min(DEFAULT_WINDOW_SECONDS, max_seconds) if args.window is None else args.window
    context = default_context(window) if args.window_context is None else args.window_context
    try:
        check_window(window, context, max_seconds)
    except ValueError as err:
        raise UsageError(str(err).replace("`window_seconds`", "--window").replace("`context_seconds`",
                                                                                  "--window-context")) from None
    sections = []
    for seconds, prompt in args.section:
        try:
            start = float(seconds)
        except ValueError:
            raise UsageError(f"--section needs SECONDS PROMPT, got {seconds!r} as SECONDS") from None
        if not math.isfinite(start) or not 0 < start < args.duration:
            raise UsageError(f"--section {seconds} must start inside the piece (0 to {args.duration:g} s)")
        if not prompt.strip():
            raise UsageError(f"--section {seconds} has an empty prompt")
        sections.append((start, prompt))
    args.sections = sorted(sections)


def read_init_audio(args, sample_rate: int = 48000):
    """The --init-audio clip (2, S), decoded and checked before any model loads, or None.
    Its header is read first, so a file claiming an absurd length is refused before decoding."""
    if args.init_audio is None:
        return None
    from audiodit.audio import AudioLoadError, audio_info, load_audio

    name = _shown(args.init_audio)
    try:
        info = audio_info(args.init_audio)
    except (AudioLoadError, OSError, RuntimeError) as err:
        raise UsageError(f"--init-audio {name} is not readable audio: {err}") from None
    seconds = info.frames / info.sample_rate if info.sample_rate > 0 else float("inf")
    if info.frames <= 0:
        raise UsageError(f"--init-audio {name} holds no samples")
    if seconds > MAX_INIT_SECONDS:
        raise UsageError(f"--init-audio {name} claims {seconds:.0f} s; at most {MAX_INIT_SECONDS:.0f} s is accepted")
    try:
        audio = load_audio(args.init_audio, sample_rate=sample_rate)
    except (AudioLoadError, OSError, RuntimeError, ValueError) as err:
        raise UsageError(f"--init-audio {name} could not be decoded: {err}") from None
    seconds = audio.shape[-1] / sample_rate
    if audio.shape[-1] == 0:
        raise UsageError(f"--init-audio {name} holds no samples")
    if args.inpaint is not None and args.inpaint[1] > seconds + 1e-6:
        raise UsageError(f"--inpaint {args.inpaint[0]:g} {args.inpaint[1]:g} reaches past the end of "
                         f"--init-audio ({seconds:.2f} s)")
    return audio


def check_output_writable(jobs: list[Job]) -> None:
    """Create the output directories and write a probe file in each, before any generation."""
    import tempfile

    for directory in sorted({job.path.parent for job in jobs}):
        try:
            directory.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".audiodit-probe-"):
                pass
        except OSError as err:
            raise UsageError(f"cannot write to output directory {_shown(directory)}: "
                             f"{err.strerror or err}") from None


def plan_outputs(args, prompts: list[str]) -> list[Job]:
    """Every file this run will write, checked up front so no work is lost to a name clash: two
    clips whose names would be equal (the same prompt twice, prompts alike in their first 48
    characters) get `-2`, `-3`, ... in the order they come, so no clip of a run replaces another."""
    suffix = args.out.suffix.lower()
    if suffix in NOT_WRITTEN:
        raise UsageError(f"--out {_shown(args.out)}: cannot write {suffix} files; use one of "
                         + ", ".join(f".{fmt}" for fmt in FORMATS))
    names_file = suffix in tuple(f".{fmt}" for fmt in FORMATS)
    if names_file and args.format is not None and suffix != f".{args.format}":
        raise UsageError(f"--out {_shown(args.out)} and --format {args.format} disagree")
    fmt = args.format or (suffix.lstrip(".") if names_file else "wav")
    interpolating = args.interpolate_to is not None or args.interpolate_seed is not None
    count = args.interpolation_steps if interpolating else args.variations
    jobs, used = [], {}
    for group, prompt in enumerate(prompts):
        for index in range(count):
            seed = args.seed if interpolating else args.seed + index
            name = f"{_slug(prompt)}_seed{seed}" + (f"_interp{index}" if interpolating else "")
            used[name] = used.get(name, 0) + 1
            if used[name] > 1:
                name = f"{name}-{used[name]}"
            jobs.append(Job(prompt=prompt, seed=seed, path=args.out / f"{name}.{fmt}", group=group))
    if names_file:
        if len(jobs) != 1:
            raise UsageError(f"--out {_shown(args.out)} names one file but this run makes {len(jobs)}; "
                             "give a directory")
        jobs[0].path = args.out
    if args.skip_existing:
        jobs = [job for job in jobs if not (job.path.exists() and job.path.with_suffix(".json").exists())]
        for job in jobs:
            job.replace = job.path.exists()  # a clip without its sidecar is unfinished: made again
    elif not args.overwrite:
        taken = [job.path for job in jobs if job.path.exists() or job.path.with_suffix(".json").exists()]
        if taken:
            raise UsageError(f"refusing to overwrite {_shown(taken[0])} (use --overwrite, or --skip-existing "
                             "to make only what is missing)")
    return jobs


# ---------------------------------------------------------------------------------------------
# Generation
# ---------------------------------------------------------------------------------------------


def pick_device_and_dtype(device: str, dtype: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    try:
        kind = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device!r} is not a device (auto, cpu, cuda, cuda:N or mps)") from None
    if kind.type == "cuda" and (not torch.cuda.is_available()
                                or (kind.index or 0) >= torch.cuda.device_count()):
        raise UsageError(f"--device {device}: CUDA is not available here"
                         if not torch.cuda.is_available() else
                         f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    if kind.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {device}: MPS is not available here")
    if kind.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"--device {device}: use auto, cpu, cuda, cuda:N or mps")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
    return device, getattr(torch, dtype)


def load_pipeline(model_dir: Path, device: str, dtype, scheduler: str | None = None,
                  output_phase: str | None = None, compile_transformer: bool = False, steps: int | None = None,
                  loras: list[tuple[Path, float]] = (), vae: Path | None = None):
    import diffusers

    from audiodit.pipeline import AudioDiTPipeline

    diffusers.utils.logging.disable_progress_bar()  # the component-loading bar; sampling keeps its own
    try:
        pipe = AudioDiTPipeline.from_pretrained(model_dir, dtype=dtype)
    except OSError as err:  # a missing or unreadable weights file: about the model, not the output
        raise UsageError(f"cannot load the model at {_shown(model_dir)}: {str(err).splitlines()[0]}") from None
    if scheduler:
        scheduler_cls = getattr(diffusers, scheduler, None)
        if scheduler_cls is None or not hasattr(scheduler_cls, "from_config"):
            raise UsageError(f"unknown scheduler '{scheduler}' (a diffusers scheduler class name)")
        pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
    if vae is not None:
        swap_vae(pipe, vae)
    if output_phase is not None:
        pipe.vae.register_to_config(output_phase=output_phase)
    if steps is None and not 1 <= int(pipe.default_num_inference_steps) <= MAX_STEPS:
        raise UsageError(f"the model at {_shown(model_dir)} saves {pipe.default_num_inference_steps} default steps "
                         f"(at most {MAX_STEPS}); pass --steps")
    pipe = pipe.to(device)
    if loras:
        load_loras(pipe, loras)
    if compile_transformer:
        # In place, so pipe.transformer stays our model (config, dtype, save_pretrained); its batched
        # forward traces as one graph (tests/models/test_dit.py).
        pipe.transformer.compile(fullgraph=True)
    return pipe


def swap_vae(pipe, path: Path) -> None:
    """Use the VAE at `path` instead of the pipeline's (`audiodit.export.adopt_vae`)."""
    from audiodit.export import adopt_vae
    from audiodit.models.vae import AudioVAE

    try:
        vae = AudioVAE.from_pretrained(str(path), dtype=pipe.vae.dtype)
    except OSError as err:
        raise UsageError(f"--vae {_shown(path)}: cannot load it: {str(err).splitlines()[0]}") from None
    try:
        adopt_vae(pipe, vae)
    except ValueError as err:
        raise UsageError(f"--vae {_shown(path)} {err}") from None


def load_loras(pipe, loras: list[tuple[Path, float]]) -> None:
    """Add each adapter as `lora_<i>` and activate them all at their scales; the pipeline records
    what each clip's sidecar says (`pipe.lora_records`)."""
    from audiodit.integrity import file_digest

    names = []
    for index, (path, scale) in enumerate(loras):
        try:
            pipe.load_lora_weights(path, adapter_name=f"lora_{index}")
        except (OSError, ValueError) as err:
            raise UsageError(f"--lora {_shown(path)}: {str(err).splitlines()[0]}") from None
        names.append(f"lora_{index}")
    pipe.set_adapters(names, adapter_weights=[scale for _, scale in loras])
    pipe.lora_records = [{"path": str(path), "scale": scale, "sha256": file_digest(path / LORA_WEIGHTS)}
                         for path, scale in loras]


def write_clip(path: Path, audio, sample_rate: int, sidecar: dict, overwrite: bool) -> None:
    """The clip and then its sidecar, each written whole or not at all; if the sidecar cannot be
    written (a full disk), the clip is removed again, so no audio is left without its sidecar."""
    from audiodit.audio import save_audio

    save_audio(path, audio, sample_rate=sample_rate, overwrite=overwrite)
    write_sidecar(path, sidecar)


def write_sidecar(path: Path, sidecar: dict) -> None:
    """The clip's `.json` sidecar, whole or not at all; if it cannot be written the clip is removed
    again, so no audio is left without its sidecar."""
    try:
        atomic_write_text(path.with_suffix(".json"), json.dumps(sidecar, indent=2) + "\n")
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def sidecar_for(args, pipe, job: Job, duration: float, seconds: float, **params) -> dict:
    """What a clip's sidecar records: its prompt and seed, the model and how it ran, and `params`."""
    return dict(prompt=job.prompt, seed=job.seed, duration=duration, model=str(args.model or default_model_dir()),
                scheduler=type(pipe.scheduler).__name__, device=str(pipe.device),
                dtype=str(pipe.transformer.dtype).replace("torch.", ""), output_phase=pipe.vae.config.output_phase,
                compiled=args.compile, generation_seconds=round(seconds, 3),
                **({"vae": str(args.vae)} if getattr(args, "vae", None) else {}),
                **({"lora": pipe.lora_records} if getattr(pipe, "lora_records", None) else {}), **params)


def tune_key(pipe, melody) -> int:
    """The key of a melody's ids (`melody.melody_key`, a second of pitched frames at the VAE's rate
    at least), worked out once per run."""
    from audiodit.melody import melody_key

    return melody_key(melody, min_frames=round(pipe.vae.latent_rate))


def with_melody_key(prompt: str, found: int, quiet: bool = True) -> tuple[str, dict]:
    """The prompt a melody's clip is made from, and what the sidecar says of its key: a prompt that
    states a key keeps it; one that states none gets the tune's own key `found` (`tune_key`), so the
    text, key conditioning and key classifier all aim where the tune already is (issue 26: "the
    melody's own are used when the prompt states none; say which"). The tempo needs nothing: the
    tune is followed frame by frame, so its timing is the clip's."""
    from audiodit.prompt_attributes import NO_KEY, key_name, parse_key, with_attributes

    stated = parse_key(prompt)
    if stated != NO_KEY:
        return prompt, {"key": key_name(stated), "from": "prompt"}
    if found == NO_KEY:
        return prompt, {"key": "none", "from": "none: the melody has under a second of pitched frames"}
    used = with_attributes(prompt, None, key_name(found))
    if not quiet:
        print(f"--melody: the prompt states no key; using the melody's, {key_name(found)}: {used!r}", file=sys.stderr)
    return used, {"key": key_name(found), "from": "melody", "prompt_used": used}


def generate(args, jobs: list[Job], pipe, init_audio=None):
    """Yield each written path as soon as its clip is made (clips in chunks of CHUNK per prompt)."""
    import torch

    from audiodit.audio import level_output

    pipe.set_progress_bar_config(disable=args.quiet)
    # The settings a call resolves to (the model's defaults where not given), so the sidecars hold the
    # values that were used.
    steps, guidance, key_guidance, key_classifier_scale = pipe.resolve_settings(
        args.steps or None, args.guidance, args.key_guidance, args.key_classifier_scale)
    common = dict(num_inference_steps=steps, guidance_scale=guidance, guidance_rescale=args.guidance_rescale,
                  key_guidance_scale=key_guidance, key_classifier_scale=key_classifier_scale,
                  negative_prompt=args.negative_prompt, audio_start_in_s=args.start)
    if args.guidance_interval is not None:  # only when given: sidecars of runs without one stay as they were
        common["guidance_interval"] = list(args.guidance_interval)
    melody = None
    if getattr(args, "melody", None) is not None:
        from audiodit.audio import load_audio

        try:
            melody = pipe.melody_ids(load_audio(args.melody, pipe.sampling_rate))  # (T,): decoded once
        except Exception as err:  # noqa: BLE001 - any decoder failure is the file's
            raise UsageError(f"--melody {_shown(args.melody)} is not readable audio: "
                             f"{str(err).splitlines()[0]}") from None
        common.update(melody=melody, melody_guidance_scale=args.melody_scale)
        melody_key_id = tune_key(pipe, melody)
    if getattr(args, "long_form", False):
        yield from generate_long_form(args, jobs, pipe, common, steps)
        return
    interpolating = args.interpolate_to is not None or args.interpolate_seed is not None
    groups: list[list[Job]] = []  # jobs of one prompt, in order; an interpolation is made whole
    for job in jobs:
        if groups and groups[-1][0].group == job.group and (interpolating or len(groups[-1]) < CHUNK):
            groups[-1].append(job)
        else:
            groups.append([job])
    for prompt_jobs in groups:
        prompt = prompt_jobs[0].prompt
        started = time.perf_counter()
        params = dict(common)
        walk_gain = None
        if melody is not None:
            prompt, params["melody_key"] = with_melody_key(prompt, melody_key_id, args.quiet)
        if interpolating:
            audios = pipe.interpolate(
                prompt, args.interpolate_to, seed_start=args.seed, seed_end=args.interpolate_seed,
                num_points=args.interpolation_steps, audio_end_in_s=args.start + args.duration, **common,
            ).audios
            # an interpolation keeps its loudness changes: one gain for the whole walk (before
            # --skip-existing leaves out the points already made, so a finished run's gain is the same)
            walk = torch.cat([audio.cpu() for audio in audios], dim=-1)
            walk_gain = level_output(walk, args.normalize, args.level)[1]
            wanted = {job.path.stem.rsplit("_interp", 1)[-1].split("-")[0] for job in prompt_jobs}
            audios = [audio for index, audio in enumerate(audios) if str(index) in wanted]
            params.update(interpolate_to=args.interpolate_to, interpolate_seed=args.interpolate_seed,
                          interpolation_steps=args.interpolation_steps)
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
        if melody is not None:  # the sidecar names the file, not the ids
            params.update(melody=str(args.melody), melody_guidance_scale=pipe.resolve_melody_guidance_scale(
                args.melody_scale, guidance, melody))
        for index, (job, audio) in enumerate(zip(prompt_jobs, audios)):
            sidecar = sidecar_for(args, pipe, job, audio.shape[-1] / pipe.sampling_rate, seconds, **params)
            if interpolating:
                sidecar["interpolation_index"] = int(job.path.stem.rsplit("_interp", 1)[-1].split("-")[0])
            if walk_gain is None:
                audio, gain_db = level_output(audio.cpu(), args.normalize, args.level)
            else:
                audio, gain_db = audio.cpu() * 10 ** (walk_gain / 20), walk_gain
            sidecar["normalize"] = dict(mode=args.normalize, gain_db=round(gain_db, 2),
                                        **({"level": args.level} if args.level is not None else {}))
            write_clip(job.path, audio, pipe.sampling_rate, sidecar, args.overwrite or job.replace)
            yield job.path


def generate_long_form(args, jobs: list[Job], pipe, common: dict, steps: int):
    """Each job a long piece, written part by part as windows finish (`audiodit.longform`): a killed
    run leaves `NAME.partial.EXT` with what was made; a finished one is moved to its name, then its
    sidecar is written."""
    import torch

    from audiodit.audio import AudioStreamWriter
    from audiodit.longform import default_context, generate_long, long_window_seconds
    from audiodit.prompt_attributes import parse_bpm, with_attributes

    common = {name: value for name, value in common.items() if name not in ("audio_start_in_s", "num_inference_steps")}
    piece_key = None if common.get("melody") is None else tune_key(pipe, common["melody"])
    for job in jobs:
        started = time.perf_counter()
        sections = [(0.0, job.prompt), *args.sections]
        melody_key = None
        if common.get("melody") is not None:  # one key for the piece (generate_long's): section 0's or the tune's
            _, melody_key = with_melody_key(job.prompt, piece_key, args.quiet)
            sections = [(start, with_attributes(prompt, None, melody_key["key"]) if melody_key["from"] == "melody"
                         else prompt) for start, prompt in sections]
        window = long_window_seconds(pipe, args.window, parse_bpm(job.prompt))
        context = default_context(window) if args.window_context is None else args.window_context
        writer = AudioStreamWriter(job.path, pipe.sampling_rate, pipe.vae.audio_channels,
                                   overwrite=args.overwrite or job.replace)
        try:
            for audio in generate_long(pipe, None, args.duration, sections=sections, window_seconds=window,
                                       context_seconds=context, num_inference_steps=steps,
                                       generator=torch.Generator("cpu").manual_seed(job.seed),
                                       progress=not args.quiet, **common):
                writer.write(audio[0].cpu())
        finally:
            writer.close()
        seconds = time.perf_counter() - started
        shown = dict(common)
        if common.get("melody") is not None:  # the sidecar names the file, not the ids
            scale = pipe.resolve_melody_guidance_scale(args.melody_scale, common["guidance_scale"], common["melody"])
            shown.update(melody=str(args.melody), melody_guidance_scale=scale, melody_key=melody_key)
        sidecar = sidecar_for(args, pipe, job, writer.frames / pipe.sampling_rate, seconds, **shown,
                              num_inference_steps=steps, normalize=dict(mode="none", gain_db=0.0),
                              long_form=dict(window=window, window_context=context,
                                             sections=[list(section) for section in sections],
                                             clipped_samples=writer.clipped))
        path = writer.commit()
        write_sidecar(path, sidecar)
        yield path


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        prompts = read_prompts(args)
        validate(args)
        jobs = plan_outputs(args, prompts)
        if not jobs:
            print("audiodit: every clip of this run exists already (--skip-existing)", file=sys.stderr)
            return 0
        model_dir = args.model or default_model_dir()
        init_audio = read_init_audio(args, model_sampling_rate(model_dir))
        check_output_writable(jobs)
        device, dtype = pick_device_and_dtype(args.device, args.dtype)
        logging.basicConfig(level=logging.WARNING)
        pipe = load_pipeline(args.model or default_model_dir(), device, dtype, args.scheduler, args.output_phase,
                             args.compile, args.steps, args.loras, args.vae)
        for path in generate(args, jobs, pipe, init_audio):
            sys.stdout.buffer.write(os.fsencode(path) + b"\n")
            sys.stdout.flush()
    except (UsageError, ValueError, FileExistsError) as err:
        print(f"audiodit: error: {in_flag_terms(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # e.g. the disk filled up: what was written stays whole
        where = f" ({_shown(err.filename)})" if getattr(err, "filename", None) else ""
        print(f"audiodit: error: could not write output{where}: {err.strerror or err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
