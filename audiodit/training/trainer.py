"""The training loop shared by every stage, on accelerate (one code path for 1 or N processes).

`train(cfg)` runs the stage named by `cfg.stage` (see `audiodit.training.STAGES`):

    # Setup accelerator -> # Build models -> # Data -> # Optimizer -> # Resume -> # Train loop

Guarantees:
* the same code runs under `python train.py` and `accelerate launch train.py` (DDP/FSDP/DeepSpeed
  come from the accelerate config, mixed precision from `training.mixed_precision`);
* a step whose loss is non-finite on any process is skipped on every process (no update, counted);
  `training.max_nonfinite_in_a_row` such steps in a row stop the run with `NonFiniteLossError`;
* `--resume` continues exactly: weights, optimizer, schedule, EMA, RNG states (accelerate) and the
  data position (batches are a pure function of seed, epoch and index; see `audiodit.data.sampler`)
  are restored, so on CPU a resumed run ends bit-identical to an uninterrupted one;
* checkpoints are atomic (see `audiodit.training.checkpoints`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, DistributedType
from accelerate.state import AcceleratorState
from accelerate.utils import ProjectConfiguration, gather_object, set_seed
from torch.utils.data import DataLoader, IterableDataset
from tqdm.auto import tqdm

from audiodit.config import Config
from audiodit.configuration import ConfigError, save_yaml
from audiodit.data.report import SkipReport
from audiodit.data.sampler import BucketBatchSampler
from audiodit.integrity import state_digest
from audiodit.training.checkpoints import (
    EMA_FILE,
    STATE_DIR,
    TRAINER_STATE,
    CheckpointError,
    CheckpointManager,
    check_checkpoint_integrity,
    prepare_output_dir,
    read_json,
    write_json,
)
from audiodit.training.ema import EMA
from audiodit.training.state_io import is_pickle_free, load_training_state, save_training_state
from audiodit.training.schedules import build_lr_scheduler
from audiodit.training.stage import freeze_parameters
from audiodit.training.validation import Validator

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many non-finite losses in a row: the run is diverging."""


@dataclass
class TrainerState:
    step: int = 0  # optimizer updates applied
    epoch: int = 0  # current data epoch
    batch_in_epoch: int = 0  # batches of `epoch` this process has consumed
    samples_seen: int = 0  # clips consumed by this process
    nonfinite_total: int = 0  # steps skipped because a loss was NaN/inf
    nonfinite_in_a_row: int = 0
    data_report: dict = field(default_factory=dict)  # SkipReport.to_dict() of this process
    stage: dict = field(default_factory=dict)  # Stage.state_dict()


@dataclass
class TrainResult:
    output_dir: Path
    step: int
    last_checkpoint: Path | None
    data_report: SkipReport
    nonfinite_total: int


def build_accelerator(cfg: Config, cpu: bool = False) -> Accelerator:
    out = Path(cfg.training.output_dir)
    # accelerate keeps one global state per process and refuses a second Accelerator with another
    # mixed precision; one process may train several runs (a notebook: vae then dit; the tests).
    # The process-level state (device, process group) is kept.
    AcceleratorState._reset_state()
    return Accelerator(
        cpu=cpu,
        mixed_precision=cfg.training.mixed_precision,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs")),
    )


class Trainer:
    def __init__(self, cfg: Config, resume: Path | None = None, overwrite: bool = False, cpu: bool = False):
        from audiodit.training import STAGES

        if cfg.stage not in STAGES:
            raise ValueError(f"unknown stage {cfg.stage!r}; choose one of {sorted(STAGES)}")
        tcfg = cfg.training
        self.cfg = cfg

        # Setup accelerator
        self.accelerator = acc = build_accelerator(cfg, cpu=cpu)
        self.output_dir = Path(tcfg.output_dir)
        prepare_output_dir(self.output_dir, resuming=resume is not None, overwrite=overwrite,
                           main=acc.is_main_process)
        if acc.is_main_process and resume is None:
            save_yaml(cfg, self.output_dir / "config.yaml")
        acc.wait_for_everyone()
        self.checkpoints = CheckpointManager(self.output_dir, keep=tcfg.keep_checkpoints)
        self.state = TrainerState()
        self.report = SkipReport()
        self.last_batch: dict | None = None  # the latest batch, for sample logs (e.g. reconstructions)

        # Build models: identical initial weights on every process (DDP also broadcasts rank 0's)
        set_seed(tcfg.seed)
        self.stage = STAGES[cfg.stage](cfg, acc)
        if acc.is_main_process and resume is None:  # again: the stage fills in what the config left unset (dit widths)
            save_yaml(cfg, self.output_dir / "config.yaml")
        if tcfg.freeze:
            frozen = freeze_parameters(self.stage.model, list(tcfg.freeze))
            acc.print(f"training.freeze: {frozen} parameter tensors fixed ({', '.join(tcfg.freeze)})")
        if tcfg.gradient_checkpointing:
            if not hasattr(self.stage.model, "enable_gradient_checkpointing"):
                raise ValueError(f"stage {cfg.stage} does not support training.gradient_checkpointing")
            self.stage.model.enable_gradient_checkpointing()
        if tcfg.compile:
            self.stage.compile()

        # Data
        if cfg.data.val_dir and not Path(cfg.data.val_dir).is_dir():
            raise ConfigError(f"data.val_dir={cfg.data.val_dir!r} is not a directory")
        self.dataset, self.collate = self.stage.build_dataset(acc.process_index, acc.num_processes)
        self.report.merge(getattr(self.dataset, "report", SkipReport()))
        self.validator = Validator(cfg, acc, self.stage, getattr(self.dataset, "length_multiple", 1))
        self.sampler = None
        if not isinstance(self.dataset, IterableDataset):
            self.sampler = BucketBatchSampler(
                self.dataset.buckets, cfg.data.batch_size, seed=tcfg.seed,
                rank=acc.process_index, world_size=acc.num_processes,
            )

        # Optimizer
        self.optimizer = self._adamw(self.stage.model)
        self.scheduler = build_lr_scheduler(
            self.optimizer, tcfg.warmup_steps, tcfg.max_steps, tcfg.lr_schedule
        )
        prepared = [self.stage.model, self.optimizer]
        self.d_optimizer = None
        if self.stage.discriminator is not None:
            self.d_optimizer = self._adamw(self.stage.discriminator)
            prepared += [self.stage.discriminator, self.d_optimizer]
        prepared = acc.prepare(*prepared)
        self.model, self.optimizer = prepared[0], prepared[1]
        self.discriminator = prepared[2] if self.d_optimizer is not None else None
        if self.d_optimizer is not None:
            self.d_optimizer = prepared[3]
        # The schedule is stepped by us once per update; accelerate's wrapper would step it once per
        # process. Registered so accelerate's save_state/load_state carry it where they are used
        # (sharded setups; otherwise `state_io` writes it as JSON).
        acc.register_for_checkpointing(self.scheduler)

        sharded = acc.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        self.ema = None
        if tcfg.ema_decay > 0:
            if sharded:
                logger.warning("EMA is disabled under FSDP/DeepSpeed (weights are sharded); "
                               "exports use the raw weights")
            else:
                self.ema = EMA(acc.unwrap_model(self.model), tcfg.ema_decay)

        # Resume
        if resume is not None:
            self._load(resume)  # also restores every process's RNG states
            # Only now: a resume that fails (a bad override, a damaged checkpoint) leaves the run's
            # config.yaml as it was.
            if acc.is_main_process:
                save_yaml(cfg, self.output_dir / "config.yaml")
            acc.wait_for_everyone()
        else:
            if tcfg.init_from:
                self.stage.initialize_from(Path(tcfg.init_from), self._early_batches())
            else:
                self.stage.setup(self._early_batches())
            if self.ema is not None:  # the EMA starts from the trained or data-initialised weights
                self.ema = EMA(acc.unwrap_model(self.model), tcfg.ema_decay)
            # Per-process RNG streams for noise, timesteps and dropout: ranks must not draw alike.
            set_seed(tcfg.seed + acc.process_index)

    def _adamw(self, module: torch.nn.Module) -> torch.optim.AdamW:
        tcfg = self.cfg.training
        params = [p for p in module.parameters() if p.requires_grad]
        if not params:
            raise ValueError(f"stage {self.cfg.stage}: {type(module).__name__} has no trainable parameters")
        return torch.optim.AdamW(params, lr=tcfg.lr, betas=tuple(tcfg.betas), weight_decay=tcfg.weight_decay)

    # ----------------------------------------------------------------------------------- data
    def _loader(self, epoch: int, start_batch: int) -> DataLoader:
        data = self.cfg.data
        kwargs = dict(collate_fn=self.collate, num_workers=data.num_workers)
        # A private generator keeps DataLoader worker seeding off the global RNG (exact resume).
        kwargs["generator"] = torch.Generator().manual_seed(self.cfg.training.seed * 7919 + epoch)
        if self.sampler is None:  # a streaming dataset: it splits itself across processes/workers
            if hasattr(self.dataset, "set_position"):
                self.dataset.set_position(start_batch)
            return DataLoader(self.dataset, batch_size=data.batch_size, **kwargs)
        self.sampler.set_epoch(epoch, start_batch)
        return DataLoader(self.dataset, batch_sampler=self.sampler, **kwargs)

    def _batches(self):
        """Endless batches; `self.state` always says how many have been consumed."""
        while True:
            produced = False
            for batch in self._loader(self.state.epoch, self.state.batch_in_epoch):
                produced = True
                self.state.batch_in_epoch += 1
                for path, reason in batch.pop("skipped", []):
                    self.report.skip(path, reason)
                if self.cfg.training.log_sample_ids:
                    self._log_ids(batch)
                yield batch
            if not produced and self.state.batch_in_epoch == 0:
                raise RuntimeError("the dataset produced no batches")
            self.state.epoch += 1
            self.state.batch_in_epoch = 0

    def _log_ids(self, batch: dict) -> None:
        """Append this batch's clip ids (one line per batch) to sample_ids/rank_R.txt, for data audits."""
        path = self.output_dir / "sample_ids" / f"rank_{self.accelerator.process_index}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:
            handle.write(f"{self.state.epoch} {self.state.batch_in_epoch - 1} {' '.join(batch.get('id', []))}\n")

    def _early_batches(self):
        """Batches of epoch 0 for `Stage.setup`, from a separate loader (state is untouched)."""
        for batch in self._loader(0, 0):
            batch.pop("skipped", None)
            yield batch

    # ----------------------------------------------------------------------------------- checkpoints
    def _export_state(self) -> dict[str, torch.Tensor] | None:
        """The weights to export (EMA when enabled); gathered on every process, used on the main."""
        if self.ema is not None:
            return self.ema.state_dict_for(self.accelerator.unwrap_model(self.model))
        return self.accelerator.get_state_dict(self.model)

    def save_checkpoint(self) -> Path | None:
        acc = self.accelerator
        tmp = self.checkpoints.begin(self.state.step) if acc.is_main_process else None
        tmp = gather_object([str(tmp)])[0] if acc.num_processes > 1 else tmp
        tmp = Path(tmp)
        self.state.data_report = self.report.to_dict()
        self.state.stage = self.stage.state_dict()
        if self._sharded():
            acc.save_state(str(tmp / STATE_DIR))  # FSDP/DeepSpeed shards: their own formats (state_io)
        else:
            save_training_state(tmp / STATE_DIR, acc, *self._state_parts(),
                                trained_only=not self.stage.checkpoints_frozen_weights)
        export_state = self._export_state()
        final = None
        if acc.is_main_process:
            if self.ema is not None:
                self.ema.save(tmp / EMA_FILE)
            with self._rng_isolated():  # building export models draws init weights from the RNG
                self.stage.export(export_state, tmp / self.stage.export_dirname)
            # Each process's data position is identical; the skip reports are merged at the end.
            write_json(tmp / TRAINER_STATE, asdict(self.state))
            final = self.checkpoints.publish(tmp, self.state.step)
        acc.wait_for_everyone()
        return final

    def _rng_isolated(self):
        """Keep side work (exports, sample logs) from advancing the training RNG: a resumed run
        restores the RNG as saved, so anything drawn after the save would make it diverge."""
        devices = [self.accelerator.device] if self.accelerator.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    def _sharded(self) -> bool:
        return self.accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)

    def _state_parts(self) -> tuple[dict, dict, object]:
        """(modules, optimizers, lr schedule) of the resumable state, by file name."""
        modules, optimizers = {"model": self.model}, {"optimizer": self.optimizer}
        if self.d_optimizer is not None:
            modules["discriminator"], optimizers["d_optimizer"] = self.discriminator, self.d_optimizer
        return modules, optimizers, self.scheduler

    def _load(self, checkpoint: Path) -> None:
        acc = self.accelerator
        check_checkpoint_integrity(checkpoint)
        if is_pickle_free(checkpoint / STATE_DIR):
            load_training_state(checkpoint / STATE_DIR, acc, *self._state_parts(),
                                trained_only=not self.stage.checkpoints_frozen_weights)
        elif self._sharded():
            acc.load_state(str(checkpoint / STATE_DIR))
        else:
            raise CheckpointError(
                f"{checkpoint} holds its state in accelerate's pickle format (written before issue 22), and "
                "loading it could run code; it is not resumed. Start a new run from its weights instead: "
                f"training.init_from={checkpoint}")
        if self.ema is not None:
            ema_path = checkpoint / EMA_FILE
            if not ema_path.is_file():
                raise FileNotFoundError(f"{checkpoint} has no {EMA_FILE} but training.ema_decay > 0")
            self.ema.load(ema_path)
        self.state = TrainerState(**read_json(checkpoint / TRAINER_STATE))
        self.report.merge(self.state.data_report)
        self.stage.load_state_dict(self.state.stage)
        if acc.is_main_process:
            logger.info("resumed from %s at step %d", checkpoint, self.state.step)

    # ----------------------------------------------------------------------------------- loop
    def _all_finite(self, value: torch.Tensor) -> bool:
        flag = torch.tensor(float(torch.isfinite(value.detach()).all()), device=self.accelerator.device)
        return bool(self.accelerator.reduce(flag, reduction="sum").item() == self.accelerator.num_processes)

    def _train_step(self, batches) -> tuple[bool, dict[str, float], int]:
        """One optimizer update over `grad_accum_steps` micro-batches. Returns (applied, logs, clips)."""
        acc, tcfg = self.accelerator, self.cfg.training
        accum = tcfg.grad_accum_steps
        logs: dict[str, float] = {}
        clips = 0
        finite = True
        for micro in range(accum):
            batch = next(batches)
            self.last_batch = batch
            clips += _batch_size(batch)
            inputs = self.stage.prepare_batch(batch)
            last = micro == accum - 1
            sync = contextlib.nullcontext() if last else acc.no_sync(self.model)
            with sync:
                with acc.autocast():
                    outputs = self.stage.compute_losses(self.model, inputs, self.state.step)
                if not self._all_finite(outputs["loss"]):
                    finite = False
                    break
                acc.backward(outputs["loss"] / accum)
                d_loss = None
                if self.discriminator is not None:
                    with acc.autocast():
                        d_loss = self.stage.discriminator_loss(self.discriminator, inputs, outputs, self.state.step)
                if d_loss is not None:
                    if not self._all_finite(d_loss):
                        finite = False
                        break
                    acc.backward(d_loss / accum)
                    outputs["discriminator_loss"] = d_loss
            for name, value in outputs.items():
                if torch.is_tensor(value) and value.numel() == 1:
                    logs[name] = logs.get(name, 0.0) + float(value.detach()) / accum
        if not finite:
            self.optimizer.zero_grad(set_to_none=True)
            if self.d_optimizer is not None:
                self.d_optimizer.zero_grad(set_to_none=True)
            return False, logs, clips

        max_norm = tcfg.grad_clip if tcfg.grad_clip > 0 else math.inf
        grad_norm = acc.clip_grad_norm_(self.model.parameters(), max_norm)
        logs["grad_norm"] = float(grad_norm)
        if not math.isfinite(logs["grad_norm"]) and tcfg.mixed_precision != "fp16":
            # fp16's GradScaler skips overflowing steps itself (and must see them to lower its scale).
            self.optimizer.zero_grad(set_to_none=True)
            return False, logs, clips
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.d_optimizer is not None:
            if any(p.grad is not None for p in self.discriminator.parameters()):
                acc.clip_grad_norm_(self.discriminator.parameters(), max_norm)
                self.d_optimizer.step()
            self.d_optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(acc.unwrap_model(self.model))
        return True, logs, clips

    def train(self) -> TrainResult:
        acc, tcfg = self.accelerator, self.cfg.training
        acc.init_trackers("audiodit")
        batches = self._batches()
        progress = tqdm(total=tcfg.max_steps, initial=self.state.step, disable=not acc.is_local_main_process,
                        desc=f"{self.cfg.stage}", dynamic_ncols=True)
        window: dict[str, float] = {}
        window_steps, window_clips, window_start = 0, 0, time.perf_counter()
        last_checkpoint = None
        while not self._done():
            applied, logs, clips = self._train_step(batches)
            self.state.samples_seen += clips
            window_clips += clips
            if not applied:
                self.state.nonfinite_total += 1
                self.state.nonfinite_in_a_row += 1
                acc.print(f"warning: non-finite loss or gradient at step {self.state.step}; update skipped "
                          f"({self.state.nonfinite_in_a_row} in a row, {self.state.nonfinite_total} in total)")
                if self.state.nonfinite_in_a_row >= tcfg.max_nonfinite_in_a_row:
                    acc.end_training()
                    raise NonFiniteLossError(
                        f"{self.state.nonfinite_in_a_row} non-finite losses in a row (limit "
                        f"training.max_nonfinite_in_a_row={tcfg.max_nonfinite_in_a_row}) at step "
                        f"{self.state.step}: the run diverged. Lower training.lr, raise "
                        "training.warmup_steps or check the data; resume from the last good "
                        "checkpoint with --resume latest."
                    )
                continue
            self.state.nonfinite_in_a_row = 0
            self.state.step += 1
            progress.update(1)
            window_steps += 1
            for name, value in logs.items():
                window[name] = window.get(name, 0.0) + value
            step = self.state.step
            if step % tcfg.log_every == 0 or self._done():
                elapsed = time.perf_counter() - window_start
                scalars = {f"train/{k}": v / window_steps for k, v in window.items()}
                scalars = self._mean_over_processes(scalars)
                scalars["train/lr"] = self.scheduler.get_last_lr()[0]
                scalars["train/samples_per_s"] = window_clips * acc.num_processes / max(elapsed, 1e-9)
                scalars["train/nonfinite_total"] = self.state.nonfinite_total
                acc.log(scalars, step=step)
                progress.set_postfix(loss=f"{scalars.get('train/loss', float('nan')):.4f}",
                                     samples_s=f"{scalars['train/samples_per_s']:.1f}")
                window, window_steps, window_clips, window_start = {}, 0, 0, time.perf_counter()
            if step % tcfg.checkpoint_every == 0 or self._done():
                last_checkpoint = self.save_checkpoint()
                self._validate()
            if tcfg.sample_every and (step % tcfg.sample_every == 0 or self._done()):
                self._log_samples(self.last_batch)
        progress.close()
        return self._finish(last_checkpoint)

    def _validate(self) -> None:
        if self.validator.loader() is None:
            return
        with self._rng_isolated():
            losses = self.validator.losses(self.model, self.state.step)
        scalars = self._mean_over_processes(losses)
        self.accelerator.log(scalars, step=self.state.step)
        if "val/loss" in scalars:
            self.accelerator.print(f"step {self.state.step}: val/loss {scalars['val/loss']:.4f}")

    def _done(self) -> bool:
        tcfg = self.cfg.training
        if self.state.step >= tcfg.max_steps or 0 < tcfg.stop_at_step <= self.state.step:
            return True
        if tcfg.max_epochs and self.sampler is not None:
            return self.state.epoch * len(self.sampler) + self.state.batch_in_epoch >= tcfg.max_epochs * len(self.sampler)
        return False

    def _mean_over_processes(self, scalars: dict[str, float]) -> dict[str, float]:
        if self.accelerator.num_processes == 1 or not scalars:
            return scalars
        names = sorted(scalars)
        values = torch.tensor([scalars[n] for n in names], device=self.accelerator.device)
        values = self.accelerator.reduce(values, reduction="mean")
        return dict(zip(names, values.tolist()))

    def _log_samples(self, batch) -> None:
        acc = self.accelerator
        state = self._export_state()
        if acc.is_main_process:
            writer = acc.get_tracker("tensorboard", unwrap=True)
            with self._rng_isolated():
                self.stage.log_samples(state, self.state.step, writer, batch)
        acc.wait_for_everyone()

    def _finish(self, last_checkpoint: Path | None) -> TrainResult:
        acc = self.accelerator
        reports = gather_object([self.report.to_dict()]) if acc.num_processes > 1 else [self.report.to_dict()]
        merged = SkipReport()
        for report in reports:
            merged.merge(report)
        digests = self._weight_digests()
        if acc.is_main_process:
            if len(set(digests)) > 1:
                acc.print(f"warning: processes hold different weights at the end ({digests}); "
                          "data-parallel training went out of sync")
            write_json(self.output_dir / "processes.json",
                       {"num_processes": acc.num_processes, "weights_sha256": digests})
            merged.save(self.output_dir / "data_report.json")
            acc.print(merged.summary())
            if self.state.nonfinite_total:
                acc.print(f"skipped {self.state.nonfinite_total} update(s) with a non-finite loss")
            if last_checkpoint is not None:
                acc.print(f"last checkpoint: {last_checkpoint}")
        acc.end_training()
        return TrainResult(self.output_dir, self.state.step, last_checkpoint, merged, self.state.nonfinite_total)


    def _weight_digests(self) -> list[str]:
        """sha256 of each process's trained weights (all equal under DDP; empty when sharded)."""
        if self.accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
            return []
        digest = state_digest(self.accelerator.unwrap_model(self.model).state_dict())
        return [digest] if self.accelerator.num_processes == 1 else gather_object([digest])


def _batch_size(batch: dict) -> int:
    for value in batch.values():
        if torch.is_tensor(value):
            return value.shape[0]
        if isinstance(value, list):
            return len(value)
    return 0


def train(cfg: Config, resume: Path | None = None, overwrite: bool = False, cpu: bool = False) -> TrainResult:
    """Train `cfg.stage` as configured; `resume` is a checkpoint directory (see `resolve_resume`)."""
    return Trainer(cfg, resume=resume, overwrite=overwrite, cpu=cpu).train()


__all__ = ["NonFiniteLossError", "Trainer", "TrainResult", "TrainerState", "train"]
