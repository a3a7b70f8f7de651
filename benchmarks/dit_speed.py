"""Our DiT against diffusers' `StableAudioDiTModel`, side by side in one run.

CPU (default): both models at identical depth 4, 8 heads x 64 (width 512), 64 latent channels,
256 latent frames (= 256 tokens: our patches are 1 frame x 64 channels), cross-attention width 768
and 64 text tokens; forward and forward+backward in fp32. The two models are timed in alternation
(ours, theirs, ours, ...) so a busy machine slows both alike; we report the minimum and median of
wall-clock times and, with `--threads 1`, of process CPU time as well. `--compile-check` also runs
`torch._dynamo.explain` and `torch.compile(fullgraph=True)` on one block.

GPU (`--gpu`): bf16 (autocast) training steps (forward + backward + AdamW) at the `base` preset with
1024 tokens per clip against diffusers' Stable Audio Open-sized DiT with 1024 frames: throughput and
model FLOP utilisation (MFU = 3 x forward FLOPs / step time / peak bf16 FLOP/s).

    python -m benchmarks.dit_speed --out benchmarks/results/dit_speed_cpu.md --compile-check
    python -m benchmarks.dit_speed --gpu --out benchmarks/results/dit_speed_gpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import torch
from benchmarks.machine import cpu_model, emit_report


from audiodit.models.dit import AudioDiTModel, DiTConfig, PRESETS, dit_flops

warnings.filterwarnings("ignore", category=FutureWarning)

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets (without sparsity).
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


# ----------------------------------------------------------------------------------------------------
# Models and inputs
# ----------------------------------------------------------------------------------------------------

def build_pair(depth, heads, head_dim, channels, text_dim, kv_heads, ours_overrides=None):
    """Our model and diffusers' at the same depth, width, heads, channels and text width."""
    from diffusers import StableAudioDiTModel

    width = heads * head_dim
    ours = AudioDiTModel(in_channels=channels, patch_frames=1, patch_channels=channels, hidden_size=width,
                         depth=depth, num_heads=heads, cross_attention_dim=text_dim, pooled_dim=text_dim,
                         **(ours_overrides or {}))
    theirs = StableAudioDiTModel(in_channels=channels, out_channels=channels, num_layers=depth,
                                 attention_head_dim=head_dim, num_attention_heads=heads,
                                 num_key_value_attention_heads=kv_heads, cross_attention_dim=text_dim,
                                 cross_attention_input_dim=text_dim, global_states_input_dim=text_dim)
    return ours, theirs


def make_calls(ours, theirs, batch, frames, channels, text_tokens, text_dim, device, head_dim, pooled_dim=None):
    """Closures running one forward of each model on the same random inputs."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    g = torch.Generator().manual_seed(0)
    latents = torch.randn(batch, channels, frames, generator=g).to(device)
    t = torch.rand(batch, generator=g).to(device)
    text = torch.randn(batch, text_tokens, text_dim, generator=g).to(device)
    pooled = torch.randn(batch, pooled_dim or text_dim, generator=g).to(device)
    mask = torch.ones(batch, text_tokens, dtype=torch.bool, device=device)
    start, total = torch.zeros(batch, device=device), torch.full((batch,), 10.0, device=device)
    # diffusers' pipeline builds the rotary table over the latent frames plus its one global token.
    rope = get_1d_rotary_pos_embed(head_dim // 2, frames + 1, use_real=True, repeat_interleave_real=False)
    rope = tuple(r.to(device) for r in rope)

    def run_ours():
        return ours(latents, t, text, mask, pooled, start, total).sample

    def run_theirs():
        return theirs(latents, t * 1000, text, pooled[:, None], rotary_embedding=rope,
                      encoder_attention_mask=mask).sample

    return run_ours, run_theirs


def perturb_(module: torch.nn.Module) -> None:
    """Add small random values to every weight: a fresh model's zero-initialised modulation and
    output layers make each block the identity, which would not be a fair amount of work to time."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * 0.02)


def sampling_step_args(cfg: DiTConfig, frames: int, text_tokens: int = 32) -> tuple:
    """Positional `AudioDiTModel.forward` inputs of one sampling step with classifier-free guidance
    (batch 2: conditional + unconditional), random latents and text."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, cfg.in_channels, frames, generator=g), torch.full((2,), 0.5),
            torch.randn(2, text_tokens, cfg.cross_attention_dim, generator=g),
            torch.ones(2, text_tokens, dtype=torch.bool), torch.randn(2, cfg.pooled_dim, generator=g),
            torch.zeros(2), torch.full((2,), 10.0))


def flops_of(fn):
    """Forward FLOPs counted by torch's FlopCounterMode (sdpa forced to its math path to be counted)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


# ----------------------------------------------------------------------------------------------------
# Timing
# ----------------------------------------------------------------------------------------------------

def time_alternating(calls: dict, reps: int, warmup: int, sync=lambda: None):
    """Time each callable `reps` times in alternation; returns {name: (wall list, cpu list)}."""
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    sync()
    result = {name: ([], []) for name in calls}
    for _ in range(reps):
        for name, fn in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            sync()
            result[name][0].append(time.perf_counter() - wall)
            result[name][1].append(time.process_time() - cpu)
    return result


def forward_only(model_call):
    def run():
        with torch.no_grad():
            model_call()
    return run


def forward_backward(model_call, model):
    def run():
        model.zero_grad(set_to_none=True)
        model_call().float().square().mean().backward()
    return run


# ----------------------------------------------------------------------------------------------------
# CPU benchmark
# ----------------------------------------------------------------------------------------------------

def cpu_benchmark(args) -> str:
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    ours, theirs = build_pair(4, 8, 64, 64, 768, args.kv_heads, {"attention_backend": "sdpa"})
    perturb_(ours)
    run_ours, run_theirs = make_calls(ours, theirs, args.batch, args.frames, 64, args.text_tokens, 768, "cpu", 64)
    fwd = time_alternating({"ours": forward_only(run_ours), "diffusers": forward_only(run_theirs)},
                           args.reps, args.warmup)
    fb = time_alternating({"ours": forward_backward(run_ours, ours),
                           "diffusers": forward_backward(run_theirs, theirs)}, max(3, args.reps // 2), 2)
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in (("ours", ours), ("diffusers", theirs))}
    counted = {"ours": flops_of(run_ours), "diffusers": flops_of(run_theirs)}
    formula = args.batch * dit_flops(ours.dit_config, args.frames, args.text_tokens)

    lines = [
        "# DiT speed on CPU: audiodit `AudioDiTModel` vs diffusers `StableAudioDiTModel`",
        "",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores), torch threads: {torch.get_num_threads()}",
        f"- torch {torch.__version__}, diffusers {diffusers_version()}, Python {platform.python_version()}",
        f"- load average before the run: {load_before}; after: {os.getloadavg()[0]:.2f} "
        "(other jobs share this machine: read ratios, not absolute times)",
        f"- shapes: batch {args.batch}, {args.frames} latent frames x 64 channels (= {args.frames} tokens), "
        f"depth 4, 8 heads x 64, cross-attention 768, {args.text_tokens} text tokens, fp32; "
        f"diffusers with {args.kv_heads} key/value heads in cross-attention",
        f"- {args.reps} alternating repetitions (forward), {max(3, args.reps // 2)} (forward+backward), "
        f"after warm-up",
        "",
        "| measure | ours (s) | diffusers (s) | ours / diffusers |",
        "|---|---|---|---|",
    ]
    for label, result in (("forward", fwd), ("forward+backward", fb)):
        for stat_name, stat in (("min", min), ("median", statistics.median)):
            for clock, idx in (("wall", 0), ("CPU time", 1)):
                a, b = stat(result["ours"][idx]), stat(result["diffusers"][idx])
                lines.append(f"| {label}, {stat_name} {clock} | {a:.4f} | {b:.4f} | {a / b:.2f} |")
    lines += [
        "",
        f"- parameters: ours {params['ours'] / 1e6:.2f} M, diffusers {params['diffusers'] / 1e6:.2f} M",
        f"- forward FLOPs (FlopCounterMode): ours {counted['ours'] / 1e9:.2f} G, diffusers "
        f"{counted['diffusers'] / 1e9:.2f} G; `dit_flops` formula for ours: {formula / 1e9:.2f} G",
        "- where the difference comes from: our MLP is GELU with ratio 4 (8 d^2 FLOPs-worth per token) "
        "where diffusers' is SwiGLU with inner width 4 d (12 d^2), so ours has ~22% fewer FLOPs; "
        "ours does more elementwise work per block (adaLN modulation and gates, QK-RMSNorm, RoPE on "
        "the full head width), which eats part of that margin, more so in backward.",
    ]
    lines += ["", small_preset_inference(args.frames_small)]
    return "\n".join(lines)


def small_preset_inference(frames: int) -> str:
    """Per-step cost of the bundled `small` model when sampling with classifier-free guidance."""
    model = AudioDiTModel.from_preset("small", attention_backend="sdpa").eval()
    args = sampling_step_args(model.dit_config, frames)
    timing = time_alternating({"small": forward_only(lambda: model(*args))}, 10, 2)
    wall, cpu = min(timing["small"][0]), min(timing["small"][1])
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return (f"- `small` preset ({params:.1f} M params, {model.grid.num_tokens(frames)} tokens for {frames} "
            f"latent frames = 10 s at 25 Hz), batch 2 (conditional + unconditional), 32 text tokens, "
            f"{torch.get_num_threads()} thread(s): {wall * 1e3:.1f} ms wall / {cpu * 1e3:.1f} ms CPU time "
            f"per denoising step (min) -> {25 * wall:.2f} s wall for 25 steps, {50 * wall:.2f} s for 50 "
            f"(DiT only)")


def compile_check() -> str:
    """Graph breaks of one block under dynamo, and a fullgraph compile + timing of that block."""
    import torch._dynamo

    fresh_inductor_cache()

    model = AudioDiTModel.from_preset("small", attention_backend="sdpa")
    block = model.blocks[0]
    perturb_(block)
    d, n, text_len = model.config.hidden_size, 125, 65
    g = torch.Generator().manual_seed(0)
    from audiodit.models.attention import KeyPaddingMask, rotary_cos_sin

    x = torch.randn(2, n, d, generator=g)
    cond = torch.randn(2, d, generator=g)
    cos, sin = rotary_cos_sin(torch.arange(n).float(), model.head_dim)
    text = torch.randn(2, text_len, d, generator=g)
    text_mask = KeyPaddingMask(torch.ones(2, text_len, dtype=torch.bool))
    args = (x, cond, cos, sin, None, text, text_mask, None, "sdpa")
    explanation = torch._dynamo.explain(block)(*args)
    torch._dynamo.reset()
    start = time.perf_counter()
    compiled = torch.compile(block, fullgraph=True)
    with torch.no_grad():
        out = compiled(*args)
    compile_s = time.perf_counter() - start
    with torch.no_grad():
        err = (out - block(*args)).abs().max().item()
        eager = min(_timeit(lambda: block(*args)) for _ in range(5))
        fast = min(_timeit(lambda: compiled(*args)) for _ in range(5))
    return "\n".join([
        "",
        "## torch.compile of one block (small preset, batch 2, 125 tokens, 65 text keys, sdpa, CPU)",
        "",
        f"- `torch._dynamo.explain`: {explanation.graph_count} graph(s), "
        f"{explanation.graph_break_count} graph break(s)"
        + (f": {[str(b.reason) for b in explanation.break_reasons]}" if explanation.break_reasons else ""),
        f"- `torch.compile(block, fullgraph=True)` compiled and ran in {compile_s:.1f} s "
        f"(first call, includes inductor's C++ build); max |compiled - eager| = {err:.2e}",
        f"- block forward: eager {eager * 1e3:.2f} ms, compiled {fast * 1e3:.2f} ms",
        "",
        compile_whole_model(),
    ])


def fresh_inductor_cache() -> None:
    """An empty inductor cache, so a compile time is what a first run on a new machine waits."""
    import tempfile

    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="audiodit_inductor_")


def compile_whole_model(frames: int = 250, reps: int = 20) -> str:
    """The whole `small` DiT as `sample.py --compile` compiles it: one sampling step with
    classifier-free guidance (batch 2) and every conditioning input, eager against compiled."""
    import torch._dynamo

    fresh_inductor_cache()

    model = AudioDiTModel.from_preset("small", attention_backend="sdpa", tempo_conditioning=True,
                                      beat_conditioning=True, key_conditioning=True).eval()
    perturb_(model)
    args = sampling_step_args(model.dit_config, frames)
    extra = {"bpm": torch.tensor([90.0, float("nan")]), "key_ids": torch.tensor([2, -1])}
    explanation = torch._dynamo.explain(model)(*args, **extra)
    torch._dynamo.reset()
    compiled = torch.compile(model, fullgraph=True)
    start = time.perf_counter()
    with torch.no_grad():
        out = compiled(*args, **extra).sample
    compile_s = time.perf_counter() - start
    with torch.no_grad():
        err = (out - model(*args, **extra).sample).abs().max().item()
        timing = time_alternating({"eager": lambda: model(*args, **extra), "compiled": lambda: compiled(*args, **extra)},
                                  reps, 2)
    eager, fast = (statistics.median(timing[name][0]) for name in ("eager", "compiled"))
    return "\n".join([
        f"## torch.compile of the whole `small` DiT (`sample.py --compile`; batch 2, {model.grid.num_tokens(frames)} "
        "tokens, tempo, beat and key conditioning, CPU)",
        "",
        f"- `torch._dynamo.explain`: {explanation.graph_count} graph(s), {explanation.graph_break_count} graph break(s)",
        f"- first call {compile_s:.1f} s (the compile, empty inductor cache); max |compiled - eager| = {err:.2e}",
        f"- one sampling step (median of {reps}, alternating): eager {eager * 1e3:.2f} ms, compiled {fast * 1e3:.2f} ms "
        f"({eager / fast:.2f}x); the compile pays for itself after {compile_s / max(eager - fast, 1e-9):.0f} steps "
        f"({compile_s / max(eager - fast, 1e-9) / 50:.0f} clips of 50 steps)",
    ])


def _timeit(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------------------------------
# GPU benchmark
# ----------------------------------------------------------------------------------------------------

def gpu_benchmark(args) -> str:
    from diffusers import StableAudioDiTModel

    from audiodit.models.attention import resolve_backend

    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()
    peak = args.peak_tflops * 1e12 if args.peak_tflops else next(
        (v for k, v in PEAK_BF16.items() if k in name), None)
    torch.backends.cuda.matmul.allow_tf32 = True
    tokens, batch = args.gpu_tokens, args.gpu_batch
    cfg = DiTConfig(**PRESETS[args.gpu_preset]).standalone()
    heads, head_dim, text_dim = cfg.num_heads, cfg.hidden_size // cfg.num_heads, cfg.cross_attention_dim
    # diffusers at the same depth/width/heads; at `base` this is Stable Audio Open 1.0's DiT
    # (24 layers, 24 heads x 64, 12 key/value heads in cross-attention, global input 1536).
    sao = dict(num_layers=cfg.depth, num_attention_heads=heads, attention_head_dim=head_dim,
               num_key_value_attention_heads=max(1, heads // 2), in_channels=cfg.in_channels,
               out_channels=cfg.in_channels, cross_attention_dim=text_dim, cross_attention_input_dim=text_dim,
               global_states_input_dim=1536 if args.gpu_preset == "base" else cfg.pooled_dim)

    # Built one at a time (factories) so only one model and its optimiser state occupy the GPU.
    rows = [(f"ours ({args.gpu_preset}, {resolve_backend(backend, device)})",
             lambda backend=backend: AudioDiTModel(**{**vars(cfg), "attention_backend": backend}))
            for backend in ("auto", "sdpa")]
    rows.append((f"diffusers StableAudioDiTModel ({args.gpu_preset} size)", lambda: StableAudioDiTModel(**sao)))
    results = []
    for label, factory in rows:
        model = factory().to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)
        if isinstance(model, AudioDiTModel):
            call, _ = make_calls(model, None, batch, tokens, cfg.in_channels, args.text_tokens, text_dim, device,
                                 head_dim)
            flops = batch * dit_flops(cfg, tokens, args.text_tokens)
        else:
            _, call = make_calls(None, model, batch, tokens, cfg.in_channels, args.text_tokens, text_dim, device,
                                 head_dim, pooled_dim=model.config.global_states_input_dim)
            flops = flops_of_device(call, device)

        def step():
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = call().float().square().mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        timing = time_alternating({"step": step}, args.reps, 3, sync=sync)
        step_s = statistics.median(timing["step"][0])
        mfu = 3 * flops / step_s / peak if peak else float("nan")
        results.append((label, sum(p.numel() for p in model.parameters()), step_s, batch * tokens / step_s,
                        flops, mfu, torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0))
        del model, opt
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
    base = results[-1][3]
    lines = [
        "# DiT training throughput on GPU (bf16 autocast, forward + backward + fused AdamW)",
        "",
        f"- device: {name}; peak bf16 used for MFU: {peak / 1e12 if peak else 'unknown'} TFLOP/s",
        f"- torch {torch.__version__}, diffusers {diffusers_version()}, xformers "
        f"{xformers_version()}",
        f"- batch {batch} clips x {tokens} tokens, {args.text_tokens} text tokens (width {text_dim}), "
        f"{args.reps} timed steps after 3 warm-up steps",
        "",
        "| model | params | step (s, median) | tokens/s | fwd TFLOP/step | MFU | vs diffusers | peak mem GiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, params, step_s, tps, flops, mfu, mem in results:
        lines.append(f"| {label} | {params / 1e9:.2f} B | {step_s:.4f} | {tps:,.0f} | {flops / 1e12:.2f} | "
                     f"{mfu:.1%} | {tps / base:.2f}x | {mem:.1f} |")
    return "\n".join(lines)


def flops_of_device(fn, device):
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16), FlopCounterMode(display=False) as c:
        fn()
    return c.get_total_flops()


# ----------------------------------------------------------------------------------------------------
# Environment
# ----------------------------------------------------------------------------------------------------

def diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def xformers_version() -> str:
    try:
        import xformers

        return xformers.__version__
    except ImportError:
        return "not installed"


load_before = f"{os.getloadavg()[0]:.2f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="bf16 training throughput on CUDA")
    parser.add_argument("--batch", type=int, default=1, help="CPU: clips per forward")
    parser.add_argument("--frames", type=int, default=256, help="CPU: latent frames (= tokens)")
    parser.add_argument("--text-tokens", type=int, default=64)
    parser.add_argument("--frames-small", type=int, default=250, help="CPU: frames for the small-preset timing")
    parser.add_argument("--kv-heads", type=int, default=8, help="diffusers cross-attention key/value heads")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (0: torch's default); 1 makes CPU time robust on a shared machine")
    parser.add_argument("--compile-check", action="store_true", help="CPU: dynamo graph breaks of one block")
    parser.add_argument("--gpu-tokens", type=int, default=1024)
    parser.add_argument("--gpu-batch", type=int, default=8)
    parser.add_argument("--gpu-preset", default="base", choices=sorted(PRESETS))
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # `cpu`: dry run of --gpu
    parser.add_argument("--peak-tflops", type=float, default=0.0, help="override the bf16 peak for MFU")
    parser.add_argument("--out", help="write the markdown report here too")
    args = parser.parse_args(argv)
    if args.gpu:
        if args.device == "cuda" and not torch.cuda.is_available():
            parser.error("--gpu needs a CUDA device")
        report = gpu_benchmark(args)
    else:
        report = cpu_benchmark(args)
        if args.compile_check:
            report += "\n" + compile_check()
    emit_report(report, args.out)


if __name__ == "__main__":
    main()
