"""Attention backends: masks against a naive reference, backend selection, xformers parity (GPU)."""

import math

import pytest
import torch

from audiodit.models import attention as attn
from audiodit.models.attention import (BlockDiagonalMask, KeyPaddingMask, apply_rotary, attention,
                                       prepare_mask, resolve_backend, rotary_cos_sin)


def reference(q, k, v, allowed=None):
    """Naive softmax attention in (B, M, H, K) layout; `allowed (B, M, N)` bool."""
    scores = torch.einsum("bmhk,bnhk->bhmn", q, k) / math.sqrt(q.shape[-1])
    if allowed is not None:
        scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    return torch.einsum("bhmn,bnhk->bmhk", scores.softmax(-1), v)


def qkv(batch, queries, keys, heads=2, width=8, seed=0, device="cpu", dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    make = lambda n: torch.randn(batch, n, heads, width, generator=g).to(device, dtype)  # noqa: E731
    return make(queries), make(keys), make(keys)


def test_key_padding_mask_matches_reference():
    q, k, v = qkv(2, 5, 7)
    keep = torch.tensor([[True] * 7, [True] * 3 + [False] * 4])
    out = attention(q, k, v, KeyPaddingMask(keep), "sdpa")
    expected = reference(q, k, v, keep[:, None, :].expand(2, 5, 7))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_fully_padded_row_is_opened_instead_of_nan():
    q, k, v = qkv(1, 3, 4)
    out = attention(q, k, v, KeyPaddingMask(torch.zeros(1, 4, dtype=torch.bool)), "sdpa")
    assert torch.isfinite(out).all()


def test_block_diagonal_matches_each_run_alone():
    q_lens, kv_lens = [3, 5, 1], [2, 4, 3]
    q, k, v = qkv(1, sum(q_lens), sum(kv_lens))
    out = attention(q, k, v, prepare_mask(BlockDiagonalMask(q_lens, kv_lens), "sdpa", q.device), "sdpa")
    for qs, ks, ql, kl in zip([0, 3, 8], [0, 2, 6], q_lens, kv_lens):
        alone = reference(q[:, qs:qs + ql], k[:, ks:ks + kl], v[:, ks:ks + kl])
        torch.testing.assert_close(out[:, qs:qs + ql], alone, atol=1e-6, rtol=1e-5)


def test_block_diagonal_rejects_bad_runs():
    with pytest.raises(ValueError, match="at least one key"):
        BlockDiagonalMask([2, 2], [3, 0])
    with pytest.raises(ValueError, match="query runs"):
        BlockDiagonalMask([2, 2], [3])


def test_rotary_is_a_rotation_that_depends_on_relative_position():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 16, generator=g), torch.randn(1, 1, 1, 16, generator=g)

    def score(pos_q, pos_k):
        cq, sq = rotary_cos_sin(torch.tensor([pos_q]), 16)
        ck, sk = rotary_cos_sin(torch.tensor([pos_k]), 16)
        return (apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum()

    cos, sin = rotary_cos_sin(torch.tensor([3.7]), 16)
    torch.testing.assert_close(apply_rotary(q, cos, sin).norm(), q.norm())
    torch.testing.assert_close(score(2.5, 1.0), score(11.5, 10.0), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(score(2.5, 1.0), score(2.5, 2.0))


def test_backend_selection(monkeypatch):
    cpu = torch.device("cpu")
    assert resolve_backend("sdpa", cpu) == "sdpa"
    assert resolve_backend("auto", cpu) == "sdpa"  # xformers has no CPU kernels
    with pytest.raises(ValueError, match="attention_backend must be one of"):
        resolve_backend("flash", cpu)
    monkeypatch.setattr(attn, "xformers_available", lambda: False)
    with pytest.raises(ImportError, match="xformers is not importable"):
        resolve_backend("xformers", torch.device("cuda"))
    assert resolve_backend("auto", torch.device("cuda")) == "sdpa"
    monkeypatch.setattr(attn, "xformers_available", lambda: True)
    assert resolve_backend("auto", torch.device("cuda")) == "xformers"
    with pytest.raises(ValueError, match="needs CUDA"):
        resolve_backend("xformers", cpu)


# ---- GPU: xformers against sdpa ------------------------------------------------------------------

needs_xformers = pytest.mark.skipif(not (torch.cuda.is_available() and attn.xformers_available()),
                                    reason="needs CUDA and xformers")


@pytest.mark.gpu
@needs_xformers
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 2e-5), (torch.bfloat16, 2e-2)])
@pytest.mark.parametrize("case", ["self", "cross_padded", "packed_self", "packed_cross"])
def test_xformers_matches_sdpa(dtype, tol, case):
    device = torch.device("cuda")
    if case == "self":
        q, k, v = qkv(2, 130, 130, heads=4, width=64, device=device, dtype=dtype)
        mask = None
    elif case == "cross_padded":
        q, k, v = qkv(2, 130, 65, heads=4, width=64, device=device, dtype=dtype)
        mask = KeyPaddingMask(torch.arange(65, device=device)[None] < torch.tensor([[65], [20]], device=device))
    else:
        q_lens = [100, 37, 250]
        kv_lens = q_lens if case == "packed_self" else [9, 65, 1]
        q, k, v = qkv(1, sum(q_lens), sum(kv_lens), heads=4, width=64, device=device, dtype=dtype)
        mask = BlockDiagonalMask(q_lens, kv_lens)
    outs = [attention(q, k, v, prepare_mask(mask, backend, device), backend) for backend in ("xformers", "sdpa")]
    torch.testing.assert_close(outs[0].float(), outs[1].float(), atol=tol, rtol=tol)
