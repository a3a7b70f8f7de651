"""Validation loss on `data.val_dir`, computed at every checkpoint.

The stage builds the dataset (`Stage.build_val_dataset`: audio for the VAE and DiT stages, latents
for the key classifier). Fixed crops (the start of each file), the first `training.val_batches` batches of each process,
noise and timesteps from a fixed seed: the values are comparable from checkpoint to checkpoint.
The caller runs it inside an isolated RNG, so validating never changes the training run.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from audiodit.data.sampler import BucketBatchSampler


class Validator:
    def __init__(self, cfg, accelerator, stage, length_multiple: int = 1):
        self.cfg, self.accelerator, self.stage = cfg, accelerator, stage
        self.length_multiple = length_multiple
        self._loader: DataLoader | None = None
        self._built = False

    def loader(self) -> DataLoader | None:
        """Built on first use; None (with a warning) when the folder has too little usable audio."""
        data, acc = self.cfg.data, self.accelerator
        if not data.val_dir or self.cfg.training.val_batches <= 0:
            return None
        if not self._built:
            self._built = True
            try:
                dataset, collate = self.stage.build_val_dataset(self.length_multiple)
                sampler = BucketBatchSampler(dataset.buckets, data.batch_size, shuffle=False,
                                             rank=acc.process_index, world_size=acc.num_processes)
            except (OSError, ValueError) as err:  # a broken validation set must not end the run
                acc.print(f"warning: validation disabled: data.val_dir={data.val_dir}: {err}")
            else:
                self._loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate,
                                          num_workers=data.num_workers)
        return self._loader

    @torch.no_grad()
    def losses(self, model, step: int) -> dict[str, float]:
        """Mean of each scalar loss over the validation batches of this process ({} when disabled)."""
        loader = self.loader()
        if loader is None:
            return {}
        totals: dict[str, float] = {}
        batches = 0
        self.stage.set_training(False)
        torch.manual_seed(self.cfg.training.seed)
        for batch in loader:
            if batches >= self.cfg.training.val_batches:
                break
            batch.pop("skipped", None)
            with self.accelerator.autocast():
                outputs = self.stage.compute_losses(model, self.stage.prepare_batch(batch), step)
            for name, value in outputs.items():
                if torch.is_tensor(value) and value.numel() == 1:
                    totals[name] = totals.get(name, 0.0) + float(value)
            batches += 1
        self.stage.set_training(True)
        return {f"val/{name}": value / max(batches, 1) for name, value in totals.items()}
