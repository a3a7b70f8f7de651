"""Two CPU processes (gloo) through `accelerate launch --multi_gpu --num_processes 2 train.py --cpu`.

(`accelerate launch --cpu --num_processes 2` silently runs one process, hence --multi_gpu.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from audiodit.training.checkpoints import CheckpointManager

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("accelerate", path=os.path.dirname(sys.executable)) is None,
                    reason="accelerate CLI not installed")
def test_two_processes_hold_identical_weights_and_see_disjoint_data(toy_data, tiny_vae_dir, tmp_path):
    out = tmp_path / "run"
    command = [
        os.path.join(os.path.dirname(sys.executable), "accelerate"), "launch", "--multi_gpu",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", "29517", str(REPO / "train.py"), "--cpu",
        "--config", str(REPO / "configs" / "dit_tiny.yaml"),
        f"data.train_dir={toy_data}", f"vae_path={tiny_vae_dir}", f"training.output_dir={out}",
        "training.max_steps=3", "training.checkpoint_every=3", "training.log_sample_ids=true",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    processes = json.loads((out / "processes.json").read_text())
    assert processes["num_processes"] == 2
    assert len(set(processes["weights_sha256"])) == 1  # DDP kept the replicas identical

    seen = []  # per rank: epoch -> clip ids
    for rank in (0, 1):
        lines = (out / "sample_ids" / f"rank_{rank}.txt").read_text().splitlines()
        assert len(lines) == 3  # one batch per step, same count on both ranks
        by_epoch: dict[str, set[str]] = {}
        for line in lines:
            epoch, _batch, *clips = line.split()
            by_epoch.setdefault(epoch, set()).update(clips)
        seen.append(by_epoch)
    # 8 clips, batch 2, 2 ranks: 2 batches per rank per epoch, so 3 steps span epochs 0 and 1.
    assert set(seen[0]) == set(seen[1]) == {"0", "1"}
    for epoch in ("0", "1"):
        assert not seen[0][epoch] & seen[1][epoch]  # within an epoch no clip is seen by both ranks
    assert len(seen[0]["0"] | seen[1]["0"]) == 8  # and together they cover the data
    assert CheckpointManager(out).latest().name == "step-00000003"
