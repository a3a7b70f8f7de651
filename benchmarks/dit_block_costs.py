"""Where one DiT block's CPU time goes: our block with its features taken away one at a time,
against diffusers' `StableAudioDiTBlock`, side by side in one run.

`dit_speed.py` compares whole models; this script says why the ratio is what it is. Both blocks have
width 512 (8 heads x 64), 256 latent tokens (diffusers: 257, with its global token), 64 text tokens
(ours: 65 keys with the null key; diffusers projects 768-wide text in every block) and random
weights. Our variants reuse the weights of one `DiTBlock` and drop, cumulatively:

* `ours` — the real block (checked equal to `DiTBlock.forward`);
* `no RoPE` — queries and keys are not rotated;
* `no QK-norm` — neither rotated nor RMS-normalised;
* `no adaLN` — and plain pre-LN residuals: no shift/scale modulation, no gates, no modulation matmul;
* `matmuls + attention` — and no LayerNorms either: what is left is the projections, the MLP, the two
  attention calls and the residual adds, the floor that elementwise fusion could approach.

Each variant runs forward (no grad) and forward+backward (gradients for the block's parameters and
its inputs, as in training), in a shuffled order with diffusers' block; ratios are to diffusers' time.

    python -m benchmarks.dit_block_costs --out benchmarks/results/dit_block_costs_cpu.md
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
import warnings

import torch
import torch.nn.functional as F
from benchmarks.dit_speed import build_pair, diffusers_version, perturb_
from benchmarks.machine import cpu_model, emit_report


from audiodit.models.attention import KeyPaddingMask, apply_rotary, attention, rotary_cos_sin
from audiodit.models.dit import modulate

warnings.filterwarnings("ignore", category=FutureWarning)

# (name, what it keeps): each row drops one more feature than the row above.
VARIANTS = [
    ("ours", dict(rope=True, qk_norm=True, adaln=True, norms=True)),
    ("no RoPE", dict(rope=False, qk_norm=True, adaln=True, norms=True)),
    ("no QK-norm", dict(rope=False, qk_norm=False, adaln=True, norms=True)),
    ("no adaLN", dict(rope=False, qk_norm=False, adaln=False, norms=True)),
    ("matmuls + attention", dict(rope=False, qk_norm=False, adaln=False, norms=False)),
]


def self_attention(attn, x, cos, sin, rope, qk_norm):
    """`SelfAttention.forward` with RoPE and QK-RMSNorm optional (same weights, same ops)."""
    batch, tokens, width = x.shape
    qkv = attn.qkv(x).view(batch, tokens, 3, attn.num_heads, attn.head_dim)  # (B, N, 3, H, K)
    qk = qkv[:, :, :2]
    if qk_norm:
        qk = F.rms_norm(qk.float(), (attn.head_dim,), eps=1e-6) * attn.qk_norm_weight.float()
    if rope:
        qk = apply_rotary(qk, cos[:, None], sin[:, None])
    q, k = qk.to(qkv.dtype).unbind(2)
    return attn.proj(attention(q, k, qkv[:, :, 2], None, "sdpa").reshape(batch, tokens, width))


def block_variant(block, x, cond, cos, sin, text, text_mask, rope, qk_norm, adaln, norms):
    """`DiTBlock.forward` (batched, no frame mask) with features optional."""
    norm = (lambda layer, h: layer(h)) if norms else (lambda layer, h: h)
    if adaln:
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = \
            block.adaLN_modulation(cond)[:, None].chunk(6, dim=-1)
        h = modulate(norm(block.norm1, x), shift_msa, scale_msa)
        x = torch.addcmul(x, gate_msa, self_attention(block.attn, h, cos, sin, rope, qk_norm))
    else:
        x = x + self_attention(block.attn, norm(block.norm1, x), cos, sin, rope, qk_norm)
    x = x + block.cross_attn(norm(block.norm2, x), text, text_mask, "sdpa")
    if adaln:
        return torch.addcmul(x, gate_mlp, block.mlp(modulate(norm(block.norm3, x), shift_mlp, scale_mlp)))
    return x + block.mlp(norm(block.norm3, x))


def make_runs(tokens: int, text_tokens: int):
    """{name: closure} for our variants and diffusers' block, and the tensors whose grads are reset."""
    from diffusers.models.embeddings import get_1d_rotary_pos_embed

    torch.manual_seed(0)
    ours, theirs = build_pair(1, 8, 64, 64, 768, 8, {"attention_backend": "sdpa"})
    perturb_(ours)
    block, their_block = ours.blocks[0], theirs.transformer_blocks[0]
    width = ours.config.hidden_size
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, tokens, width, generator=g).requires_grad_()
    cond = torch.randn(1, width, generator=g).requires_grad_()
    text = torch.randn(1, text_tokens + 1, width, generator=g).requires_grad_()
    text_mask = KeyPaddingMask(torch.ones(1, text_tokens + 1, dtype=torch.bool))
    cos, sin = rotary_cos_sin(torch.arange(tokens).float(), ours.head_dim)
    their_x = torch.randn(1, tokens + 1, width, generator=g).requires_grad_()
    their_text = torch.randn(1, text_tokens, 768, generator=g).requires_grad_()
    their_mask = torch.ones(1, text_tokens, dtype=torch.bool)
    rope = get_1d_rotary_pos_embed(ours.head_dim // 2, tokens + 1, use_real=True, repeat_interleave_real=False)

    with torch.no_grad():
        real = block(x, cond, cos, sin, None, text, text_mask, None, "sdpa")
        torch.testing.assert_close(block_variant(block, x, cond, cos, sin, text, text_mask, **VARIANTS[0][1]), real)
    runs = {name: (lambda keep=keep: block_variant(block, x, cond, cos, sin, text, text_mask, **keep))
            for name, keep in VARIANTS}
    runs["diffusers"] = lambda: their_block(their_x, None, their_text, their_mask, rope)
    return runs, [block, their_block], [x, cond, text, their_x, their_text]


def time_shuffled(calls: dict, reps: int, warmup: int, seed: int = 0) -> dict:
    """Wall times {name: [s, ...]}, every callable once per repetition in a fresh random order.

    A fixed order (as `dit_speed.time_alternating` uses for two models) let one variant inherit
    the cache state its predecessor left, which moved single rows by up to 3 ms of 35 here.
    """
    order = list(calls)
    for _ in range(warmup):
        for fn in calls.values():
            fn()
    rng = random.Random(seed)
    result = {name: [] for name in calls}
    for _ in range(reps):
        rng.shuffle(order)
        for name in order:
            start = time.perf_counter()
            calls[name]()
            result[name].append(time.perf_counter() - start)
    return result


def measure(tokens: int, text_tokens: int, reps: int):
    runs, modules, inputs = make_runs(tokens, text_tokens)

    def forward(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    def forward_backward(fn):
        def run():
            for m in modules:
                m.zero_grad(set_to_none=True)
            for t in inputs:
                t.grad = None
            fn().square().mean().backward()
        return run

    fwd = time_shuffled({name: forward(fn) for name, fn in runs.items()}, reps, 5)
    fb = time_shuffled({name: forward_backward(fn) for name, fn in runs.items()}, max(3, reps // 2), 3)
    return fwd, fb


def report(args, fwd, fb, load_before) -> str:
    lines = [
        "# One DiT block on CPU: our block, feature by feature, vs diffusers' `StableAudioDiTBlock`",
        "",
        f"- CPU: {cpu_model()} ({os.cpu_count()} logical cores), torch threads: {torch.get_num_threads()}",
        f"- torch {torch.__version__}, diffusers {diffusers_version()}, Python {platform.python_version()}",
        f"- load average before the run: {load_before:.2f}; after: {os.getloadavg()[0]:.2f} "
        "(other jobs share this machine: read ratios, not absolute times)",
        f"- width 512 (8 heads x 64), {args.tokens} latent tokens, {args.text_tokens} text tokens, fp32, "
        f"batch 1; {args.reps} repetitions (forward), {max(3, args.reps // 2)} (forward+backward)",
        "- each row drops one more feature than the row above (see the script's docstring); the order of "
        "the runs is shuffled in every repetition",
        "",
        "| variant | forward min (ms) | forward median (ms) | / diffusers (min, median) "
        "| fwd+bwd min (ms) | fwd+bwd median (ms) | / diffusers (min, median) |",
        "|---|---|---|---|---|---|---|",
    ]
    best = {}
    for name in fwd:
        row = []
        for result in (fwd, fb):
            wall = result[name]
            ref = result["diffusers"]
            lo, mid = min(wall), statistics.median(wall)
            row += [f"{lo * 1e3:.2f}", f"{mid * 1e3:.2f}", f"{lo / min(ref):.2f}, {mid / statistics.median(ref):.2f}"]
            best.setdefault(name, []).append(lo)
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += ["", "What each feature costs (minimum times, which vary least on a shared machine), as a fraction "
              "of diffusers' block time, forward / forward+backward:"]
    names = [name for name, _ in VARIANTS]
    ref = best["diffusers"]
    for above, below in zip(names, names[1:]):
        costs = [(best[above][i] - best[below][i]) / ref[i] for i in (0, 1)]
        lines.append(f"- `{above}` minus `{below}`: {costs[0]:+.3f} / {costs[1]:+.3f}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--text-tokens", type=int, default=64)
    parser.add_argument("--reps", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", help="write the markdown report here too")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]
    fwd, fb = measure(args.tokens, args.text_tokens, args.reps)
    text = report(args, fwd, fb, load_before)
    emit_report(text, args.out)


if __name__ == "__main__":
    main()
