"""Does the VAE's reconstruction depend on its input early in training? A diagnostic for issue 3.

Trains the `small` VAE from scratch on 64 one-second clips of a folder (batch 8, AdamW, the
`audiodit.losses` generator loss without the discriminator) and every 50 steps reports:
- the mel-spectrogram distance (dB) between the reconstructions of two different clips, which is 0
  when the decoder's output no longer depends on its input (collapse), next to
- the distance between a reconstruction and its real clip, and the mean posterior std.

    python benchmarks/vae_collapse_probe.py DATA_DIR [--lr 2e-3] [--latents sample|mode] [--steps 150]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from audiodit.audio import load_audio
from audiodit.losses import VAELoss, VAELossConfig, log_mel_spectrogram
from audiodit.models.vae import AudioVAE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="folder of audio files (e.g. data/music21/train)")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--latents", choices=("sample", "mode"), default="sample")
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()

    torch.manual_seed(0)
    files = sorted(args.data.glob("*.flac"))[:64]
    clips = torch.stack([load_audio(path, duration=1.0, offset=2.0) for path in files])  # (N, 2, 48000)
    vae = AudioVAE.from_preset("small")
    loss_fn = VAELoss(VAELossConfig())
    optimizer = torch.optim.AdamW(vae.parameters(), args.lr, betas=(0.8, 0.99), weight_decay=0.0)
    first, second = clips[:1], clips[len(clips) // 2 : len(clips) // 2 + 1]

    def probe() -> tuple[float, float]:
        with torch.no_grad():
            mels = [log_mel_spectrogram(vae(x).sample, 48000) for x in (first, second)]
            real = log_mel_spectrogram(first, 48000)
        return (mels[0] - mels[1]).abs().mean().item(), (mels[0] - real).abs().mean().item()

    started = time.perf_counter()
    print("step  loss   recon(a)-recon(b) dB  recon(a)-real(a) dB  posterior std  seconds")
    for step in range(args.steps + 1):
        batch = clips[torch.randint(0, len(clips), (8,))]
        posterior = vae.encode(batch).latent_dist
        latents = posterior.mode() if args.latents == "mode" else posterior.sample()
        total, _ = loss_fn.generator_loss(batch, vae.decode(latents, length=batch.shape[-1]).sample, posterior, 0)
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        if step % 50 == 0:
            between, to_real = probe()
            print(f"{step:4d}  {total.item():.3f}  {between:20.3f}  {to_real:19.3f}  "
                  f"{posterior.std.mean().item():13.3f}  {time.perf_counter() - started:7.0f}", flush=True)


if __name__ == "__main__":
    main()
