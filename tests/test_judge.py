"""The judge's subprocess plumbing with a fake worker, and (where .venv-judge exists) the real
musicnn judge telling a drum beat from a tone and from noise."""

import json
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf

from audiodit import judge

SR = 48000

FAKE_WORKER = textwrap.dedent('''
    """Writes judge_worker.py's format: file i gets tag probability (i+1)/10 on tag i of two."""
    import argparse, json, sys
    import numpy as np
    parser = argparse.ArgumentParser()
    parser.add_argument("--files"); parser.add_argument("--out"); parser.add_argument("--models", nargs="+")
    args = parser.parse_args()
    files = json.load(open(args.files))
    if any(f.endswith("unreadable.wav") for f in files):
        print("judge worker: cannot read unreadable.wav", file=sys.stderr); sys.exit(2)
    if any(f.endswith("nomusicnn.wav") for f in files):
        print("judge worker: cannot import the judge's packages (no musicnn)", file=sys.stderr); sys.exit(3)
    if any(f.endswith("short.wav") for f in files):
        files = files[:-1]
    arrays = {"files": np.array(files, dtype=str), "timings": np.array(json.dumps({"files": len(files)}))}
    for model in args.models:
        tags = np.zeros((len(files), 2), np.float32)
        tags[np.arange(len(files)), np.arange(len(files)) % 2] = (np.arange(len(files)) + 1) / 10
        arrays[model + ".tags"] = tags
        arrays[model + ".tag_names"] = np.array(["drums", "piano"])
        arrays[model + ".embedding"] = np.arange(len(files) * 3, dtype=np.float32).reshape(len(files), 3)
    np.savez(args.out, **arrays)
''')


@pytest.fixture
def fake_worker(tmp_path):
    path = tmp_path / "fake_worker.py"
    path.write_text(FAKE_WORKER)
    return path


def write_clip(path, seconds=0.5):
    sf.write(path, np.zeros((int(seconds * SR), 2), np.float32), SR)
    return path


def test_missing_interpreter_is_one_line_with_the_install_commands(monkeypatch, tmp_path):
    monkeypatch.delenv(judge.ENV_VARIABLE, raising=False)
    monkeypatch.setattr(judge, "JUDGE_VENV", "no-such-venv")
    with pytest.raises(judge.JudgeUnavailableError) as error:
        judge.judge_python()
    message = str(error.value)
    assert "\n" not in message and "pip install --no-deps musicnn" in message and "tensorflow-cpu" in message
    assert not judge.judge_available()
    with pytest.raises(judge.JudgeUnavailableError, match="does not exist"):
        judge.judge_python(tmp_path / "missing" / "python")
    monkeypatch.setenv(judge.ENV_VARIABLE, str(tmp_path / "also-missing"))
    with pytest.raises(judge.JudgeUnavailableError, match="also-missing"):
        judge.judge_files([write_clip(tmp_path / "a.wav")])


def test_interpreter_order_argument_then_environment(monkeypatch, tmp_path):
    from_env, from_argument = tmp_path / "env-python", tmp_path / "arg-python"
    from_env.touch()
    from_argument.touch()
    monkeypatch.setenv(judge.ENV_VARIABLE, str(from_env))
    assert judge.judge_python() == from_env
    assert judge.judge_python(from_argument) == from_argument


def test_files_in_results_out_in_the_same_order(tmp_path, fake_worker):
    files = [write_clip(tmp_path / f"{name}.wav") for name in ("c", "a", "b")]
    output = judge.judge_files(files, python=sys.executable, worker=fake_worker, models=("MTT_musicnn",))
    assert output.files == [str(f.resolve()) for f in files]
    assert output.tag_names == {"MTT_musicnn": ["drums", "piano"]}
    np.testing.assert_allclose(output.tag("drums"), [0.1, 0.0, 0.3])
    assert output.top_tags(1, k=1) == [("piano", pytest.approx(0.2))]
    assert output.embeddings["MTT_musicnn"].shape == (3, 3)
    assert output.timings == {"files": 3}


def test_in_memory_clips_go_through_temporary_files(fake_worker):
    clips = [np.zeros((2, SR // 10), np.float32), np.zeros((1, SR // 10), np.float32)]
    output = judge.judge_audio(clips, SR, python=sys.executable, worker=fake_worker)
    assert len(output.files) == 2 and set(output.tags) == {"MTT_musicnn", "MSD_musicnn"}


def test_worker_failures_become_clear_errors(tmp_path, fake_worker):
    run = dict(python=sys.executable, worker=fake_worker)
    with pytest.raises(judge.JudgeError, match="exit 2.*cannot read unreadable.wav"):
        judge.judge_files([write_clip(tmp_path / "unreadable.wav")], **run)
    with pytest.raises(judge.JudgeUnavailableError, match="no musicnn.*pip install"):
        judge.judge_files([write_clip(tmp_path / "nomusicnn.wav")], **run)
    with pytest.raises(judge.JudgeError, match="other files"):
        judge.judge_files([write_clip(tmp_path / "x.wav"), write_clip(tmp_path / "short.wav")], **run)
    with pytest.raises(FileNotFoundError):
        judge.judge_files([tmp_path / "absent.wav"], **run)
    with pytest.raises(ValueError, match="unknown judge model"):
        judge.judge_files([write_clip(tmp_path / "y.wav")], models=("VGGish",), **run)


def test_embedding_distances():
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((6, 4))
    same = judge.embedding_distances(reference, reference)
    assert same["cosine"] == pytest.approx(0.0, abs=1e-12) and same["euclidean"] == 0.0
    assert same["frechet"] == pytest.approx(0.0, abs=1e-6)
    assert judge.cosine_distances(reference, -reference) == pytest.approx(np.full(6, 2.0))
    moved = judge.embedding_distances(reference, reference + 1.0)
    assert moved["frechet"] == pytest.approx(4.0, rel=1e-6)  # |shift|^2, same covariance


def drum_beat(seconds=10.0, bpm=120.0, seed=0) -> np.ndarray:
    """Kick on every beat, snare on 2 and 4, closed hi-hat on eighths; stereo (2, S)."""
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * SR))
    t = np.arange(int(0.3 * SR)) / SR
    kick = 0.8 * np.sin(2 * np.pi * (50 + 100 * np.exp(-30 * t)) * t) * np.exp(-12 * t)
    snare = (0.4 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 190 * t)) * np.exp(-25 * t)
    hat = 0.15 * np.diff(rng.standard_normal(t.size + 1)) * np.exp(-80 * t)
    beat = 60.0 / bpm
    for index, onset in enumerate(np.arange(0.0, seconds - 0.3, beat / 2)):
        start = int(onset * SR)
        audio[start : start + t.size] += hat + (kick if index % 2 == 0 else 0) + (snare if index % 4 == 2 else 0)
    return np.stack([audio, audio]).astype(np.float32)


@pytest.mark.slow
@pytest.mark.skipif(not judge.judge_available(), reason="no judge interpreter (.venv-judge); see audiodit/judge.py")
def test_real_judge_hears_drums_in_a_beat_not_in_a_tone_or_noise():
    t = np.arange(10 * SR) / SR
    tone = np.tile(0.3 * np.sin(2 * np.pi * 440 * t), (2, 1)).astype(np.float32)
    noise = (0.1 * np.random.default_rng(1).standard_normal((2, t.size))).astype(np.float32)
    beat = drum_beat()
    output = judge.judge_audio([beat, tone, noise, beat + 0.003 * noise], SR)
    for model in judge.MODELS:
        assert output.tags[model].shape == (4, 50) and output.embeddings[model].shape == (4, 200)
        assert np.all((output.tags[model] >= 0) & (output.tags[model] <= 1))
    rhythm = output.tag("beat") + output.tag("drums")
    assert rhythm[0] > 0.3 and rhythm[0] > 3 * rhythm[1] and rhythm[0] > 2 * rhythm[2]
    assert output.top_tags(1)[0][0] != "beat"
    embedding = output.embeddings["MTT_musicnn"]
    near = judge.cosine_distances(embedding[[0]], embedding[[3]])[0]
    assert near < judge.cosine_distances(embedding[[0]], embedding[[1]])[0]
    assert near < judge.cosine_distances(embedding[[0]], embedding[[2]])[0]
    json.dumps(output.timings)  # plain numbers, reportable


PARITY_SCRIPT = textwrap.dedent('''
    import os, sys, warnings
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    warnings.filterwarnings("ignore")
    import numpy as np
    from musicnn import extractor
    taggram, _ = extractor.extractor(sys.argv[1], model="MTT_musicnn", extract_features=False)
    np.save(sys.argv[2], taggram.mean(axis=0))
''')


@pytest.mark.slow
@pytest.mark.skipif(not judge.judge_available(), reason="no judge interpreter (.venv-judge); see audiodit/judge.py")
def test_real_judge_tags_match_musicnns_own_extractor(tmp_path):
    """At a level where musicnn's float16 spectrogram does not overflow, the worker's tags are
    musicnn's (its `extractor` on the same file, run in the judge's interpreter)."""
    import subprocess

    path = tmp_path / "beat.wav"
    sf.write(path, 0.05 * drum_beat(seconds=7.0).T, SR)
    script = tmp_path / "reference.py"
    script.write_text(PARITY_SCRIPT)
    subprocess.run([str(judge.judge_python()), str(script), str(path), str(tmp_path / "reference.npy")],
                   check=True, capture_output=True)
    ours = judge.judge_files([path], models=("MTT_musicnn",)).tags["MTT_musicnn"][0]
    np.testing.assert_allclose(ours, np.load(tmp_path / "reference.npy"), atol=1e-3)
