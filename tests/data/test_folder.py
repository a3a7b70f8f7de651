import json

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodit.data.folder import AudioFolderDataset, collate, read_metadata
from audiodit.data.report import SkipReport


def _tone(path, seconds, rate=48000, channels=2, value=0.1):
    frames = np.full((round(seconds * rate), channels), value, np.float32)
    frames[:, 0] *= np.linspace(0.5, 1.0, len(frames), dtype=np.float32)  # position-dependent: crops differ
    sf.write(str(path), frames if channels > 1 else frames[:, 0], rate)


def test_sidecar_txt_and_json_captions_and_missing_caption_note(tmp_path):
    _tone(tmp_path / "a.wav", 1.0)
    _tone(tmp_path / "b.flac", 1.0)
    _tone(tmp_path / "c.wav", 1.0)
    (tmp_path / "a.txt").write_text("piano\n")
    (tmp_path / "b.json").write_text(json.dumps({"caption": "drums", "bpm": 120}))
    dataset = AudioFolderDataset(tmp_path, clip_seconds=0.5, min_seconds=0.1)
    assert [(r.id, r.caption) for r in dataset.records] == [("a.wav", "piano"), ("b.flac", "drums"), ("c.wav", "")]
    assert dataset.report.notes["no caption (trained as unconditional)"] == 1


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_metadata_files_take_precedence(tmp_path, kind):
    (tmp_path / "sub").mkdir()
    _tone(tmp_path / "sub" / "x.wav", 1.0)
    _tone(tmp_path / "y.wav", 1.0)
    (tmp_path / "y.txt").write_text("ignored sidecar")
    if kind == "jsonl":
        (tmp_path / "metadata.jsonl").write_text(
            json.dumps({"file_name": "sub/x.wav", "caption": "strings"}) + "\n"
            + json.dumps({"path": "y.wav", "text": "brass"}) + "\n")
    else:
        (tmp_path / "metadata.csv").write_text("file_name,caption\nsub/x.wav,strings\ny.wav,brass\n")
    assert read_metadata(tmp_path) == {"sub/x.wav": "strings", "y.wav": "brass"}
    dataset = AudioFolderDataset(tmp_path, clip_seconds=0.5, min_seconds=0.1)
    assert {r.id: r.caption for r in dataset.records} == {"sub/x.wav": "strings", "y.wav": "brass"}


def test_bad_files_are_skipped_and_odd_ones_converted(tmp_path):
    _tone(tmp_path / "good.wav", 1.0)
    _tone(tmp_path / "mono_16k.wav", 1.0, rate=16000, channels=1)
    _tone(tmp_path / "short.wav", 0.05)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "garbage.flac").write_bytes(b"\x00\x01" * 500)
    (tmp_path / "listed_but_missing.txt").write_text("caption without audio")
    dataset = AudioFolderDataset(tmp_path, sample_rate=48000, clip_seconds=0.5, min_seconds=0.1)
    assert [r.id for r in dataset.records] == ["good.wav", "mono_16k.wav"]
    assert set(dataset.report.skipped) == {"short.wav", "empty.wav", "garbage.flac"}
    item = dataset[1]
    assert item["audio"].shape == (2, 24000)  # resampled to 48 kHz, duplicated to stereo
    assert torch.equal(item["audio"][0], item["audio"][1])
    assert "3 file(s)" in dataset.report.summary()


def test_crops_are_deterministic_per_epoch_and_carry_timing(tmp_path):
    _tone(tmp_path / "long.wav", 3.0)
    dataset = AudioFolderDataset(tmp_path, clip_seconds=1.0, min_seconds=0.1, seed=3)
    first, again, other_epoch = dataset[(0, 0)], dataset[(0, 0)], dataset[(0, 1)]
    assert torch.equal(first["audio"], again["audio"])
    assert first["seconds_start"] != other_epoch["seconds_start"]
    assert 0.0 <= first["seconds_start"] <= 2.0 and first["seconds_total"] == pytest.approx(3.0)
    assert first["num_samples"] == 48000
    expected = torch.from_numpy(sf.read(str(tmp_path / "long.wav"), dtype="float32")[0].T.copy())
    start = round(first["seconds_start"] * 48000)
    assert torch.allclose(first["audio"], expected[:, start:start + 48000], atol=1e-6)


def test_buckets_pad_short_files_to_their_bucket_only(tmp_path):
    _tone(tmp_path / "a.wav", 0.3)
    _tone(tmp_path / "b.wav", 0.9)
    _tone(tmp_path / "c.wav", 2.0)
    dataset = AudioFolderDataset(tmp_path, clip_seconds=1.0, min_seconds=0.1, num_buckets=4,
                                 length_multiple=1920)
    lengths = [dataset[i]["audio"].shape[-1] for i in range(3)]
    assert all(length % 1920 == 0 for length in lengths)
    assert lengths[0] < lengths[1] == lengths[2]  # 0.3 s -> a short bucket; 0.9 s and crops of 2 s -> full
    short = dataset[0]
    assert short["num_samples"] == 14400 and short["audio"][:, 14400:].abs().sum() == 0  # zero padding
    batch = collate([dataset[1], dataset[2]])
    assert batch["audio"].shape == (2, 2, lengths[1]) and batch["caption"] == ["", ""]
    assert batch["num_samples"].dtype == torch.long and batch["skipped"] == []


def test_a_file_failing_at_load_time_is_replaced_and_reported(tmp_path):
    _tone(tmp_path / "a.wav", 1.0)
    nan = np.full((48000, 2), np.nan, np.float32)
    sf.write(str(tmp_path / "b_nan.wav"), nan, 48000, subtype="FLOAT")
    dataset = AudioFolderDataset(tmp_path, clip_seconds=0.5, min_seconds=0.1)
    item = dataset[1]
    assert item["id"] == "a.wav" and [path for path, _ in item["skipped"]] == ["b_nan.wav"]
    assert torch.isfinite(item["audio"]).all()


def test_empty_folder_is_a_clear_error(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="no usable audio files"):
        AudioFolderDataset(tmp_path)
    with pytest.raises(FileNotFoundError):
        AudioFolderDataset(tmp_path / "missing")


def test_skip_report_merges_and_groups():
    report = SkipReport()
    report.skip("a.wav", "corrupt or unreadable (details)")
    other = SkipReport()
    other.skip("b.wav", "corrupt or unreadable (other details)")
    other.skip("a.wav", "ignored: first reason wins")
    report.merge(other.to_dict())
    assert len(report) == 2 and report.by_reason() == {"corrupt or unreadable": 2}


def test_unsupported_normalize_mode_fails_at_construction(tmp_path):
    _tone(tmp_path / "a.wav", 1.0)
    with pytest.raises(ValueError, match="audio.normalize"):
        AudioFolderDataset(tmp_path, clip_seconds=0.5, min_seconds=0.1, normalize="loudness")
