"""Dataset over pre-encoded latent shards (written by `audiodit.data.preencode`).

Items are random crops of `clip_seconds` of latent frames (or whole segments when shorter), padded
to their length bucket, with the same keys as the audio folder dataset except `latents (C, T)` and
`num_frames` instead of `audio` and `num_samples`. Crops read only their frames from disk
(`safe_open(...).get_slice`), so shards can hold long files cheaply.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from audiodit.data.folder import collate, item_generator
from audiodit.data.preencode import INDEX, INDEX_VERSION
from audiodit.data.report import SkipReport

collate_latents = collate


class LatentDataset(Dataset):
    """Crops of pre-encoded latents; keys are `(index, epoch)` or a plain index."""

    def __init__(self, root: str | Path, clip_seconds: float = 10.0, num_buckets: int = 1, seed: int = 0,
                 random_crop: bool = True):
        self.root = Path(root)
        index_path = self.root / INDEX
        if not index_path.is_file():
            raise FileNotFoundError(f"{index_path} not found: pre-encode with python -m audiodit.data.preencode")
        index = json.loads(index_path.read_text())
        if index.get("version") != INDEX_VERSION:
            raise ValueError(f"{index_path}: unsupported index version {index.get('version')}")
        self.vae_info = index["vae"]
        self.samples = index["samples"]
        if not self.samples:
            raise ValueError(f"{index_path} lists no samples")
        self.caption_dir = self.root / index["captions"] if index.get("captions") else None
        self.report = SkipReport()
        self.report.merge(index.get("report", {}))
        self.seed, self.random_crop = seed, random_crop
        self.latent_rate = float(self.vae_info["latent_rate"])
        self.clip_frames = max(1, round(clip_seconds * self.latent_rate))
        self.bucket_width = math.ceil(self.clip_frames / num_buckets)
        self.buckets = [math.ceil(self._crop_frames(s) / self.bucket_width) for s in self.samples]

    def check_vae(self, vae) -> None:
        """The shards must come from a VAE with the trainer's latent geometry."""
        for name, value in (("latent_channels", vae.latent_channels), ("hop_length", vae.hop_length),
                            ("sampling_rate", vae.sampling_rate)):
            if int(self.vae_info[name]) != int(value):
                raise ValueError(f"{self.root}: latents were encoded with {name}={self.vae_info[name]}, "
                                 f"but the VAE in vae_path has {value}; pre-encode again with that VAE")

    def __len__(self) -> int:
        return len(self.samples)

    def _crop_frames(self, sample: dict) -> int:
        return min(int(sample["frames"]), self.clip_frames)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        sample = self.samples[index]
        target = min(self.buckets[index] * self.bucket_width, self.clip_frames)
        crop = min(self._crop_frames(sample), target)
        spare = int(sample["frames"]) - crop
        generator = item_generator(self.seed, epoch, index)
        start = int(torch.randint(spare + 1, (), generator=generator)) if self.random_crop and spare else 0
        with safe_open(str(self.root / sample["shard"]), framework="pt") as handle:
            latents = handle.get_slice(sample["key"])[:, start:start + crop].float()  # (C, crop)
        padded = torch.zeros(latents.shape[0], target)
        padded[:, :crop] = latents
        return {
            "latents": padded,  # (C, target) zero-padded
            "num_frames": crop,
            "seconds_start": float(sample["seconds_offset"]) + start / self.latent_rate,
            "seconds_total": float(sample["seconds_total"]),
            "caption": sample["caption"],
            "id": sample["id"],
            "skipped": [],
        }
