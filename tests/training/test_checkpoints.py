import json
import os
import signal
import subprocess
import sys

import pytest

from audiodit.training.checkpoints import (
    TRAINER_STATE,
    CheckpointError,
    CheckpointManager,
    prepare_output_dir,
    resolve_resume,
)


def _write(manager: CheckpointManager, step: int, payload: str = "x"):
    tmp = manager.begin(step)
    (tmp / "weights.bin").write_text(payload * 10)
    (tmp / TRAINER_STATE).write_text(json.dumps({"step": step}))
    return manager.publish(tmp, step)


def test_publish_points_latest_and_keeps_last_k(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    assert manager.latest() is None
    for step in (10, 20, 30):
        final = _write(manager, step)
    assert final.name == "step-00000030"
    assert manager.latest() == final
    assert [p.name for p in manager.list()] == ["step-00000020", "step-00000030"]
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_exception_before_rename_leaves_previous_latest(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    _write(manager, 1)
    tmp = manager.begin(2)
    (tmp / "weights.bin").write_text("partial")
    # the process dies here (no trainer_state, no rename): publish refuses a partial directory
    with pytest.raises(CheckpointError, match="refusing"):
        manager.publish(tmp, 2)
    assert manager.latest().name == "step-00000001"
    assert [p.name for p in manager.list()] == ["step-00000001"]
    _write(manager, 3)  # the next save removes the leftover temp directory
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_process_killed_mid_write_leaves_latest_valid(tmp_path):
    manager = CheckpointManager(tmp_path, keep=3)
    _write(manager, 5, "good")
    script = f"""
import os, signal
from pathlib import Path
from audiodit.training.checkpoints import CheckpointManager
manager = CheckpointManager({str(tmp_path)!r}, keep=3)
tmp = manager.begin(6)
(tmp / "weights.bin").write_text("half" * 1000)
os.kill(os.getpid(), signal.SIGKILL)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -signal.SIGKILL
    latest = manager.latest()
    assert latest.name == "step-00000005"
    assert (latest / "weights.bin").read_text() == "good" * 10
    assert resolve_resume("latest", tmp_path) == latest


def test_same_step_saved_twice_is_replaced(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    _write(manager, 4, "a")
    final = _write(manager, 4, "b")
    assert (final / "weights.bin").read_text() == "b" * 10
    assert len(manager.list()) == 1


def test_resolve_resume_accepts_run_dir_checkpoints_dir_and_checkpoint(tmp_path):
    manager = CheckpointManager(tmp_path, keep=2)
    final = _write(manager, 7)
    assert resolve_resume(str(tmp_path), "elsewhere") == final
    assert resolve_resume(str(tmp_path / "checkpoints"), "elsewhere") == final
    assert resolve_resume(str(final), "elsewhere") == final
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resolve_resume("latest", tmp_path / "empty")
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        resolve_resume(str(tmp_path / "nothing"), tmp_path)


def test_latest_naming_an_incomplete_checkpoint_is_an_error(tmp_path):
    manager = CheckpointManager(tmp_path)
    final = _write(manager, 1)
    os.remove(final / TRAINER_STATE)
    with pytest.raises(CheckpointError, match="not a complete checkpoint"):
        manager.latest()


def test_fresh_run_refuses_existing_checkpoints_unless_overwrite(tmp_path):
    _write(CheckpointManager(tmp_path), 1)
    with pytest.raises(CheckpointError, match="--resume latest"):
        prepare_output_dir(tmp_path, resuming=False, overwrite=False)
    prepare_output_dir(tmp_path, resuming=True, overwrite=False)  # resuming is fine
    prepare_output_dir(tmp_path, resuming=False, overwrite=True)
    assert CheckpointManager(tmp_path).list() == []
