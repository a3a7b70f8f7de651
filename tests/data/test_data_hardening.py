"""Datasets at their edges (issue 22): bad metadata rows, captions and file names, paths that leave
the data root, damaged latent shards and indexes are skipped and counted, never a crash mid-run and
never a read outside the root; a dataset with nothing usable is one clear error."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import save_file

from audiodit.data.folder import AudioFolderDataset
from audiodit.data.latents import LatentDataset
from audiodit.data.latents import INDEX, INDEX_VERSION


def _wav(path, seconds=1.2):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(0).standard_normal((int(48000 * seconds), 2)).astype(np.float32), 48000)


def _folder(root, **kwargs):
    return AudioFolderDataset(root, clip_seconds=1.0, min_seconds=0.5, **kwargs)


def test_bad_metadata_rows_are_skipped_and_nothing_outside_the_root_is_read(tmp_path, monkeypatch):
    root = tmp_path / "data"
    _wav(root / "good.wav")
    _wav(root / "also.wav")
    _wav(tmp_path / "outside.wav")  # exists, but a metadata path must not reach it
    lines = [
        json.dumps({"file_name": "good.wav", "caption": "a good clip"}).encode(),
        b'{"file_name": "also.wav", "caption": "broken',  # not JSON
        b'{"file_name": "also.wav", "caption": "\xff\xfe"}',  # not UTF-8
        b"[1, 2, 3]",  # not an object
        json.dumps({"caption": "no path"}).encode(),
        json.dumps({"file_name": "../outside.wav", "caption": "escape"}).encode(),
        json.dumps({"file_name": str(tmp_path / "outside.wav"), "caption": "absolute"}).encode(),
    ]
    (root / "metadata.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    opened = []
    import audiodit.data.folder as folder

    original = folder.audio_info
    monkeypatch.setattr(folder, "audio_info", lambda path: opened.append(os.path.realpath(path)) or original(path))
    dataset = _folder(root)
    assert [record.id for record in dataset.records] == ["good.wav"]
    reasons = sorted(dataset.report.skipped.values())
    assert len(reasons) == 6, reasons
    assert sum("leaves the data root" in reason for reason in reasons) == 2
    assert any("not UTF-8" in reason for reason in reasons) and any("not valid JSON" in reason for reason in reasons)
    assert os.path.realpath(tmp_path / "outside.wav") not in opened
    assert dataset[0]["caption"] == "a good clip"


def test_metadata_with_no_usable_row_is_one_clear_error(tmp_path):
    root = tmp_path / "data"
    _wav(root / "a.wav")
    (root / "metadata.jsonl").write_text('{"caption": "no path"}\nnot json\n')
    with pytest.raises(ValueError, match="no usable row in its metadata file"):
        _folder(root)


def test_captions_and_file_names_that_are_not_utf8_are_skipped(tmp_path):
    root = tmp_path / "data"
    _wav(root / "fine.wav")
    (root / "fine.txt").write_text("a fine caption")
    _wav(root / "latin1.wav")
    (root / "latin1.txt").write_bytes("caf\xe9 music".encode("latin-1"))
    _wav(root / "renamed.wav")
    os.rename(root / "renamed.wav", os.path.join(os.fsencode(root), b"bad-\xff.wav"))  # soundfile cannot name it
    dataset = _folder(root)
    assert [record.id for record in dataset.records] == ["fine.wav"]
    assert sorted(dataset.report.skipped.values()) == ["caption sidecar is not UTF-8", "file name is not UTF-8"]


def _latent_set(root, rows, shards):
    root.mkdir(parents=True, exist_ok=True)
    for name, tensors in shards.items():
        save_file(tensors, str(root / name))
    index = {"version": INDEX_VERSION, "captions": None, "samples": rows,
             "vae": {"latent_channels": 4, "hop_length": 1920, "sampling_rate": 48000, "latent_rate": 25.0,
                     "scaling_factor": 1.0}}
    (root / INDEX).write_text(json.dumps(index))


def _row(sample_id, shard, key, frames=30):
    return {"id": sample_id, "shard": shard, "key": key, "frames": frames, "seconds_offset": 0.0,
            "seconds_total": frames / 25.0, "caption": f"clip {sample_id}"}


def test_damaged_latent_shards_and_rows_are_skipped_and_a_shard_lost_mid_run_is_replaced(tmp_path):
    root = tmp_path / "latents"
    good = {"0": torch.randn(4, 30), "1": torch.randn(4, 30)}
    _latent_set(root, [
        _row("a", "good.safetensors", "0"), _row("b", "good.safetensors", "1"),
        _row("c", "later.safetensors", "0"),
        _row("d", "truncated.safetensors", "0"),
        _row("e", "missing.safetensors", "0"),
        _row("f", "good.safetensors", "9"),  # no such tensor
        _row("g", "../outside.safetensors", "0"),
        {"id": "h", "shard": "good.safetensors"},  # fields missing
    ], {"good.safetensors": good, "later.safetensors": {"0": torch.randn(4, 30)},
        "truncated.safetensors": {"0": torch.randn(4, 30)}})
    save_file({"0": torch.randn(4, 30)}, str(tmp_path / "outside.safetensors"))
    truncated = root / "truncated.safetensors"
    truncated.write_bytes(truncated.read_bytes()[:-100])
    dataset = LatentDataset(root, clip_seconds=1.0, random_crop=False)
    assert [sample["id"] for sample in dataset.samples] == ["a", "b", "c"]
    assert sorted(dataset.report.skipped) == ["d", "e", "f", "g", "h"]
    torch.testing.assert_close(dataset[0]["latents"][:, :25], good["0"][:, :25])
    (root / "later.safetensors").unlink()  # lost while training
    item = dataset[2]
    assert item["id"] == "a" and item["skipped"][0][0] == "c"


@pytest.mark.parametrize("index_text, message", [
    ("{not json", "not a valid index"),
    (json.dumps({"version": INDEX_VERSION, "vae": {}}), "'samples' missing"),
    (json.dumps({"version": INDEX_VERSION, "samples": [], "vae": {"latent_rate": 25.0}}), "'vae' lacks"),
])
def test_an_unusable_latent_index_is_one_clear_error(tmp_path, index_text, message):
    (tmp_path / INDEX).write_text(index_text)
    with pytest.raises(ValueError, match=message):
        LatentDataset(tmp_path)
