"""WebDataset tar shards: a writer, and a streaming dataset split across processes and workers.

Write shards from an audio folder (captions read as for `data.format: folder`):

    python -m audiodit.data.webdataset --data data/audio --out data/shards --shard-size 1000

Each sample is two tar members sharing a key: `<key>.<ext>` (the original file's bytes, any format
`audiodit.audio` reads) and `<key>.json` (`{"caption", "id", "seconds"}`). Shards are named
`shard-000000.tar`, ... and written through a temporary name, so a killed writer never leaves a
truncated shard under a real name.

Train with `data.format: webdataset` and `data.train_dir` set to a shard directory, a brace pattern
(`/data/shards/shard-{000000..000999}.tar`) or any URL webdataset opens (`pipe:aws s3 cp s3://b/shard-{000000..000999}.tar -`,
`https://...`), so corpora need not fit on one disk.

Splitting: every pass over the data shuffles the shard list with the same seed on every process,
then process r of W takes shards r, r + W, ... and DataLoader worker k of K takes every K-th of
those. No two workers anywhere read the same shard in a pass; there must be at least W x K shards.
The stream repeats passes forever (training stops at `training.max_steps`), so every process
always has data: a rank running dry first would hang DDP.

Inside a worker: a shuffle buffer of `data.shuffle_buffer` raw samples, then decoding, a random
crop of `clip_seconds` (zero-padded when shorter) with `seconds_start`/`seconds_total`. Bad samples
(undecodable, empty, too short, no audio member) are skipped and reported through
`batch["skipped"]`, as the folder dataset does.

Resume: `set_position(batches)` makes each worker skip, without decoding, the raw samples behind
the batches already consumed. This is exact when no bad sample was met before the checkpoint;
otherwise the stream is shifted by those few samples.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import random
import tarfile
import tempfile
from pathlib import Path

import torch
from torch.utils.data import IterableDataset, get_worker_info

from audiodit.audio import AUDIO_EXTENSIONS, AudioLoadError, audio_info, load_audio
from audiodit.data.folder import check_normalize, item_generator, scan_audio_folder
from audiodit.data.report import SkipReport

# ---------------------------------------------------------------------------------------------
# Writer
# ---------------------------------------------------------------------------------------------


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0  # reproducible shards
    tar.addfile(info, io.BytesIO(data))


def write_shards(data_dir: str | Path, out_dir: str | Path, shard_size: int = 1000,
                 min_seconds: float = 0.0) -> tuple[list[Path], SkipReport]:
    """Pack every usable audio file of `data_dir` into tar shards under `out_dir`."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if list(out.glob("shard-*.tar")):
        raise FileExistsError(f"{out} already holds shards; choose an empty --out directory")
    report = SkipReport()
    records = scan_audio_folder(data_dir, min_seconds, report)
    shards = []
    for number, start in enumerate(range(0, len(records), shard_size)):
        final = out / f"shard-{number:06d}.tar"
        tmp = out / f".{final.name}.tmp"
        with tarfile.open(tmp, "w") as tar:
            for position, record in enumerate(records[start:start + shard_size], start):
                key = f"{position:09d}"
                _add_member(tar, f"{key}{record.path.suffix.lower()}", record.path.read_bytes())
                meta = {"caption": record.caption, "id": record.id, "seconds": record.seconds}
                _add_member(tar, f"{key}.json", json.dumps(meta).encode())
        os.replace(tmp, final)
        shards.append(final)
    return shards, report


# ---------------------------------------------------------------------------------------------
# Streaming dataset
# ---------------------------------------------------------------------------------------------


def expand_urls(source: str | list[str]) -> list[str]:
    """Shard URLs from a directory, a glob, a brace pattern or a list."""
    if isinstance(source, (list, tuple)):
        return list(source)
    if os.path.isdir(source):
        urls = sorted(glob.glob(os.path.join(source, "*.tar")))
    elif "{" in source:
        import braceexpand

        urls = list(braceexpand.braceexpand(source))
    elif any(ch in source for ch in "*?["):
        urls = sorted(glob.glob(source))
    else:
        urls = [source]
    if not urls:
        raise FileNotFoundError(f"no .tar shards found at {source}")
    return urls


class AudioWebDataset(IterableDataset):
    """Endless stream of audio crops from tar shards; yields the folder dataset's item dicts."""

    def __init__(self, urls: str | list[str], sample_rate: int = 48000, clip_seconds: float = 10.0,
                 min_seconds: float = 1.0, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle_buffer: int = 1000, length_multiple: int = 1, batch_size: int = 1,
                 normalize: str = "none", target_db: float = -1.0):
        check_normalize(normalize)
        self.normalize, self.target_db = normalize, target_db
        self.urls = expand_urls(urls)
        self.sample_rate, self.clip_seconds, self.min_seconds = sample_rate, clip_seconds, min_seconds
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle_buffer = max(1, shuffle_buffer)
        crop = round(clip_seconds * sample_rate)
        self.length_multiple = length_multiple
        self.clip_samples = -(-crop // length_multiple) * length_multiple
        self.batch_size = batch_size
        self.batches_consumed = 0
        self.report = SkipReport()
        if len(self.urls) < world_size:
            raise ValueError(f"{len(self.urls)} shard(s) cannot feed {world_size} processes; "
                             "write more, smaller shards (--shard-size)")

    def set_position(self, batches_consumed: int) -> None:
        """Resume after this process consumed `batches_consumed` batches (see module docstring)."""
        self.batches_consumed = batches_consumed

    def _my_shards(self, epoch: int, worker: int, workers: int) -> list[str]:
        order = list(self.urls)
        random.Random(self.seed * 1_000_003 + epoch).shuffle(order)
        mine = order[self.rank::self.world_size][worker::workers]
        if not mine:
            raise ValueError(f"{len(self.urls)} shards cannot feed {self.world_size} processes x "
                             f"{workers} DataLoader workers; write more shards or lower data.num_workers")
        return mine

    def _raw_samples(self, worker: int, workers: int):
        """Shuffled raw (undecoded) samples of this worker, pass after pass."""
        import webdataset as wds

        rng = random.Random((self.seed * 1_000_003 + self.rank) * 1_000_033 + worker)
        buffer: list[dict] = []
        epoch = 0
        while True:
            shards = [{"url": url} for url in self._my_shards(epoch, worker, workers)]
            for sample in wds.tarfile_samples(shards):
                buffer.append(sample)
                if len(buffer) >= self.shuffle_buffer:
                    yield buffer.pop(rng.randrange(len(buffer))), epoch
            epoch += 1

    def __iter__(self):
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # Batches are taken round-robin from workers (DataLoader keeps order): worker k made
        # ceil((consumed - k) / workers) of the consumed batches.
        mine = max(0, -(-(self.batches_consumed - worker) // workers))
        to_skip = mine * self.batch_size
        stream = self.rank * 4096 + worker  # one crop RNG stream per (process, worker)
        skipped: list[tuple[str, str]] = []
        for count, (sample, _epoch) in enumerate(self._raw_samples(worker, workers)):
            if count < to_skip:
                continue
            try:
                item = self._decode(sample, item_generator(self.seed, stream, count))
            except (AudioLoadError, ValueError, KeyError, json.JSONDecodeError) as err:
                skipped.append((_sample_name(sample), getattr(err, "reason", str(err))))
                continue
            item["skipped"], skipped = skipped, []
            yield item

    def _decode(self, sample: dict, rng: torch.Generator) -> dict:
        meta = json.loads(sample["json"]) if "json" in sample else {}
        audio_keys = [k for k in sample if "." + k.lower() in AUDIO_EXTENSIONS]
        if not audio_keys:
            raise KeyError(f"no audio member (has {sorted(k for k in sample if not k.startswith('__'))})")
        ext = audio_keys[0]
        with tempfile.NamedTemporaryFile(suffix="." + ext) as handle:  # load_audio reads paths
            handle.write(sample[ext])
            handle.flush()
            seconds = audio_info(handle.name).duration
            if seconds < self.min_seconds:
                raise ValueError(f"too short: {seconds:.2f} s < data.min_seconds={self.min_seconds}")
            crop = min(self.clip_seconds, seconds)
            start = float(torch.rand((), generator=rng)) * (seconds - crop)
            audio = load_audio(handle.name, self.sample_rate, 2, duration=crop, offset=start,
                               normalize=self.normalize, target_db=self.target_db)  # (2, S)
        padded = torch.zeros(2, self.clip_samples)
        length = min(audio.shape[-1], self.clip_samples)
        padded[:, :length] = audio[:, :length]
        return {
            "audio": padded, "num_samples": length, "seconds_start": start, "seconds_total": seconds,
            "caption": str(meta.get("caption", "")), "id": str(meta.get("id", sample.get("__key__", ""))),
        }


def _sample_name(sample: dict) -> str:
    return f"{sample.get('__url__', '?')}:{sample.get('__key__', '?')}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Pack an audio folder into WebDataset tar shards.")
    parser.add_argument("--data", required=True, help="audio folder (captions as for data.format=folder)")
    parser.add_argument("--out", required=True, help="empty output directory")
    parser.add_argument("--shard-size", type=int, default=1000, help="samples per shard")
    parser.add_argument("--min-seconds", type=float, default=0.0, help="skip shorter files")
    args = parser.parse_args(argv)
    shards, report = write_shards(args.data, args.out, args.shard_size, args.min_seconds)
    print(f"wrote {len(shards)} shard(s) to {args.out}")
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
