"""Merging pre-encoded folders: the merged folder reads back every source row's exact latents,
weights list rows as the mix does, and disagreeing sources are refused with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from audiodit.data.latents import INDEX, LatentDataset
from audiodit.data.merge_latents import main, merge_latents

VAE = {"latent_channels": 4, "hop_length": 1920, "sampling_rate": 48000, "latent_rate": 25.0, "scaling_factor": 1.0}


def _source(folder: Path, name: str, count: int, seed: int, vae=VAE, melody=False, captions=None) -> dict:
    """A pre-encoded folder of `count` random (4, 50) latents in one shard; returns {id: tensor}."""
    folder.mkdir(parents=True)
    generator = torch.Generator().manual_seed(seed)
    tensors = {str(i): torch.randn(4, 50, generator=generator) for i in range(count)}
    if melody:
        tensors |= {f"{i}.melody": torch.zeros(50, dtype=torch.int8) for i in range(count)}
    save_file(tensors, str(folder / "latents-00000.safetensors"))
    rows = [{"id": f"{name}-{i}", "shard": "latents-00000.safetensors", "key": str(i), "frames": 50,
             "seconds_offset": 0.0, "seconds_total": 2.0, "caption": f"{name} clip {i}"} for i in range(count)]
    (folder / INDEX).write_text(json.dumps({"version": 1, "vae": vae, "captions": captions, "melody": melody,
                                            "samples": rows, "report": {}}))
    return {row["id"]: tensors[row["key"]] for row in rows}


def test_merged_rows_read_back_exactly(tmp_path):
    first = _source(tmp_path / "a", "a", 4, 0)
    second = _source(tmp_path / "b", "b", 6, 1)
    summary = merge_latents(tmp_path / "m", [(tmp_path / "a", 1.0), (tmp_path / "b", 1.5)], seed=0)
    assert summary["rows"] == 4 + 9 and [s["listed"] for s in summary["sources"]] == [4, 9]
    dataset = LatentDataset(tmp_path / "m", clip_seconds=2.0, random_crop=False)
    assert len(dataset) == 13 and len(dataset.report) == 0
    originals = first | second
    seen = []
    for index in range(len(dataset)):
        item = dataset[index]
        base = item["id"].split("#")[0]
        torch.testing.assert_close(item["latents"], originals[base], rtol=0, atol=0)
        assert item["caption"] == f"{base.split('-')[0]} clip {base.split('-')[1]}"
        seen.append(item["id"])
    assert len(set(seen)) == 13  # copies get their own ids
    assert sum("#1" in name for name in seen) == 3  # a seeded half of b's six listed twice
    # the merge stays valid when the tree is moved: links are relative
    (tmp_path / "moved").mkdir()
    for name in ("a", "b", "m"):
        (tmp_path / name).rename(tmp_path / "moved" / name)
    assert len(LatentDataset(tmp_path / "moved" / "m", clip_seconds=2.0)) == 13


@pytest.mark.parametrize("change, message", [
    ({"vae": {**VAE, "hop_length": 960}}, "pre-encode both with one VAE"),
    ({"melody": True}, "pre-encode both alike"),
    ({"captions": "captions"}, "with --no-captions"),
])
def test_disagreeing_sources_are_refused(tmp_path, change, message):
    _source(tmp_path / "a", "a", 2, 0)
    _source(tmp_path / "b", "b", 2, 1, **change)
    with pytest.raises(ValueError, match=message):
        merge_latents(tmp_path / "m", [(tmp_path / "a", 1.0), (tmp_path / "b", 1.0)])
    assert not (tmp_path / "m").exists()  # a refused merge leaves nothing behind


def test_cli_errors_are_one_line(tmp_path, capsys):
    _source(tmp_path / "a", "a", 2, 0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    assert main(["--out", str(tmp_path / "full"), "--source", str(tmp_path / "a")]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "m"), "--source", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err.strip()
    assert "no index.json" in error and "\n" not in error
    with pytest.raises(SystemExit):
        main(["--source", str(tmp_path / "a")])  # --out missing: argparse's complaint, one line
    assert capsys.readouterr().err.strip().count("\n") == 0
    assert main(["--out", str(tmp_path / "m2"), "--source", f"{tmp_path / 'a'}:2"]) == 0
    assert json.loads((tmp_path / "m2" / "merge.json").read_text())["rows"] == 4
