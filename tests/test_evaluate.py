"""Tests for audiodit.evaluate: the scores, the shuffled-prompt floor, the Fréchet distance, the
instrument classifier, and the whole command on a tiny random pipeline with a tiny synthesised corpus (same JSON fields as music21_corpus writes)."""

import json

import numpy as np
import pytest

pytest.importorskip("essentia")
pytest.importorskip("librosa")
pytest.importorskip("sklearn")

from synthetic_audio import A_MINOR_CADENCE, C_MAJOR_CADENCE, SR, chord_sequence  # noqa: E402

from audiodit import analysis, evaluate  # noqa: E402


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("estimate, reference, score", [
    ((0, "major"), (0, "major"), 1.0), ((7, "major"), (0, "major"), 0.5), ((5, "major"), (0, "major"), 0.5),
    ((9, "minor"), (0, "major"), 0.3), ((0, "major"), (9, "minor"), 0.3), ((0, "minor"), (0, "major"), 0.2),
    ((4, "minor"), (9, "minor"), 0.5), ((2, "major"), (0, "major"), 0.0), ((4, "minor"), (0, "major"), 0.0),
    ((-1, "none"), (0, "major"), 0.0),
])
def test_mirex_key_score(estimate, reference, score):
    assert evaluate.mirex_key_score(*estimate, *reference) == score


def test_tempo_hits_octaves_and_tolerance():
    assert evaluate.tempo_hits(129.0, 120.0) and not evaluate.tempo_hits(131.0, 120.0)
    assert not evaluate.tempo_hits(240.0, 120.0) and evaluate.tempo_hits(240.0, 120.0, (1.0, 2.0, 0.5))
    assert evaluate.tempo_hits(61.0, 120.0, (1.0, 2.0, 0.5)) and not evaluate.tempo_hits(180.0, 120.0, (1.0, 2.0, 0.5))


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_derangement_has_no_fixed_points(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        permutation = evaluate.derangement(n, rng)
        assert sorted(permutation) == list(range(n)) and not np.any(permutation == np.arange(n))
    with pytest.raises(ValueError, match="at least 2"):
        evaluate.derangement(1, rng)


def _targets(n):
    names = ["C", "D", "E", "F", "G", "A", "B"]
    return [{"id": str(i), "tonic": names[i % 7], "mode": ("major", "minor")[i % 2], "bpm": 60 + 7 * i,
             "instrument_family": ("piano", "organ", "flute")[i % 3]} for i in range(n)]


def test_shuffled_floor_scores_against_deranged_prompts():
    targets = _targets(12)
    perfect = [{"tonic": analysis.pitch_class(t["tonic"]), "mode": t["mode"], "bpm_estimate": float(t["bpm"]),
                "family_estimate": t["instrument_family"]} for t in targets]
    model = evaluate.adherence(perfect, targets)
    assert model["key_accuracy"] == model["tempo_accuracy"] == model["instrument_accuracy"] == 1.0
    assert model["tempo_median_abs_error_bpm"] == model["tempo_median_abs_error_octave_bpm"] == 0.0
    doubled = [dict(e, bpm_estimate=2 * e["bpm_estimate"]) for e in perfect]  # every estimate an octave high
    octave = evaluate.adherence(doubled, targets)
    assert octave["tempo_accuracy"] == 0.0 and octave["tempo_accuracy_octave"] == 1.0
    assert octave["tempo_median_abs_error_octave_bpm"] == 0.0 < octave["tempo_median_abs_error_bpm"]
    floor = evaluate.shuffled_floor(perfect, targets, rounds=200, seed=0)
    first = np.array(floor["first_derangement"])
    assert not np.any(first == np.arange(len(targets)))  # nobody is scored against its own prompt
    assert floor["mean"]["key_accuracy"] < 0.3 and floor["mean"]["tempo_accuracy"] < 0.3
    assert floor["mean"]["tempo_median_abs_error_bpm"] > 10
    assert floor["p_value"]["key_accuracy"] < 0.01 and floor["p_value"]["tempo_median_abs_error_bpm"] < 0.01
    # Audio that ignores its prompt is no better than the floor: a large p-value.
    constant = [dict(perfect[0]) for _ in targets]
    assert evaluate.shuffled_floor(constant, targets, rounds=200, seed=0)["p_value"]["key_accuracy"] > 0.2


# ---------------------------------------------------------------------------------------------
# Fréchet distance and classifier
# ---------------------------------------------------------------------------------------------


def test_frechet_distance_zero_for_identical_and_grows_with_shift():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 6))
    assert evaluate.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert evaluate.frechet_distance(features, features + 0.5) == pytest.approx(6 * 0.25, rel=1e-6)
    assert evaluate.frechet_distance(features, 2.0 * features) > 0.5  # same mean, wider covariance
    few = rng.normal(size=(8, 20))  # fewer clips than dimensions: singular covariances still work
    assert evaluate.frechet_distance(few, few) == pytest.approx(0.0, abs=1e-4)
    with pytest.raises(ValueError, match="feature sets"):
        evaluate.frechet_distance(features, features[:, :3])


def test_classifier_separates_timbres_and_needs_two_families():
    clips = [chord_sequence([[60 + shift, 64 + shift]], seconds_each=0.6, repeats=1, harmonics=h)
             for h in (1, 8) for shift in range(12)]
    families = ["flute"] * 12 + ["organ"] * 12
    features = np.stack([analysis.clip_features(clip) for clip in clips])
    classifier = evaluate.fit_instrument_classifier(features[::2], families[::2])
    assert classifier.score(features[1::2], families[1::2]) == 1.0
    with pytest.raises(ValueError, match="at least 2 families"):
        evaluate.fit_instrument_classifier(features[:12], families[:12])


# ---------------------------------------------------------------------------------------------
# Corpus loading and the command end to end
# ---------------------------------------------------------------------------------------------


FAMILY_HARMONICS = {"flute": 1, "organ": 8}


def write_fake_corpus(root, layout: dict[str, list[tuple[str, int, str]]]):
    """music21_corpus-like folders: layout = {split: [(family, transpose, mode), ...]}."""
    from audiodit.audio import save_audio

    for split, items in layout.items():
        (root / split).mkdir(parents=True)
        for index, (family, shift, mode) in enumerate(items):
            cadence = C_MAJOR_CADENCE if mode == "major" else A_MINOR_CADENCE
            audio = chord_sequence([[m + shift for m in chord] for chord in cadence], seconds_each=0.25, repeats=2,
                                   harmonics=FAMILY_HARMONICS[family])  # 2 s, a chord a beat at 240 BPM
            tonic = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"][(shift + (9 if mode == "minor" else 0)) % 12]
            sample_id = f"{split}{index}-v0"
            caption = f"A fake piece in {tonic} {mode} for {family}, 240 BPM, 4/4, centred."
            record = {"id": sample_id, "work_id": sample_id, "split": split, "caption": caption, "key": f"{tonic} {mode}",
                      "tonic": tonic, "mode": mode, "bpm": 240, "meter": "4/4", "instrument": family,
                      "instrument_family": family, "duration_s": 2.0}
            save_audio(root / split / f"{sample_id}.flac", audio, SR)
            (root / split / f"{sample_id}.txt").write_text(caption + "\n")
            (root / split / f"{sample_id}.json").write_text(json.dumps(record))


def test_load_split_names_bad_records(tmp_path):
    write_fake_corpus(tmp_path, {"test": [("flute", 0, "major")]})
    assert evaluate.load_split(tmp_path, "test")[0]["caption"].startswith("A fake piece in C major")
    assert evaluate.load_split(tmp_path, "valid") == []
    (tmp_path / "test" / "bad.json").write_text(json.dumps({"caption": "x"}))
    with pytest.raises(ValueError, match=r"bad\.json.*missing fields"):
        evaluate.load_split(tmp_path, "test")


def test_command_end_to_end_on_tiny_pipeline(tmp_path, capsys):
    from audiodit.testing import tiny_pipeline

    model_dir, data_dir, out_dir = tmp_path / "model", tmp_path / "corpus", tmp_path / "report"
    tiny_pipeline(seed=0).save_pretrained(model_dir)
    write_fake_corpus(data_dir, {
        "train": [("flute", 0, "major"), ("organ", 2, "minor"), ("flute", 5, "minor"), ("organ", 7, "major")],
        "valid": [("organ", 4, "major")],
        "test": [("flute", 3, "major"), ("organ", 0, "minor")],
    })
    assert evaluate.main(["--model", str(model_dir), "--data", str(data_dir), "--out", str(out_dir),
                          "--num-prompts", "3", "--seconds", "1", "--steps", "2", "--shuffle-rounds", "20"]) == 0

    report = json.loads((out_dir / "report.json").read_text())
    assert report["settings"]["num_prompts"] == 3 and report["settings"]["prompt_splits"] == ["test", "valid"]
    adherence_keys = {"key_accuracy", "mode_accuracy", "key_mirex_score", "tempo_accuracy", "tempo_accuracy_octave",
                      "tempo_accuracy_metrical", "tempo_median_abs_error_bpm", "tempo_median_abs_error_octave_bpm",
                      "instrument_accuracy"}
    assert set(report["metrics"]["real"]) == set(report["metrics"]["vae"]) == adherence_keys | {"frechet_distance"}
    assert set(report["metrics"]["model"]) == adherence_keys | {"frechet_distance", "vae_mrstft", "vae_mel_l1_db",
                                                                "vae_si_sdr_db"}
    assert set(report["metrics"]["shuffled"]) == set(report["p_value_model_vs_shuffled"]) == adherence_keys
    assert all(np.isfinite(v) for column in report["metrics"].values() for v in column.values())
    assert report["metrics"]["model"]["frechet_distance"] > 0
    assert report["classifier"]["classes"] == ["flute", "organ"] and report["classifier"]["held_out_clips"] == 3
    shuffled = report["per_clip"]["shuffled_first_derangement"]
    assert all(row["id"] != row["scored_against"] for row in shuffled)
    # The ceiling scores the real clips against their own captions; these synthetic cadences are easy.
    assert report["metrics"]["real"]["key_accuracy"] == 1.0
    assert len(list((out_dir / "generated").glob("*.flac"))) == 3

    table = (out_dir / "report.md").read_text()
    assert "| Key accuracy (tonic and mode) ↑ |" in table and "Shuffled-prompt floor" in table
    assert "Real audio through the VAE" in table and len(report["per_clip"]["vae"]) == 3
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 1 + len(evaluate.ROWS)
    assert "| Metric |" in capsys.readouterr().out

    common = ["--model", str(model_dir), "--out", str(tmp_path / "again"), "--steps", "2"]
    with pytest.raises(ValueError, match="--seconds must be in"):
        evaluate.main(common + ["--data", str(data_dir), "--seconds", "60"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate.main(common + ["--data", str(tmp_path / "missing")])
