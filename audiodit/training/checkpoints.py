"""Checkpoint directories: atomic writes, a `latest` pointer, keep-last-K, resume lookup.

Layout of a run (`training.output_dir`):

    config.yaml                  the full config of the run
    checkpoints/
      step-00000500/             one checkpoint, complete or absent, never half-written
        state/                   weights, optimizer, LR schedule, RNG states: safetensors + JSON (state_io)
        weights_digests.json     SHA-256 of every .safetensors file, checked on --resume (audiodit.integrity)
        ema.safetensors          EMA weights (when EMA is on)
        trainer_state.json       step, data position, counters
        pipeline/ or vae/        ready-to-use export (dit stage: AudioDiTPipeline; vae stage: AudioVAE)
      latest                     text file naming the newest complete checkpoint
    logs/                        TensorBoard event files

Atomicity: everything is written into `checkpoints/.tmp-step-XXXXXXXX/`, flushed, then renamed into
place with one `os.rename` (atomic on POSIX within a file system); only then is `latest` replaced,
itself through a temp file and `os.replace`. A run killed at any moment leaves either the previous
checkpoint as `latest` or the new one, never a partial directory under a real name. Leftover
`.tmp-*` directories from a killed run are removed by the next save.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from audiodit.configuration import atomic_write_text
from audiodit.integrity import IntegrityError, verify_digests, write_digests

CHECKPOINT_DIR = "checkpoints"
LATEST = "latest"
STATE_DIR = "state"
TRAINER_STATE = "trainer_state.json"
EMA_FILE = "ema.safetensors"
_NAME = re.compile(r"^step-(\d{8,})$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, or would overwrite an existing run."""


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def _fsync_tree(path: Path) -> None:
    """Flush every file under `path` to disk, so the rename publishes complete data."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())


class CheckpointManager:
    """Owns `output_dir/checkpoints`: where to write, how to publish, which to keep."""

    def __init__(self, output_dir: str | os.PathLike, keep: int = 3):
        if keep < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, got {keep}")
        self.root = Path(output_dir) / CHECKPOINT_DIR
        self.keep = keep

    # ---------------------------------------------------------------- listing
    def list(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = [p for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name)]
        return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))

    def latest(self) -> Path | None:
        """The checkpoint named by `latest`, or None when the run has none yet."""
        pointer = self.root / LATEST
        if not pointer.is_file():
            return None
        path = self.root / pointer.read_text().strip()
        if not (path / TRAINER_STATE).is_file():
            raise CheckpointError(f"{pointer} names {path.name}, which is not a complete checkpoint")
        return path

    # ---------------------------------------------------------------- writing
    def begin(self, step: int) -> Path:
        """A fresh temporary directory to write checkpoint `step` into (main process only)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = self.root / f".tmp-{checkpoint_name(step)}"
        tmp.mkdir()
        return tmp

    def publish(self, tmp: Path, step: int) -> Path:
        """Rename the finished `tmp` into place, point `latest` at it, prune old ones."""
        if not (tmp / TRAINER_STATE).is_file():
            raise CheckpointError(f"{tmp} has no {TRAINER_STATE}; refusing to publish it")
        write_digests(tmp)  # resuming checks every weights file against these (audiodit.integrity)
        _fsync_tree(tmp)
        final = self.root / checkpoint_name(step)
        if final.exists():  # the same step saved twice (e.g. the final save): replace it safely
            old = self.root / f".tmp-old-{final.name}"
            os.rename(final, old)
            os.rename(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, final)
        atomic_write_text(self.root / LATEST, final.name + "\n")
        self.prune()
        return final

    def prune(self) -> None:
        latest = self.latest()
        for path in self.list()[: -self.keep]:
            if latest is None or path.resolve() != latest.resolve():
                shutil.rmtree(path, ignore_errors=True)


def check_checkpoint_integrity(checkpoint: Path) -> None:
    """CheckpointError naming the file if a weights file of `checkpoint` differs from the digest
    recorded when it was published (checkpoints from before digests existed: a warning)."""
    try:
        verify_digests(checkpoint, what=f"checkpoint {checkpoint}")
    except IntegrityError as err:
        raise CheckpointError(str(err)) from None


# ---------------------------------------------------------------- run-level helpers
def resolve_resume(resume: str, output_dir: str | os.PathLike) -> Path:
    """Turn `--resume latest|PATH` into a checkpoint directory.

    PATH may be a checkpoint (`.../checkpoints/step-00000500`), a run's `checkpoints/` folder or a
    run directory; the latter two mean that run's latest checkpoint.
    """
    if resume == LATEST:
        found = CheckpointManager(output_dir).latest()
        if found is None:
            raise CheckpointError(f"--resume latest: no checkpoint in {Path(output_dir) / CHECKPOINT_DIR}")
        return found
    path = Path(resume)
    if (path / TRAINER_STATE).is_file():
        return path
    run_root = path.parent if path.name == CHECKPOINT_DIR else path
    if (run_root / CHECKPOINT_DIR).is_dir():
        found = CheckpointManager(run_root).latest()
        if found is not None:
            return found
    raise CheckpointError(f"--resume {resume}: not a checkpoint directory (no {TRAINER_STATE})")


def run_dir_of(checkpoint: Path) -> Path:
    """`run/checkpoints/step-X` -> `run`."""
    return checkpoint.resolve().parent.parent


def prepare_output_dir(output_dir: str | os.PathLike, resuming: bool, overwrite: bool, main: bool = True) -> None:
    """Refuse to start a fresh run over an existing run's checkpoints (unless told to).

    Every process calls it (so all of them stop together); only the main one deletes or creates."""
    out = Path(output_dir)
    existing = CheckpointManager(out).list() or (out / CHECKPOINT_DIR / LATEST).exists()
    if existing and not resuming:
        if not overwrite:
            raise CheckpointError(
                f"{out} already holds checkpoints of a run; pass --resume latest to continue it, "
                "--overwrite to delete them and start over, or choose another training.output_dir"
            )
        if main:
            shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
            shutil.rmtree(out / "logs", ignore_errors=True)
    if main:
        out.mkdir(parents=True, exist_ok=True)


def write_json(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from err


def resolve_export(path: str | os.PathLike, setting: str, exports: tuple[str, ...]) -> Path:
    """A model or pipeline directory (config.json / model_index.json) as given, or the export
    (the first of `exports`, e.g. "vae" or "pipeline") of a run's latest checkpoint or of a given
    checkpoint. `setting` names the option in error messages."""
    path = Path(path)
    if (path / "model_index.json").is_file() or (path / "config.json").is_file():
        return path
    try:
        checkpoint = resolve_resume(str(path), path)
    except CheckpointError as err:
        raise ValueError(f"{setting}={str(path)!r} is neither a model or pipeline directory (config.json / "
                         f"model_index.json) nor a training run with checkpoints ({err})") from err
    for export in exports:
        if (checkpoint / export).is_dir():
            return checkpoint / export
    raise ValueError(f"{setting}={str(path)!r}: checkpoint {checkpoint} holds no "
                     + " or ".join(f"{export}/" for export in exports) + " export")


def resolve_vae_dir(path: str | os.PathLike, setting: str, exports: tuple[str, ...]) -> Path:
    """Like `resolve_export`, but a pipeline directory gives its `vae/`: the AudioVAE directory that
    `setting` (`vae_path`, `training.init_from` of the vae stage, `sample.py --vae`) names."""
    source = resolve_export(path, setting, exports)
    return source / "vae" if (source / "model_index.json").is_file() else source
