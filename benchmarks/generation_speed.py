"""End-to-end generation speed: text -> 10 s of stereo 48 kHz audio with default settings.

Times the whole `pipe(prompt, audio_end_in_s=10)` call (text encoding, every denoising step with
classifier-free guidance, VAE decode) and, in the same run, each part alone, so the report shows
where the time goes. A pipeline with key classifier guidance on by default is also timed with it
off, in the same run. Default: the bundled model.

    python -m benchmarks.generation_speed [--model DIR] [--seconds 10] [--repeats 3] [--out FILE]
    python -m benchmarks.generation_speed --device cuda     # bf16 there, as sample.py uses
    python -m benchmarks.generation_speed --compile         # first_call_s then includes the compile
    python -m benchmarks.generation_speed --guidance-interval 0.2 1   # also timed with guidance only there
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from benchmarks.machine import cpu_model

from audiodit.cli import default_model_dir, load_pipeline, pick_device_and_dtype
from audiodit.guidance import branch_count


def synchronize() -> None:
    """Wait for queued CUDA work, so a timing covers the kernels and not only their launch."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: bool = True) -> float:
    if warmup:
        fn()  # first-call allocations and kernel selection (and a compile, with --compile)
        synchronize()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        synchronize()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def describe_device(device: str) -> str:
    if torch.device(device).type == "cuda":
        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    return device if device != "cpu" else f"cpu: {cpu_model()} ({torch.get_num_threads()} threads)"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=default_model_dir())
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "float16", "bfloat16"),
                        help="as sample.py's: auto = bf16 on CUDA, fp32 elsewhere")
    parser.add_argument("--compile", action="store_true", help="as sample.py --compile: torch.compile the DiT")
    parser.add_argument("--guidance-interval", type=float, nargs=2, metavar=("LOW", "HIGH"),
                        help="also time the same call with guidance only at these noise levels")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)

    device, dtype = pick_device_and_dtype(args.device, args.dtype)
    pipe = load_pipeline(args.model, device, dtype, compile_transformer=args.compile)  # as sample.py loads it
    pipe.set_progress_bar_config(disable=True)
    prompt = "A Bach chorale in G major for organ, 80 BPM, 4/4"
    steps, guidance = pipe.default_num_inference_steps, pipe.default_guidance_scale
    key_guidance = pipe.resolve_key_guidance_scale(None, guidance)
    branches = branch_count(guidance > 1.0, key_guidance > 0)  # transformer batch per sample and step
    num_samples = int(args.seconds * pipe.sampling_rate)
    frames = pipe.vae.latent_frames(num_samples)
    latents = torch.randn(1, pipe.vae.latent_channels, frames, device=device, dtype=dtype)

    def generate(**kwargs):
        pipe(prompt, audio_end_in_s=args.seconds, generator=torch.Generator("cpu").manual_seed(0), **kwargs)

    def decode():
        with torch.no_grad():
            pipe.vae.decode(latents, length=num_samples)

    def one_step():
        with torch.no_grad():
            text = pipe.text_encoder.encode([prompt] * branches)
            pipe.transformer(latents.repeat(branches, 1, 1), torch.full((branches,), 0.5), text.embeddings,
                             text.mask, text.pooled, torch.zeros(branches), torch.full((branches,), args.seconds))

    started = time.perf_counter()
    generate()  # the first call: with --compile it includes the compile
    synchronize()
    first_call = time.perf_counter() - started
    total = timed(generate, args.repeats, warmup=False)
    key_classifier_scale = pipe.default_key_classifier_scale
    extra = {}
    if key_classifier_scale > 0:
        without = timed(lambda: generate(key_classifier_scale=0.0), args.repeats)
        extra = {"wall_s_without_key_classifier": round(without, 3),
                 "key_classifier_params_m": round(sum(p.numel() for p in pipe.key_classifier.parameters()) / 1e6, 3)}
    if args.guidance_interval is not None:
        interval = tuple(args.guidance_interval)
        extra["guidance_interval"] = list(interval)
        extra["wall_s_with_guidance_interval"] = round(timed(lambda: generate(guidance_interval=interval),
                                                             args.repeats), 3)
        extra["wall_s_again"] = round(timed(generate, args.repeats, warmup=False), 3)  # the default, after it
    result = {
        "device": describe_device(device),
        "dtype": str(dtype).replace("torch.", ""),
        "torch": torch.__version__,
        "model": str(args.model),
        "seconds_of_audio": args.seconds,
        "num_inference_steps": steps,
        "guidance_scale": guidance,
        "key_guidance_scale": key_guidance,
        "key_classifier_scale": key_classifier_scale,
        "guidance_branches": branches,
        "compiled": args.compile,
        "first_call_s": round(first_call, 3),
        "wall_s": round(total, 3),
        "real_time_factor": round(args.seconds / total, 2),
        "vae_decode_s": round(timed(decode, args.repeats), 3),
        "transformer_step_with_cfg_s": round(timed(one_step, args.repeats), 4),
        "dit_params_m": round(sum(p.numel() for p in pipe.transformer.parameters()) / 1e6, 2),
        "vae_params_m": round(sum(p.numel() for p in pipe.vae.parameters()) / 1e6, 2),
        **extra,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
