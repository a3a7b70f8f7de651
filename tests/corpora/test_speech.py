"""Tests for audiodit/corpora/speech.py: clip plans are seeded and cycle the voices, real Flite and
eSpeak NG voices give captioned 48 kHz stereo clips whose caption, words and stereo placement are the
ones recorded, a re-run resumes, and bad settings are refused in one line."""

import json

import numpy as np
import pytest

from audiodit.audio import audio_info, load_audio
from audiodit.corpora import speech

VOICES = [speech.VOICES["flite:slt"], speech.VOICES["espeak:en-gb+m1"]]


def longest_silence(audio: np.ndarray, frame: int = 960) -> float:
    """Seconds of the longest run of 20 ms frames 40 dB below the loudest, between sounding frames."""
    frames = audio.mean(axis=0)[: audio.shape[1] // frame * frame].reshape(-1, frame)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    silent = rms < rms.max() * 0.01
    sounding = np.flatnonzero(~silent)
    longest = run = 0
    for value in silent[sounding[0]:sounding[-1] + 1]:
        run = run + 1 if value else 0
        longest = max(longest, run)
    return longest * frame / 48000


def test_plans_are_seeded_and_cycle_the_voices():
    first = speech.plan_clips(6, VOICES, seed=0, max_seconds=10)
    assert first == speech.plan_clips(6, VOICES, seed=0, max_seconds=10)
    assert [clip.voice for clip in first] == VOICES * 3
    other = speech.plan_clips(6, VOICES, seed=1, max_seconds=10)
    assert [clip.sentences for clip in first] != [clip.sentences for clip in other]
    assert all(speech.MIN_SECONDS <= clip.seconds <= 10 for clip in first)
    assert all("{" not in text for clip in first for text in clip.sentences)


def test_built_clips_say_what_was_made(tmp_path):
    summary = speech.build_speech(tmp_path / "speech", 4, VOICES, max_seconds=7, verbose=False)
    assert (summary["clips"], summary["failed"], summary["indexed"]) == (4, 0, 4)
    index = [json.loads(line) for line in (tmp_path / "speech" / "metadata.jsonl").read_text().splitlines()]
    plans = {clip.id: clip for clip in speech.plan_clips(4, VOICES, 0, 7)}
    for record in index:
        folder = tmp_path / "speech" / record["split"]
        info = audio_info(folder / f"{record['id']}.flac")
        assert (info.sample_rate, info.channels) == (48000, 2)
        assert (folder / f"{record['id']}.txt").read_text().strip() == record["caption"]
        plan = plans[record["id"]]
        assert record["voice"] == plan.voice.key and record["domain"] == "sound"
        assert ("woman" if plan.voice.gender == "woman" else "man") in record["caption"].lower()
        assert "synthetic" in record["caption"]
        # Whole sentences of the plan, from its first, in order.
        kept = [k for k in range(1, len(plan.sentences) + 1) if record["text"] == " ".join(plan.sentences[:k])]
        assert kept
        spoken = plan.sentences[:kept[0]]
        audio = load_audio(folder / f"{record['id']}.flac").numpy()
        assert np.abs(audio).max() > 0.1
        # The first sentence is always kept, later ones only while the clip fits its length.
        assert len(spoken) == 1 or audio.shape[1] / 48000 <= plan.seconds + 1.5 * plan.pause_s + 0.01
        # Sentences are trimmed of the synthesiser's silence: no pause reaches 1 s (format 1 had
        # 17 % of clips with one, and a model trained on them fell silent inside music).
        assert plan.pause_s <= speech.PAUSE_SECONDS[1] and longest_silence(audio) < 0.9
        left, right = (np.sqrt(np.mean(channel ** 2)) for channel in audio)
        if plan.pan < 0:
            assert left > 1.5 * right
        elif plan.pan > 0:
            assert right > 1.5 * left
        else:
            assert left == pytest.approx(right, rel=0.01)


def test_rerun_resumes_and_other_settings_are_refused(tmp_path):
    out = tmp_path / "speech"
    speech.build_speech(out, 2, VOICES[:1], max_seconds=7, verbose=False)
    written = {path: path.stat().st_mtime_ns for path in out.glob("*/*.flac")}
    again = speech.build_speech(out, 2, VOICES[:1], max_seconds=7, verbose=False)
    assert again["clips"] == 2 and {path: path.stat().st_mtime_ns for path in out.glob("*/*.flac")} == written
    with pytest.raises(ValueError, match="use a new --out"):
        speech.build_speech(out, 2, VOICES[:1], max_seconds=8, verbose=False)


def test_cli_refuses_bad_voices_in_one_line(tmp_path, capsys):
    assert speech.main(["--out", str(tmp_path / "s"), "--voices", "flite:nobody"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: unknown voice(s) flite:nobody; known: flite:kal16") and "\n" not in error
    assert speech.main(["--out", str(tmp_path / "s"), "--max-seconds", "2", "--count", "1"]) == 2
    assert "--max-seconds must be at least" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
