"""Caption-embedding cache: each distinct caption is encoded once and kept on disk.

Training a DiT with a frozen text encoder spends most of its text work re-encoding the same
captions every epoch. `CaptionCache` stores each caption's `TextEncoderOutput` in a directory
(normally beside the pre-encoded latents) and serves later requests from disk::

    cache = CaptionCache("data/latents/captions", encoder)
    out = cache.get(["a slow piano melody", "rain on a tin roof"])   # TextEncoderOutput on CPU
    out = encoder.drop(out)              # condition dropout still applies (training mode)
    cache.stats                          # {"hits": ..., "misses": ..., "entries": ...}

Layout: `index.json` maps sha256(caption text) -> (shard file, row) and records the encoder
fingerprint; `shard-<id>.safetensors` files hold `embeddings` (N, L', D), `mask` (N, L') and
`pooled` (N, P). Conditioners zero their padding positions, so shards drop the all-padding tail
(L' <= context_length) and `get` pads it back losslessly.

Invalidation: the fingerprint hashes the encoder's config, tokenizer and weights. Opening a cache
written by a different encoder logs a warning and deletes the stale entries. A trainable encoder
is refused: its outputs change every step, so cached embeddings would be silently wrong.

Writes are atomic (temporary file + `os.replace`) and serialised by an exclusive `flock` on
`.lock`, so an interrupted run never leaves a half-written index and parallel writers merge
their entries instead of overwriting each other's.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import uuid
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from audiodit.conditioners import TextConditioner, TextEncoderOutput
from audiodit.configuration import atomic_write_text

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
INDEX_VERSION = 1


def caption_key(caption: str) -> str:
    """The cache key of a caption: sha256 of its exact UTF-8 text (no normalisation: CLAP's
    tokenizer is case-sensitive, so "Piano" and "piano" may encode differently)."""
    return hashlib.sha256(caption.encode("utf-8")).hexdigest()


class CaptionCache:
    """Disk cache of `TextEncoderOutput`s for a frozen `encoder`, keyed by caption text.

    Args:
        directory: where `index.json` and the shards live (created if missing).
        encoder: a frozen `TextConditioner` (`trainable: false`).
        batch_size: captions per encoder call when computing misses.
        dtype: storage dtype of embeddings and pooled vectors (`torch.float16` halves the size).
    """

    def __init__(self, directory: str | os.PathLike, encoder: TextConditioner, batch_size: int = 64,
                 dtype: torch.dtype = torch.float32):
        if encoder.config.trainable:
            raise ValueError("cannot cache a trainable text encoder: its embeddings change every "
                             "optimizer step (set text.trainable=false to use the caption cache)")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.encoder = encoder
        self.batch_size = batch_size
        self.dtype = dtype
        self.fingerprint = encoder.fingerprint()
        self.hits = 0
        self.misses = 0
        with self._locked():
            self._entries = self._read_entries(invalidate=True)

    # ---- bookkeeping ---------------------------------------------------------------------

    @contextmanager
    def _locked(self):
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_entries(self, invalidate: bool = False) -> dict[str, list]:
        """Entries of the on-disk index written by this encoder; with `invalidate`, delete a stale one."""
        path = self.directory / INDEX_NAME
        if not path.exists():
            return {}
        index = json.loads(path.read_text())
        if index.get("version") == INDEX_VERSION and index.get("fingerprint") == self.fingerprint:
            return index["entries"]
        if invalidate:
            logger.warning("caption cache %s was written by a different text encoder (fingerprint %s, "
                           "now %s): discarding its %d entries", self.directory,
                           str(index.get("fingerprint"))[:12], self.fingerprint[:12], len(index.get("entries", {})))
            for shard in {shard for shard, _ in index.get("entries", {}).values()}:
                (self.directory / shard).unlink(missing_ok=True)
            path.unlink()
        return {}

    def _write_index(self) -> None:
        index = {
            "version": INDEX_VERSION,
            "fingerprint": self.fingerprint,
            "encoder": {"class": type(self.encoder).__name__, "config": dict(self.encoder.config)},
            "context_length": self.encoder.context_length,
            "hidden_size": self.encoder.hidden_size,
            "pooled_dim": self.encoder.pooled_dim,
            "entries": self._entries,
        }
        atomic_write_text(self.directory / INDEX_NAME, json.dumps(index, default=str))

    @property
    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "entries": len(self._entries)}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, caption: str) -> bool:
        return caption_key(caption) in self._entries

    # ---- encode and store ----------------------------------------------------------------

    @torch.no_grad()
    def _encode(self, captions: list[str]) -> TextEncoderOutput:
        """Encode without condition dropout (force_drop_ids all zero), batch by batch, to CPU."""
        parts = []
        for start in range(0, len(captions), self.batch_size):
            batch = captions[start:start + self.batch_size]
            tokens = {k: v.to(self.encoder.device) for k, v in self.encoder.tokenize(batch).items()}
            out = self.encoder(tokens, force_drop_ids=torch.zeros(len(batch), dtype=torch.long))
            parts.append(out)
        fields = ("embeddings", "mask", "pooled")
        return TextEncoderOutput(*(torch.cat([getattr(part, f).cpu() for part in parts]) for f in fields))

    def _store(self, captions: list[str], out: TextEncoderOutput) -> None:
        # Position 0 (the start token) is always real, so `nonzero` is never empty.
        length = int(out.mask.any(dim=0).nonzero().max()) + 1  # trim the all-padding tail
        shard = f"shard-{uuid.uuid4().hex[:16]}.safetensors"
        tensors = {
            "embeddings": out.embeddings[:, :length].to(self.dtype).contiguous(),  # (N, L', D)
            "mask": out.mask[:, :length].contiguous(),  # (N, L')
            "pooled": out.pooled.to(self.dtype).contiguous(),  # (N, P)
        }
        handle, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".safetensors")
        os.close(handle)
        try:
            save_file(tensors, tmp)
            os.replace(tmp, self.directory / shard)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._locked():
            self._entries = {**self._read_entries(), **self._entries}  # merge other writers' entries
            self._entries.update({caption_key(c): [shard, row] for row, c in enumerate(captions)})
            self._write_index()

    # ---- lookup --------------------------------------------------------------------------

    def get(self, captions: list[str]) -> TextEncoderOutput:
        """Outputs for `captions` (in order, on CPU, storage dtype); encodes and stores misses.

        `misses` counts distinct captions encoded by this call, `hits` the other requests."""
        if isinstance(captions, str):
            raise TypeError("CaptionCache.get expects a list of captions, got a single string")
        keys = [caption_key(c) for c in captions]
        missing = list(dict.fromkeys(c for c, k in zip(captions, keys) if k not in self._entries))
        if missing:
            self._store(missing, self._encode(missing))
        self.misses += len(missing)
        self.hits += len(captions) - len(missing)

        rows_by_shard: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for position, key in enumerate(keys):
            shard, row = self._entries[key]
            rows_by_shard[shard].append((position, row))
        count, length = len(captions), self.encoder.context_length
        embeddings = torch.zeros(count, length, self.encoder.hidden_size, dtype=self.dtype)
        mask = torch.zeros(count, length, dtype=torch.bool)
        pooled = torch.zeros(count, self.encoder.pooled_dim, dtype=self.dtype)
        for shard, rows in rows_by_shard.items():
            with safe_open(str(self.directory / shard), framework="pt") as file:
                shard_embeddings = file.get_slice("embeddings")  # (N, L', D), read row by row
                shard_mask, shard_pooled = file.get_slice("mask"), file.get_slice("pooled")
                for position, row in rows:
                    stored = shard_mask[row:row + 1]  # (1, L')
                    mask[position, :stored.shape[1]] = stored[0]
                    embeddings[position, :stored.shape[1]] = shard_embeddings[row:row + 1][0]
                    pooled[position] = shard_pooled[row:row + 1][0]
        return TextEncoderOutput(embeddings=embeddings, mask=mask, pooled=pooled)

    def clear(self) -> None:
        """Delete every entry and shard of this cache."""
        with self._locked():
            for shard in {shard for shard, _ in self._entries.values()}:
                (self.directory / shard).unlink(missing_ok=True)
            self._entries = {}
            self._write_index()
