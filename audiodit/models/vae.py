"""Stereo 48 kHz continuous VAE with an inverse-STFT decoder.

Architecture (ideas from Vocos, Siuzdak 2023, and ConvNeXt, Liu et al. 2022):

    encode: waveform (B, 2, S) -> STFT per channel (hop 480, 100 frames/s at 48 kHz)
            -> standardised log-magnitudes (or, in configs saved before issue 8, power-law
            compressed real/imag parts) -> ConvNeXt-1D blocks at the frame rate
            -> strided conv down to the latent rate (x4 -> 25 frames/s) -> ConvNeXt blocks
            -> mean and std of a diagonal Gaussian (B, C, T)
    decode: latent (B, C, T) -> ConvNeXt blocks at the latent rate -> transposed conv up to the
            STFT frame rate -> ConvNeXt blocks -> linear head predicting log-magnitude and phase for
            every channel and frequency bin (the phase relative to the bin's centre-frequency
            advance) -> inverse STFT (overlap-add) -> waveform (B, 2, S)

No layer ever runs at the audio sample rate: the decoder's last learned layer works on 100 frames
per second and the inverse STFT does the rest. That is why it is an order of magnitude cheaper on
CPU than waveform decoders such as Oobleck (see `benchmarks/vae_speed.py`).

Length rule: `hop_length = stft_hop_length * frames_per_latent` (480 * 4 = 1920 samples, 25 latent
frames per second). `encode` zero-pads the audio on the right to `T = ceil(S / hop_length)` latent
frames (`latent_frames(S)`); `decode(z)` returns `T * hop_length` samples, and `decode(z, length=S)`
crops (or zero-pads) to exactly S samples, so `decode(encode(x).latent_dist.mode(), length=S)` has
x's length.

Tiling: after `enable_tiling()`, inputs longer than `tile_latent_frames` are processed in
overlapping tiles. Each boundary of `o` overlapping frames gives the outer quarter on each side to
the tile whose interior it is and cross-fades linearly over the middle half, so tile edges (where
zero padding makes outputs differ) never reach the result. The output buffer is the only thing
that grows with the input; decoding 10 minutes of stereo 48 kHz stays within a few hundred MB.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from audiodit.models.convnext import ChannelLayerNorm, convnext_stack
from audiodit.models.stft import istft_same, stft_same
from audiodit.phase_reconstruction import magnitude_phase_block


ENCODER_INPUTS = ("log_magnitude", "complex")
OUTPUT_PHASES = ("decoder", "magnitude", "rebuilt")  # see AudioVAE.decode
DECODER_UPSAMPLES = ("transposed", "interpolate")  # see AudioVAE.__init__
INITIAL_POSTERIOR_STD = 0.02  # posterior std of a freshly initialised encoder (see initialize_weights)
PHASE_BLOCK_FRAMES = 2000  # STFT frames (20 s) per block of output_phase "magnitude"/"rebuilt" (bounded memory)
PHASE_ITERATION_MARGIN = 64  # STFT frames of context on each side of a block's phase iterations (see _rebuilt_audio)
PHASE_MOMENTUM = 0.99  # "fast Griffin-Lim" momentum (Perraudin et al. 2013)


# What a VAE saved before an option existed was made with; newer configs state every option.
LEGACY_DEFAULTS = {"phase_advance": False, "encoder_input": "complex"}


@dataclass
class VAEConfig:
    sampling_rate: int = 48000  # audio sample rate in Hz
    audio_channels: int = 2  # stereo
    latent_channels: int = 32  # channels of the latent sequence
    scaling_factor: float = 1.0  # latents are multiplied by this before the DiT (unit variance)
    stft_hop_length: int = 480  # samples per STFT frame (100 frames/s at 48 kHz)
    n_fft: int = 1920  # STFT window and FFT size in samples (4 hops: 75% overlap)
    frames_per_latent: int = 4  # STFT frames per latent frame; hop_length = 480 * 4 = 1920
    encoder_dim: int = 256  # ConvNeXt width of the encoder
    encoder_frame_blocks: int = 3  # encoder ConvNeXt blocks at the STFT frame rate
    encoder_latent_blocks: int = 2  # encoder ConvNeXt blocks at the latent rate
    decoder_dim: int = 256  # ConvNeXt width of the decoder
    decoder_latent_blocks: int = 2  # decoder ConvNeXt blocks at the latent rate
    decoder_frame_blocks: int = 6  # decoder ConvNeXt blocks at the STFT frame rate
    mlp_ratio: int = 3  # ConvNeXt hidden width / block width (Vocos uses 3)
    phase_advance: bool = True  # decoder phase is relative to each bin's centre-frequency advance (see decode_spectrum)
    encoder_input: str = "log_magnitude"  # "log_magnitude" or "complex" (power-law compressed real/imag; see _encoder_features)
    output_phase: str = "decoder"  # inference phase: "decoder" (predicted), "magnitude" or "rebuilt" (see decode)
    magnitude_phase_below_hz: float = 500.0  # with output_phase "magnitude": bins below this get the rebuilt phase
    decoder_upsample: str = "transposed"  # latent -> frame rate: "transposed" conv or "interpolate" (linear, then conv); see __init__
    phase_iterations: int = 16  # with output_phase "rebuilt": fast Griffin-Lim iterations after the rebuild

    @property
    def hop_length(self) -> int:
        """Audio samples per latent frame."""
        return self.stft_hop_length * self.frames_per_latent


PRESETS = {
    "tiny": dict(latent_channels=8, encoder_dim=32, encoder_frame_blocks=1, encoder_latent_blocks=1,
                 decoder_dim=32, decoder_latent_blocks=1, decoder_frame_blocks=1, mlp_ratio=2),
    "small": {},
    "base": dict(latent_channels=64, encoder_dim=512, encoder_frame_blocks=4,
                 encoder_latent_blocks=4, decoder_dim=768, decoder_latent_blocks=4,
                 decoder_frame_blocks=12),
}


@dataclass
class AudioVAEEncoderOutput(BaseOutput):
    latent_dist: "DiagonalGaussianDistribution"  # posterior over latents (B, C, T)


@dataclass
class AudioVAEDecoderOutput(BaseOutput):
    sample: torch.Tensor  # (B, audio_channels, S) waveform in [-1, 1]-ish


#################################################################################
#                                  Posterior                                    #
#################################################################################

class DiagonalGaussianDistribution:
    """N(mean, std^2) per latent element; mean and std are (B, C, T)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        if mean.shape != std.shape:
            raise ValueError(f"mean {tuple(mean.shape)} and std {tuple(std.shape)} differ in shape")
        self.mean, self.std = mean, std
        self.var = std * std
        self.logvar = 2.0 * torch.log(std)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, dtype=self.mean.dtype,
                            device=generator.device if generator is not None else self.mean.device)
        return self.mean + self.std * noise.to(self.mean.device)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per item, summed over channels and frames: (B,)."""
        return 0.5 * (self.mean.square() + self.var - 1.0 - self.logvar).sum(dim=(1, 2))


def check_output_phase(output_phase: str, name: str = "output_phase") -> None:
    """ValueError naming `name` (the field or flag it came from) unless `output_phase` is one of OUTPUT_PHASES."""
    if output_phase not in OUTPUT_PHASES:
        raise ValueError(f"{name} must be one of {OUTPUT_PHASES}, got {output_phase!r}")


#################################################################################
#                                 Tiling helpers                                #
#################################################################################

def _crossfade_weights(length: int, overlap_in: int, overlap_out: int) -> torch.Tensor:
    """(length,) blending weights of one tile: with the neighbours' mirrored weights they sum to 1.
    Over an overlap of o units the outer o // 4 belong to the other tile, the middle ramps linearly."""
    weights = torch.ones(length)
    for overlap, flip in ((overlap_in, False), (overlap_out, True)):
        if overlap <= 0:
            continue
        margin = overlap // 4
        ramp = overlap - 2 * margin
        rising = torch.cat([torch.zeros(margin), (torch.arange(ramp) + 0.5) / ramp,
                            torch.ones(margin)])
        if flip:
            weights[length - overlap:] *= rising.flip(0)
        else:
            weights[:overlap] *= rising
    return weights


def _plan_tiles(total: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """[(start, end)) windows of at most `tile` units covering [0, total); neighbours overlap by
    exactly `overlap` units and, as overlap <= tile // 2, no unit is in more than two windows."""
    stride = tile - overlap
    starts = range(0, max(total - overlap, 1), stride)
    return [(start, min(start + tile, total)) for start in starts]


#################################################################################
#                                   The VAE                                     #
#################################################################################

class AudioVAE(ModelMixin, ConfigMixin):
    """Waveform (B, 2, S) at 48 kHz <-> latent (B, C, T) at 25 frames/s. See the module docstring.

    `__init__`'s defaults are `VAEConfig`'s (one source of truth, checked by a test); a saved config
    without one of LEGACY_DEFAULTS' options predates it and loads with the value it was made with."""

    _supports_gradient_checkpointing = False

    @classmethod
    def extract_init_dict(cls, config_dict, **kwargs):
        """diffusers' reading of a saved config, with LEGACY_DEFAULTS for the options it lacks (or
        that diffusers marks as filled in by default when it was saved)."""
        config_dict = dict(config_dict)
        defaulted = set(config_dict.get("_use_default_values", []))
        for name, value in LEGACY_DEFAULTS.items():
            if name not in config_dict or name in defaulted:
                config_dict[name] = value
        config_dict["_use_default_values"] = sorted(defaulted - set(LEGACY_DEFAULTS))
        return super().extract_init_dict(config_dict, **kwargs)

    @register_to_config
    def __init__(
        self,
        sampling_rate: int = 48000,
        audio_channels: int = 2,
        latent_channels: int = 32,
        scaling_factor: float = 1.0,
        stft_hop_length: int = 480,
        n_fft: int = 1920,
        frames_per_latent: int = 4,
        encoder_dim: int = 256,
        encoder_frame_blocks: int = 3,
        encoder_latent_blocks: int = 2,
        decoder_dim: int = 256,
        decoder_latent_blocks: int = 2,
        decoder_frame_blocks: int = 6,
        mlp_ratio: int = 3,
        phase_advance: bool = True,
        encoder_input: str = "log_magnitude",
        output_phase: str = "decoder",
        magnitude_phase_below_hz: float = 500.0,
        decoder_upsample: str = "transposed",
        phase_iterations: int = 16,
    ):
        super().__init__()
        if n_fft < stft_hop_length or (n_fft - stft_hop_length) % 2:
            raise ValueError(f"n_fft ({n_fft}) must be >= stft_hop_length ({stft_hop_length}) "
                             "and differ from it by an even number of samples")
        if min(audio_channels, latent_channels, frames_per_latent, encoder_dim, decoder_dim) < 1:
            raise ValueError("audio_channels, latent_channels, frames_per_latent and widths must be >= 1")
        self.sampling_rate = sampling_rate
        self.audio_channels = audio_channels
        self.latent_channels = latent_channels
        self.hop_length = stft_hop_length * frames_per_latent
        self.latent_rate = sampling_rate / self.hop_length
        if encoder_input not in ENCODER_INPUTS:
            raise ValueError(f"encoder_input must be one of {ENCODER_INPUTS}, got {encoder_input!r}")
        check_output_phase(output_phase)
        if decoder_upsample not in DECODER_UPSAMPLES:
            raise ValueError(f"decoder_upsample must be one of {DECODER_UPSAMPLES}, got {decoder_upsample!r}")
        if not 0 < magnitude_phase_below_hz <= sampling_rate / 2:
            raise ValueError(f"magnitude_phase_below_hz must be in (0, {sampling_rate / 2:g}], got {magnitude_phase_below_hz}")
        if isinstance(phase_iterations, bool) or not isinstance(phase_iterations, int) or not 0 <= phase_iterations <= 1000:
            raise ValueError(f"phase_iterations must be an int in [0, 1000], got {phase_iterations!r}")
        num_bins = n_fft // 2 + 1
        spec_features = audio_channels * 2 * num_bins  # decoder: log-magnitude and phase per channel
        input_features = audio_channels * num_bins * (2 if encoder_input == "complex" else 1)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        if encoder_input == "log_magnitude":  # per-feature standardisation, set from data before training
            self.register_buffer("encoder_input_mean", torch.zeros(input_features))
            self.register_buffer("encoder_input_std", torch.ones(input_features))
        # Largest magnitude a [-1, 1] signal can reach in one bin (full-scale DC): a safety clamp on
        # the predicted log-magnitude, like Vocos' clip, scaled to our window.
        self.max_log_magnitude = math.log(float(torch.hann_window(n_fft).sum()))

        # Encoder: STFT features -> frame-rate ConvNeXt -> strided conv -> latent-rate ConvNeXt.
        enc_scale = 1.0 / (encoder_frame_blocks + encoder_latent_blocks)
        self.encoder_in = nn.Conv1d(input_features, encoder_dim, kernel_size=1)
        self.encoder_in_norm = ChannelLayerNorm(encoder_dim, eps=1e-6)
        self.encoder_frame = convnext_stack(encoder_dim, encoder_frame_blocks, mlp_ratio, enc_scale)
        self.encoder_down = nn.Sequential(
            ChannelLayerNorm(encoder_dim, eps=1e-6),
            nn.Conv1d(encoder_dim, encoder_dim, kernel_size=frames_per_latent, stride=frames_per_latent))
        self.encoder_latent = convnext_stack(encoder_dim, encoder_latent_blocks, mlp_ratio, enc_scale)
        self.encoder_out = nn.Sequential(
            ChannelLayerNorm(encoder_dim, eps=1e-6),
            nn.Conv1d(encoder_dim, 2 * latent_channels, kernel_size=1))

        # Decoder: latent-rate ConvNeXt -> transposed conv -> frame-rate ConvNeXt -> iSTFT head.
        dec_scale = 1.0 / (decoder_latent_blocks + decoder_frame_blocks)
        self.decoder_in = nn.Conv1d(latent_channels, decoder_dim, kernel_size=7, padding=3)
        self.decoder_in_norm = ChannelLayerNorm(decoder_dim, eps=1e-6)
        self.decoder_latent = convnext_stack(decoder_dim, decoder_latent_blocks, mlp_ratio, dec_scale)
        # "transposed": each of the frames_per_latent STFT frames of a latent frame gets its own
        # weights, and whatever differs between them repeats every latent frame: the first VAE's
        # output had amplitude spikes every 40 ms (issue 24). "interpolate" treats every frame
        # alike: linear interpolation to the frame rate, then one convolution over neighbouring
        # frames (resize-convolution, Odena et al. 2016, "Deconvolution and checkerboard artifacts").
        if decoder_upsample == "transposed":
            upsample = nn.ConvTranspose1d(decoder_dim, decoder_dim, kernel_size=frames_per_latent,
                                          stride=frames_per_latent)
        else:
            upsample = nn.Sequential(
                nn.Upsample(scale_factor=frames_per_latent, mode="linear", align_corners=False),
                nn.Conv1d(decoder_dim, decoder_dim, kernel_size=2 * frames_per_latent - 1,
                          padding=frames_per_latent - 1))
        self.decoder_up = nn.Sequential(ChannelLayerNorm(decoder_dim, eps=1e-6), upsample)
        self.decoder_frame = convnext_stack(decoder_dim, decoder_frame_blocks, mlp_ratio, dec_scale)
        self.decoder_out_norm = nn.LayerNorm(decoder_dim, eps=1e-6)
        self.decoder_head = nn.Linear(decoder_dim, spec_features)  # log-magnitude and phase

        self.use_tiling = False
        self.tile_latent_frames = 500  # 20 s per tile: shorter inputs are decoded in one pass
        self.overlap_latent_frames = 32  # 1.28 s; the outer quarter covers the receptive field
        self.initialize_weights()

    def initialize_weights(self):
        # Small truncated-normal weights and zero biases everywhere (ConvNeXt / Vocos recipe); the
        # layer-scale residuals already start at 1 / depth so deep stacks begin near identity.
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # Posterior std starts at INITIAL_POSTERIOR_STD, not softplus(0) = 0.69: latents that start
        # mostly noise teach the decoder to ignore them (posterior collapse, issue 3); the KL term
        # raises the std as far as reconstruction allows.
        nn.init.constant_(self.encoder_out[1].bias[self.latent_channels:],
                          math.log(math.expm1(INITIAL_POSTERIOR_STD)))

    # ---------------------------------------------- data-dependent initialisation
    def _item_spectra(self, audio: torch.Tensor, lengths: list[int] | None):
        """Yield each item's complex STFT (ch, bins, F) over its whole frames of real audio."""
        self._check_audio(audio)
        cfg = self.config
        hop = cfg.stft_hop_length
        for index, item in enumerate(audio.float()):
            length = audio.shape[-1] if lengths is None else int(lengths[index])
            length = max(hop, length - length % hop)  # whole STFT frames of real audio
            item = F.pad(item, (0, max(0, length - item.shape[-1])))[:, :length]  # (ch, S')
            yield stft_same(item, cfg.n_fft, hop, self.window.float())  # (ch, bins, F)

    @torch.no_grad()
    def mean_log_magnitude(self, audio: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        """Mean natural-log STFT magnitude of `audio` (B, ch, S) per channel and bin: (ch, bins), in
        the units the decoder head predicts (floored at 1e-5, like the losses). `lengths` (samples
        per item) leaves out right zero-padding."""
        total, frames = 0.0, 0
        for spec in self._item_spectra(audio, lengths):
            total = total + spec.abs().clamp_min(1e-5).log().sum(dim=-1)  # (ch, bins)
            frames += spec.shape[-1]
        return total / frames

    @torch.no_grad()
    def encoder_input_moments(self, audio: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        """(2, features): mean and mean square over frames of the encoder's raw input features of
        `audio` (B, ch, S), leaving out right zero-padding like `mean_log_magnitude`."""
        total, frames = 0.0, 0
        for spec in self._item_spectra(audio, lengths):
            feats = self._raw_features(spec[None])[0]  # (features, F)
            total = total + torch.stack([feats.sum(-1), feats.square().sum(-1)])  # (2, features)
            frames += feats.shape[-1]
        return total / frames

    @torch.no_grad()
    def set_encoder_input_statistics(self, moments: torch.Tensor) -> None:
        """Standardise the encoder's input with these (2, features) moments (`encoder_input_moments`).

        Why (issue 8): log-magnitudes average about -5. Adam moves every weight of a row of the
        input layer by about the learning rate in the same direction when its inputs share a sign,
        so a non-centred input turns each step into a large constant shift of that layer's output.
        Measured on the tiny preset: the shared part grew from 0 to 128 (against an input-dependent
        std of 0.6) in 10 steps, the LayerNorm after it then passed the same vector for every input,
        and both clips decoded to the same spectrum. Per-feature centring removes the shared sign."""
        if self.config.encoder_input != "log_magnitude":
            raise ValueError(f"encoder_input {self.config.encoder_input!r} takes no input statistics "
                             "(only 'log_magnitude' does)")
        expected = (2, self.encoder_input_mean.shape[0])
        if tuple(moments.shape) != expected:
            raise ValueError(f"moments must have shape {expected} (mean, mean square), got {tuple(moments.shape)}")
        mean, square = moments.to(self.encoder_input_mean)
        self.encoder_input_mean.copy_(mean)
        self.encoder_input_std.copy_((square - mean.square()).clamp_min(1e-4).sqrt())

    @torch.no_grad()
    def set_output_log_magnitude(self, log_magnitude: torch.Tensor) -> None:
        """Set the decoder head's log-magnitude bias to `log_magnitude` (ch, bins).

        Why (issue 3): with the bias at 0 the decoder starts e^4 times too loud on music, whose mean
        log-magnitude is about -4. The first hundred optimiser steps then close that gap by growing
        one constant vector in the decoder's residual stream (biases everywhere move together under
        Adam) until it is ~8x larger than the input-dependent part; after the final LayerNorm every
        input then decodes to the same average spectrum, and training stalls there (measured by
        `experiments/probes/vae_collapse_probe.py`). Starting the bias at the data's mean removes that
        pressure: the decoder only has to learn the deviations, which depend on the input."""
        cfg = self.config
        bins = cfg.n_fft // 2 + 1
        expected = (self.audio_channels, bins)
        if tuple(log_magnitude.shape) != expected:
            raise ValueError(f"log_magnitude must have shape {expected} (channels, bins), got "
                             f"{tuple(log_magnitude.shape)}")
        bias = self.decoder_head.bias.view(self.audio_channels, 2, bins)  # (ch, [log-mag, phase], bins)
        bias[:, 0] = log_magnitude.to(bias)

    def initialize_from_audio(self, audio: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        """Data-dependent initialisation before training: the decoder starts at `audio`'s mean
        spectrum (`set_output_log_magnitude`) and, for log-magnitude inputs, the encoder's input is
        standardised with `audio`'s statistics (`set_encoder_input_statistics`). Returns the
        (ch, bins) log-magnitudes set."""
        log_magnitude = self.mean_log_magnitude(audio, lengths)
        moments = self.encoder_input_moments(audio, lengths) if self.config.encoder_input == "log_magnitude" else None
        self.initialize_from_statistics(log_magnitude, moments)
        return log_magnitude

    def initialize_from_statistics(self, log_magnitude: torch.Tensor, moments: torch.Tensor | None = None) -> None:
        """The data-dependent initialisation from statistics already gathered (the training stage
        averages them over batches and processes): the decoder's mean output spectrum
        `log_magnitude` (ch, bins) and, for log-magnitude encoder inputs, the input `moments`
        (2, features) of `encoder_input_moments`."""
        self.set_output_log_magnitude(log_magnitude)
        if self.config.encoder_input == "log_magnitude":
            if moments is None:
                raise ValueError("a log-magnitude encoder input needs its moments (encoder_input_moments)")
            self.set_encoder_input_statistics(moments)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """diffusers' loader, after checking the weights against the digests recorded when they
        were saved (`audiodit.integrity`; a VAE inside a pipeline directory is checked by the
        pipeline's loader instead)."""
        from pathlib import Path

        from audiodit.integrity import verify_digests

        root = Path(pretrained_model_name_or_path)
        directory = root / kwargs.get("subfolder", "") if kwargs.get("subfolder") else root
        if directory.is_dir() and (directory.parent / "model_index.json").is_file():  # a pipeline's vae/
            verify_digests(directory.parent, what=f"pipeline {directory.parent}", only=f"{directory.name}/")
        elif directory.is_dir():
            verify_digests(directory, what=f"VAE {directory}")
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """diffusers' save, then the SHA-256 of the weights (`audiodit.integrity.DIGESTS`)."""
        from audiodit.integrity import write_digests

        super().save_pretrained(save_directory, *args, **kwargs)
        write_digests(save_directory)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "AudioVAE":
        if name not in PRESETS:
            raise ValueError(f"unknown VAE preset {name!r}; choose from {sorted(PRESETS)}")
        cfg = VAEConfig(**{**PRESETS[name], **overrides})
        return cls(**dataclasses.asdict(cfg))

    def same_encoder_as(self, other: "AudioVAE") -> bool:
        """Whether `other` encodes as this VAE does (same encoder weights, to a float16 export's
        tolerance): then its latents are this one's, and a transformer trained on them reads both
        (e.g. a decoder fine-tuned with `training.freeze: [vae.encoder]`)."""
        ours = self.state_dict()
        theirs = {name: weight for name, weight in other.state_dict().items() if name.startswith("encoder")}
        return bool(theirs) and all(
            name in ours and ours[name].shape == weight.shape
            and torch.allclose(ours[name].float().cpu(), weight.float().cpu(), rtol=1e-3, atol=1e-4)
            for name, weight in theirs.items())

    # ----------------------------------------------------------------- lengths
    def latent_frames(self, num_samples: int) -> int:
        """Latent frames for `num_samples` audio samples: ceil(S / hop_length) (right zero-pad)."""
        return max(1, math.ceil(num_samples / self.hop_length))

    # ------------------------------------------------------------------ encode
    def _check_audio(self, audio: torch.Tensor):
        if audio.ndim != 3 or audio.shape[1] != self.audio_channels or audio.shape[-1] == 0:
            raise ValueError(f"audio must be (batch, {self.audio_channels}, samples) with samples > 0, "
                             f"got shape {tuple(audio.shape)}")

    def _raw_features(self, spec: torch.Tensor) -> torch.Tensor:
        """Complex STFT (N, ch, bins, F) -> the encoder's input features before standardisation,
        (N, features, F).

        "log_magnitude": log(|X| + 1e-4) per channel and bin. Pitch and loudness are linear in these
        features, so even a random encoder's latents correlate with what the decoder must output
        and the reconstruction gradient reaches the encoder from the first step.
        "complex": |X|^0.3 with the phase kept, as real and imaginary parts. A tone's real and
        imaginary parts rotate from frame to frame, so a linear read-out of them averages to zero:
        the encoder must first learn magnitudes, and on the music corpus a 3000-step CPU run never
        did (its latents carried no pitch, issue 8)."""
        if self.config.encoder_input == "log_magnitude":
            feats = torch.log(spec.abs() + 1e-4)  # (N, ch, bins, F)
        else:
            spec = spec * (spec.abs() + 1e-5).pow(-0.7)  # power-law compression evens out the range
            feats = torch.view_as_real(spec).movedim(-1, 2)  # (N, ch, 2, bins, F)
        return feats.flatten(1, -2)  # (N, features, F)

    def _encoder_features(self, audio: torch.Tensor) -> torch.Tensor:
        """(B, ch, S) -> (B, features, F) standardised encoder input at the STFT frame rate."""
        batch, channels, samples = audio.shape
        cfg = self.config
        spec = stft_same(audio.reshape(batch * channels, samples).float(), cfg.n_fft,
                         cfg.stft_hop_length, self.window)  # (B*ch, bins, F) complex
        feats = self._raw_features(spec.view(batch, channels, *spec.shape[1:]))  # (B, features, F)
        if cfg.encoder_input == "log_magnitude":
            feats = (feats - self.encoder_input_mean[:, None]) / self.encoder_input_std[:, None]
        return feats.to(self.encoder_in.weight.dtype)

    def _encode_frames(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, ch, T * hop_length) -> posterior mean and std, each (B, C, T)."""
        feats = self._encoder_features(audio)  # (B, features, F)
        h = self.encoder_in_norm(self.encoder_in(feats))  # (B, D, F)
        h = self.encoder_frame(h)  # (B, D, F)
        h = self.encoder_latent(self.encoder_down(h))  # (B, D, T)
        mean, scale = self.encoder_out(h).chunk(2, dim=1)  # (B, C, T) each
        return mean, F.softplus(scale) + 1e-4

    def encode(self, audio: torch.Tensor, return_dict: bool = True):
        """audio (B, audio_channels, S) -> posterior over latents (B, C, ceil(S / hop_length))."""
        self._check_audio(audio)
        frames = self.latent_frames(audio.shape[-1])
        audio = F.pad(audio, (0, frames * self.hop_length - audio.shape[-1]))  # (B, ch, T * hop)
        if self.use_tiling and frames > self.tile_latent_frames:
            mean, std = self._tiled_encode(audio, frames)
        else:
            mean, std = self._encode_frames(audio)
        posterior = DiagonalGaussianDistribution(mean, std)
        return AudioVAEEncoderOutput(latent_dist=posterior) if return_dict else (posterior,)

    def _tiled_encode(self, audio: torch.Tensor, frames: int):
        mean = std = None
        tiles = _plan_tiles(frames, self.tile_latent_frames, self.overlap_latent_frames)
        for index, (start, end) in enumerate(tiles):
            tile_mean, tile_std = self._encode_frames(audio[..., start * self.hop_length:end * self.hop_length])
            overlap_in = tiles[index - 1][1] - start if index > 0 else 0
            overlap_out = end - tiles[index + 1][0] if index + 1 < len(tiles) else 0
            weights = _crossfade_weights(end - start, overlap_in, overlap_out).to(tile_mean)  # (t,)
            if mean is None:
                mean = tile_mean.new_zeros(*tile_mean.shape[:2], frames)
                std = torch.zeros_like(mean)
            mean[..., start:end] += weights * tile_mean
            std[..., start:end] += weights * tile_std
        return mean, std

    # ------------------------------------------------------------------ decode
    def bin_phase_advance(self, num_frames: int, first_frame: int = 0) -> torch.Tensor:
        """(bins, F) phase of a sinusoid at each bin's centre frequency in STFT frames
        first_frame .. first_frame + F - 1: 2 pi k hop i / n_fft, computed modulo n_fft in integers
        so it stays exact for any length."""
        cfg = self.config
        bins = torch.arange(cfg.n_fft // 2 + 1, device=self.window.device)[:, None]  # (bins, 1)
        frames = torch.arange(first_frame, first_frame + num_frames, device=self.window.device)  # (F,)
        cycles = (bins * cfg.stft_hop_length * frames) % cfg.n_fft  # (bins, F)
        return cycles.float() * (2.0 * math.pi / cfg.n_fft)

    def decode_spectrum(self, latents: torch.Tensor, first_latent_frame: int = 0) -> torch.Tensor:
        """(B, C, T) -> the decoder's complex STFT (B, ch, bins, T * frames_per_latent), before the
        inverse STFT. `first_latent_frame` is where these latents start in the whole clip (tiles), so
        the phase advance lines up across tiles.

        With `phase_advance` the head's phase is added to each bin's centre-frequency advance, so a
        constant prediction renders a steady sinusoid at that bin's frequency. Without it a constant
        phase repeats every STFT hop: the output is a comb on multiples of sampling_rate / hop
        (100 Hz) whatever the magnitudes say, and the decoder must learn a per-bin phase rotation
        before any pitch can come out (measured: a 3000-step CPU run never did, issue 8)."""
        cfg = self.config
        batch = latents.shape[0]
        h = self.decoder_in_norm(self.decoder_in(latents))  # (B, D, T)
        h = self.decoder_up(self.decoder_latent(h))  # (B, D, F = T * frames_per_latent)
        h = self.decoder_frame(h).transpose(1, 2)  # (B, F, D)
        out = self.decoder_head(self.decoder_out_norm(h)).float()  # (B, F, ch*2*bins)
        out = out.reshape(batch, out.shape[1], self.audio_channels, 2, -1)  # (B, F, ch, 2, bins)
        log_magnitude, phase = out.permute(3, 0, 2, 4, 1)  # (B, ch, bins, F) each
        if cfg.phase_advance:
            phase = phase + self.bin_phase_advance(phase.shape[-1], first_latent_frame * cfg.frames_per_latent)
        magnitude = log_magnitude.clamp(max=self.max_log_magnitude).exp()
        return torch.polar(magnitude, phase)  # (B, ch, bins, F) complex

    def spectrum_to_audio(self, spec: torch.Tensor) -> torch.Tensor:
        """The decoder's complex STFT (B, ch, bins, F) -> waveform (B, ch, F * stft_hop_length)."""
        cfg = self.config
        audio = istft_same(spec.flatten(0, 1), cfg.n_fft, cfg.stft_hop_length, self.window)  # (B*ch, S)
        return audio.reshape(spec.shape[0], spec.shape[1], -1)

    def _decode_frames(self, latents: torch.Tensor, first_latent_frame: int = 0) -> torch.Tensor:
        """(B, C, T) -> waveform (B, ch, T * hop_length) (`decode_spectrum`, then the inverse STFT)."""
        return self.spectrum_to_audio(self.decode_spectrum(latents, first_latent_frame)).to(latents.dtype)

    def decode(self, latents: torch.Tensor, length: int | None = None, return_dict: bool = True,
               output_phase: str | None = None, first_latent_frame: int = 0):
        """latents (B, C, T) -> waveform (B, audio_channels, length or T * hop_length).

        `first_latent_frame`: where these latents start in a longer piece decoded part by part
        (`audiodit.longform`), so the decoder's phase advance continues across the parts.

        `latents` are the VAE's own (not multiplied by scaling_factor). `output_phase` (None: the
        config's `output_phase`): "decoder" renders the decoder's own phase; "magnitude" keeps the
        decoded audio's STFT magnitudes and, in the bins below `magnitude_phase_below_hz`, replaces
        its phase with one built from those magnitudes' spectral peaks
        (`audiodit.phase_reconstruction`). There a 25 Hz bin is wider than a semitone (below about
        420 Hz) and the decoder's phase does not put bass notes on their pitch; above it the
        decoder's phase is kept, with its transients. "rebuilt" keeps only the decoder's predicted
        magnitudes and builds the whole spectrum's phase from them (`_rebuilt_audio`): the decoder's
        own phase is where its 40 ms frame-rate artefact lives (issue 24: its magnitudes with the real
        phase pulse no more than the real audio does, the real magnitudes with its phase do). In
        training mode the decoder's phase is always used: it is what the losses train."""
        if latents.ndim != 3 or latents.shape[1] != self.latent_channels or latents.shape[-1] == 0:
            raise ValueError(f"latents must be (batch, {self.latent_channels}, frames) with frames > 0, "
                             f"got shape {tuple(latents.shape)}")
        if length is not None and (not isinstance(length, int) or length <= 0):
            raise ValueError(f"length must be a positive int (samples), got {length!r}")
        if not isinstance(first_latent_frame, int) or first_latent_frame < 0:
            raise ValueError(f"first_latent_frame must be an int >= 0, got {first_latent_frame!r}")
        frames = latents.shape[-1]
        first = first_latent_frame
        output_phase = self.config.output_phase if output_phase is None else output_phase
        check_output_phase(output_phase)
        if output_phase == "rebuilt" and not self.training:
            tiled = self.use_tiling and frames > self.tile_latent_frames
            magnitude = (self._tiled_magnitude(latents, frames, first) if tiled
                         else self.decode_spectrum(latents, first).abs())
            audio = self._rebuilt_audio(magnitude).to(latents.dtype)
        elif self.use_tiling and frames > self.tile_latent_frames:
            audio = self._tiled_decode(latents, frames, first)
        else:
            audio = self._decode_frames(latents, first)
        if output_phase == "magnitude" and not self.training:
            audio = self._magnitude_phase_(audio.float().contiguous()).to(latents.dtype)
        if length is not None:
            audio = F.pad(audio, (0, length - audio.shape[-1])) if length > audio.shape[-1] else audio[..., :length]
        return AudioVAEDecoderOutput(sample=audio) if return_dict else (audio,)

    def _magnitude_phase_(self, audio: torch.Tensor, block_frames: int = PHASE_BLOCK_FRAMES) -> torch.Tensor:
        """In place on (B, ch, S) float32 audio with S % stft_hop_length == 0: the same magnitudes,
        the phase below `magnitude_phase_below_hz` rebuilt from them. Returns `audio`.

        The STFT is linear and `istft_same(stft_same(x)) == x`, so the result is x plus the inverse
        STFT of (rebuilt - original) low bins. That change is built `block_frames` STFT frames at a
        time, carrying the phase state and the overlap-add tail across blocks, and each block's
        finished samples are added in place: beyond the audio itself, memory is one block's."""
        cfg = self.config
        hop, n_fft = cfg.stft_hop_length, cfg.n_fft
        batch, channels, samples = audio.shape
        flat = audio.view(batch * channels, samples)  # (N, S)
        window = self.window.float()
        low_bins = math.ceil(cfg.magnitude_phase_below_hz * n_fft / cfg.sampling_rate)
        seen_bins = min(low_bins + 4, n_fft // 2 + 1)  # the main lobes of peaks just above the band
        pad, tail = (n_fft - hop) // 2, n_fft - hop  # stft_same's padding; samples a frame reaches past its hop
        total_frames = samples // hop
        carry, carry_envelope = flat.new_zeros(flat.shape[0], tail), flat.new_zeros(tail)
        state = None
        for start in range(0, total_frames, block_frames):
            frames = min(block_frames, total_frames - start)
            first, last = start * hop - pad, (start + frames - 1) * hop + n_fft - pad  # in samples of `flat`
            segment = flat[:, max(first, 0):min(last, samples)]
            segment = F.pad(segment.unsqueeze(1), (max(-first, 0), max(last - samples, 0)), mode="reflect").squeeze(1)
            spec = torch.stft(segment, n_fft, hop, window=window, center=False, return_complex=True)[:, :seen_bins]
            rebuilt, state = magnitude_phase_block(spec.abs(), hop, n_fft, state)  # (N, seen_bins, frames)
            change = torch.fft.irfft(rebuilt[:, :low_bins] - spec[:, :low_bins], n=n_fft, dim=1)  # (N, n_fft, frames)
            fold = dict(output_size=(1, last - first), kernel_size=(1, n_fft), stride=(1, hop))
            added = F.fold(change * window[None, :, None], **fold)[:, 0, 0]  # (N, last - first)
            envelope = F.fold(window.square()[None, :, None].expand(1, n_fft, frames), **fold)[0, 0, 0]
            added[:, :tail] += carry
            envelope[:tail] += carry_envelope
            done = last - first - (tail if start + frames < total_frames else 0)  # no later frame reaches these
            keep_from, keep_to = max(first, 0), min(first + done, samples)
            flat[:, keep_from:keep_to] += (added[:, keep_from - first:keep_to - first]
                                           / envelope[keep_from - first:keep_to - first])
            carry, carry_envelope = added[:, done:], envelope[done:]
        return audio

    def _rebuilt_audio(self, magnitude: torch.Tensor, block_frames: int = PHASE_BLOCK_FRAMES,
                       margin: int = PHASE_ITERATION_MARGIN) -> torch.Tensor:
        """Magnitudes (B, ch, bins, F) -> waveform (B, ch, F * stft_hop_length) float32, with a phase
        built from the magnitudes alone.

        1. `audiodit.phase_reconstruction` gives every bin a phase from its frame's spectral peaks,
           advanced frame to frame at each peak's frequency: nothing in it knows where a latent
           frame begins, so nothing repeats every 40 ms, and bass partials land on their pitch.
        2. `phase_iterations` fast Griffin-Lim iterations (Perraudin, Balazs and Søndergaard 2013:
           Griffin and Lim 1984 with momentum) start from that phase and make the spectrum more
           consistent with the given magnitudes (sharper transients; measured in issue 24).
        Both run `block_frames` STFT frames at a time: the peak phase carries its state across blocks
        (exactly as all at once); the iterations see `margin` frames of context on each side of
        their block and keep only the block's own samples, so blocks join without a seam that
        matters (with no iterations the result equals the one-pass result). Memory beyond the
        magnitudes and their phase: one block's."""
        cfg = self.config
        hop, n_fft = cfg.stft_hop_length, cfg.n_fft
        batch, channels, bins, total = magnitude.shape
        flat = magnitude.reshape(batch * channels, bins, total).float()  # (N, K, F)
        window = self.window.float()
        phase = torch.empty_like(flat)
        state = None
        for start in range(0, total, block_frames):
            block, state = magnitude_phase_block(flat[..., start:start + block_frames], hop, n_fft, state)
            phase[..., start:start + block_frames] = block.angle()
        iterations = cfg.phase_iterations
        context = max(margin, 3) if iterations else 3  # a sample needs the n_fft / hop frames around it
        audio = flat.new_empty(flat.shape[0], total * hop)
        for start in range(0, total, block_frames):
            end = min(start + block_frames, total)
            first, last = max(start - context, 0), min(end + context, total)
            target = flat[..., first:last]
            spec = torch.polar(target, phase[..., first:last])
            previous = None
            for _ in range(iterations):
                projected = stft_same(istft_same(spec, n_fft, hop, window), n_fft, hop, window)
                accelerated = projected if previous is None else projected + PHASE_MOMENTUM * (projected - previous)
                previous = projected
                spec = torch.polar(target, accelerated.angle())
            samples = istft_same(spec, n_fft, hop, window)  # (N, (last - first) * hop)
            audio[:, start * hop:end * hop] = samples[:, (start - first) * hop:(end - first) * hop]
        return audio.reshape(batch, channels, total * hop)

    def _tiled_magnitude(self, latents: torch.Tensor, frames: int, first_latent_frame: int = 0) -> torch.Tensor:
        """The decoder's magnitudes (B, ch, bins, frames * frames_per_latent) tile by tile, the
        tiles cross-faded over their overlaps as `_tiled_decode` cross-fades audio."""
        per_latent = self.config.frames_per_latent
        bins = self.config.n_fft // 2 + 1
        magnitude = latents.new_zeros(latents.shape[0], self.audio_channels, bins, frames * per_latent,
                                      dtype=torch.float32)
        tiles = _plan_tiles(frames, self.tile_latent_frames, self.overlap_latent_frames)
        for index, (start, end) in enumerate(tiles):
            tile = self.decode_spectrum(latents[..., start:end], first_latent_frame + start).abs()  # (B, ch, bins, (end - start) * per_latent)
            overlap_in = (tiles[index - 1][1] - start) * per_latent if index > 0 else 0
            overlap_out = (end - tiles[index + 1][0]) * per_latent if index + 1 < len(tiles) else 0
            weights = _crossfade_weights((end - start) * per_latent, overlap_in, overlap_out).to(tile)
            magnitude[..., start * per_latent:end * per_latent] += weights * tile
        return magnitude

    def _tiled_decode(self, latents: torch.Tensor, frames: int, first_latent_frame: int = 0) -> torch.Tensor:
        hop = self.hop_length
        audio = latents.new_zeros(latents.shape[0], self.audio_channels, frames * hop)  # (B, ch, S)
        tiles = _plan_tiles(frames, self.tile_latent_frames, self.overlap_latent_frames)
        for index, (start, end) in enumerate(tiles):
            tile_audio = self._decode_frames(latents[..., start:end], first_latent_frame + start)  # (B, ch, (end - start) * hop)
            overlap_in = (tiles[index - 1][1] - start) * hop if index > 0 else 0
            overlap_out = (end - tiles[index + 1][0]) * hop if index + 1 < len(tiles) else 0
            weights = _crossfade_weights((end - start) * hop, overlap_in, overlap_out).to(tile_audio)
            audio[..., start * hop:end * hop] += weights * tile_audio
        return audio

    # ------------------------------------------------------------------ tiling
    def enable_tiling(self, tile_latent_frames: int | None = None, overlap_latent_frames: int | None = None):
        """Process inputs longer than `tile_latent_frames` in overlapping tiles (bounded memory)."""
        tile = tile_latent_frames or self.tile_latent_frames
        overlap = self.overlap_latent_frames if overlap_latent_frames is None else overlap_latent_frames
        if not 0 <= 2 * overlap <= tile:
            raise ValueError(f"need 0 <= overlap_latent_frames ({overlap}) <= tile_latent_frames ({tile}) / 2")
        self.use_tiling, self.tile_latent_frames, self.overlap_latent_frames = True, tile, overlap

    def disable_tiling(self):
        self.use_tiling = False

    def forward(self, audio: torch.Tensor, sample_posterior: bool = False,
                generator: torch.Generator | None = None, return_dict: bool = True):
        """Reconstruct `audio` (B, ch, S): encode, take the mean (or a sample), decode to length S."""
        posterior = self.encode(audio).latent_dist
        latents = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(latents, length=audio.shape[-1], return_dict=return_dict)
