"""Length-bucketed, seeded, rank-sharded batch sampler that can start mid-epoch.

Variable-length training without wasting compute on padding: every item belongs to a length bucket
(its crop length rounded up to a bucket boundary); a batch only holds items of one bucket, so it is
padded to that bucket's length and no further (bucketing as in ESPnet/fairseq length batching).

Everything is a pure function of (seed, epoch): the order of batches, their contents, and (through
the `(index, epoch)` keys it yields) each item's random crop. A resumed run therefore rebuilds the
exact same batches by skipping the ones already consumed, with any number of DataLoader workers.

Processes: the global list of batches is cut to a multiple of `world_size` and rank r takes
batches r, r + world_size, ...; every rank gets the same number of batches (DDP needs that) and no
two ranks see the same item in an epoch.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import torch


class BucketBatchSampler:
    """Yields lists of `(index, epoch)` keys for a dataset whose `__getitem__` takes such keys."""

    def __init__(
        self,
        buckets: Sequence[int],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.buckets = list(buckets)
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0
        if len(self) == 0:
            raise ValueError(
                f"{len(self.buckets)} usable item(s) make fewer than one batch per process "
                f"(batch_size={batch_size}, processes={world_size}); add data or lower data.batch_size"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate epoch `epoch`, skipping its first `start_batch` batches (for resuming)."""
        self.epoch = epoch
        self.start_batch = start_batch

    def global_batches(self, epoch: int) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        by_bucket: dict[int, list[int]] = defaultdict(list)
        for index, bucket in enumerate(self.buckets):
            by_bucket[bucket].append(index)
        batches = []
        for bucket in sorted(by_bucket):
            indices = by_bucket[bucket]
            if self.shuffle:
                indices = [indices[i] for i in torch.randperm(len(indices), generator=generator)]
            batches += [indices[i : i + self.batch_size] for i in range(0, len(indices), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator)]
        usable = len(batches) - len(batches) % self.world_size
        return batches[:usable]

    def __len__(self) -> int:
        """Batches per process per epoch."""
        total = 0
        for bucket_size in _bucket_sizes(self.buckets):
            total += -(-bucket_size // self.batch_size)
        return total // self.world_size

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = self.epoch
        mine = self.global_batches(epoch)[self.rank :: self.world_size]
        for batch in mine[self.start_batch :]:
            yield [(index, epoch) for index in batch]
        self.start_batch = 0


def _bucket_sizes(buckets: Sequence[int]) -> list[int]:
    sizes: dict[int, int] = defaultdict(int)
    for bucket in buckets:
        sizes[bucket] += 1
    return list(sizes.values())
