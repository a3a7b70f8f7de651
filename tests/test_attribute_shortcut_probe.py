"""experiments/probes/attribute_shortcut.py: its word/attribute ratio on distances with known answers, its
drums-from-tempo count, and a smoke run of the script with a tiny random pipeline."""

import json

import numpy as np
import pytest

from audiodit.testing import tiny_pipeline
from experiments.probes import attribute_shortcut


def _grid(prompts: int, suffixes: int):
    prompt_of = np.repeat(np.arange(prompts), suffixes)
    suffix_of = np.tile(np.arange(suffixes), prompts)
    return prompt_of, suffix_of


def test_ratio_is_above_one_when_words_decide_and_below_when_the_suffix_does():
    prompt_of, suffix_of = _grid(4, 3)
    # a point per clip: words move it by 10 per prompt, the suffix by 1 (or the other way round)
    for word_step, suffix_step, above in ((10.0, 1.0, True), (1.0, 10.0, False)):
        points = np.stack([prompt_of * word_step, suffix_of * suffix_step], axis=1)
        distances = np.linalg.norm(points[:, None] - points[None, :], axis=-1)
        found = attribute_shortcut.ratio(distances, prompt_of, suffix_of)
        assert (found["ratio"] > 1) is above
        assert found["words"] == pytest.approx(word_step * np.mean([abs(a - b) for a in range(4) for b in range(4) if a != b]))


def test_drums_appearing_with_tempo_are_counted_only_for_prompts_without_drums():
    rows, spectra = [], []
    rng = np.random.default_rng(0)
    for p, (_, wants) in enumerate(attribute_shortcut.PROMPTS):
        for s in range(len(attribute_shortcut.SUFFIXES)):
            heard = 0.1 if s == 0 else 0.6  # every prompt gets drums from a stated tempo
            rows.append({"prompt_index": p, "suffix_index": s, "wants_drums": wants, "rms_db": -20.0,
                         "low_energy_share": 0.1, "judge_drums": heard})
            spectra.append(rng.normal(size=8))
    found = attribute_shortcut.summarise(rows, np.array(spectra), None)
    drumless = sum(wants is not True for _, wants in attribute_shortcut.PROMPTS)
    assert found["drums_appear_with_tempo"] == {"prompts": drumless, "count": drumless}
    assert found["by_suffix"]["(as written)"]["judge_drums"] == pytest.approx(0.1)
    assert found["by_suffix"][", 110 BPM"]["judge_drums"] == pytest.approx(0.6)


def test_smoke_run(tmp_path, single_thread):
    model = tmp_path / "tiny"
    tiny_pipeline(seed=0).save_pretrained(model)
    report = tmp_path / "shortcut"
    assert attribute_shortcut.main(["--model", str(model), "--label", "tiny", "--seconds", "0.5", "--steps", "2",
                                    "--no-judge", "--report", str(report)]) == 0
    data = json.loads(report.with_suffix(".json").read_text())
    (found,) = data["models"]
    assert found["label"] == "tiny" and found["judge"] == "--no-judge"
    assert len(found["clips"]) == len(attribute_shortcut.PROMPTS) * len(attribute_shortcut.SUFFIXES)
    assert [c["prompt"] for c in found["clips"][:3]] == [attribute_shortcut.PROMPTS[0][0] + s
                                                         for s in attribute_shortcut.SUFFIXES]
    assert np.isfinite(found["spectra"]["ratio"]) and found["spectra"]["attributes"] > 0
    assert "word / attribute ratio, spectra" in report.with_suffix(".md").read_text()


def test_labels_must_match_models(capsys):
    with pytest.raises(SystemExit):
        attribute_shortcut.main(["--model", "a", "--model", "b", "--label", "x"])
    assert "one --label per --model" in capsys.readouterr().err
