"""benchmarks/melody.py: its floors and test, and the script end to end on a tiny melody model."""

import json

import numpy as np
import pytest
import torch
from test_evaluate import write_fake_corpus

from audiodit.melody import NO_PITCH, melody_agreement
from audiodit.testing import tiny_pipeline
from benchmarks import melody


def test_sign_flip_p_finds_a_consistent_gain_and_not_noise():
    assert melody.sign_flip_p(np.full(12, 0.2)) < 0.001
    assert melody.sign_flip_p(np.array([0.3, -0.3] * 6)) > 0.4
    assert melody.sign_flip_p(np.full(12, -0.2)) > 0.99


def test_the_shuffled_floor_leaves_each_output_its_own_tune_out():
    tunes = [torch.full((20,), pitch) for pitch in (0, 4, 7)]
    assert all(melody_agreement(tune, tune) == 1.0 for tune in tunes)
    assert melody.shuffled_agreement(tunes, tunes) == 0.0  # outputs that copy their own tune exactly
    rests = [torch.full((20,), NO_PITCH)] + tunes[1:]  # a tune with no pitch takes no part
    assert melody.shuffled_agreement(rests, tunes) == 0.0


def test_command_end_to_end_on_a_tiny_melody_model(tmp_path, capsys, single_thread):
    model_dir, data_dir = tmp_path / "model", tmp_path / "corpus"
    tiny_pipeline(seed=0, melody_conditioning=True).save_pretrained(model_dir)
    write_fake_corpus(data_dir, {
        "train": [("flute", 0, "major"), ("organ", 2, "minor"), ("flute", 5, "minor"), ("organ", 7, "major")],
        "test": [("flute", 3, "major"), ("organ", 0, "minor")],
    })
    out = tmp_path / "melody.md"
    assert melody.main(["--model", str(model_dir), "--data", str(data_dir), "--num-prompts", "2", "--seconds", "2",
                        "--steps", "2", "--melody-scales", "0,2", "--train-clips", "4", "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    rows = result["chroma_cosine"]
    assert set(rows) == {"reference@0", "hum@0", "reference@2", "hum@2", "ceiling_vae", "hum_vs_reference"}
    for name in ("reference@0", "hum@0", "reference@2", "hum@2"):
        assert all(0.0 <= rows[name][measure] <= 1.0 for measure in ("model", "text_only", "shuffled"))
        assert len(rows[name]["per_clip"]) == 2
    # the hum sings the reference's tune: most of its pitched frames agree
    assert rows["hum_vs_reference"] >= 0.6
    assert set(result["adherence"]) == {"text", "reference@0", "hum@0", "reference@2", "hum@2"}
    assert set(result["adherence_change"]["hum@2"]) == set(melody.ADHERENCE)
    table = out.read_text()
    assert "| hum | 2 |" in table and "Ceiling (the reference through the VAE)" in table
    assert "# Melody conditioning" in capsys.readouterr().out  # the report is printed too


def test_a_model_without_melody_conditioning_is_one_clear_error(tmp_path, capsys):
    tiny_pipeline(seed=0).save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit):
        melody.main(["--model", str(tmp_path / "model"), "--data", str(tmp_path)])
    assert "has no melody conditioning" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        melody.main(["--model", str(tmp_path / "model"), "--data", str(tmp_path), "--melody-scales", "x"])
    assert "--melody-scales must be numbers" in capsys.readouterr().err


def test_train_split_choice_samples_train_captions_only(tmp_path):
    """`--split train` (choosing a default scale) takes a seeded sample of train captions and never
    a held-out one; `test` keeps the held-out selection."""
    write_fake_corpus(tmp_path, {
        "train": [("flute", key, "major") for key in range(6)],
        "test": [("organ", 0, "minor"), ("organ", 2, "minor")],
    })
    chosen = melody.choose_prompts(tmp_path, "train", 3, seed=0)
    assert len(chosen) == 3 and all("/train/" in str(r["audio_path"]) for r in chosen)
    assert [r["id"] for r in chosen] == [r["id"] for r in melody.choose_prompts(tmp_path, "train", 3, seed=0)]
    held_out = melody.choose_prompts(tmp_path, "test", 2, seed=0)
    assert sorted(r["id"] for r in held_out) == ["test0-v0", "test1-v0"]
