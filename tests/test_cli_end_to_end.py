"""benchmarks/cli_end_to_end.py: the CLI's wall time from process start to file, beside its generation."""

import json
import subprocess
import sys
from pathlib import Path

from audiodit.testing import tiny_pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_cli_end_to_end_benchmark_reports_its_ratio(tmp_path):
    model = tmp_path / "tiny"
    tiny_pipeline(seed=0).save_pretrained(model)
    out = tmp_path / "result.json"
    result = subprocess.run([sys.executable, "-m", "benchmarks.cli_end_to_end", "--model", str(model),
                             "--seconds", "0.5", "--repeats", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert 0 < report["generation_s"] < report["end_to_end_s"]
    assert report["import_s"]["audiodit.pipeline"] == report["import_pipeline_s"]
    required = "torch, open_clip, diffusers.models.modeling_utils"
    assert set(report["import_s"]) == {"torch", "open_clip", "diffusers.models.modeling_utils",
                                       "diffusers.pipelines.pipeline_utils", "audiodit.pipeline", required}
    assert report["ratio_end_to_end_over_generation"] == report["end_to_end_s"] / report["generation_s"]
    floor = report["ratio_floor_with_required_imports"]
    assert floor == (report["generation_s"] + report["import_s"][required]) / report["generation_s"] > 1
    # A bad argument is refused without importing the model stack: faster than importing it.
    assert report["bad_argument_rejected_s"] < report["import_pipeline_s"]
