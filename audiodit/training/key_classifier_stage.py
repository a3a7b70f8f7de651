"""The key classifier stage: `LatentKeyClassifier` trained by the shared trainer on pre-encoded latents.

    python train.py --config configs/key_classifier_small.yaml data.train_dir=LATENTS_DIR \\
        training.output_dir=runs/key_classifier

Labels are the key each caption states (`audiodit.prompt_attributes.parse_key`); clips whose caption
states none are left out. Each step trains on crops at random noise levels, `x_t = (1 - t) x0 + t
noise` (`FlowMatching.add_noise`) with `t` uniform in [0, `key_classifier.max_t`] and
`key_classifier.clean_fraction` of the crops clean (t = 0), because the sampler asks about every
noise level it passes through. The latents are scaled by their index's `scaling_factor`, as the DiT
sees them. Checkpoints export `key_classifier/` (`LatentKeyClassifier.save_pretrained`), which
`python -m audiodit.export --key-classifier` adds to a pipeline. Validation (`data.val_dir`, also
pre-encoded) reports the loss and key accuracy at the checkpoint's noise draws.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.data import Dataset

from audiodit.data.latents import LatentDataset, collate_latents
from audiodit.diffusion import FlowMatching
from audiodit.models.key_classifier import LatentKeyClassifier
from audiodit.prompt_attributes import NO_KEY, prompt_keys
from audiodit.training.stage import Stage


def labelled_indices(dataset: LatentDataset) -> list[int]:
    """Indices of the samples whose caption states a key."""
    keys = prompt_keys([sample["caption"] for sample in dataset.samples])
    return [index for index, key in enumerate(keys.tolist()) if key != NO_KEY]


def latent_scale(dataset: LatentDataset) -> float:
    """The scaling factor a pre-encoded folder's index records (1 when none)."""
    return float(dataset.vae_info.get("scaling_factor", 1.0))


def check_same_scale(val: LatentDataset, scale: float) -> None:
    """ValueError unless the held-out latents `val` are scaled as the training latents (`scale`)."""
    if latent_scale(val) != scale:
        raise ValueError(f"{val.root}: latents scaled by {latent_scale(val)}, the training latents by {scale}; "
                         "pre-encode both with the same VAE")


class LabelledLatents(Dataset):
    """The samples of a `LatentDataset` whose caption states a key, with their length buckets;
    keys are `(index, epoch)` or a plain index, as the trainer's sampler gives them."""

    def __init__(self, dataset: LatentDataset):
        self.dataset = dataset
        self.indices = labelled_indices(dataset)
        if len(self.indices) < 2:
            raise ValueError(f"{dataset.root}: {len(self.indices)} clip(s) with a stated key in the caption; "
                             "need at least 2")
        self.buckets = [dataset.buckets[index] for index in self.indices]
        self.report = dataset.report

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        return self.dataset[(self.indices[index], epoch)]


class KeyClassifierStage(Stage):
    name = "key_classifier"
    export_dirname = "key_classifier"

    def __init__(self, cfg, accelerator):
        super().__init__(cfg, accelerator)
        data = cfg.data
        if data.format != "latents":
            raise ValueError("the key_classifier stage trains on pre-encoded latents: set data.format=latents "
                             "(python -m audiodit.data.preencode writes them)")
        if cfg.training.packed:
            raise ValueError("training.packed is the dit stage's (the key classifier's clips are convolved, "
                             "not attended)")
        self.train_latents = LatentDataset(data.train_dir, clip_seconds=data.clip_seconds,
                                           num_buckets=data.num_buckets, seed=cfg.training.seed)
        self.scale = latent_scale(self.train_latents)
        kcfg = cfg.key_classifier
        self.model = LatentKeyClassifier(in_channels=int(self.train_latents.vae_info["latent_channels"]),
                                         width=kcfg.width, dilations=tuple(kcfg.dilations))

    # ------------------------------------------------------------------ data
    def build_dataset(self, rank, world_size):
        return LabelledLatents(self.train_latents), collate_latents

    def build_val_dataset(self, length_multiple: int):
        data = self.cfg.data
        val = LatentDataset(data.val_dir, clip_seconds=data.clip_seconds, num_buckets=data.num_buckets,
                            random_crop=False)
        check_same_scale(val, self.scale)
        return LabelledLatents(val), collate_latents

    def prepare_batch(self, batch: dict) -> dict:
        device = self.accelerator.device
        latents = batch["latents"].to(device).float() * self.scale  # (B, C, T) as the DiT sees them
        frame_mask = torch.arange(latents.shape[-1], device=device)[None] < batch["num_frames"].to(device)[:, None]
        return {"latents": latents, "frame_mask": frame_mask, "keys": prompt_keys(batch["caption"]).to(device)}

    # ------------------------------------------------------------------ losses
    def compute_losses(self, model, inputs, step):
        kcfg = self.cfg.key_classifier
        latents, keys = inputs["latents"], inputs["keys"]
        batch = latents.shape[0]
        t = torch.rand(batch, device=latents.device) * kcfg.max_t  # (B,)
        clean = torch.rand(batch, device=latents.device) < kcfg.clean_fraction
        t = torch.where(clean, torch.zeros_like(t), t)
        noisy = FlowMatching.add_noise(latents, torch.randn_like(latents), t)  # (B, C, T)
        logits = model(noisy, t, inputs["frame_mask"]).logits  # (B, 24)
        # a damaged shard's item is replaced by the dataset's next one, which may state no key: not scored
        loss = torch.nn.functional.cross_entropy(logits.float(), keys, ignore_index=NO_KEY)
        predicted, labelled = logits.argmax(-1), (keys != NO_KEY).float()  # (B,)
        count = labelled.sum().clamp_min(1.0)
        return {"loss": loss, "key_accuracy": ((predicted == keys).float() * labelled).sum().detach() / count,
                "mode_accuracy": (((predicted >= 12) == (keys >= 12)).float() * labelled).sum().detach() / count}

    # ------------------------------------------------------------------ export
    def export(self, model_state, out_dir: Path) -> None:
        model = LatentKeyClassifier.from_config(self.model.config)
        model.load_state_dict(model_state)
        model.save_pretrained(str(out_dir))
