"""Does the VAE's reconstruction depend on its input early in training? A diagnostic for issue 3.

Trains the `small` VAE from scratch on 64 one-second clips of a folder (batch 8, AdamW, the
`audiodit.losses` generator loss without the discriminator, posterior samples as in `train.py`)
and every `--every` steps reports, on 8 clips of a second folder (held out):
- `between`: mel distance (natural-log units) between the reconstructions of two different clips;
  0 when the decoder's output no longer depends on its input (collapse);
- `to_real`: mean mel distance between each reconstruction and its real clip, next to the distance
  from the real clips to their own average spectrum (the score of a decoder that ignores its input);
- `const/var`: in the decoder's residual stream just before its last LayerNorm, the mean absolute
  per-channel average over clips and frames against the mean per-channel std. When the constant
  dominates, the LayerNorm's output is the same for every input;
- the mean posterior std;
- `chroma`: correlation of the reconstructions' 12-bin chroma with the clips' (loud frames), about
  0 while the output's pitch ignores the input (issue 8).

`--before-fix` undoes two initialisations that issue 3 added (decoder output at the data's mean
log-magnitude, posterior std 0.02) to show the collapse they prevent. `--set FIELD=VALUE` changes
the VAE config (e.g. `encoder_input=complex`, `phase_advance=false`), `--kl-start-step` and
`--chroma-weight` the loss. Measured (issue 8, 200 steps, KL off): held-out `to_real` 1.10 with
standardised log-magnitude inputs (1.24 unstandardised) against 1.88 with complex inputs (average
spectrum: 1.56).

    python -m experiments.probes.vae_collapse_probe TRAIN_DIR HELD_OUT_DIR [--before-fix] [--steps 150]
        [--set encoder_input=complex] [--kl-start-step 100000] [--chroma-weight 1]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from audiodit.audio import load_audio
from audiodit.losses import (VAELoss, VAELossConfig, chroma_filterbank, log_mel_spectrogram,
                             magnitude_spectrogram)
from audiodit.models.vae import AudioVAE


def _clips(folder: Path, count: int) -> torch.Tensor:
    files = sorted(folder.glob("*.flac"))[:count]
    if len(files) < 2:
        raise SystemExit(f"{folder}: need at least 2 .flac files, found {len(files)}")
    return torch.stack([load_audio(path, duration=1.0, offset=2.0) for path in files])  # (N, 2, 48000)


def _override(item: str) -> tuple[str, object]:
    field, _, value = item.partition("=")
    lowered = value.lower()
    if lowered in ("true", "false"):
        return field, lowered == "true"
    try:
        return field, int(value)
    except ValueError:
        return field, value


def _chroma_correlation(real: torch.Tensor, fake: torch.Tensor, pitch_classes: torch.Tensor) -> float:
    """Mean over clips and loud frames of the correlation between real and reconstructed 12-bin
    chroma (4096-point STFT of the mono mix): about 0 when the output's pitch ignores the input."""
    spectra = [magnitude_spectrogram(x.mean(1), 4096).square() for x in (real, fake)]  # (N, bins, F)
    chroma_real, chroma_fake = (torch.einsum("cb,nbf->nfc", pitch_classes, s) for s in spectra)  # (N, F, 12)
    energy = chroma_real.sum(-1)  # (N, F)
    loud = energy > 0.1 * energy.amax(dim=1, keepdim=True)
    a = chroma_real - chroma_real.mean(-1, keepdim=True)
    b = chroma_fake - chroma_fake.mean(-1, keepdim=True)
    correlation = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-12)  # (N, F)
    return correlation[loud].mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("train", type=Path, help="folder of audio files (e.g. data/music21/train)")
    parser.add_argument("held_out", type=Path, help="folder of other audio (e.g. data/music21/test)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--every", type=int, default=25)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="VAE config override, e.g. --set encoder_input=complex --set phase_advance=false")
    parser.add_argument("--kl-start-step", type=int, default=0, help="VAELossConfig.kl_start_step")
    parser.add_argument("--chroma-weight", type=float, default=0.0, help="VAELossConfig.chroma_weight")
    parser.add_argument("--before-fix", action="store_true",
                        help="zero output bias and posterior std softplus(0) = 0.69, as before issue 3's fix")
    args = parser.parse_args()

    torch.manual_seed(0)
    clips, held_out = _clips(args.train, 64), _clips(args.held_out, 8)
    vae = AudioVAE.from_preset("small", **dict(_override(item) for item in args.set))
    with torch.no_grad():
        if args.before_fix:
            vae.encoder_out[1].bias.zero_()
        else:
            vae.initialize_from_audio(clips[:32])
    stream = {}
    vae.decoder_out_norm.register_forward_hook(lambda module, inputs, output: stream.update(h=inputs[0]))
    loss_fn = VAELoss(VAELossConfig(kl_start_step=args.kl_start_step, chroma_weight=args.chroma_weight))
    pitch_classes = chroma_filterbank(48000, 4096, 100.0, 5000.0)
    optimizer = torch.optim.AdamW(vae.parameters(), args.lr, betas=(0.8, 0.99), weight_decay=0.0)
    with torch.no_grad():
        real = log_mel_spectrogram(held_out, 48000)  # (N, 2, mels, frames)
        average = (real - real.mean(0, keepdim=True)).abs().mean().item()

    def probe() -> tuple[float, float, float, float]:
        with torch.no_grad():
            recon = log_mel_spectrogram(vae(held_out).sample, 48000)
            h = stream["h"].double()  # (N, F, D)
            chroma = _chroma_correlation(held_out, vae(held_out).sample, pitch_classes)
        return ((recon[0] - recon[1]).abs().mean().item(), (recon - real).abs().mean().item(),
                h.mean((0, 1)).abs().mean().item(), h.std((0, 1)).mean().item(), chroma)

    print(f"held-out clips to their average spectrum: {average:.3f}")
    print("step   loss  between  to_real  const/var    std  chroma  seconds")
    started = time.perf_counter()
    for step in range(args.steps + 1):
        batch = clips[torch.randint(0, len(clips), (8,))]
        posterior = vae.encode(batch).latent_dist
        fake = vae.decode(posterior.sample(), length=batch.shape[-1]).sample
        total, _ = loss_fn.generator_loss(batch, fake, posterior, step)
        optimizer.zero_grad()
        total.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimizer.step()
        if step % args.every == 0:
            between, to_real, const, var, chroma = probe()
            print(f"{step:4d}  {total.item():5.2f}  {between:7.3f}  {to_real:7.3f}  {const:4.2f}/{var:4.2f}  "
                  f"{posterior.std.mean().item():5.3f}  {chroma:6.3f}  {time.perf_counter() - started:7.0f}", flush=True)


if __name__ == "__main__":
    main()
