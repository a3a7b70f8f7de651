"""Tests for audiodit/data/mix.py: weights become exact repeat counts of training clips, held-out
splits are listed once, links resolve to the sources' audio, the folder dataset reads the mix, and
bad sources or an existing mix are refused."""

import json

import numpy as np
import pytest

from audiodit.data.folder import AudioFolderDataset
from audiodit.data.mix import build_mix, main, parse_source, repeats
from synthetic_audio import write_dataset


def make_dataset(root, domain, counts):
    """`count` two-second clips of `domain` per split, captioned "<domain> clip <i>"."""
    return write_dataset(root, {split: [{"id": f"{domain}-{i}", "domain": domain, "duration_s": 2.0,
                                         "caption": f"{domain} clip {i}"} for i in range(count)]
                                for split, count in counts.items()}, seconds=2.0)


def test_weights_are_repeat_counts(tmp_path):
    scores = make_dataset(tmp_path / "scores", "score", {"train": 4, "valid": 1})
    sounds = make_dataset(tmp_path / "sounds", "sound", {"train": 6, "test": 2})
    summary = build_mix(tmp_path / "mix", [(scores, 2.0), (sounds, 0.5)], seed=3)
    rows = [json.loads(line) for line in (tmp_path / "mix" / "train" / "metadata.jsonl").read_text().splitlines()]
    assert sum(row["domain"] == "score" for row in rows) == 8 and sum(row["domain"] == "sound" for row in rows) == 3
    assert summary["clips"]["train"] == {"score": 8, "score (unweighted)": 4, "sound": 3, "sound (unweighted)": 6}
    assert summary["hours"]["train"]["score"] == pytest.approx(8 * 2 / 3600, abs=1e-3)
    assert summary["clips"]["valid"] == {"score": 1, "score (unweighted)": 1}
    assert summary["clips"]["test"] == {"sound": 2, "sound (unweighted)": 2}
    dataset = AudioFolderDataset(tmp_path / "mix" / "train", clip_seconds=1.0)
    assert len(dataset) == 11
    listed = {row["caption"] for row in rows}
    assert {record.caption for record in dataset.records} == listed and {f"score clip {i}" for i in range(4)} <= listed
    for record in dataset.records:
        assert record.path.resolve().parent.parent.name in ("scores", "sounds")
    assert json.loads((tmp_path / "mix" / "mix.json").read_text())["seed"] == 3


def test_fractional_repeats_are_seeded_and_exact():
    counts = repeats(10, 1.5, np.random.default_rng(0))
    assert counts.sum() == 15 and set(counts) == {1, 2}
    assert np.array_equal(counts, repeats(10, 1.5, np.random.default_rng(0)))
    assert repeats(7, 0.0, np.random.default_rng(0)).sum() == 0


def test_bad_sources_and_existing_mix_are_refused(tmp_path, capsys):
    scores = make_dataset(tmp_path / "scores", "score", {"train": 1})
    for text in ("data:-1", "data:x", ":2", "data:nan"):
        with pytest.raises(ValueError, match="--source"):
            parse_source(text)
    assert parse_source("a/b:2.5") == (tmp_path.__class__("a/b"), 2.5)
    build_mix(tmp_path / "mix", [(scores, 1.0)])
    with pytest.raises(FileExistsError):
        build_mix(tmp_path / "mix", [(scores, 1.0)])
    assert main(["--out", str(tmp_path / "other"), "--source", str(tmp_path / "missing")]) == 2
    assert "no train/ folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="share a folder name"):
        build_mix(tmp_path / "third", [(scores, 1.0), (scores, 2.0)])
