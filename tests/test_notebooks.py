"""Notebooks are executed, so they cannot rot."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def test_quickstart_runs_top_to_bottom():
    notebook = nbformat.read(NOTEBOOKS / "quickstart.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    outputs = [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    audio_outputs = [out for out in outputs if "text/html" in out.get("data", {}) and "<audio" in out["data"]["text/html"]]
    assert len(audio_outputs) == 4  # the clip, its continuation, D minor without and with key classifier guidance
    assert any("image/png" in out.get("data", {}) for out in outputs)
