"""Tests for audiodit/corpora/sound_library.py and sound_packages.py: two fake installed packages (a
sound library with a drum hit, an animal, a loop, a music folder and a non-free file, and a Hydrogen kit) built from
generated audio; one-shot padding and repetition, loop tiling, drum patterns on their grid, the
layout, licence manifest, attribution, splits, resume and refusals. No Debian package is needed."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audiodit.audio import audio_info, load_audio
from audiodit.corpora import hydrogen_kits
from audiodit.corpora import sound_library as sl
from audiodit.corpora import sound_packages as sp
from audiodit.corpora.music21_works import split_of
from audiodit.corpora.sound_names import describe

RATE = sl.SAMPLE_RATE
COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: Fake Sounds

Files: *
Copyright: 2020 Fake Sound Team
License: GPL-2+

Files: data/sounds/animals/*
Copyright: 2021 Alice Recordist
License: CC-BY-3.0

Files: data/sounds/effects/secret*
Copyright: 2022 Bob Label
License: CC-BY-NC-4.0
"""
KIT_COPYRIGHT = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: drumkits/FakeKit.h2drumkit
Copyright: Carol Drummer
License: CC0
"""
INSTRUMENT = "<instrument><name>{}</name><layer><filename>{}</filename><min>0</min><max>1</max></layer></instrument>"
KIT_XML = "<drumkit_info><name>Fake Kit</name><instrumentList>{}</instrumentList></drumkit_info>".format("".join(
    INSTRUMENT.format(name, sample) for name, sample in
    [("Kick", "kick.wav"), ("Snare", "snare.wav"), ("Closed HH", "hat.wav"), ("17", "mystery.wav")]))


def burst(seconds: float = 0.15, lead: float = 0.2, tail: float = 0.3, seed: int = 0, rate: int = RATE):
    """A decaying noise burst (a synthetic drum hit) with silence before and after, mono (S,)."""
    time = np.arange(round(seconds * rate)) / rate
    noise = np.random.default_rng(seed).uniform(-1, 1, time.size) * np.exp(-time / 0.02)
    noise[0] = 0.9  # a sharp attack: the onset is the first sample
    return np.concatenate([np.zeros(round(lead * rate)), noise, np.zeros(round(tail * rate))]).astype(np.float32)


def tone(seconds: float, frequency: float = 220.0, rate: int = RATE):
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(round(seconds * rate)) / rate)).astype(np.float32)


def onsets(audio: np.ndarray, threshold: float = 0.05, gap: int = 200) -> list[int]:
    """Samples where |audio| first reaches `threshold` x its peak after `gap` quiet samples."""
    loud = np.abs(audio).max(axis=0) >= threshold * np.abs(audio).max()
    found, quiet = [], gap
    for index, is_loud in enumerate(loud):
        if is_loud and quiet >= gap:
            found.append(index)
        quiet = 0 if is_loud else quiet + 1
    return found


def make_packages(root):
    sounds = root / "usr/share/fakesounds/data/sounds"
    for folder in ("drums", "animals", "loops", "effects", "music"):
        (sounds / folder).mkdir(parents=True)
    sf.write(sounds / "drums/kick.wav", burst(), RATE)
    sf.write(sounds / "animals/Dog1.wav", burst(0.6, seed=1), 44100)  # resampled
    sf.write(sounds / "loops/loop_120bpm.flac", np.stack([tone(2.0), tone(2.0, 330.0)], axis=1), RATE)  # stereo
    sf.write(sounds / "effects/rain.ogg", tone(3.0), RATE, format="OGG", subtype="VORBIS")
    sf.write(sounds / "effects/secret_boom.wav", burst(seed=2), RATE)  # CC-BY-NC: excluded
    sf.write(sounds / "music/song.ogg", tone(4.0), RATE, format="OGG", subtype="VORBIS")  # a music folder
    (root / "fakesounds.copyright").write_text(COPYRIGHT)
    library = sp.Package("fake-sounds", str(sounds), (
        ("drums/*", "drums"), ("animals/*", "animals"), ("loops/*", "loops"), ("effects/*", "effects"),
        ("music/*", sp.SKIP + "music folder: songs, not sounds")), str(root / "fakesounds.copyright"))

    kits = root / "usr/share/hydrogen/data/drumkits"
    (kits / "FakeKit").mkdir(parents=True)
    (kits / "FakeKit/drumkit.xml").write_text(KIT_XML)
    for seed, name in enumerate(("kick.wav", "snare.wav", "hat.wav", "mystery.wav", "unused.wav")):
        sample = burst(0.02, lead=0.0, tail=0.0, seed=seed)
        if name == "snare.wav":  # 30 ms of faint hiss before the attack: patterns start it at the attack
            hiss = np.random.default_rng(9).uniform(-1e-4, 1e-4, round(0.03 * RATE)).astype(np.float32)
            sample = np.concatenate([hiss, sample])
        sf.write(kits / "FakeKit" / name, sample, RATE)
    (root / "kit.copyright").write_text(KIT_COPYRIGHT)
    hydrogen = sp.Package("hydrogen-drumkits", str(kits), (("*", "hydrogen"),), str(root / "kit.copyright"))
    return library, hydrogen


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    packages = make_packages(tmp_path_factory.mktemp("root"))
    out = tmp_path_factory.mktemp("sounds")
    summary = sl.build_library(out, list(packages), seed=0, max_seconds=10.0, patterns_per_kit=2, verbose=False)
    records = {r["id"]: r for r in map(json.loads, (out / "metadata.jsonl").read_text().splitlines())}
    return packages, out, summary, records


# ---------------------------------------------------------------------------------------------
# Clips from one sound
# ---------------------------------------------------------------------------------------------


def first_seed(treatment: str, description) -> np.random.Generator:
    """A generator whose first draws make `treatment` (the choice is seeded, so search seeds)."""
    sound = np.stack([burst(), burst()])
    for seed in range(100):
        _, made = sl.make_clip(sound, description, False, np.random.default_rng(seed), 15.0)
        if made["treatment"] == treatment:
            return np.random.default_rng(seed)
    raise AssertionError(f"no seed below 100 gives {treatment}")


def test_drum_hit_repeated_at_the_stated_tempo():
    sound = np.stack([burst(), burst()])  # (2, S): 0.2 s silence, 0.15 s hit, 0.3 s silence
    kick = describe("kick.wav", "drums")
    audio, made = sl.make_clip(sound, kick, False, first_seed("repeated", kick), 15.0)
    assert made["treatment"] == "repeated" and sl.REPEAT_BPM[0] <= made["bpm"] <= sl.REPEAT_BPM[1]
    found = onsets(audio)
    assert len(found) == made["hits"] and found[0] == 0  # leading silence trimmed
    assert np.diff(found) == pytest.approx(60.0 / made["bpm"] * RATE, abs=1.5)
    assert audio.shape[1] >= 3.0 * RATE


def test_one_shot_is_kept_alone_without_appended_silence():
    # Seconds of appended silence taught a model to fall silent inside music; the loss masks
    # frames past a clip's end, so a one-shot needs no padding.
    description = describe("Dog1.wav", "animals")  # not a drum hit: never repeated
    sound = np.stack([burst(0.6), burst(0.6)])
    for seed in range(10):
        audio, made = sl.make_clip(sound, description, False, np.random.default_rng(seed), 15.0)
        assert made["treatment"] == "single" and onsets(audio) == [0]
        assert audio.shape[1] / RATE < 0.7 and made["source_s"] < 0.7
    click = np.stack([burst(0.1), burst(0.1)])  # shorter than a clip may be: a little silence after it
    audio, made = sl.make_clip(click, description, False, np.random.default_rng(0), 15.0)
    assert audio.shape[1] == round(sl.MIN_CLIP_SECONDS * RATE) and made["source_s"] < 0.2


def test_loops_tile_and_long_sounds_are_cut():
    loop = np.stack([tone(1.5), tone(1.5)])
    audio, made = sl.make_clip(loop, describe("loop_x.wav", "loops"), True, np.random.default_rng(0), 15.0)
    assert made == {"treatment": "tiled", "repeats": 6, "source_s": 1.5} and audio.shape[1] == 6 * loop.shape[1]
    long = np.stack([tone(20.0), tone(20.0)])
    audio, made = sl.make_clip(long, describe("rain.wav", "effects"), False, np.random.default_rng(0), 15.0)
    assert made["treatment"] == "cut" and audio.shape[1] == 15 * RATE
    assert np.abs(audio[:, -10:]).max() < 0.01  # faded out
    assert sl.bpm_from_name("loop_120bpm.flac") == 120 and sl.bpm_from_name("beat-95-BPM.wav") == 95
    assert sl.bpm_from_name("loop_amen.flac") is None and sl.bpm_from_name("kick_808.wav") is None


# ---------------------------------------------------------------------------------------------
# A built library
# ---------------------------------------------------------------------------------------------


def test_layout_audio_and_records(built):
    _, out, summary, records = built
    assert summary["failed"] == 0 and (out / "failures.jsonl").read_text() == ""
    settings = json.loads((out / "render_config.json").read_text())
    assert settings == {"seed": 0, "max_seconds": 10.0, "sample_rate": RATE, "clip_format": sl.CLIP_FORMAT}
    names = {r["source_path"].rsplit("/", 1)[1] for r in records.values() if r["treatment"] != "pattern"}
    assert names == {"kick.wav", "Dog1.wav", "loop_120bpm.flac", "rain.ogg", "snare.wav", "hat.wav"}
    for record in records.values():
        for suffix in (".flac", ".txt", ".json"):
            assert (out / record["split"] / f"{record['id']}{suffix}").is_file()
        info = audio_info(out / record["split"] / f"{record['id']}.flac")
        assert (info.sample_rate, info.channels, info.format, info.subtype) == (RATE, 2, "FLAC", "PCM_16")
        assert abs(info.duration - record["duration_s"]) < 1e-3 and info.duration >= sl.MIN_CLIP_SECONDS
        assert record["domain"] == "sound" and record["sample_rate"] == RATE
        assert (out / record["split"] / f"{record['id']}.txt").read_text().strip() == record["caption"]
        audio = load_audio(out / record["split"] / f"{record['id']}.flac").numpy()
        assert np.abs(audio).max() == pytest.approx(10 ** (record["peak_db"] / 20), abs=0.01)
        assert -6.0 <= record["peak_db"] <= -1.0
        for key in ("id", "split", "caption", "category", "source_package", "source_paths", "license",
                    "copyright", "bpm", "duration_s"):
            assert key in record


def test_captions_say_what_was_made(built):
    _, _, _, records = built
    dog = records["fake-sounds__animals__Dog1"]
    assert dog["caption"].startswith("A dog sound") and dog["category"] == "animal"
    assert "silence" not in dog["caption"]
    assert dog["stereo"] in dog["caption"]  # mono source: its placement is stated
    kick = records["fake-sounds__drums__kick"]
    if kick["treatment"] == "repeated":
        assert f"repeated at {kick['bpm']} BPM ({kick['hits']} hits)" in kick["caption"]
    else:
        assert kick["treatment"] == "single" and "repeated" not in kick["caption"] and kick["bpm"] is None
    loop = records["fake-sounds__loops__loop_120bpm"]
    assert loop["bpm"] == 120 and loop["treatment"] == "tiled" and loop["repeats"] == 4
    assert "at 120 BPM, played 4 times in a row" in loop["caption"] and loop["stereo"] is None  # stereo source
    assert records["fake-sounds__effects__rain"]["caption"].startswith("Rain")
    hat = records["hydrogen-drumkits__FakeKit__hat"]
    assert hat["caption"].startswith("A closed hi-hat hit from a drum kit (Hydrogen kit 'Fake Kit')")


def test_drum_patterns_land_on_their_grid(built):
    _, out, _, records = built
    patterns = [r for r in records.values() if r["category"] == "drum pattern"]
    assert len(patterns) == 2
    for record in patterns:
        assert record["caption"].startswith(f"A {record['style']} drum beat at {record['bpm']} BPM on a drum kit "
                                            f"(Hydrogen kit 'Fake Kit'), kick, snare and ")
        assert record["caption"].endswith(f", {record['bars']} bars.")
        assert record["bars"] * 4 * 60 / record["bpm"] >= sp.PATTERN_TARGET_SECONDS
        audio = load_audio(out / record["split"] / f"{record['id']}.flac").numpy()
        expected = sorted({round(hit.seconds * RATE) for hit in
                           hydrogen_kits.pattern_hits(record["style"], record["bpm"], record["bars"])})
        assert onsets(audio, threshold=0.02, gap=100) == pytest.approx(expected, abs=1)
        assert record["license"] == "CC0" and record["copyright"] == "Carol Drummer"


def test_splits_by_source_file_and_by_kit(built):
    _, _, _, records = built
    for record in records.values():
        if record["source_package"] == "hydrogen-drumkits":
            assert record["split"] == split_of("hydrogen-drumkits/FakeKit")
        else:
            relative = record["source_path"].split("/data/sounds/", 1)[1]
            assert record["split"] == split_of(f"fake-sounds/{relative}")


def test_licence_manifest_and_attribution(built):
    _, out, _, _ = built
    lines = (out / "licenses.jsonl").read_text().splitlines()
    rows = {row["path"].rsplit("/", 1)[1]: row for row in map(json.loads, lines)}
    assert rows["Dog1.wav"]["used"] and rows["Dog1.wav"]["license"] == "CC-BY-3.0"
    assert rows["Dog1.wav"]["copyright"] == "2021 Alice Recordist"
    assert rows["kick.wav"]["used"] is True and rows["rain.ogg"]["license"] == "GPL-2+"
    assert not rows["secret_boom.wav"]["used"] and "non-free" in rows["secret_boom.wav"]["reason"]
    assert not rows["song.ogg"]["used"] and "music folder" in rows["song.ogg"]["reason"]
    assert not rows["mystery.wav"]["used"] and "does not say" in rows["mystery.wav"]["reason"]
    assert not rows["unused.wav"]["used"] and "drumkit.xml" in rows["unused.wav"]["reason"]
    assert rows["hat.wav"]["license"] == "CC0" and len(rows["hat.wav"]["clips"]) >= 2  # its hit, a pattern
    attribution = (out / "ATTRIBUTION.md").read_text()
    for expected in ("fake-sounds", "CC-BY-3.0", "2021 Alice Recordist", "Dog1.wav", "Carol Drummer"):
        assert expected in attribution
    assert "Bob Label" not in attribution and "song.ogg" not in attribution


def test_resume_and_changed_settings(built):
    packages, out, _, records = built
    before = {path: os.stat(path).st_mtime_ns for path in out.glob("*/*.flac")}
    summary = sl.build_library(out, list(packages), seed=0, max_seconds=10.0, patterns_per_kit=2, verbose=False)
    assert summary["clips"] == len(records) and summary["indexed"] == len(records)
    assert {path: os.stat(path).st_mtime_ns for path in out.glob("*/*.flac")} == before  # nothing re-made
    with pytest.raises(ValueError, match="new --out"):
        sl.build_library(out, list(packages), seed=1, max_seconds=10.0, verbose=False)


def test_same_seed_same_clips(built, tmp_path):
    packages, out, _, records = built
    library, _ = packages
    sl.build_library(tmp_path, [library], seed=0, max_seconds=10.0, verbose=False)
    again = {r["id"]: r for r in map(json.loads, (tmp_path / "metadata.jsonl").read_text().splitlines())}
    for clip_id, record in again.items():
        assert record == records[clip_id]


def test_reserved_and_bad_packages_are_refused(tmp_path, capsys):
    for name in sorted(sp.RESERVED_PACKAGES):
        with pytest.raises(ValueError, match="reserved for evaluation"):
            sp.check_packages([name])
        with pytest.raises(ValueError, match="reserved for evaluation"):
            sp.list_package(sp.Package(name, str(tmp_path), (("*", "effects"),)))
        with pytest.raises(ValueError, match="reserved for evaluation"):
            reserved = sp.Package(name, str(tmp_path), (("*", "effects"),))
            sl.build_library(tmp_path / "out", [reserved], verbose=False)
        assert sl.main(["--out", str(tmp_path / "out"), "--packages", name]) == 2
        assert "reserved for evaluation" in capsys.readouterr().err
    assert sl.main(["--out", str(tmp_path / "out"), "--packages", "no-such-package"]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one clear line
    assert not (tmp_path / "out").exists()


def test_a_free_form_copyright_file_is_used_only_as_read_by_hand(tmp_path):
    sounds = tmp_path / "sounds"
    (sounds / "animals").mkdir(parents=True)
    (sounds / "music").mkdir()
    sf.write(sounds / "animals/Dog1.wav", burst(0.6), RATE)
    sf.write(sounds / "music/theme.wav", burst(0.6, seed=1), RATE)
    (tmp_path / "copyright").write_text("This game is free software under the GNU GPL, version 2 or later.\n")
    folders = (("animals/*", "animals"), ("music/*", sp.SKIP + "music folder: songs, not sounds"))
    unread = sp.Package("free-form", str(sounds), folders, str(tmp_path / "copyright"))
    jobs, rows = sp.list_package(unread)
    assert jobs == [] and all("not machine-readable" in row["reason"] for row in rows) and len(rows) == 2

    read = sp.Package("free-form", str(sounds), folders, str(tmp_path / "copyright"),
                      freeform=("GPL-2+", "2003 The Game's Authors"))
    jobs, rows = sp.list_package(read)
    assert [job.id for job in jobs] == ["free-form__animals__Dog1"]
    assert (jobs[0].license, jobs[0].copyright) == ("GPL-2+", "2003 The Game's Authors")
    assert {Path(row["path"]).name: row["reason"] for row in rows} == {
        "Dog1.wav": "used", "theme.wav": "music folder: songs, not sounds"}

    refused = sp.Package("free-form", str(sounds), folders, str(tmp_path / "copyright"),
                         freeform=("CC-BY-NC-3.0", "2003 The Game's Authors"))
    jobs, rows = sp.list_package(refused)
    assert jobs == [] and "used" not in {row["reason"] for row in rows}
