"""The project's configuration: one typed dataclass per component, composed into `Config`.

Model configs (VAE, DiT, text encoder) live beside their models; the others live here.
YAML files in `configs/` fill a `Config`; `key=value` overrides (`dit.depth=12`) refine it.

    cfg = load_config("configs/dit_tiny.yaml", ["training.max_steps=10"])
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Literal

from audiodit.conditioners import TextEncoderConfig
from audiodit.configuration import ConfigError, apply_overrides, load_yaml
from audiodit.lora import DIT_TARGETS
from audiodit.losses import VAELossConfig
from audiodit.models.dit import DiTConfig
from audiodit.models.vae import VAEConfig


def _require(section: str, checks: dict[str, tuple[object, bool, str]]) -> None:
    """ConfigError for the first `name: (value, ok, rule)` whose `ok` is False: one line naming the
    dotted key, the rule it breaks and the value."""
    for name, (value, ok, rule) in checks.items():
        if not ok:
            raise ConfigError(f"{section}.{name} must be {rule}, got {value!r}")


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


@dataclass
class AudioConfig:
    sample_rate: int = 48000  # every waveform inside audiodit is at this rate (Hz)
    channels: int = 2  # stereo; mono is duplicated, more channels are down-mixed on load
    normalize: Literal["none", "peak", "rms"] = "none"  # level normalisation on load
    target_db: float = -1.0  # peak dBFS for "peak", or RMS dBFS for "rms"

    def __post_init__(self):
        if self.sample_rate <= 0:
            raise ConfigError(f"audio.sample_rate must be positive, got {self.sample_rate}")
        if self.channels != 2:
            raise ConfigError(f"audio.channels must be 2 (stereo), got {self.channels}")


@dataclass
class DiffusionConfig:
    # Rectified flow: x_t = (1 - t) x_0 + t noise, the model predicts v = noise - x_0.
    timestep_sampling: Literal["logit_normal", "uniform"] = "logit_normal"  # SD3 paper §3.1
    logit_mean: float = 0.0  # mean of the logit-normal t distribution
    logit_std: float = 1.0  # std of the logit-normal t distribution
    scheduler: str = "FlowMatchEulerDiscreteScheduler"  # diffusers scheduler used for sampling
    num_inference_steps: int = 50  # default sampling steps
    guidance_scale: float = 4.0  # default classifier-free guidance scale
    shift: float = 1.0  # flow-matching timestep shift used by the scheduler

    def __post_init__(self):
        _require("diffusion", {
            "logit_std": (self.logit_std, _finite(self.logit_std) and self.logit_std > 0, "a positive number"),
            "logit_mean": (self.logit_mean, _finite(self.logit_mean), "a finite number"),
            "num_inference_steps": (self.num_inference_steps, 1 <= self.num_inference_steps <= 1000, "in [1, 1000]"),
            "guidance_scale": (self.guidance_scale, _finite(self.guidance_scale) and self.guidance_scale >= 0,
                               "a finite number >= 0"),
            "shift": (self.shift, _finite(self.shift) and self.shift > 0, "a positive number"),
        })


@dataclass
class DataConfig:
    train_dir: str = ""  # folder of audio + captions (stage vae/dit) or pre-encoded shards
    val_dir: str = ""  # optional validation folder
    format: Literal["folder", "latents", "webdataset"] = "folder"  # how train_dir is stored
    clip_seconds: float = 10.0  # length of random training crops (seconds)
    min_seconds: float = 1.0  # shorter files are skipped (counted as bad)
    batch_size: int = 8  # clips per process per step
    num_workers: int = 0  # DataLoader workers
    shuffle_buffer: int = 1000  # webdataset shuffle buffer (samples)
    num_buckets: int = 1  # length buckets up to clip_seconds (1 = every clip padded to clip_seconds)
    # dit stage, training only: leave parts of captions out (audiodit.data.caption_augment)
    caption_tempo_drop: float = 0.0  # probability of removing a caption's tempo ("120 BPM")
    caption_key_drop: float = 0.0  # probability of removing a caption's key ("in D minor")
    caption_clause_drop: float = 0.0  # probability of removing each clause after a caption's first
    melody_drop: float = 0.5  # dit.melody_conditioning: probability of training a clip without its melody

    def __post_init__(self):
        _require("data", {
            "clip_seconds": (self.clip_seconds, _finite(self.clip_seconds) and self.clip_seconds > 0, "a positive number"),
            "min_seconds": (self.min_seconds, _finite(self.min_seconds) and self.min_seconds >= 0, "a number >= 0"),
            "batch_size": (self.batch_size, self.batch_size >= 1, ">= 1"),
            "num_workers": (self.num_workers, self.num_workers >= 0, ">= 0"),
            "shuffle_buffer": (self.shuffle_buffer, self.shuffle_buffer >= 1, ">= 1"),
            "num_buckets": (self.num_buckets, self.num_buckets >= 1, ">= 1"),
            **{name: (getattr(self, name), _finite(getattr(self, name)) and 0 <= getattr(self, name) <= 1, "in [0, 1]")
               for name in ("caption_tempo_drop", "caption_key_drop", "caption_clause_drop", "melody_drop")},
        })


@dataclass
class LoRAConfig:
    # Low-rank adapters (audiodit.lora, docs/lora.md): with rank > 0 only the adapters train, and
    # checkpoints and exports hold only them; training.init_from names the pipeline they adapt.
    rank: int = 0  # 0: no adapters (the configured model trains); > 0: the adapters' rank
    alpha: float = 0.0  # updates are scaled by alpha / rank (0: alpha = rank, a scale of 1)
    dropout: float = 0.0  # dropout on the adapters' input
    target_modules: list[str] = field(default_factory=lambda: list(DIT_TARGETS))  # DiT linear layers adapted (names or name endings)
    text_target_modules: list[str] = field(default_factory=list)  # text tower layers adapted ([]: the tower stays as trained), e.g. [mlp.c_fc, mlp.c_proj]

    def __post_init__(self):
        _require("training.lora", {
            "rank": (self.rank, self.rank >= 0, ">= 0 (0 disables LoRA)"),
            "alpha": (self.alpha, _finite(self.alpha) and self.alpha >= 0, "a finite number >= 0 (0: alpha = rank)"),
            "dropout": (self.dropout, _finite(self.dropout) and 0 <= self.dropout < 1, "in [0, 1)"),
            "target_modules": (self.target_modules, bool(self.target_modules) or self.rank == 0,
                               "a non-empty list of layer names when rank > 0"),
        })

    @property
    def enabled(self) -> bool:
        return self.rank > 0


@dataclass
class TrainingConfig:
    output_dir: str = "runs/default"  # checkpoints, logs and exported pipelines go here
    seed: int = 0  # global seed (per-process seeds derive from it)
    max_steps: int = 1000  # optimizer steps
    lr: float = 1e-4  # peak learning rate (AdamW)
    weight_decay: float = 0.01  # AdamW weight decay
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW betas
    warmup_steps: int = 100  # linear warm-up steps
    lr_schedule: Literal["cosine", "constant", "linear"] = "cosine"  # decay after warm-up
    grad_clip: float = 1.0  # max gradient norm (0 disables)
    grad_accum_steps: int = 1  # gradient accumulation
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"  # accelerate mixed precision
    ema_decay: float = 0.999  # EMA of weights (0 disables)
    gradient_checkpointing: bool = False  # trade compute for memory in the DiT
    compile: bool = False  # torch.compile the trained model
    checkpoint_every: int = 500  # steps between checkpoints
    keep_checkpoints: int = 3  # keep the last K checkpoints
    log_every: int = 10  # steps between scalar logs
    sample_every: int = 0  # steps between generated audio logs (0 disables)
    max_nonfinite_in_a_row: int = 10  # stop after this many non-finite losses in a row
    adversarial_start_step: int = 2000  # VAE stage: switch the discriminator on after this
    max_epochs: int = 0  # also stop after this many passes over the data (0 = only max_steps)
    stop_at_step: int = 0  # stop after this step, with the LR schedule still spanning max_steps (0 = at max_steps)
    vae_loss: VAELossConfig = field(default_factory=VAELossConfig)  # VAE stage loss weights (its adversarial_start_step is replaced by the one above)
    scaling_batches: int = 8  # fresh runs: batches for data-dependent set-up (dit: vae.scaling_factor
    # when it is 1.0; vae: the decoder's initial mean spectrum)
    sample_prompts: list[str] = field(default_factory=lambda: ["rain on a tin roof"])  # dit stage: prompts for sample logs
    sample_steps: int = 10  # dit stage: sampling steps for sample logs
    val_batches: int = 4  # batches of data.val_dir evaluated at each checkpoint (val/loss; needs data.val_dir)
    init_from: str = ""  # fresh runs: start from trained weights (vae stage: a VAE, pipeline or run; dit stage: a pipeline or dit run) instead of a random init
    freeze: list[str] = field(default_factory=list)  # parameter-name prefixes kept fixed, e.g. [vae.encoder] to fine-tune only the decoder
    log_sample_ids: bool = False  # write the clip ids each process trains on to output_dir/sample_ids/rank_R.txt
    lora: LoRAConfig = field(default_factory=LoRAConfig)  # dit stage: train low-rank adapters instead of the model
    packed: bool = False  # dit stage: each batch's clips as one sequence of their real frames, no padding (forward_packed; NaViT)

    def __post_init__(self):
        # Each of these once ran as a silent no-op run that exited 0, or failed after set-up (issue 22).
        _require("training", {
            "max_steps": (self.max_steps, self.max_steps >= 1, ">= 1"),
            "lr": (self.lr, _finite(self.lr) and self.lr > 0, "a positive finite number"),
            "weight_decay": (self.weight_decay, _finite(self.weight_decay) and self.weight_decay >= 0,
                             "a finite number >= 0"),
            "betas": (self.betas, len(self.betas) == 2 and all(_finite(b) and 0 <= b < 1 for b in self.betas),
                      "two numbers in [0, 1)"),
            "warmup_steps": (self.warmup_steps, self.warmup_steps >= 0, ">= 0"),
            "grad_clip": (self.grad_clip, _finite(self.grad_clip) and self.grad_clip >= 0, "a finite number >= 0"),
            "grad_accum_steps": (self.grad_accum_steps, self.grad_accum_steps >= 1, ">= 1"),
            "ema_decay": (self.ema_decay, _finite(self.ema_decay) and 0 <= self.ema_decay < 1,
                          "in [0, 1) (0 disables the EMA)"),
            "checkpoint_every": (self.checkpoint_every, self.checkpoint_every >= 1, ">= 1"),
            "keep_checkpoints": (self.keep_checkpoints, self.keep_checkpoints >= 1, ">= 1"),
            "log_every": (self.log_every, self.log_every >= 1, ">= 1"),
            "sample_every": (self.sample_every, self.sample_every >= 0, ">= 0 (0 disables)"),
            "max_nonfinite_in_a_row": (self.max_nonfinite_in_a_row, self.max_nonfinite_in_a_row >= 1, ">= 1"),
            "adversarial_start_step": (self.adversarial_start_step, self.adversarial_start_step >= 0, ">= 0"),
            "max_epochs": (self.max_epochs, self.max_epochs >= 0, ">= 0 (0 = only max_steps)"),
            "stop_at_step": (self.stop_at_step, 0 <= self.stop_at_step <= self.max_steps,
                             f"in [0, max_steps = {self.max_steps}] (0 = at max_steps)"),
            "scaling_batches": (self.scaling_batches, self.scaling_batches >= 1, ">= 1"),
            "sample_steps": (self.sample_steps, 1 <= self.sample_steps <= 1000, "in [1, 1000]"),
            "val_batches": (self.val_batches, self.val_batches >= 1, ">= 1"),
        })
        if self.lora.enabled and not self.init_from:
            raise ConfigError("training.lora needs training.init_from: the trained pipeline (or dit run) whose "
                              "model the adapters adapt")


@dataclass
class KeyClassifierConfig:
    # The latent key classifier (audiodit.models.key_classifier) and its noising in training.
    width: int = 128  # channels of its convolutions
    dilations: list[int] = field(default_factory=lambda: [1, 2, 4, 8, 1, 2])  # one residual block each
    max_t: float = 0.9  # largest noise level trained on (the sampler asks about every level it passes)
    clean_fraction: float = 0.3  # share of crops trained clean (t = 0)

    def __post_init__(self):
        _require("key_classifier", {
            "width": (self.width, self.width >= 1, ">= 1"),
            "dilations": (self.dilations, len(self.dilations) >= 1 and all(d >= 1 for d in self.dilations),
                          "a non-empty list of integers >= 1"),
            "max_t": (self.max_t, _finite(self.max_t) and 0 <= self.max_t < 1, "in [0, 1)"),
            "clean_fraction": (self.clean_fraction, _finite(self.clean_fraction) and 0 <= self.clean_fraction <= 1,
                               "in [0, 1]"),
        })


@dataclass
class Config:
    stage: Literal["vae", "dit", "key_classifier"] = "dit"  # which model train.py trains
    audio: AudioConfig = field(default_factory=AudioConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    dit: DiTConfig = field(default_factory=DiTConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    key_classifier: KeyClassifierConfig = field(default_factory=KeyClassifierConfig)
    vae_path: str = ""  # dit stage: directory of a trained VAE (save_pretrained format)


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Read `path` (YAML) into a `Config`, then apply `key=value` overrides."""
    cfg = load_yaml(Config, path) if path else Config()
    return apply_overrides(cfg, list(overrides or []))
