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
from audiodit.training.checkpoints import resolve_export


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
    # False: the weights that do not train come from elsewhere (training.init_from) on every start,
    # so checkpoints hold only the trained ones (LoRA adapters)
    checkpoints_frozen_weights: bool = True

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

    def build_val_dataset(self, length_multiple: int):
        """(dataset, collate_fn) of `data.val_dir` for validation: fixed crops (each file's start),
        map-style with `buckets`. Default: a folder of audio."""
        from audiodit.data.folder import AudioFolderDataset, collate

        data, audio = self.cfg.data, self.cfg.audio
        dataset = AudioFolderDataset(data.val_dir, audio.sample_rate, data.clip_seconds, data.min_seconds,
                                     num_buckets=data.num_buckets, length_multiple=length_multiple,
                                     random_crop=False, normalize=audio.normalize, target_db=audio.target_db)
        return dataset, collate

    def prepare_batch(self, batch: dict) -> dict:
        """Move a collated batch to the device and do the frozen work (no gradients)."""
        raise NotImplementedError

    def setup(self, first_batches) -> None:
        """Called once on a fresh run with an iterator over early batches (e.g. to estimate the
        latent scaling factor). Must not touch the global RNG."""

    def initialize_from(self, path: Path, first_batches) -> None:
        """`training.init_from`: a fresh run starts from trained weights (instead of `setup`, which
        it may still call, e.g. when the weights were trained on other latents)."""
        raise ValueError(f"stage {self.name} cannot start from training.init_from")

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


#################################################################################
#                 Starting from trained weights; frozen parameters               #
#################################################################################

def resolve_init_source(path: str | Path) -> Path:
    """`training.init_from` -> a directory holding weights: a pipeline (model_index.json) or a
    single model (config.json) as given, or a training run / checkpoint (its latest export)."""
    return resolve_export(path, "training.init_from", ("pipeline", "vae"))


def check_architecture(section: str, wanted: dict, saved: dict, source: Path, ignore=()) -> None:
    """Fields of the config's `section` that differ from the saved model's config are an error
    (the weights would not fit, or would mean something else)."""
    differing = [f"{name}: config {wanted[name]!r}, {source} {saved[name]!r}" for name in wanted
                 if name in saved and name not in ignore and _plain(saved[name]) != _plain(wanted[name])]
    if differing:
        raise ValueError(f"training.init_from: the config's {section} section does not match the model in "
                         f"{source}; set these fields as saved there: " + "; ".join(differing))


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def load_weights(module: nn.Module, state: dict[str, torch.Tensor], what: str, source: Path,
                 new_modules: tuple[str, ...] = ()) -> list[str]:
    """Strict `load_state_dict` whose error says which model and directory did not fit.

    `new_modules`: prefixes of parameters the configured model may add to the saved one (a new
    conditioning input); they keep their initialisation. Returns the names that did.
    """
    own = module.state_dict()
    added = sorted(name for name in own if name not in state and name.startswith(new_modules)) if new_modules else []
    try:
        module.load_state_dict({**state, **{name: own[name] for name in added}})
    except RuntimeError as err:
        raise ValueError(f"training.init_from: the {what} weights in {source} do not fit the configured "
                         f"model: {err}") from err
    return added


def freeze_parameters(model: nn.Module, prefixes: list[str]) -> int:
    """`training.freeze`: parameters whose names (as in `model.named_parameters()`) start with any
    of `prefixes` stop requiring gradients; returns how many tensors were frozen. A prefix that
    matches nothing is an error naming the model's top-level modules."""
    names = [name for name, _ in model.named_parameters()]
    for prefix in prefixes:
        if not prefix or not any(name.startswith(prefix) for name in names):
            tops = sorted({".".join(name.split(".")[:2]) for name in names})
            raise ValueError(f"training.freeze: {prefix!r} matches no parameter; names start with: "
                             + ", ".join(tops))
    frozen = 0
    for name, parameter in model.named_parameters():
        if any(name.startswith(prefix) for prefix in prefixes):
            parameter.requires_grad_(False)
            frozen += 1
    return frozen
