"""Dataset over pre-encoded latent shards (written by `audiodit.data.preencode`).

Items are random crops of `clip_seconds` of latent frames (or whole segments when shorter), padded
to their length bucket, with the same keys as the audio folder dataset except `latents (C, T)` and
`num_frames` instead of `audio` and `num_samples`. Crops read only their frames from disk
(`safe_open(...).get_slice`), so shards can hold long files cheaply.

An index that is not JSON or lacks its fields is one clear error. A sample row without its fields,
with a shard path that leaves the root, or whose shard is missing, truncated or lacks its tensor
(every shard's header is read at construction) is skipped and counted in `report`; a sample that
fails later (a shard removed mid-run) is replaced by the next one, as the folder dataset does.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from audiodit.data.folder import collate, item_generator
from audiodit.data.report import SkipReport
from audiodit.models.embedders import MELODY_REST

# The pre-encoded layout this reader takes (written by `audiodit.data.preencode`, which imports
# these: the tool depends on the format, not the format on the tool).
INDEX = "index.json"
INDEX_VERSION = 1

collate_latents = collate


def read_index(root: str | Path) -> dict:
    """The index of a pre-encoded folder. FileNotFoundError when it is missing; ValueError (one
    line) when it is not JSON or of another version."""
    index_path = Path(root) / INDEX
    if not index_path.is_file():
        raise FileNotFoundError(f"{index_path} not found: pre-encode with python -m audiodit.data.preencode")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{index_path} is not a valid index ({err}); pre-encode again") from None
    if not isinstance(index, dict) or index.get("version") != INDEX_VERSION:
        version = index.get("version") if isinstance(index, dict) else None
        raise ValueError(f"{index_path}: unsupported index version {version}")
    return index


class LatentDataset(Dataset):
    """Crops of pre-encoded latents; keys are `(index, epoch)` or a plain index."""

    def __init__(self, root: str | Path, clip_seconds: float = 10.0, num_buckets: int = 1, seed: int = 0,
                 random_crop: bool = True):
        self.root = Path(root)
        index_path = self.root / INDEX
        index = read_index(self.root)
        for field, kind in (("vae", dict), ("samples", list)):
            if not isinstance(index.get(field), kind):
                raise ValueError(f"{index_path}: '{field}' missing or not a {kind.__name__}; pre-encode again")
        self.vae_info = index["vae"]
        missing = [name for name in ("latent_channels", "hop_length", "sampling_rate", "latent_rate")
                   if not isinstance(self.vae_info.get(name), (int, float))]
        if missing:
            raise ValueError(f"{index_path}: 'vae' lacks {', '.join(missing)}; pre-encode again")
        self.report = SkipReport()
        self.report.merge(index.get("report", {}))
        self.samples = self._usable(index["samples"])
        if not self.samples:
            raise ValueError(f"{index_path} lists no usable samples ({len(self.report)} skipped)")
        self.caption_dir = self.root / index["captions"] if index.get("captions") else None
        self.has_melody = bool(index.get("melody", False))  # items carry `melody (frames,)` (preencode --melody)
        self.seed, self.random_crop = seed, random_crop
        self.latent_rate = float(self.vae_info["latent_rate"])
        self.clip_frames = max(1, round(clip_seconds * self.latent_rate))
        self.bucket_width = math.ceil(self.clip_frames / num_buckets)
        self.buckets = [math.ceil(self._crop_frames(s) / self.bucket_width) for s in self.samples]

    def _usable(self, rows: list) -> list[dict]:
        """The rows whose fields are sound and whose tensor is in an intact shard under the root."""
        fields = {"id": str, "shard": str, "key": str, "frames": int, "seconds_offset": (int, float),
                  "seconds_total": (int, float), "caption": str}
        shapes: dict[str, dict | None] = {}  # shard -> {key: shape}, None when unreadable
        usable = []
        for number, row in enumerate(rows):
            where = row.get("id") if isinstance(row, dict) and isinstance(row.get("id"), str) else f"sample {number}"
            if not isinstance(row, dict) or any(not isinstance(row.get(name), kind) or isinstance(row.get(name), bool)
                                                for name, kind in fields.items()):
                self.report.skip(where, "index row lacks a field or has one of the wrong type")
                continue
            shard = Path(row["shard"])
            if shard.is_absolute() or ".." in shard.parts:
                self.report.skip(where, f"shard path leaves the data root: {row['shard']!r}")
                continue
            if row["shard"] not in shapes:
                try:
                    with safe_open(str(self.root / shard), framework="pt") as handle:
                        shapes[row["shard"]] = {key: handle.get_slice(key).get_shape() for key in handle.keys()}
                except Exception as err:  # missing, truncated or not safetensors: safetensors raises its own types
                    shapes[row["shard"]] = None
                    self.report.note(f"unreadable shard {row['shard']}: {str(err).splitlines()[0][:120]}")
            shape = (shapes[row["shard"]] or {}).get(row["key"])
            if shapes[row["shard"]] is None:
                self.report.skip(where, f"shard {row['shard']} is missing or damaged")
            elif shape is None or len(shape) != 2 or shape[1] < row["frames"] or row["frames"] < 1:
                self.report.skip(where, f"shard {row['shard']} has no ({row['frames']}-frame) tensor {row['key']!r}")
            else:
                usable.append(row)
        return usable

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
        target = min(self.buckets[index] * self.bucket_width, self.clip_frames)
        skipped = []
        for attempt in range(len(self.samples)):
            sample = self.samples[(index + attempt) % len(self.samples)]
            try:
                item = self._item(sample, index, epoch, target)
            except Exception as err:  # the shard changed since the index was read
                skipped.append((sample["id"], f"latents failed to load: {str(err).splitlines()[0][:120]}"))
                continue
            item["skipped"] = skipped
            return item
        raise RuntimeError(f"{self.root}: every sample failed to load; last: {skipped[-1]}")

    def _item(self, sample: dict, index: int, epoch: int, target: int) -> dict:
        crop = min(self._crop_frames(sample), target)
        spare = int(sample["frames"]) - crop
        generator = item_generator(self.seed, epoch, index)
        start = int(torch.randint(spare + 1, (), generator=generator)) if self.random_crop and spare else 0
        with safe_open(str(self.root / sample["shard"]), framework="pt") as handle:
            latents = handle.get_slice(sample["key"])[:, start:start + crop].float()  # (C, crop)
            melody = handle.get_slice(f"{sample['key']}.melody")[start:start + crop] if self.has_melody else None
        padded = torch.zeros(latents.shape[0], target)
        padded[:, :crop] = latents
        extra = {}
        if melody is not None:  # padded frames are masked out of the loss; rests there
            extra["melody"] = torch.nn.functional.pad(melody.long(), (0, target - crop), value=MELODY_REST)  # (target,)
        return {**extra,
            "latents": padded,  # (C, target) zero-padded
            "num_frames": crop,
            "seconds_start": float(sample["seconds_offset"]) + start / self.latent_rate,
            "seconds_total": float(sample["seconds_total"]),
            "caption": sample["caption"],
            "id": sample["id"],
        }
