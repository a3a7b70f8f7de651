"""Attention backends: PyTorch `scaled_dot_product_attention` and xformers `memory_efficient_attention`.

Everything here works in xformers' layout: queries `(B, M, H, K)`, keys and values `(B, N, H, K)`
(batch, tokens, heads, head width). Which keys a query may see is described once per forward by a
mask object and shared by every block:

* `None` — every query sees every key;
* `KeyPaddingMask(keep)` — `keep (B, N)` bool, True = a real key (padded latent frames, padded text
  tokens). Every query of a batch row sees the same keys;
* `BlockDiagonalMask(q_seqlens, kv_seqlens)` — packed sequences (batch size 1): the i-th run of
  `q_seqlens[i]` queries sees only the i-th run of `kv_seqlens[i]` keys (NaViT-style packing).

A row whose keys are all masked would give NaN (softmax over nothing). Callers guarantee at least one
real key per row; `KeyPaddingMask` enforces it for padded rows (an all-False row becomes all-True:
such a row only exists for fully padded batch entries, whose outputs are discarded anyway).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

BACKENDS = ("auto", "xformers", "sdpa")


# ----------------------------------------------------------------------------------------------------
# Backend selection
# ----------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def xformers_available() -> bool:
    """True when `xformers.ops` imports (it is the `gpu` extra: `pip install audiodit[gpu]`)."""
    try:
        import xformers.ops  # noqa: F401
    except Exception:  # a broken build raises more than ImportError
        return False
    return True


def check_backend(name: str) -> None:
    """Fail early for an unknown backend or for `xformers` requested without xformers installed."""
    if name not in BACKENDS:
        raise ValueError(f"attention_backend must be one of {list(BACKENDS)}, got {name!r}")
    if name == "xformers" and not xformers_available():
        raise ImportError(
            "attention_backend='xformers' but xformers is not importable; "
            "install it with `pip install audiodit[gpu]` or use attention_backend='auto' or 'sdpa'"
        )


def resolve_backend(name: str, device: torch.device) -> str:
    """The concrete backend (`"xformers"` or `"sdpa"`) for tensors on `device`.

    `auto` picks xformers on CUDA when it imports (its block-diagonal kernels skip the masked work
    that sdpa's dense mask still computes) and sdpa everywhere else.
    """
    check_backend(name)
    if name == "auto":
        return "xformers" if device.type == "cuda" and xformers_available() else "sdpa"
    if name == "xformers" and device.type != "cuda":
        raise ValueError(f"attention_backend='xformers' needs CUDA tensors, got device {device}")
    return name


# ----------------------------------------------------------------------------------------------------
# Masks
# ----------------------------------------------------------------------------------------------------

@dataclass
class KeyPaddingMask:
    """`keep (B, N)` bool: True = the key is real. Rows with no real key are opened (see module doc)."""

    keep: torch.Tensor

    def __post_init__(self):
        if self.keep.dtype != torch.bool or self.keep.ndim != 2:
            raise ValueError(f"KeyPaddingMask needs a (B, N) bool tensor, got {self.keep.dtype} "
                             f"{tuple(self.keep.shape)}")
        self.keep = self.keep | ~self.keep.any(dim=1, keepdim=True)


@dataclass
class BlockDiagonalMask:
    """Packed sequences: query run i (`q_seqlens[i]` tokens) sees key run i (`kv_seqlens[i]` keys)."""

    q_seqlens: list[int]
    kv_seqlens: list[int]

    def __post_init__(self):
        self.q_seqlens = [int(n) for n in self.q_seqlens]
        self.kv_seqlens = [int(n) for n in self.kv_seqlens]
        if len(self.q_seqlens) != len(self.kv_seqlens):
            raise ValueError(f"BlockDiagonalMask: {len(self.q_seqlens)} query runs but "
                             f"{len(self.kv_seqlens)} key runs")
        if min(self.kv_seqlens, default=1) < 1:
            raise ValueError(f"BlockDiagonalMask: every run needs at least one key, got {self.kv_seqlens}")

    def dense(self, device: torch.device) -> torch.Tensor:
        """The mask as a `(M, N)` bool tensor (True = attend), for sdpa."""
        q_run = torch.repeat_interleave(torch.arange(len(self.q_seqlens), device=device),
                                        torch.tensor(self.q_seqlens, device=device))
        kv_run = torch.repeat_interleave(torch.arange(len(self.kv_seqlens), device=device),
                                         torch.tensor(self.kv_seqlens, device=device))
        return q_run[:, None] == kv_run[None, :]

    def for_backend(self, backend: str, device: torch.device):
        """Build the backend's own mask once per forward: a dense bool tensor or xformers' bias."""
        if backend == "xformers":
            from xformers.ops import fmha

            return fmha.BlockDiagonalMask.from_seqlens(self.q_seqlens, self.kv_seqlens, device=device)
        return self.dense(device)[None, None]  # (1, 1, M, N)


def prepare_mask(mask, backend: str, device: torch.device):
    """Turn a mask description into what `attention()` consumes, once per forward."""
    if mask is None or isinstance(mask, KeyPaddingMask):
        return mask
    if isinstance(mask, BlockDiagonalMask):
        return mask.for_backend(backend, device)
    raise TypeError(f"unsupported attention mask type {type(mask).__name__}")


def _xformers_padding_bias(keep: torch.Tensor, heads: int, queries: int, dtype: torch.dtype):
    """Additive bias `(B, H, M, N)` (0 = attend, -inf = masked) for xformers' tensor-bias path.

    xformers needs the bias' last dimension 8-aligned in memory: allocate N rounded up and slice
    (the alignment hint in xformers' error message). Rows are materialised, heads broadcast.
    """
    batch, keys = keep.shape
    aligned = -(-keys // 8) * 8
    bias = torch.zeros(batch, 1, queries, aligned, dtype=dtype, device=keep.device)
    bias[..., :keys].masked_fill_(~keep[:, None, None, :], float("-inf"))
    return bias[..., :keys].expand(batch, heads, queries, keys)


# ----------------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------------

def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None, backend: str = "sdpa"):
    """Softmax attention `softmax(q k^T / sqrt(K)) v` in (B, M, H, K) layout.

    Args:
        q: `(B, M, H, K)` queries; k, v: `(B, N, H, K)` keys and values.
        mask: `None`, a `KeyPaddingMask`, or what `prepare_mask` made of a `BlockDiagonalMask`.
        backend: `"sdpa"` or `"xformers"` (already resolved, see `resolve_backend`).
    Returns:
        `(B, M, H, K)`.
    """
    if backend == "xformers":
        import xformers.ops as xops

        if isinstance(mask, KeyPaddingMask):
            mask = _xformers_padding_bias(mask.keep, q.shape[2], q.shape[1], q.dtype)
        return xops.memory_efficient_attention(q, k, v, attn_bias=mask)
    if isinstance(mask, KeyPaddingMask):
        mask = mask.keep[:, None, None, :]  # (B, 1, 1, N)
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                         attn_mask=mask)  # (B, H, M, K)
    return out.transpose(1, 2)  # (B, M, H, K)


# ----------------------------------------------------------------------------------------------------
# Rotary position embedding (RoFormer, Su et al. 2021) on fractional positions
# ----------------------------------------------------------------------------------------------------

def rotary_cos_sin(positions: torch.Tensor, head_dim: int, theta: float = 10000.0):
    """Rotation tables `(..., N, 1, K)` (fp32) for token positions `(..., N)` in latent frames.

    Positions may be fractional (a patch sits at its centre frame), so clips of any length and any
    patch size share one time axis. Channel i is paired with channel i + K/2 (GPT-NeoX layout); the
    tables are full width, cos = [cos, cos] and sin = [-sin, sin], so applying them is one fused
    multiply-add (see `apply_rotary`).
    """
    half = head_dim // 2
    freqs = theta ** (-torch.arange(half, device=positions.device, dtype=torch.float32) / half)
    angles = positions.float()[..., None] * freqs  # (..., N, K/2)
    cos, sin = angles.cos(), angles.sin()
    return torch.cat([cos, cos], dim=-1)[..., None, :], torch.cat([-sin, sin], dim=-1)[..., None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `(..., K)` channel pairs (i, i + K/2) by the position angles, in fp32.

    `x` is `(B, N, H, K)` (or `(B, N, 2, H, K)` for queries and keys together, with the tables
    unsqueezed to match); the result keeps `x`'s dtype.
    """
    x_float = x.float()
    x1, x2 = x_float.chunk(2, dim=-1)  # (B, N, H, K/2) each
    rotated = torch.addcmul(x_float * cos, torch.cat([x2, x1], dim=-1), sin)  # (B, N, H, K)
    return rotated.to(x.dtype)
