"""benchmarks/guidance_sweep.py on a tiny pipeline and a fake corpus: every value of the swept
setting from the same noise, scored side by side, intervals included."""

import json

import pytest

from benchmarks import guidance_sweep
from tests.test_evaluate import write_fake_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from audiodit.testing import tiny_pipeline

    root = tmp_path_factory.mktemp("sweep")
    tiny_pipeline(seed=0).save_pretrained(root / "model")
    write_fake_corpus(root / "corpus", {
        "train": [("flute", 0, "major"), ("organ", 2, "minor"), ("flute", 5, "minor"), ("organ", 7, "major"),
                  ("flute", 9, "major"), ("organ", 4, "minor")],
        "test": [("flute", 3, "major"), ("organ", 0, "minor")],
    })
    return root


def test_guidance_intervals_are_swept_side_by_side(corpus, tmp_path):
    out = tmp_path / "sweep.json"
    args = ["--model", str(corpus / "model"), "--data", str(corpus / "corpus"), "--num-prompts", "2",
            "--seconds", "1", "--steps", "2", "--shuffle-rounds", "10", "--max-train-clips", "4"]
    assert guidance_sweep.main(args + ["--parameter", "guidance_interval", "--scales", "0:1,0.6:1",
                                       "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["scales"] == ["0:1", "0.6:1"] and set(result["by_scale"]) == {"0:1", "0.6:1"}
    assert set(result["against_first_scale"]) == {"0.6:1"}
    for entry in result["by_scale"].values():
        assert len(entry["per_clip"]) == 2 and entry["metrics"]["frechet_distance"] >= 0
    with pytest.raises(SystemExit, match="LOW:HIGH"):
        guidance_sweep.main(args + ["--parameter", "guidance_interval", "--scales", "0.5:0.2,0:1"])
    with pytest.raises(SystemExit, match="exists"):
        guidance_sweep.main(args + ["--parameter", "guidance_interval", "--scales", "0:1,0.6:1", "--out", str(out)])
