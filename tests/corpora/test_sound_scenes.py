"""Sound scenes (audiodit.corpora.sound_scenes): takes of one sound at irregular times, never across
splits or licences, seeded, resumable, credited."""

import json

import numpy as np
import pytest
import soundfile as sf

from audiodit.corpora import sound_scenes
from audiodit.corpora.sound_scenes import (LAST_TAKE_SHARE, PAUSE_SECONDS, SCENE_SECONDS, SPEED_RANGE, build_scenes,
                                        main, plan_scenes, read_library)

RATE = 48000


def write_clip(root, split, clip_id, seconds, frequency, *, phrase, category="animal", package="pkg-a",
               licence="CC0", holders="2020 Someone", treatment="single", padding=0.0):
    """A decaying tone of `seconds`, then `padding` s of digital silence (the library pads short
    one-shots to 0.5 s), with the library's record fields."""
    (root / split).mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * RATE)) / RATE
    tone = (0.5 * np.sin(2 * np.pi * frequency * t) * np.exp(-3 * t)).astype(np.float32)
    tone = np.concatenate([tone, np.zeros(round(padding * RATE), np.float32)])
    sf.write(root / split / f"{clip_id}.flac", np.stack([tone, tone], axis=1), RATE, subtype="PCM_16")
    return {"id": clip_id, "split": split, "category": category, "phrase": phrase, "treatment": treatment,
            "duration_s": round(seconds + padding, 3), "source_s": seconds, "source_package": package,
            "license": licence, "copyright": holders, "source_paths": [f"/usr/share/{package}/{clip_id}.ogg"],
            "named": True}


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("library")
    records = [
        write_clip(root, "train", "bark-1", 0.3, 440, phrase="a dog barking", padding=0.6),
        write_clip(root, "train", "bark-2", 0.8, 520, phrase="a dog barking"),
        write_clip(root, "train", "bark-gpl", 0.7, 600, phrase="a dog barking", licence="GPL-2+"),
        write_clip(root, "train", "bark-other", 0.6, 650, phrase="a dog barking", holders="2019 Someone Else"),
        write_clip(root, "test", "bark-3", 0.5, 700, phrase="a dog barking"),
        write_clip(root, "train", "door", 0.25, 200, phrase="a door slam", category="effect", padding=0.25),
        write_clip(root, "train", "creak", 2.5, 300, phrase="a creak", category="effect", treatment="whole"),
        write_clip(root, "train", "kick", 0.3, 60, phrase="a kick drum hit", category="drum hit"),
        write_clip(root, "train", "long", 4.0, 300, phrase="a long creak", category="effect", treatment="whole"),
        write_clip(root, "train", "loop", 2.0, 330, phrase="a loop", category="effect", treatment="tiled"),
    ]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_plan_groups_within_split_package_licence_holders_and_phrase(library):
    jobs = {job["id"]: job for job in plan_scenes(read_library(library), ("animal", "effect"), 3.0)}
    # drum hits (category), a 4 s sound (too long) and a loop (tiled, not whole) anchor nothing
    assert sorted(jobs) == ["scene-bark-1", "scene-bark-2", "scene-bark-3", "scene-bark-gpl", "scene-bark-other",
                            "scene-creak", "scene-door"]
    assert [c["id"] for c in jobs["scene-bark-1"]["others"]] == ["bark-2"]  # not other licences, holders or splits
    assert all(jobs[f"scene-{name}"]["others"] == [] for name in ("bark-3", "bark-gpl", "bark-other", "creak"))
    assert "scene-creak" not in {job["id"] for job in plan_scenes(read_library(library), ("effect",), 2.0)}


def test_reserved_package_is_refused(library):
    clips = read_library(library)
    clips[0] = {**clips[0], "source_package": "nexuiz-music"}
    with pytest.raises(ValueError, match="reserved for evaluation"):
        plan_scenes(clips, ("animal",), 3.0)


@pytest.fixture(scope="module")
def built(library, tmp_path_factory):
    out = tmp_path_factory.mktemp("scenes") / "scenes"
    summary = build_scenes(out, [library], seed=3, categories=("animal", "effect"), verbose=False)
    return out, summary


def test_scenes_are_takes_with_short_pauses_and_say_how_many(built, library):
    out, summary = built
    assert summary["clips"] == 7 and summary["failed"] == 0
    sources = {r["id"]: r for r in read_library(library)}
    for path in sorted(out.glob("*/*.json")):
        record = json.loads(path.read_text())
        audio, rate = sf.read(path.with_suffix(".flac"), always_2d=True)
        assert rate == RATE and audio.shape[1] == 2
        assert SCENE_SECONDS[0] - 1e-3 <= record["duration_s"] <= SCENE_SECONDS[1] + 1e-3
        assert abs(audio.shape[0] / RATE - record["duration_s"]) < 1e-3
        assert -6.1 <= 20 * np.log10(np.abs(audio).max()) <= -0.9
        takes = record["takes"]
        assert len(takes) >= 2
        assert record["caption"].endswith(f"heard {len(takes)} times.")
        assert path.with_suffix(".txt").read_text().strip() == record["caption"]
        assert takes[0]["id"] == record["id"].removeprefix("scene-")
        for take in takes:  # every take from the anchor's split and licence
            source = sources[take["id"]]
            assert source["split"] == record["split"] and source["license"] == record["license"]
            assert SPEED_RANGE[0] <= take["speed"] <= SPEED_RANGE[1]
        for before, after in zip(takes, takes[1:]):  # a pause within range after the sound, not its padding
            end = before["onset_s"] + sources[before["id"]]["source_s"] / before["speed"]
            # trimming keeps 50 ms of ring-out after the sound (sound_library.trim_silence)
            assert PAUSE_SECONDS[0] - 0.01 <= after["onset_s"] - end <= PAUSE_SECONDS[1] + 0.06
        last = takes[-1]  # the last take is heard for at least half of itself
        heard = record["duration_s"] - last["onset_s"]
        assert heard >= LAST_TAKE_SHARE * sources[last["id"]]["source_s"] / last["speed"] - 0.01
        for take in takes:  # sound where a take starts, none just before the first
            start = round(take["onset_s"] * RATE)
            assert np.abs(audio[start:start + 2400]).max() > 0.01
        first = round(takes[0]["onset_s"] * RATE)
        assert first < 2400 or np.abs(audio[:first - 240]).max() < 1e-3  # 5 ms: the resampler rings ahead


def test_takes_are_not_at_a_tempo(built):
    """The point of a scene: not a sound repeated at a fixed interval. In a scene made of one clip
    alone the onsets still vary by more than its speed changes could make them."""
    onsets = [take["onset_s"] for take in json.loads((built[0] / "train" / "scene-door.json").read_text())["takes"]]
    intervals = np.diff(onsets)
    assert len(intervals) >= 4 and np.std(intervals) > 0.1


def test_attribution_credits_every_original_file_under_its_own_holders(built):
    out, _ = built
    text = (out / "ATTRIBUTION.md").read_text()
    for path in sorted(out.glob("*/*.json")):
        record = json.loads(path.read_text())
        heading = f"- {record['license']}, copyright {record['copyright']}:"
        for source in record["source_paths"]:
            section = text[:text.index(f"  - {source}")]
            assert section.rindex(heading) == section.rindex("\n- ") + 1  # the nearest heading above it
    assert "copyright 2019 Someone Else: 1 files" in text and "GPL-2+" in text


def test_same_seed_same_scenes_and_resume(built, library, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    build_scenes(again, [library], seed=3, categories=("animal", "effect"), verbose=False)
    for path in sorted(out.glob("*/*.flac")):
        twin = again / path.parent.name / path.name
        assert np.array_equal(sf.read(path)[0], sf.read(twin)[0])
    before = (out / "train" / "scene-door.flac").stat().st_mtime_ns
    assert build_scenes(out, [library], seed=3, categories=("animal", "effect"), verbose=False)["clips"] == 7
    assert (out / "train" / "scene-door.flac").stat().st_mtime_ns == before  # resumed, not remade
    with pytest.raises(ValueError, match="use a new --out"):
        build_scenes(out, [library], seed=4, categories=("animal", "effect"), verbose=False)


def test_bad_arguments_are_one_line_errors(library, tmp_path, capsys):
    assert main(["--out", str(tmp_path / "x"), "--source", str(library), "--max-event-seconds", "5"]) == 2
    assert main(["--out", str(tmp_path / "y"), "--source", str(tmp_path / "nothing")]) == 2
    assert main(["--out", str(tmp_path / "z"), "--source", str(library), "--categories", ","]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    assert "max-event-seconds" in lines[0] and "metadata.jsonl" in lines[1] and "categories" in lines[2]


def test_a_source_given_twice_is_refused(library, tmp_path):
    with pytest.raises(ValueError, match="same id"):
        build_scenes(tmp_path / "twice", [library, library], verbose=False)


def test_a_group_of_one_still_varies(library, tmp_path):
    """Each take of a one-clip group is resampled at its own speed and gain."""
    out = tmp_path / "one"
    build_scenes(out, [library], seed=0, categories=("effect",), verbose=False)
    takes = json.loads((out / "train" / "scene-door.json").read_text())["takes"]
    assert len({take["speed"] for take in takes}) == len(takes) == len({take["gain_db"] for take in takes})


def test_a_sliver_of_a_last_take_is_left_out(monkeypatch, library, tmp_path):
    """With a 2.5 s sound in a 6 s scene, a third take cannot fit half of itself: two takes, and the
    caption says two."""
    monkeypatch.setattr(sound_scenes, "SCENE_SECONDS", (6.0, 6.0))
    monkeypatch.setattr(sound_scenes, "SPEED_RANGE", (1.0, 1.0))
    out = tmp_path / "sliver"
    build_scenes(out, [library], seed=0, categories=("effect",), verbose=False)
    record = json.loads((out / "train" / "scene-creak.json").read_text())
    assert len(record["takes"]) == 2 and record["caption"].endswith("heard 2 times.")


def test_the_command_builds_scenes(library, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--out", str(out), "--source", str(library), "--categories", "animal", "--workers", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["clips"] == 5 and summary["splits"]["test"]["scenes"] == 1
    index = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in index) == ["scene-bark-1", "scene-bark-2", "scene-bark-3", "scene-bark-gpl",
                                              "scene-bark-other"]
    assert all((out / r["split"] / f"{r['id']}.flac").is_file() for r in index)
