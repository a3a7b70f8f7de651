"""Tests for audiodit/corpora/recordings.py (with recordings_captions.py and recordings_manifest.py):
a fake installed package with two short generated tones (.ogg with silence around it, a tagged
mono .flac at 32 kHz), a sound effect and a non-free track is cut into clips; the layout, splits,
clip cutting, manifest, captions and resume are checked. No Debian game package is needed; the
licence matching itself is tested in test_debian_copyright.py."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodit.audio import audio_info, load_audio
from audiodit.corpora import recordings as rec
from audiodit.corpora.music21_works import split_of
from audiodit.corpora.recordings_captions import clean_genre, clean_title, make_caption, moods_of, usable_title

COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Fake Quest

Files: *
Copyright: 2020 Fake Quest Team
License: GPL-2+

Files: data/music/calm/*
Copyright: 2021 Alice Composer
License: CC-BY-SA-3.0

Files: data/music/secret/*
Copyright: 2022 Bob Label
License: CC-BY-NC-4.0
"""
MAX_SECONDS, MIN_SECONDS = 4.0, 2.0


def tone(seconds: float, rate: int, frequency: float, channels: int = 2) -> np.ndarray:
    time = np.arange(round(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * frequency * time)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1)  # (S, C)


def silence(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    return np.zeros((round(seconds * rate), channels), dtype=np.float32)


def make_package(root: Path) -> rec.Package:
    game = root / "usr/share/games/fakequest"
    (game / "music/calm").mkdir(parents=True)
    (game / "music/secret").mkdir()
    (game / "sounds").mkdir()
    # 1 s silence, 9 s tone, 0.5 s silence: clips at 1-5 s and 5-9 s; the last 1 s is too short.
    audio = np.concatenate([silence(1.0, 44100), tone(9.0, 44100, 220.0), silence(0.5, 44100)])
    sf.write(game / "music/battle_theme_02.ogg", audio, 44100, format="OGG", subtype="VORBIS")
    with sf.SoundFile(game / "music/calm/night.flac", "w", 32000, 1, format="FLAC") as handle:
        handle.title, handle.artist, handle.genre = "Quiet Night", "Alice Composer", "Orchestral"
        handle.write(tone(5.0, 32000, 330.0, channels=1))
    sf.write(game / "music/secret/loop.ogg", tone(5.0, 44100, 440.0), 44100, format="OGG", subtype="VORBIS")
    sf.write(game / "sounds/boom.wav", tone(0.5, 44100, 110.0), 44100)
    files = [str(path) for path in sorted(root.rglob("*"))]  # dpkg -L lists folders too
    return rec.Package("fakequest-data", files, COPYRIGHT, "1.0-1")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    package = make_package(tmp_path_factory.mktemp("root"))
    out = tmp_path_factory.mktemp("recordings")
    summary = rec.build_recordings(out, [package], max_seconds=MAX_SECONDS, min_seconds=MIN_SECONDS,
                                   use_analysis=False, verbose=False)
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    return package, out, summary, records


def by_title(records):
    return {record["title"]: record for record in records}


def test_layout_and_audio_format(built):
    _, out, summary, records = built
    assert summary["clips"] == 3 and summary["failed"] == 0
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    for record in records:
        for suffix in (".flac", ".txt", ".json"):
            assert (out / record["split"] / f"{record['id']}{suffix}").is_file()
        info = audio_info(out / record["split"] / f"{record['id']}.flac")
        assert (info.sample_rate, info.channels, info.format, info.subtype) == (48000, 2, "FLAC", "PCM_16")
        assert record["domain"] == "recording" and record["sample_rate"] == 48000
        assert record["bpm"] is None and record["key"] is None  # analysis off
    assert (out / "failures.jsonl").read_text() == ""
    assert json.loads((out / "render_config.json").read_text())["max_seconds"] == MAX_SECONDS


def test_clips_skip_silence_and_drop_short_tails(built):
    _, out, _, records = built
    battle = sorted((r for r in records if r["title"] == "Battle theme"), key=lambda r: r["clip_index"])
    assert [r["start_s"] for r in battle] == pytest.approx([1.0, 5.0], abs=0.05)
    assert [r["clips_in_track"] for r in battle] == [2, 2]
    for record in records:
        assert MIN_SECONDS <= record["duration_s"] <= MAX_SECONDS
        audio = load_audio(out / record["split"] / f"{record['id']}.flac").numpy()
        assert np.abs(audio[:, :5]).max() < 0.01 and np.abs(audio[:, -5:]).max() < 0.01  # faded edges
        assert np.abs(audio).max() == pytest.approx(10 ** (-1 / 20), abs=0.02)  # track peak at -1 dBFS


def test_splits_by_track(built):
    _, _, _, records = built
    for record in records:
        assert record["track_id"].startswith("recording/fakequest-data/")
        assert record["split"] == split_of(record["track_id"])


def test_licence_manifest_and_attribution(built):
    _, out, summary, _ = built
    rows = {Path(r["path"]).name: r for r in map(json.loads, (out / "licenses.jsonl").read_text().splitlines())}
    assert set(rows) == {"battle_theme_02.ogg", "night.flac", "loop.ogg", "boom.wav"}
    assert rows["battle_theme_02.ogg"]["used"] and rows["battle_theme_02.ogg"]["license"] == "GPL-2+"
    assert rows["night.flac"]["used"] and rows["night.flac"]["license"] == "CC-BY-SA-3.0"
    assert rows["night.flac"]["license_match"]["how"] == "suffix without 'data/'"
    assert not rows["loop.ogg"]["used"] and "non-free" in rows["loop.ogg"]["reason"]
    assert not rows["boom.wav"]["used"] and "'music' folder" in rows["boom.wav"]["reason"]
    counts = summary["packages"]["fakequest-data"]
    assert (counts["audio_files"], counts["music_files"], counts["used_tracks"], counts["clips"]) == (4, 3, 2, 3)
    attribution = (out / "ATTRIBUTION.md").read_text()
    for expected in ("Fake Quest", "fakequest-data", "CC-BY-SA-3.0", "2021 Alice Composer",
                     "2020 Fake Quest Team", "'Quiet Night' (night.flac) by Alice Composer"):
        assert expected in attribution
    assert "Bob Label" not in attribution  # excluded tracks are not credited


def test_captions_from_tags_and_names(built):
    _, out, _, records = built
    titles = by_title(records)
    assert titles["Battle theme"]["caption"] == "Intense game soundtrack 'Battle theme' from Fake Quest."
    assert titles["Battle theme"]["title_source"] == "file name"
    assert titles["Battle theme"]["caption_keywords"] == ["battle"]
    night = titles["Quiet Night"]
    assert night["caption"] == "Calm orchestral game soundtrack 'Quiet Night' from Fake Quest."
    assert (night["title_source"], night["artist"], night["genre"]) == ("tag", "Alice Composer", "orchestral")
    assert (out / night["split"] / f"{night['id']}.txt").read_text() == night["caption"] + "\n"


def test_resume_does_nothing_and_keeps_the_index(built):
    package, out, _, _ = built
    index_before = (out / "metadata.jsonl").read_bytes()
    stamps = {path: path.stat().st_mtime_ns for path in out.glob("*/*")}
    summary = rec.build_recordings(out, [package], max_seconds=MAX_SECONDS, min_seconds=MIN_SECONDS,
                                   use_analysis=False, verbose=False)
    assert summary["clips"] == 3 and summary["failed"] == 0
    assert (out / "metadata.jsonl").read_bytes() == index_before
    assert {path: path.stat().st_mtime_ns for path in out.glob("*/*")} == stamps
    with pytest.raises(ValueError, match="new --out"):
        rec.build_recordings(out, [package], max_seconds=8.0, min_seconds=MIN_SECONDS,
                             use_analysis=False, verbose=False)


@pytest.mark.parametrize("name", sorted(rec.RESERVED_PACKAGES))
def test_reserved_packages_are_refused(name, tmp_path, capsys):
    with pytest.raises(ValueError, match="reserved for evaluation"):
        rec.build_recordings(tmp_path / "out", [rec.Package(name, [], COPYRIGHT)], use_analysis=False)
    with pytest.raises(ValueError, match="reserved for evaluation"):
        rec.list_tracks(rec.Package(name, [], COPYRIGHT))
    assert rec.main(["--out", str(tmp_path / "out"), "--packages", f"naev-data,{name}"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "reserved for evaluation" in error
    assert not (tmp_path / "out").exists()


def test_unknown_package_is_a_clear_error(tmp_path, capsys):
    assert rec.main(["--out", str(tmp_path / "out"), "--packages", "no-such-package-xyz"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1


def test_archive_members_and_free_form_copyright(tmp_path):
    base = tmp_path / "usr/share/games/fakeufo/base"
    base.mkdir(parents=True)
    sf.write(tmp_path / "theme.ogg", tone(1.0, 44100, 220.0), 44100, format="OGG", subtype="VORBIS")
    with zipfile.ZipFile(base / "0music.pk3", "w") as archive:
        archive.write(tmp_path / "theme.ogg", "music/van_theme.ogg")
        archive.writestr("maps/readme.txt", "not audio")
    dep5 = COPYRIGHT + "\nFiles: base/music/van_theme.ogg\nCopyright: Vanethian\nLicense: CC-BY-3.0\n"
    [track] = rec.list_tracks(rec.Package("fakeufo-music", [str(base / "0music.pk3")], dep5))
    assert (track.member, track.relative_path, track.license, track.usable) == (
        "music/van_theme.ogg", "van_theme.ogg", "CC-BY-3.0", True)
    assert track.game == "Fake Quest"  # the copyright file's Upstream-Name

    # a track credited to a project whose music is reserved for evaluation stays out of training
    credited = COPYRIGHT + "\nFiles: base/music/*\nCopyright: Nexuiz GPLed Data\nLicense: GPL-2+\n"
    [track] = rec.list_tracks(rec.Package("fakeufo-music", [str(base / "0music.pk3")], credited))
    assert not track.usable and "reserved for evaluation" in track.reason

    free_form = "Copyright (C) 2003 David White\n\nGPL version 2 or later.\n"
    [track] = rec.list_tracks(rec.Package("fakeufo-music", [str(base / "0music.pk3")], free_form))
    assert not track.usable and "not machine-readable" in track.reason
    [track] = rec.list_tracks(rec.Package("wesnoth-1.16-music", [str(base / "0music.pk3")], free_form))
    assert track.usable and track.license == "GPL-2+"  # read by hand: FREEFORM_LICENSES


def test_plan_clips():
    frame = 0.05
    sounding = np.array([False] * 20 + [True] * 200 + [False] * 100 + [True] * 50 + [False] * 10)
    # Sound from 1.0 s to 18.5 s, cut every 4 s: 9-13 s is half sound (kept), 13-17 s a quarter
    # (dropped), 17-18.5 s shorter than min_seconds (dropped).
    clips = rec.plan_clips(sounding, frame, max_seconds=4.0, min_seconds=2.0)
    assert clips == [(1.0, 4.0), (5.0, 4.0), (9.0, 4.0)]
    assert rec.plan_clips(np.zeros(100, dtype=bool), frame, 4.0, 2.0) == []


@pytest.mark.parametrize("stem, title", [
    ("battle_theme_02", "Battle theme"), ("Crystan-Battlescape01", "Crystan Battlescape"),
    ("PsymongN1", "Psymong"), ("track17", None), ("Track 3 - Enhanced", None), ("ambient2_5", "Ambient"),
])
def test_clean_title(stem, title):
    assert clean_title(stem) == title


@pytest.mark.parametrize("tag, title", [
    ("Ufo: AI Main Theme", "Ufo: AI Main Theme"), ("fightmare_2", "Fightmare"), ("14 - Track 14", None),
    ("<Unknown>", None), ("Airship, but this time, it sounds good.", "Airship, but this time, it sounds good"),
])
def test_tag_titles(tag, title):
    assert usable_title(tag) == title


@pytest.mark.parametrize("tag, genre", [
    ("Romantic Classical", "romantic classical"), ("Game Soundtrack", None), ("Sound FX", None), ("(24)", None),
])
def test_genre_tags(tag, genre):
    assert clean_genre(tag) == genre


def test_mood_words_and_caption_with_estimates():
    assert moods_of(["MarineUrbanWarfare", "peace1"]) == (["intense", "calm"], ["warfare", "peace"])
    assert moods_of(["Wanderer", "winter"]) == ([], [])  # whole words only
    caption = make_caption("Warzone 2100", "Battle theme", ["intense"], "orchestral", 96, "D minor")
    assert caption == "Intense orchestral game soundtrack 'Battle theme' from Warzone 2100, around 96 BPM, in D minor."
    assert make_caption("Naev", None, [], None, None, None) == "Game soundtrack from Naev."


def test_analysis_estimates_key_and_gates_tempo():
    pytest.importorskip("essentia")
    from audiodit.corpora.recordings_captions import analyse

    rate = 48000
    time = np.arange(4 * rate) / rate
    chord = sum(np.sin(2 * np.pi * f * time) for f in (220.0, 277.18, 329.63))  # A major triad
    estimates = analyse(np.stack([chord, chord]).astype(np.float32) * 0.2, rate)
    assert estimates["key"] == "A major" and 0 < estimates["key_strength"] <= 1
    assert estimates["bpm"] is None or estimates["beat_confidence"] >= 1.5  # a held chord has no beat
