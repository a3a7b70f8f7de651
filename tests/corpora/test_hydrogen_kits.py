"""Tests for audiodit/corpora/hydrogen_kits.py: drumkit.xml parsing (layered and old single-file
instruments, with and without namespace), velocity layers, and patterns landing on their grid."""

import numpy as np
import pytest
import soundfile as sf

from audiodit.corpora import hydrogen_kits as hk

KIT_XML = """<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>Fake Kit</name>
 <author>Test Author</author>
 <license>CC0</license>
 <instrumentList>
  <instrument><name>Kick (Fake 22")</name><volume>0.8</volume>
   <layer><filename>kick_soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
   <layer><filename>kick_hard.wav</filename><min>0.5</min><max>1</max><gain>0.9</gain></layer>
  </instrument>
  <instrument><name>Snare</name><filename>snare.wav</filename></instrument>
  <instrument><name>Gone</name><layer><filename>missing.wav</filename></layer></instrument>
 </instrumentList>
</drumkit_info>
"""


def test_read_kit(tmp_path):
    (tmp_path / "drumkit.xml").write_text(KIT_XML)
    for name in ("kick_soft.wav", "kick_hard.wav", "snare.wav"):
        sf.write(tmp_path / name, np.zeros(100, dtype=np.float32), 48000)
    kit = hk.read_kit(tmp_path)
    assert (kit.name, kit.author, kit.license) == ("Fake Kit", "Test Author", "CC0")
    assert [i.name for i in kit.instruments] == ['Kick (Fake 22")', "Snare"]  # "Gone" has no sample
    kick, snare = kit.instruments
    assert kick.volume == 0.8 and [layer.gain for layer in kick.layers] == [1.0, 0.9]
    assert hk.layer_for(kick, 0.7).path.endswith("kick_hard.wav")
    assert hk.layer_for(kick, 0.2).path.endswith("kick_soft.wav")
    assert len(snare.layers) == 1 and snare.volume == 1.0  # old format: one <filename>, no layers
    with pytest.raises(ValueError, match="drumkit.xml"):
        hk.read_kit(tmp_path / "nowhere")


@pytest.mark.parametrize("style", sorted(hk.PATTERNS))
def test_pattern_hits_are_on_the_sixteenth_grid(style):
    bpm, bars = 120, 2
    hits = hk.pattern_hits(style, bpm, bars)
    step = 60.0 / bpm / 4
    expected = sum(len(steps) - steps.count(".") for steps in hk.PATTERNS[style].values()) * bars
    assert len(hits) == expected
    for hit in hits:
        position = hit.seconds / step
        assert position == pytest.approx(round(position), abs=1e-9)
        assert hk.PATTERNS[style][hit.role][round(position) % 16] in "Xx"
        assert hit.velocity == (1.0 if hk.PATTERNS[style][hit.role][round(position) % 16] == "X" else 0.7)
    assert all(len(steps) == hk.STEPS_PER_BAR for steps in hk.PATTERNS[style].values())
    assert set(hk.TEMPO_RANGES) == set(hk.PATTERNS)


def test_mix_places_each_hit_at_its_onset_with_its_gain():
    rate = 1000
    click = np.zeros((2, 10), dtype=np.float32)
    click[:, 0] = 1.0
    instrument = hk.Instrument("Kick", 0.5, (hk.Layer("click", 0.0, 1.0, 0.8),))
    hits = [hk.Hit(0.1, "kick", 1.0), hk.Hit(0.25, "kick", 0.7)]
    mix = hk.mix_hits(hits, {"kick": (instrument, 0.0)}, lambda path: click, rate, 0.5)
    assert mix.shape == (2, 500)
    assert np.flatnonzero(mix[0]).tolist() == [100, 250]
    assert mix[0, 100] == pytest.approx(1.0 * 0.8 * 0.5) and mix[1, 250] == pytest.approx(0.7 * 0.8 * 0.5)
    left = hk.mix_hits(hits, {"kick": (instrument, -1.0)}, lambda path: click, rate, 0.5)
    assert left[1].max() == pytest.approx(0.0, abs=1e-7) and left[0, 100] > mix[0, 100]  # hard left
