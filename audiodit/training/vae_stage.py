"""VAE stage: reconstruction + KL, then adversarial losses after `training.adversarial_start_step`.

Losses come from `audiodit.losses.VAELoss` (weights in `training.vae_loss`). The discriminator has
its own AdamW (same lr and betas). Exports are `AudioVAE.save_pretrained` directories (safetensors,
EMA weights), which the `dit` stage reads through `vae_path`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import torch
from torch import nn

from audiodit.losses import VAELoss, stft_consistency_loss
from audiodit.models.vae import AudioVAE, DiagonalGaussianDistribution
from audiodit.training.checkpoints import resolve_vae_dir
from audiodit.training.stage import Stage, build_audio_dataset, check_architecture, load_weights
from audiodit.training.tensorboard_logs import log_audio


class VAETrainModule(nn.Module):
    """What DDP wraps: the VAE's encode -> sample -> decode, returning plain tensors."""

    def __init__(self, vae: AudioVAE):
        super().__init__()
        self.vae = vae

    def forward(self, audio: torch.Tensor):
        posterior = self.vae.encode(audio).latent_dist
        latents = posterior.sample()  # (B, C, T); global RNG, restored on resume
        spectrum = self.vae.decode_spectrum(latents)  # (B, 2, bins, F) complex
        full = self.vae.spectrum_to_audio(spectrum)  # (B, 2, F * stft_hop_length)
        fake = full[..., : audio.shape[-1]].to(latents.dtype)  # (B, 2, S); as decode(latents, length=S)
        return fake, posterior.mean, posterior.std, spectrum, full


@contextlib.contextmanager
def _swapped(owner: nn.Module, name: str, module: nn.Module):
    """Temporarily replace `owner.name` (to run the loss through the DDP-wrapped discriminator)."""
    original = getattr(owner, name)
    owner._modules[name] = module
    try:
        yield
    finally:
        owner._modules[name] = original


class VAEStage(Stage):
    name = "vae"
    export_dirname = "vae"

    def __init__(self, cfg, accelerator):
        super().__init__(cfg, accelerator)
        if cfg.training.packed:
            raise ValueError("training.packed is the dit stage's (the VAE convolves its clips, it does not attend)")
        if cfg.vae.sampling_rate != cfg.audio.sample_rate:
            raise ValueError(f"vae.sampling_rate ({cfg.vae.sampling_rate}) must equal audio.sample_rate "
                             f"({cfg.audio.sample_rate})")
        self.model = VAETrainModule(AudioVAE(**dataclasses.asdict(cfg.vae)))
        loss_cfg = dataclasses.replace(
            cfg.training.vae_loss,
            adversarial_start_step=cfg.training.adversarial_start_step,
            sample_rate=cfg.audio.sample_rate,
        )
        self.loss_fn = VAELoss(loss_cfg, audio_channels=cfg.audio.channels).to(accelerator.device)
        self.discriminator = self.loss_fn.discriminator

    def setup(self, first_batches):
        """Fresh run: start the decoder at the training data's mean spectrum and, for log-magnitude
        encoder inputs, standardise them with the data's statistics; both averaged over the first
        `training.scaling_batches` batches of every process (`AudioVAE.set_output_log_magnitude`
        and `AudioVAE.set_encoder_input_statistics` explain why)."""
        vae = self.model.vae
        standardise = vae.config.encoder_input == "log_magnitude"
        total, moments, count = None, None, 0
        for index, batch in enumerate(first_batches):
            if index >= self.cfg.training.scaling_batches:
                break
            audio = batch["audio"].to(self.accelerator.device)  # (B, 2, S)
            lengths = [int(n) for n in batch["num_samples"]]
            mean = vae.mean_log_magnitude(audio, lengths)  # (ch, bins)
            total = mean if total is None else total + mean
            if standardise:
                item = vae.encoder_input_moments(audio, lengths)  # (2, features)
                moments = item if moments is None else moments + item
            count += 1
        if total is None:
            return
        log_magnitude = self.accelerator.reduce(total / count, reduction="mean")  # same on every rank
        if standardise:
            moments = self.accelerator.reduce(moments / count, reduction="mean")
        vae.initialize_from_statistics(log_magnitude, moments)  # as initialize_from_audio, over batches and ranks
        self.accelerator.print(f"vae: decoder output initialised at the data's mean log-magnitude "
                               f"({float(log_magnitude.mean()):.2f} over {count} batch(es) per process)"
                               + ("; encoder input standardised with the same batches' statistics" if standardise else ""))

    def initialize_from(self, path, first_batches):
        """Start from a trained VAE (a VAE directory, a pipeline's `vae/`, or a vae/dit run's latest
        export) instead of `setup`. Its `scaling_factor` is kept unless the config sets one, so a
        decoder fine-tuned with `training.freeze: [vae.encoder]` drops into the DiT trained on it."""
        source = resolve_vae_dir(path, "training.init_from", ("pipeline", "vae"))
        trained = AudioVAE.from_pretrained(str(source))
        check_architecture("vae", dataclasses.asdict(self.cfg.vae), dict(trained.config), source,
                           ignore=("scaling_factor", "decoder_upsample"))
        vae = self.model.vae
        state = trained.state_dict()
        if trained.config.decoder_upsample != self.cfg.vae.decoder_upsample:
            state = convert_decoder_upsample(state, self.cfg.vae.decoder_upsample)
            self.accelerator.print(f"vae: decoder upsampling converted from {trained.config.decoder_upsample} "
                                   f"to {self.cfg.vae.decoder_upsample}")
        load_weights(vae, state, "VAE", source)
        if float(self.cfg.vae.scaling_factor) == 1.0:
            vae.register_to_config(scaling_factor=float(trained.config.scaling_factor))
        self.accelerator.print(f"vae: started from {source} (scaling_factor {vae.config.scaling_factor:g})")

    def state_dict(self):
        return {"scaling_factor": float(self.model.vae.config.scaling_factor)}

    def load_state_dict(self, state):
        if "scaling_factor" in state:
            self.model.vae.register_to_config(scaling_factor=float(state["scaling_factor"]))

    def build_dataset(self, rank, world_size):
        return build_audio_dataset(self.cfg, rank, world_size, self.model.vae.hop_length)

    def prepare_batch(self, batch):
        return {"audio": batch["audio"].to(self.accelerator.device)}  # (B, 2, S)

    def compute_losses(self, model, inputs, step):
        real = inputs["audio"]
        fake, mean, std, spectrum, full = model(real)  # (B, 2, S), (B, C, T) x 2, (B, 2, bins, F), (B, 2, F * hop)
        posterior = DiagonalGaussianDistribution(mean.float(), std.float())
        total, terms = self.loss_fn.generator_loss(real, fake.float(), posterior, step)
        weight = self.cfg.training.vae_loss.consistency_weight
        if weight > 0:
            vae = self.model.vae
            terms["consistency"] = stft_consistency_loss(spectrum, full.float(), vae.config.n_fft,
                                                         vae.config.stft_hop_length, vae.window)
            total = total + weight * terms["consistency"]
        self._fake = fake.detach()
        return {"loss": total, **{k: v for k, v in terms.items() if k != "total"}}

    def discriminator_loss(self, discriminator, inputs, outputs, step):
        if not self.loss_fn.adversarial_active(step):
            return None
        with _swapped(self.loss_fn, "discriminator", discriminator):
            loss, _ = self.loss_fn.discriminator_loss(inputs["audio"], self._fake.float(), step)
        return loss

    def _vae_from_state(self, model_state) -> AudioVAE:
        scaling = float(self.model.vae.config.scaling_factor)  # the config's, or training.init_from's
        vae = AudioVAE(**{**dataclasses.asdict(self.cfg.vae), "scaling_factor": scaling})
        prefix = "vae."
        vae.load_state_dict({k[len(prefix):]: v.detach().cpu() for k, v in model_state.items()
                             if k.startswith(prefix)})
        return vae

    def export(self, model_state, out_dir: Path):
        self._vae_from_state(model_state).save_pretrained(str(out_dir), safe_serialization=True)

    @torch.no_grad()
    def log_samples(self, model_state, step, writer, batch):
        if batch is None:
            return
        vae = self._vae_from_state(model_state).eval()
        real = batch["audio"][:1].float().cpu()  # (1, 2, S)
        length = int(batch["num_samples"][0])
        fake = vae.decode(vae.encode(real).latent_dist.mode(), length=real.shape[-1]).sample
        rate = self.cfg.audio.sample_rate
        log_audio(writer, "vae/original", real[0, :, :length], rate, step)
        log_audio(writer, "vae/reconstruction", fake[0, :, :length], rate, step)


def convert_decoder_upsample(state: dict[str, torch.Tensor], upsample: str) -> dict[str, torch.Tensor]:
    """A trained VAE's weights with its decoder upsampling turned into `upsample`'s (fine-tuning
    a "transposed" VAE into an "interpolate" one, issue 24). The interpolating convolution starts
    as the transposed convolution's average over its frames_per_latent positions, at the centre
    tap: the same mapping without what differed between the positions, which is what repeated
    every latent frame."""
    if upsample != "interpolate":
        raise ValueError(f"vae.decoder_upsample: only a 'transposed' VAE converts (into 'interpolate'), not into {upsample!r}")
    state = dict(state)
    weight, bias = state.pop("decoder_up.1.weight"), state.pop("decoder_up.1.bias")  # (D, D, k), (D,)
    frames_per_latent = weight.shape[-1]
    converted = weight.new_zeros(weight.shape[1], weight.shape[0], 2 * frames_per_latent - 1)  # (out, in, 2k - 1)
    converted[:, :, frames_per_latent - 1] = weight.mean(-1).T
    state["decoder_up.1.1.weight"], state["decoder_up.1.1.bias"] = converted, bias
    return state
