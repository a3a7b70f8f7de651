"""TensorBoard helpers: stereo audio clips and their spectrogram images."""

from __future__ import annotations

import torch


def spectrogram_image(audio: torch.Tensor, n_fft: int = 1024, hop: int = 256, floor_db: float = -80.0):
    """Log-magnitude spectrogram of stereo audio (2, S) as a (3, F, 2 * frames + gap) image in
    [0, 1]: left channel, a white gap, right channel; low frequencies at the bottom."""
    window = torch.hann_window(n_fft, device=audio.device)
    spec = torch.stft(audio.float(), n_fft, hop, window=window, return_complex=True).abs()  # (2, F, N)
    db = 20 * torch.log10(spec.clamp_min(1e-8))
    db = (db - db.amax()).clamp_min(floor_db)  # 0 dB = the loudest bin
    gray = 1.0 - db / floor_db  # (2, F, N) in [0, 1]
    gap = torch.ones(gray.shape[1], 4, device=gray.device)
    image = torch.cat([gray[0], gap, gray[1]], dim=1).flip(0)  # (F, 2N + 4)
    return image.unsqueeze(0).expand(3, -1, -1).cpu()  # (3, F, W)


def log_audio(writer, tag: str, audio: torch.Tensor, sample_rate: int, step: int) -> None:
    """Log a stereo clip (2, S): the mono mix as audio (TensorBoard plays one channel) and the
    spectrogram of both channels as an image."""
    audio = audio.detach().float().cpu()
    mono = audio.mean(0).clamp(-1, 1)
    writer.add_audio(f"{tag}/audio", mono.unsqueeze(0), step, sample_rate=sample_rate)
    writer.add_image(f"{tag}/spectrogram", spectrogram_image(audio), step)
