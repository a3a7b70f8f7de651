"""Training losses for the audio VAE: spectral reconstruction, KL and an STFT-domain GAN.

The trainer builds one `VAELoss` and calls, each step:

    loss_fn = VAELoss(VAELossConfig(adversarial_start_step=2000))
    # generator (VAE) step
    posterior = vae.encode(real).latent_dist
    fake = vae.decode(posterior.sample(generator), length=real.shape[-1]).sample
    total, terms = loss_fn.generator_loss(real, fake, posterior, step)   # scalar, {name: 0-dim}
    total.backward(); vae_optimizer.step()
    # discriminator step (a no-op before adversarial_start_step: `loss_fn.adversarial_active(step)`)
    d_loss, d_terms = loss_fn.discriminator_loss(real, fake.detach(), step)
    if loss_fn.adversarial_active(step): d_loss.backward(); disc_optimizer.step()

`loss_fn.discriminator` holds the only trainable parameters (give them their own optimizer).
`generator_loss` freezes them while it runs, so the VAE step never leaves gradients in them.
Waveforms are (B, 2, S) stereo at `sample_rate`; every returned term is a detached 0-dim tensor.

Terms of the generator loss (weights in `VAELossConfig`):
- `stft`: multi-resolution STFT loss (spectral convergence + log-magnitude L1, Yamamoto et al.
  2020, Parallel WaveGAN) on left/right, plus `mid_side_weight` times the same on mid/side, so the
  stereo image is learned explicitly, as stable-audio-tools does with its sum/difference STFT loss.
- `mel`: L1 between log mel spectrograms (mel filterbank built here in pure torch).
- `chroma` (off unless `chroma_weight` > 0): L1 between the real and reconstructed pitch-class
  distributions of each frame, weighted by the real frame's share of the energy. The spectral terms
  above can be lowered by the data's average spectrum plus the right envelope; this one cannot,
  so it asks the latents to carry pitch (issue 8: the CPU-trained VAE decoded every clip in
  "G major"; docs/training.md records what this term did in short CPU runs).
- `waveform`: L1 between waveforms (off by default: it pulls phase towards the mean).
- `kl`: KL to N(0, I), summed over latent channels and averaged over frames and batch. Its weight
  can start late and ramp up (`kl_start_step`, `kl_warmup_steps`; KL annealing, Bowman et al. 2016).
  Why (issue 8): with the full weight from step 0, Adam follows the KL's small but consistent pull
  on the posterior std faster than the still-noisy reconstruction gradient resists it; on the music
  corpus the std reached 0.9 within 300 steps while the means varied by 0.15 (signal-to-noise
  0.01-0.04 per channel), and the decoder learned to ignore its latents.
- `adversarial` and `feature_matching` once `step >= adversarial_start_step`: a multi-scale
  complex-STFT discriminator (the MS-STFTD idea of EnCodec, Défossez et al. 2022) with hinge or
  least-squares loss and relative L1 feature matching.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from audiodit.models.stft import stft_same


@dataclass
class VAELossConfig:
    sample_rate: int = 48000  # Hz of the waveforms passed in
    stft_fft_sizes: tuple[int, ...] = (2048, 1024, 512, 256, 128)  # MR-STFT resolutions (hop = n/4)
    stft_weight: float = 1.0  # weight of the left/right MR-STFT loss
    mid_side_weight: float = 0.5  # weight of the mid/side MR-STFT loss
    mel_weight: float = 1.0  # weight of the log-mel L1 loss
    n_mels: int = 128  # mel bands of the mel loss (n_fft 2048, hop 512)
    chroma_weight: float = 0.0  # weight of the pitch-class (chroma) L1 loss (0 disables)
    chroma_fft_size: int = 4096  # STFT size of the chroma loss (11.7 Hz bins at 48 kHz)
    chroma_fmin: float = 100.0  # Hz: bins below carry too few bins per semitone to be pitch-accurate
    chroma_fmax: float = 5000.0  # Hz: above, harmonics and noise blur the pitch classes
    waveform_weight: float = 0.0  # weight of the waveform L1 loss
    consistency_weight: float = 0.0  # weight of the STFT-consistency loss (stft_consistency_loss; applied by the vae stage, which has the decoder's spectrum; 0 disables)
    kl_weight: float = 1e-4  # weight of the KL term
    kl_start_step: int = 0  # the KL term is off before this step (the autoencoder first learns to use its latents)
    kl_warmup_steps: int = 0  # then its weight grows linearly from 0 to kl_weight over this many steps
    adversarial_start_step: int = 2000  # GAN terms and discriminator updates start at this step
    adversarial_loss: Literal["hinge", "lsgan"] = "hinge"  # GAN objective
    adversarial_weight: float = 0.1  # weight of the generator's adversarial term
    feature_matching_weight: float = 5.0  # weight of discriminator feature matching
    disc_fft_sizes: tuple[int, ...] = (2048, 1024, 512)  # one STFT discriminator per size
    disc_channels: int = 32  # conv width of each STFT discriminator


#################################################################################
#                              Spectral helpers                                 #
#################################################################################

def mid_side(audio: torch.Tensor) -> torch.Tensor:
    """(B, 2, S) left/right -> (B, 2, S) mid = (L + R) / 2, side = (L - R) / 2."""
    left, right = audio.unbind(1)
    return torch.stack([(left + right) / 2, (left - right) / 2], dim=1)


def magnitude_spectrogram(audio: torch.Tensor, n_fft: int, hop: int | None = None) -> torch.Tensor:
    """(..., S) -> (..., n_fft // 2 + 1, frames) STFT magnitude (Hann window, centred frames)."""
    hop = hop or n_fft // 4
    flat = audio.reshape(-1, audio.shape[-1]).float()
    window = torch.hann_window(n_fft, device=audio.device)
    spec = torch.stft(flat, n_fft, hop, window=window, center=True, return_complex=True)
    # sqrt(|X|^2 + eps): the gradient of |X| is undefined at exact zeros (digital silence)
    magnitude = (spec.real.square() + spec.imag.square() + 1e-8).sqrt()
    return magnitude.reshape(*audio.shape[:-1], *magnitude.shape[-2:])


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """(n_mels, n_fft // 2 + 1) triangular filters equally spaced on the HTK mel scale
    (mel = 2595 log10(1 + f / 700)), each normalised to unit area (Slaney-style) so bands of
    different widths weigh alike."""
    f_max = f_max or sample_rate / 2
    to_mel = lambda hz: 2595.0 * math.log10(1.0 + hz / 700.0)  # noqa: E731
    mels = torch.linspace(to_mel(f_min), to_mel(f_max), n_mels + 2, dtype=torch.float64)
    hz = 700.0 * (10.0 ** (mels / 2595.0) - 1.0)  # (n_mels + 2,) band edges
    bins = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    filters = torch.clamp(torch.minimum(rising, falling), min=0.0)  # (n_mels, bins)
    filters = filters * (2.0 / (upper - lower))
    return filters.float()


def log_mel_spectrogram(audio: torch.Tensor, sample_rate: int, n_fft: int = 2048,
                        n_mels: int = 128, hop: int | None = None) -> torch.Tensor:
    """(..., S) -> (..., n_mels, frames) natural-log mel magnitude (floored at 1e-5)."""
    filters = mel_filterbank(sample_rate, n_fft, n_mels).to(audio.device)
    mel = torch.matmul(filters, magnitude_spectrogram(audio, n_fft, hop))  # (..., n_mels, frames)
    return torch.log(mel.clamp(min=1e-5))


def chroma_filterbank(sample_rate: int, n_fft: int, f_min: float, f_max: float) -> torch.Tensor:
    """(12, n_fft // 2 + 1) pitch-class weights, row 0 = C: a bin between `f_min` and `f_max` counts
    towards a pitch class by 1 - (its distance in semitones to that class, in any octave), floored at
    0, so a bin exactly on a note counts fully to it and a bin between two notes half to each."""
    frequencies = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    inside = (frequencies >= f_min) & (frequencies <= f_max)
    midi = 69.0 + 12.0 * torch.log2(frequencies.clamp(min=1e-6) / 440.0)  # (bins,)
    offsets = (midi[None, :] - torch.arange(12, dtype=torch.float64)[:, None]) % 12.0  # (12, bins)
    distance = torch.minimum(offsets, 12.0 - offsets)
    return ((1.0 - distance).clamp(min=0.0) * inside).float()


def chroma_loss(real: torch.Tensor, fake: torch.Tensor, filters: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Energy-weighted L1 between per-frame pitch-class distributions of (B, ch, S) waveforms (mono mix)."""
    power_real = magnitude_spectrogram(real.mean(dim=1), n_fft).square()  # (B, bins, frames)
    power_fake = magnitude_spectrogram(fake.mean(dim=1), n_fft).square()
    chroma_real = torch.einsum("kf,bft->bkt", filters, power_real)  # (B, 12, frames)
    chroma_fake = torch.einsum("kf,bft->bkt", filters, power_fake)
    energy_real = chroma_real.sum(dim=1)  # (B, frames)
    distance = (chroma_real / (energy_real[:, None] + 1e-7)
                - chroma_fake / (chroma_fake.sum(dim=1, keepdim=True) + 1e-7)).abs().sum(dim=1)  # (B, frames)
    weight = energy_real / (energy_real.sum(dim=1, keepdim=True) + 1e-7)  # silent frames count for nothing
    return (distance * weight).sum(dim=1).mean()


class MultiResolutionSTFTLoss(nn.Module):
    """Mean over resolutions of spectral convergence + log-magnitude L1 (Parallel WaveGAN)."""

    def __init__(self, fft_sizes=(2048, 1024, 512, 256, 128)):
        super().__init__()
        self.fft_sizes = tuple(fft_sizes)

    def forward(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        total = real.new_zeros(())
        for n_fft in self.fft_sizes:
            mag_real = magnitude_spectrogram(real, n_fft)  # (B, ch, bins, frames)
            mag_fake = magnitude_spectrogram(fake, n_fft)
            convergence = torch.linalg.vector_norm(mag_real - mag_fake) / (
                torch.linalg.vector_norm(mag_real) + 1e-7)
            log_l1 = F.l1_loss(torch.log(mag_fake), torch.log(mag_real))
            total = total + convergence + log_l1
        return total / len(self.fft_sizes)


#################################################################################
#                       Multi-scale STFT discriminator                          #
#################################################################################

class STFTDiscriminator(nn.Module):
    """2-D conv net over one complex STFT of a stereo clip: (B, 2, S) -> logits and features.

    Input planes are real and imaginary parts of each channel (4 planes for stereo), laid out as
    (time frames, frequency bins). Dilations grow along time and strides halve frequency."""

    def __init__(self, n_fft: int, audio_channels: int = 2, channels: int = 32):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        norm = nn.utils.parametrizations.weight_norm
        self.convs = nn.ModuleList([
            norm(nn.Conv2d(2 * audio_channels, channels, (3, 9), padding=(1, 4))),
            norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(1, 1), padding=(1, 4))),
            norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(2, 1), padding=(2, 4))),
            norm(nn.Conv2d(channels, channels, (3, 9), stride=(1, 2), dilation=(4, 1), padding=(4, 4))),
            norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
        ])
        self.to_logits = norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        batch, channels, samples = audio.shape
        spec = torch.stft(audio.reshape(batch * channels, samples), self.n_fft, self.n_fft // 4,
                          window=self.window, center=True, return_complex=True)  # (B*ch, bins, F)
        h = torch.view_as_real(spec).reshape(batch, channels, *spec.shape[1:], 2)  # (B, ch, bins, F, 2)
        h = h.permute(0, 1, 4, 3, 2).reshape(batch, 2 * channels, spec.shape[2], spec.shape[1])  # (B, 2ch, F, bins)
        features = []
        for conv in self.convs:
            h = F.leaky_relu(conv(h), 0.2)  # (B, C, F, bins')
            features.append(h)
        return self.to_logits(h), features  # (B, 1, F, bins')


class MultiScaleSTFTDiscriminator(nn.Module):
    def __init__(self, fft_sizes=(2048, 1024, 512), audio_channels: int = 2, channels: int = 32):
        super().__init__()
        self.discriminators = nn.ModuleList(
            [STFTDiscriminator(n, audio_channels, channels) for n in fft_sizes])

    def forward(self, audio: torch.Tensor):
        """(B, ch, S) -> ([logits per scale], [[features per layer] per scale])."""
        outputs = [d(audio) for d in self.discriminators]
        return [o[0] for o in outputs], [o[1] for o in outputs]


@contextlib.contextmanager
def _frozen(module: nn.Module):
    """Parameters of `module` do not require grad inside the block (gradients still reach inputs)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


#################################################################################
#                                 VAE loss                                      #
#################################################################################

class VAELoss(nn.Module):
    """All VAE training losses and the discriminator; see the module docstring for the API."""

    def __init__(self, config: VAELossConfig | None = None, audio_channels: int = 2):
        super().__init__()
        self.config = config = config or VAELossConfig()
        if config.adversarial_loss not in ("hinge", "lsgan"):
            raise ValueError(f"adversarial_loss must be 'hinge' or 'lsgan', got {config.adversarial_loss!r}")
        self.stft_loss = MultiResolutionSTFTLoss(config.stft_fft_sizes)
        self.register_buffer("chroma_filters", chroma_filterbank(
            config.sample_rate, config.chroma_fft_size, config.chroma_fmin, config.chroma_fmax), persistent=False)
        self.discriminator = MultiScaleSTFTDiscriminator(
            config.disc_fft_sizes, audio_channels, config.disc_channels)

    def kl_weight_at(self, step: int) -> float:
        """The KL weight at `step`: 0 before kl_start_step, then a linear ramp to kl_weight."""
        cfg = self.config
        if step < cfg.kl_start_step:
            return 0.0
        if cfg.kl_warmup_steps <= 0:
            return cfg.kl_weight
        return cfg.kl_weight * min(1.0, (step - cfg.kl_start_step) / cfg.kl_warmup_steps)

    def adversarial_active(self, step: int) -> bool:
        return step >= self.config.adversarial_start_step

    @staticmethod
    def _check(real: torch.Tensor, fake: torch.Tensor):
        if real.shape != fake.shape or real.ndim != 3:
            raise ValueError(f"real and fake must both be (batch, channels, samples); got "
                             f"{tuple(real.shape)} and {tuple(fake.shape)}")

    def reconstruction_terms(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """Un-weighted reconstruction terms (with grad): stft, stft_mid_side, mel, waveform (and chroma)."""
        self._check(real, fake)
        cfg = self.config
        terms = {"stft": self.stft_loss(real, fake)}
        if real.shape[1] == 2:
            terms["stft_mid_side"] = self.stft_loss(mid_side(real), mid_side(fake))
        terms["mel"] = F.l1_loss(log_mel_spectrogram(fake, cfg.sample_rate, n_mels=cfg.n_mels),
                                 log_mel_spectrogram(real, cfg.sample_rate, n_mels=cfg.n_mels))
        terms["waveform"] = F.l1_loss(fake, real)
        if cfg.chroma_weight > 0:
            terms["chroma"] = chroma_loss(real, fake, self.chroma_filters, cfg.chroma_fft_size)
        return terms

    def generator_loss(self, real: torch.Tensor, fake: torch.Tensor, posterior=None,
                       step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted VAE loss. `posterior` (with `.kl()` -> (B,) and `.mean` (B, C, T)) may be None."""
        cfg = self.config
        terms = self.reconstruction_terms(real, fake)
        total = (cfg.stft_weight * terms["stft"] + cfg.mel_weight * terms["mel"]
                 + cfg.waveform_weight * terms["waveform"])
        if "chroma" in terms:
            total = total + cfg.chroma_weight * terms["chroma"]
        if "stft_mid_side" in terms:
            total = total + cfg.mid_side_weight * terms["stft_mid_side"]
        if posterior is not None:
            terms["kl"] = (posterior.kl() / posterior.mean.shape[-1]).mean()
            total = total + self.kl_weight_at(step) * terms["kl"]
        if self.adversarial_active(step):
            with _frozen(self.discriminator):
                logits_fake, features_fake = self.discriminator(fake)
                with torch.no_grad():
                    _, features_real = self.discriminator(real)
            if cfg.adversarial_loss == "hinge":
                adversarial = sum(F.relu(1 - logits).mean() for logits in logits_fake)
            else:
                adversarial = sum((1 - logits).square().mean() for logits in logits_fake)
            terms["adversarial"] = adversarial / len(logits_fake)
            terms["feature_matching"] = self._feature_matching(features_real, features_fake)
            total = (total + cfg.adversarial_weight * terms["adversarial"]
                     + cfg.feature_matching_weight * terms["feature_matching"])
        terms = {name: value.detach() for name, value in terms.items()}
        terms["total"] = total.detach()
        return total, terms

    @staticmethod
    def _feature_matching(features_real, features_fake) -> torch.Tensor:
        # Relative L1 (EnCodec): each layer's error is scaled by the real features' mean magnitude so
        # that layers with large activations do not dominate.
        losses = [F.l1_loss(fake, real) / (real.abs().mean() + 1e-7)
                  for scale_real, scale_fake in zip(features_real, features_fake)
                  for real, fake in zip(scale_real, scale_fake)]
        return torch.stack(losses).mean()

    def discriminator_loss(self, real: torch.Tensor, fake: torch.Tensor,
                           step: int = 0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Discriminator loss on `fake` (detached here). Zero without grad before the warm-up ends."""
        self._check(real, fake)
        if not self.adversarial_active(step):
            return real.new_zeros(()), {}
        logits_real, _ = self.discriminator(real)
        logits_fake, _ = self.discriminator(fake.detach())
        if self.config.adversarial_loss == "hinge":
            per_scale = [F.relu(1 - r).mean() + F.relu(1 + f).mean()
                         for r, f in zip(logits_real, logits_fake)]
        else:
            per_scale = [(1 - r).square().mean() + f.square().mean()
                         for r, f in zip(logits_real, logits_fake)]
        loss = torch.stack(per_scale).mean()
        return loss, {"discriminator": loss.detach()}


def stft_consistency_loss(spectrum: torch.Tensor, audio: torch.Tensor, n_fft: int, hop: int,
                          window: torch.Tensor) -> torch.Tensor:
    """How far a decoder's complex STFT (B, ch, bins, F) is from the STFT of the audio its inverse
    STFT made (B, ch, F * hop): |S - STFT(iSTFT(S))| summed, over |S| summed.

    0 for a consistent spectrogram; the first VAE's was 0.80. Overlapping frames whose phases
    disagree cancel in the overlap-add, and they disagreed more at some positions within a latent
    frame than at others: the 40 ms artefact (issue 24; `python -m experiments.probes.vae_phase_probe --measure
    periodicity`). Consistency as a training target: Griffin & Lim 1984; Takamichi et al. 2018."""
    remade = stft_same(audio.flatten(0, 1), n_fft, hop, window).reshape(spectrum.shape)
    return (spectrum - remade).abs().sum() / spectrum.abs().sum().clamp(min=1e-8)
