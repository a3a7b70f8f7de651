"""Tests for audiodit/corpora/mma_grooves.py (with mma_styles.py and general_midi.py): every listed
style file exists and has grooves; rendered arrangements have the layout, and their captions state
the tempo, key and drums that the MIDI file and the audio really hold; resume and bad settings.
MMA and FluidSynth are required (CI installs them): without them these tests fail, they do not skip."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from audiodit.audio import audio_info, load_audio
from audiodit.corpora import mma_grooves as grooves
from audiodit.corpora.general_midi import DRUM_GROUPS, PROGRAM_NAMES, describe_midi, join_words
from audiodit.corpora.mma_styles import FAMILIES, HARMONY, PROGRESSIONS, STYLES
from audiodit.prompt_attributes import parse_bpm, parse_key

SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"  # Debian timgm6mb-soundfont (6 MB)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    assert shutil.which("mma"), "mma is missing: apt-get install -y mma"
    out = tmp_path_factory.mktemp("grooves")
    # one arrangement from each of three families: funk (drums, bass, keys), jazz and waltz (3/4)
    families = ["funk", "jazz", "waltz"]
    summary = grooves.render_grooves(out, count=3, soundfonts=[SOUNDFONT], seed=1, max_seconds=6.0,
                                     families=families, verbose=False)
    records = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    return out, summary, records


def test_every_style_file_exists_with_grooves_and_a_countable_metre():
    assert len({style.path for style in STYLES}) == len(STYLES)
    for style in STYLES:
        beats, names = grooves.read_style(style.path)
        assert beats in (3, 4), style.path
        assert names and not any(grooves.SKIPPED_GROOVE.search(name) for name, _ in names), style.path
        assert style.family in HARMONY and style.tempo[0] <= style.tempo[1]
    assert len(FAMILIES) >= 15


def test_chords_are_spelled_as_the_key_signature():
    assert grooves.chord_names(4, "minor") == ["Em", "Am", "B7", "Em"]  # E minor: F# side
    assert grooves.chord_names(10, "pop") == ["Bb", "F", "Gm", "Eb"]  # Bb major: flats
    assert grooves.chord_names(1, "minor pop") == ["C#m", "A", "E", "B"]  # C# minor
    assert len(grooves.chord_names(0, "twelve-bar blues")) == 12
    for mode, degrees in PROGRESSIONS.values():
        assert mode in ("major", "minor") and degrees


def test_drum_only_styles_play_no_chords():
    style = next(s for s in STYLES if s.drums_only)
    beats, names = grooves.read_style(style.path)
    rng = np.random.default_rng(0)
    choices = [grooves.choose_arrangement(rng, style, beats, names, [SOUNDFONT], 8.0) for _ in range(20)]
    bare = [c for c in choices if c["bass"] is None]
    backed = [c for c in choices if c["bass"] is not None]
    assert bare and backed  # both kinds are drawn
    assert all(c["progression"] is None and c["melody"] is None for c in bare)
    source = grooves.mma_source(style, bare[0])
    assert f"Use {style.path}" in source and "\n1 z\n" in source and "Begin Bass" not in source
    assert "Begin Bass-Backing" in grooves.mma_source(style, backed[0])


def test_layout_and_records(rendered):
    out, summary, records = rendered
    assert summary["samples"] == 3 and summary["failed"] == 0
    assert [r["genre_family"] for r in sorted(records, key=lambda r: r["index"])] == ["funk", "jazz", "waltz"]
    for record in records:
        folder = out / record["split"]
        for suffix in (".flac", ".txt", ".json", ".mid"):
            assert (folder / f"{record['id']}{suffix}").is_file()
        info = audio_info(folder / f"{record['id']}.flac")
        assert (info.sample_rate, info.channels) == (48000, 2)
        assert 3.0 < info.duration <= 6.0 + 1e-3 and abs(info.duration - record["duration_s"]) < 1e-2
        assert (folder / f"{record['id']}.txt").read_text().strip() == record["caption"]
        assert record["domain"] == "arrangement" and "GPL" in record["license"]
    assert "mma" in (out / "ATTRIBUTION.md").read_text()


def test_captions_state_what_the_midi_and_audio_hold(rendered):
    out, _, records = rendered
    for record in records:
        folder = out / record["split"]
        caption = record["caption"]
        assert parse_bpm(caption) == record["bpm"]
        assert parse_key(caption) == record["tonic_pitch_class"] + 12 * (record["mode"] == "minor")
        assert record["key"] in caption
        played = describe_midi(folder / f"{record['id']}.mid")
        assert record["drums"] == played["drums"] and record["has_drums"] == bool(played["drums"])
        assert set(record["instruments"]) == {PROGRAM_NAMES[p] for p in played["programs"]}
        for instrument in record["instruments"]:
            assert instrument in caption
        assert ("with drums" in caption or "drum kit" in caption) == record["has_drums"]
        # the MIDI file plays at the stated tempo: its length is the bars at that tempo
        bar_seconds = int(record["meter"][0]) * 60 / record["bpm"]
        assert played["seconds"] == pytest.approx(record["bars"] * bar_seconds, abs=bar_seconds)
        audio = load_audio(folder / f"{record['id']}.flac", 48000).numpy()
        assert np.abs(audio).max() == pytest.approx(10 ** (-1 / 20), abs=0.01)  # peak-normalised


def test_resume_renders_nothing_and_other_settings_are_refused(rendered):
    out, _, records = rendered
    before = {path: path.stat().st_mtime_ns for path in out.glob("*/*.flac")}
    summary = grooves.render_grooves(out, count=3, soundfonts=[SOUNDFONT], seed=1, max_seconds=6.0,
                                     families=["funk", "jazz", "waltz"], verbose=False)
    assert summary["samples"] == 3
    assert {path: path.stat().st_mtime_ns for path in out.glob("*/*.flac")} == before
    with pytest.raises(ValueError, match="use a new --out"):
        grooves.render_grooves(out, count=3, soundfonts=[SOUNDFONT], seed=2, max_seconds=6.0,
                               families=["funk", "jazz", "waltz"], verbose=False)


def test_cli_refuses_bad_values(tmp_path, capsys):
    assert grooves.main(["--out", str(tmp_path / "x"), "--max-seconds", "nan"]) == 2
    assert grooves.main(["--out", str(tmp_path / "x"), "--families", "polka-metal"]) == 2
    assert "unknown genre families" in capsys.readouterr().err


def test_general_midi_tables():
    assert PROGRAM_NAMES[0] == "acoustic grand piano" and PROGRAM_NAMES[36] == "slap bass"
    keys = [key for keys in DRUM_GROUPS.values() for key in keys]
    assert len(keys) == len(set(keys)) and 36 in DRUM_GROUPS["kick"] and 38 in DRUM_GROUPS["snare"]
    assert join_words(["a"]) == "a" and join_words(["a", "b", "c"]) == "a, b and c"
