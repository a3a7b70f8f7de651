"""What a training stage provides to the generic loop in `audiodit.training.trainer`.

A stage (VAE or DiT) knows its models, its data and its losses; the trainer knows everything else
(accelerate, optimizer, schedule, EMA, accumulation, checkpoints, logging). Stages are registered
by name in `STAGES` (the config's `stage` field picks one).
"""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from torch import nn

from audiodit.config import Config


def build_audio_dataset(cfg: Config, rank: int, world_size: int, length_multiple: int):
    """(dataset, collate) of audio clips for `data.format` folder or webdataset."""
    data, audio, seed = cfg.data, cfg.audio, cfg.training.seed
    from audiodit.data.folder import AudioFolderDataset, collate

    if data.format == "folder":
        dataset = AudioFolderDataset(
            data.train_dir, audio.sample_rate, data.clip_seconds, data.min_seconds,
            num_buckets=data.num_buckets, length_multiple=length_multiple, seed=seed,
            normalize=audio.normalize, target_db=audio.target_db,
        )
        return dataset, collate
    if data.format == "webdataset":
        from audiodit.data.webdataset import AudioWebDataset

        dataset = AudioWebDataset(
            data.train_dir, audio.sample_rate, data.clip_seconds, data.min_seconds, rank=rank,
            world_size=world_size, seed=seed, shuffle_buffer=data.shuffle_buffer,
            length_multiple=length_multiple, batch_size=data.batch_size,
            normalize=audio.normalize, target_db=audio.target_db,
        )
        return dataset, collate
    raise ValueError(f"data.format={data.format!r} holds no audio; use folder or webdataset")


class Stage:
    """Base class. Subclasses set `model` (the trained nn.Module) in `__init__`."""

    name = "base"
    export_dirname = "export"  # subdirectory of each checkpoint holding the ready-to-use export
    model: nn.Module  # trained by the main AdamW, averaged by EMA, exported
    discriminator: nn.Module | None = None  # optional second model with its own AdamW

    def __init__(self, cfg: Config, accelerator: Accelerator):
        self.cfg = cfg
        self.accelerator = accelerator

    def set_training(self, training: bool) -> None:
        """Train/eval mode of everything the losses run through (eval: no dropout, no condition dropout)."""
        self.model.train(training)

    def compile(self) -> None:
        """`training.compile`: torch.compile in place (state_dict keys stay unprefixed)."""
        self.model.compile()

    # ------------------------------------------------------------------ data
    def build_dataset(self, rank: int, world_size: int):
        """(dataset, collate_fn). A map-style dataset exposes `buckets` (one id per item) and takes
        `(index, epoch)` keys; an IterableDataset shards itself by `rank`/`world_size`."""
        raise NotImplementedError

    def prepare_batch(self, batch: dict) -> dict:
        """Move a collated batch to the device and do the frozen work (no gradients)."""
        raise NotImplementedError

    def setup(self, first_batches) -> None:
        """Called once on a fresh run with an iterator over early batches (e.g. to estimate the
        latent scaling factor). Must not touch the global RNG."""

    # ------------------------------------------------------------------ losses
    def compute_losses(self, model: nn.Module, inputs: dict, step: int) -> dict[str, torch.Tensor]:
        """Run the (accelerate-wrapped) `model`; return a dict with the total `loss` plus parts."""
        raise NotImplementedError

    def discriminator_loss(self, discriminator: nn.Module, inputs: dict, outputs: dict, step: int):
        """Loss of the discriminator, or None when it is not trained at this step."""
        return None

    # ------------------------------------------------------------------ export and samples
    def export(self, model_state: dict[str, torch.Tensor], out_dir: Path) -> None:
        """Write a ready-to-use directory from the trained model's (EMA) state dict."""
        raise NotImplementedError

    def log_samples(self, model_state: dict[str, torch.Tensor], step: int, writer, batch: dict) -> None:
        """Write generated/reconstructed audio and spectrograms to TensorBoard (main process)."""

    # ------------------------------------------------------------------ resumable stage state
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass
