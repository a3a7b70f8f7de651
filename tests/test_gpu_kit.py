"""benchmarks/gpu_kit.sh, the prepared device run: it parses, and it stops with a reason (exit 2)
before any work when it is called wrongly or its package kit was not fetched."""

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_kit.sh"


def _kit(*args, **env):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def test_the_script_parses():
    assert subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True).returncode == 0


def test_no_command_prints_the_usage_and_exits_2():
    result = _kit()
    assert result.returncode == 2 and "usage: bash benchmarks/gpu_kit.sh fetch|run" in result.stderr


def test_run_without_a_fetched_kit_names_what_to_do(tmp_path):
    result = _kit("run", GPU_KIT_DIR=str(tmp_path / "kit"), OUT=str(tmp_path / "out"))
    assert result.returncode == 2
    assert "site.tar.xz missing" in result.stderr and "fetch" in result.stderr
    assert not (tmp_path / "out").exists()  # stopped before writing anything
