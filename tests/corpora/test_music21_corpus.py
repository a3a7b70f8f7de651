"""Tests for audiodit/corpora/music21_corpus.py: render two short works with the small soundfont and
check that the audio, captions, MIDI facts and splits agree (the listing and the split rule
themselves: test_music21_works.py). FluidSynth is required (CI installs
it): without it these tests fail, they do not skip."""

import json
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from audiodit.audio import audio_info, load_audio
from audiodit.corpora import music21_corpus as m21

SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # Debian timgm6mb-soundfont (6 MB)
WORKS = ["bach/bwv66.6", "ryansMammoth/LanigansBallJig"]  # a 4-part chorale, a one-line jig
MAX_SECONDS = 25.0  # the jig is longer: exercises the cut


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    assert shutil.which("fluidsynth"), "fluidsynth is missing: apt-get install fluidsynth timgm6mb-soundfont"
    assert Path(SOUNDFONT).is_file(), f"{SOUNDFONT} is missing: apt-get install -y timgm6mb-soundfont"
    out = tmp_path_factory.mktemp("music21")
    summary = m21.render_corpus(out, works=WORKS + ["bogus/no_such_work"], soundfont=SOUNDFONT, seed=0,
                                variants=2, max_seconds=MAX_SECONDS, verbose=False)
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    return out, summary, records


def read_midi(path):
    from music21 import midi

    midi_file = midi.MidiFile()
    midi_file.open(str(path))
    midi_file.read()
    midi_file.close()
    return [event for track in midi_file.tracks for event in track.events if not event.isDeltaTime()]


def test_files_layout_and_failure_report(rendered):
    out, summary, records = rendered
    assert summary["samples"] == 4 and summary["failed"] == 1
    assert sorted({r["work_id"] for r in records}) == WORKS
    for record in records:
        for suffix in (".flac", ".txt", ".json", ".mid"):
            assert (out / record["split"] / f"{record['id']}{suffix}").is_file()
    failures = [json.loads(line) for line in (out / "failures.jsonl").read_text().splitlines()]
    assert [f["work_id"] for f in failures] == ["bogus/no_such_work"]
    assert "no such work" in failures[0]["error"]


def test_audio_is_48k_stereo_and_not_silent(rendered):
    out, _, records = rendered
    for record in records:
        path = out / record["split"] / f"{record['id']}.flac"
        info = audio_info(path)
        assert (info.sample_rate, info.channels, info.format) == (48000, 2, "FLAC")
        assert abs(info.duration - record["duration_s"]) < 1e-2
        assert 5.0 < info.duration <= MAX_SECONDS + 0.6
        audio = load_audio(path)
        assert float(audio.pow(2).mean().sqrt()) > 0.01  # clearly audible, peak-normalised to -1 dBFS
        left, right = (float(channel.pow(2).mean().sqrt()) for channel in audio)
        if record["num_parts"] == 1 and record["pan"][0] != 64:  # a placed solo line is louder on its side
            assert (left > 1.2 * right) == (record["pan"][0] < 64)
            assert (right > 1.2 * left) == (record["pan"][0] > 64)


def test_captions_state_the_json_facts(rendered):
    out, _, records = rendered
    for record in records:
        caption = (out / record["split"] / f"{record['id']}.txt").read_text().strip()
        assert caption == record["caption"]
        facts = (record["key"], f"{record['bpm']} BPM", record["instrument"], record["meter"], record["form"])
        for fact in facts:
            assert fact in caption, (fact, caption)
        assert record["mode"] in ("major", "minor") and record["key"] == f"{record['tonic']} {record['mode']}"
    chorale = next(r for r in records if r["work_id"] == "bach/bwv66.6")
    assert chorale["caption"].startswith("A Bach chorale in ") and chorale["meter"] == "4/4"
    jig = next(r for r in records if r["work_id"] == "ryansMammoth/LanigansBallJig")
    assert jig["form"] == "jig" and jig["meter"] == "6/8" and jig["beat_unit"] == "dotted quarter"


def test_midi_is_what_the_json_says(rendered):
    from music21 import converter, midi

    out, _, records = rendered
    for record in records:
        path = out / record["split"] / f"{record['id']}.mid"
        events = read_midi(path)
        tempos = {int.from_bytes(e.data, "big") for e in events if e.type == midi.MetaEvents.SET_TEMPO}
        assert tempos == {round(60_000_000 / record["quarter_bpm"])}
        programs = {e.data for e in events if e.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE}
        assert programs == set(record["programs"])
        pans = sorted(e.parameter2 for e in events
                      if e.type == midi.ChannelVoiceMessages.CONTROLLER_CHANGE and e.parameter1 == 10)
        assert pans == sorted(record["pan"])
        # The caption's key is music21's own analysis of the notes that were rendered.
        key = converter.parse(str(path)).analyze("key")
        assert (key.tonic.pitchClass, key.mode) == (record["tonic_pitch_class"], record["mode"]), record["id"]


def test_variants_differ_but_share_a_split(rendered):
    _, _, records = rendered
    by_work = defaultdict(list)
    for record in records:
        by_work[record["work_id"]].append(record)
    for work_id, variants in by_work.items():
        assert {r["split"] for r in variants} == {m21.split_of(work_id)}
        assert len({(r["instrument_family"], r["bpm"], r["transpose"]) for r in variants}) == 2


def test_rendering_is_deterministic_and_resumable(rendered, tmp_path):
    out, _, records = rendered
    again = m21.render_corpus(tmp_path, works=WORKS[:1], soundfont=SOUNDFONT, seed=0, variants=1,
                              max_seconds=MAX_SECONDS, verbose=False)
    assert again["samples"] == 1
    first = next(r for r in records if r["id"] == "bach__bwv66.6-v0")
    repeat = json.loads((tmp_path / first["split"] / "bach__bwv66.6-v0.json").read_text())
    assert repeat == first
    np.testing.assert_array_equal(load_audio(tmp_path / first["split"] / "bach__bwv66.6-v0.flac"),
                                  load_audio(out / first["split"] / "bach__bwv66.6-v0.flac"))
    resumed = m21.render_corpus(tmp_path, works=WORKS[:1], soundfont=SOUNDFONT, seed=0, variants=1,
                                max_seconds=MAX_SECONDS, verbose=False)
    assert resumed["samples"] == 1 and resumed["wall_s"] < 1.0  # read back, not rendered again
    with pytest.raises(ValueError, match="new --out"):
        m21.render_corpus(tmp_path, works=WORKS[:1], soundfont=SOUNDFONT, seed=1, verbose=False)


def test_resume_renders_only_the_missing_variants(rendered, tmp_path):
    # A corpus rendered with one variant per work grows to two without rendering variant 0 again.
    out, _, records = rendered
    first = next(r for r in records if r["id"] == "bach__bwv66.6-v0")
    split = tmp_path / first["split"]
    split.mkdir()
    shutil.copy(out / "render_config.json", tmp_path / "render_config.json")
    for suffix in (".json", ".flac", ".txt", ".mid"):
        shutil.copy(out / first["split"] / f"bach__bwv66.6-v0{suffix}", split / f"bach__bwv66.6-v0{suffix}")
    kept = (split / "bach__bwv66.6-v0.flac").stat().st_mtime_ns
    summary = m21.render_corpus(tmp_path, works=WORKS[:1], soundfont=SOUNDFONT, seed=0, variants=2,
                                max_seconds=MAX_SECONDS, verbose=False)
    assert summary["samples"] == 2 and summary["failed"] == 0
    assert (split / "bach__bwv66.6-v0.flac").stat().st_mtime_ns == kept  # not rendered again
    np.testing.assert_array_equal(load_audio(split / "bach__bwv66.6-v1.flac"),
                                  load_audio(out / first["split"] / "bach__bwv66.6-v1.flac"))


def test_broken_work_is_reported_not_raised(tmp_path):
    broken = tmp_path / "broken.abc"
    broken.write_bytes(b"\x00\xff not a score")
    records, failure = m21.render_work(m21.Work("fake/broken", str(broken), None, "fake"), tmp_path,
                                       SOUNDFONT, seed=0, variants=1, max_seconds=10.0)
    assert records == [] and failure["work_id"] == "fake/broken" and failure["stage"] == "parse"


def test_counted_beat():
    from music21 import meter

    beats = {text: m21.counted_beat(meter.TimeSignature(text)) for text in ("4/4", "6/8", "2/2", "4/1", "6/4", "7/8")}
    assert beats == {"4/4": 1.0, "6/8": 1.5, "2/2": 2.0, "4/1": 2.0, "6/4": 1.0, "7/8": 0.5}
    assert m21.counted_beat(None) == 1.0


def test_caption_grammar():
    rng = np.random.default_rng(0)
    solo = m21.choose_variant(rng, num_parts=1, beat_quarters=1.0)
    assert solo["instrument_family"] != "woodwinds" and len(solo["pan"]) == 1
    quartet = [m21.choose_variant(np.random.default_rng(s), 4, 2.0) for s in range(40)]
    assert all(30 <= v["bpm"] <= 70 for v in quartet)  # half-note beats: 60-140 quarters a minute
    assert {"four violins", "string ensemble"} & {v["instrument"] for v in quartet}
    assert all(v["pan"] == sorted(v["pan"]) and len(v["pan"]) == 4 for v in quartet)
