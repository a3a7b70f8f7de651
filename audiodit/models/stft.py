"""STFT with "same" padding: frame i covers the hop of samples [i * hop, (i + 1) * hop), so frames
and samples line up exactly and any S % hop == 0 round-trips (the VAE's analysis and synthesis,
`audiodit.phase_reconstruction`'s frame layout)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def stft_same(audio: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """(N, S) with S % hop == 0 -> complex (N, n_fft // 2 + 1, S // hop), frame i centred on
    samples [i * hop, (i + 1) * hop) ("same" padding, so frames and samples line up exactly)."""
    pad = (n_fft - hop) // 2
    padded = F.pad(audio.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    return torch.stft(padded, n_fft, hop, window=window, center=False, return_complex=True)


def istft_same(spec: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor) -> torch.Tensor:
    """Inverse of `stft_same`: complex (N, bins, F) -> (N, F * hop) by windowed overlap-add.

    torch.istft only supports centred frames; with "same" padding the window envelope is still
    non-zero on every kept sample, so we overlap-add ourselves and divide by it."""
    num_frames = spec.shape[-1]
    frames = torch.fft.irfft(spec, n=n_fft, dim=1) * window[None, :, None]  # (N, n_fft, F)
    out_len = (num_frames - 1) * hop + n_fft
    fold = dict(output_size=(1, out_len), kernel_size=(1, n_fft), stride=(1, hop))
    audio = F.fold(frames, **fold)[:, 0, 0]  # (N, out_len)
    envelope = window.square()[None, :, None].expand(1, n_fft, num_frames)
    envelope = F.fold(envelope, **fold)[0, 0, 0]  # (out_len,)
    pad = (n_fft - hop) // 2
    return audio[:, pad:out_len - pad] / envelope[pad:out_len - pad]
