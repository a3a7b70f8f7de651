"""benchmarks/domain_eval.py and its scores (benchmarks/domain_facts.py): the scores on made-up judge
outputs with known answers, the fact tables against the judge's tag names and the datasets' values,
caption selection, and a smoke run of the whole script with a tiny random pipeline and a fake judge."""

import json
import subprocess
import sys
import textwrap
from functools import partial

import numpy as np
import pytest

from audiodit import judge
from audiodit.evaluate import frechet_distance
from benchmarks import domain_eval, domain_facts
from synthetic_audio import write_dataset

MTT, MSD = domain_facts.MTT, domain_facts.MSD
# The taggers' 50 tag names, as musicnn 0.1.0's configuration.py lists them (checked against the
# installed judge below, where it exists).
TAG_NAMES = {
    MTT: ["guitar", "classical", "slow", "techno", "strings", "drums", "electronic", "rock", "fast", "piano",
          "ambient", "beat", "violin", "vocal", "synth", "female", "indian", "opera", "male", "singing", "vocals",
          "no vocals", "harpsichord", "loud", "quiet", "flute", "woman", "male vocal", "no vocal", "pop", "soft",
          "sitar", "solo", "man", "classic", "choir", "voice", "new age", "dance", "male voice", "female vocal",
          "beats", "harp", "cello", "no voice", "weird", "country", "metal", "female voice", "choral"],
    MSD: ["rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
          "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
          "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock",
          "ambient", "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country",
          "easy listening", "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb",
          "indie pop", "sad", "House", "happy"],
}
SR = 48000


def probabilities_of(columns: dict, n: int) -> dict:
    """Every judge tag at 0 for n clips, except the given (model, tag) -> (n,) columns."""
    found = {(model, tag): np.zeros(n) for model, names in TAG_NAMES.items() for tag in names}
    found.update({key: np.asarray(value, float) for key, value in columns.items()})
    return found


def arrangements(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    families = ["rock", "jazz", "blues", "electronic", "ballad"]  # ballad has no tag: takes no part
    return [{"id": f"a{i}", "caption": f"clip {i}", "has_drums": bool(rng.random() < 0.6),
             "genre_family": families[i % len(families)]} for i in range(n)]


def perfect_tagger(records: list[dict]) -> dict:
    """What a judge that hears exactly the captions' facts would say."""
    drums = [float(r["has_drums"]) for r in records]
    columns = {(MTT, "drums"): drums, (MTT, "beat"): drums}
    for family, tags in domain_facts.GENRE_TAGS.items():
        for tag in tags:
            columns[tag] = [float(r["genre_family"] == family) for r in records]
    return probabilities_of(columns, len(records))


# ---------------------------------------------------------------------------------------------
# Scores
# ---------------------------------------------------------------------------------------------

def test_a_perfect_tagger_scores_one_and_its_derangements_chance():
    records = arrangements(40)
    facts = domain_facts.FACTS["arrangement"]
    scores = domain_facts.adherence(facts, records, perfect_tagger(records))
    assert scores == {"drums_auc_drums": 1.0, "drums_auc_beat": 1.0, "genre_macro_auc": 1.0, "genre_retrieval": 1.0}
    per_value = domain_facts.value_aucs(facts[1], records, perfect_tagger(records))
    assert set(per_value) == {"rock", "jazz", "blues", "electronic"}
    assert all(found["auc"] == 1.0 for found in per_value.values())
    assert per_value["rock"]["clips"] == 8
    floor = domain_facts.shuffled_floor(facts, records, perfect_tagger(records), rounds=400, seed=0)
    assert floor["drums_auc_drums"]["floor"] == pytest.approx(0.5, abs=0.05)
    assert floor["genre_macro_auc"]["floor"] == pytest.approx(0.5, abs=0.05)
    assert floor["genre_retrieval"]["floor"] == pytest.approx(0.25, abs=0.08)  # 4 scored families, balanced
    for metric in scores:
        assert floor[metric]["p"] < 0.01 and floor[metric]["value"] == 1.0


def test_a_tagger_that_hears_nothing_scores_like_its_floor():
    records = arrangements(40, seed=1)
    rng = np.random.default_rng(2)
    noise = {key: rng.random(40) for key in probabilities_of({}, 40)}
    floor = domain_facts.shuffled_floor(domain_facts.FACTS["arrangement"], records, noise, rounds=400, seed=0)
    for metric, found in floor.items():
        assert abs(found["value"] - found["floor"]) < 3 * found["floor_std"] + 1e-9, metric
        assert found["p"] > 0.01


def test_class_facts_with_several_values_and_unscored_values():
    records = [{"moods": ["intense", "epic"]}, {"moods": ["calm"]}, {"moods": []}, {"moods": ["calm", "sad"]},
               {"moods": ["tense"]}, {"moods": ["intense"]}]
    loud = [0.9, 0.1, 0.5, 0.2, 0.5, 0.8]
    probabilities = probabilities_of({(MTT, "loud"): loud, (MTT, "fast"): loud,
                                      (MTT, "quiet"): [0.1, 0.9, 0.5, 0.7, 0.5, 0.2], (MSD, "sad"): [0, 0, 0, 1, 0, 0]},
                                     len(records))
    scores = domain_facts.adherence(domain_facts.FACTS["recording"], records, probabilities)
    assert scores["mood_macro_auc"] == 1.0  # intense, calm and sad each above the other scored clips
    assert scores["mood_retrieval"] == 1.0  # the clips with one scored mood: 1 (calm) and 5 (intense); 0 has epic too
    only_unscored = domain_facts.adherence(domain_facts.FACTS["recording"], [{"moods": ["epic"]}, {"moods": []}],
                                          probabilities_of({}, 2))
    assert all(np.isnan(v) for v in only_unscored.values())


def test_sound_categories_split_into_percussive_not_and_unsaid():
    assert domain_facts._percussive({"category": "drum pattern"}) is True
    assert domain_facts._percussive({"category": "animal"}) is False
    assert domain_facts._percussive({"category": "instrument one-shot"}) is None
    records = [{"category": c} for c in ("drum hit", "effect", "drum loop", "music loop", "ambience")]
    drums = [0.9, 0.2, 0.8, 0.99, 0.1]  # the music loop's 0.99 is not counted
    scores = domain_facts.adherence(domain_facts.FACTS["sound"], records, probabilities_of({(MTT, "drums"): drums}, 5))
    assert scores["percussive_auc_drums"] == 1.0 and scores["percussive_auc_beat"] == 0.5  # beat all 0: ties


def test_frechet_zero_for_identical_sets_and_the_fast_form_equals_evaluates():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((30, 200)), rng.standard_normal((25, 200)) + 0.3
    assert domain_facts.fast_frechet(a, a) == pytest.approx(0.0, abs=1e-6)
    assert domain_facts.fast_frechet(a, b) == pytest.approx(frechet_distance(a, b), rel=1e-6)
    small_a, small_b = rng.standard_normal((60, 8)), 2.0 * rng.standard_normal((40, 8))
    assert domain_facts.fast_frechet(small_a, small_b) == pytest.approx(frechet_distance(small_a, small_b), rel=1e-8)


def test_other_domain_floor_tells_the_right_domain_from_the_wrong_one():
    rng = np.random.default_rng(1)
    real, own = rng.standard_normal((20, 16)), rng.standard_normal((20, 16))
    others = rng.standard_normal((40, 16)) + 3.0
    found = domain_facts.other_domain_floor(real, own, others, rounds=100, seed=0)
    assert found["floor"] > 5 * domain_facts.fast_frechet(own, real) and found["p"] < 0.02
    alike = domain_facts.other_domain_floor(real, own, rng.standard_normal((40, 16)), rounds=100, seed=0)
    assert alike["p"] > 0.05


def test_domain_separation_near_one_when_domains_collapse():
    rng = np.random.default_rng(0)
    domains = np.repeat(["a", "b", "c"], 12)
    centres = {d: 5.0 * rng.random(32) for d in "abc"}
    apart = np.stack([centres[d] for d in domains]) + rng.random((36, 32))
    found = domain_facts.domain_separation(apart, domains, rounds=300, seed=0)
    assert found["ratio"] > 1.5 and found["p"] < 0.01 and found["means_over_spread"] > 1.0
    assert found["mean_distances"]["a"]["a"] == pytest.approx(0.0, abs=1e-9) and set(found["spread"]) == set("abc")
    collapsed = domain_facts.domain_separation(rng.random((36, 32)), domains, rounds=300, seed=0)
    assert collapsed["ratio"] == pytest.approx(1.0, abs=0.05) and collapsed["p"] > 0.01
    assert collapsed["chance_ratio"] == pytest.approx(1.0, abs=0.02)


# ---------------------------------------------------------------------------------------------
# Fact tables
# ---------------------------------------------------------------------------------------------

def test_fact_tables_use_only_the_judges_tag_names_each_value_its_own():
    for domain, facts in domain_facts.FACTS.items():
        for model, tag in domain_facts.fact_tags(domain):
            assert tag in TAG_NAMES[model], (domain, model, tag)
        for fact in facts:
            if isinstance(fact, domain_facts.ClassFact):
                tags = [tag for value_tags in fact.tags.values() for tag in value_tags]
                assert len(tags) == len(set(tags)), f"{fact.name}: a tag names two values"


def test_fact_tables_name_values_the_datasets_use():
    from audiodit.corpora.mma_styles import FAMILIES
    from audiodit.corpora.music21_corpus import INSTRUMENTS
    from audiodit.corpora.recordings_captions import MOOD_WORDS
    from audiodit.corpora.sound_names import CONTEXTS, TABLES

    assert set(domain_facts.GENRE_TAGS) <= set(FAMILIES)
    assert set(domain_facts.INSTRUMENT_TAGS) <= set(INSTRUMENTS)
    assert set(domain_facts.MOOD_TAGS) <= set(MOOD_WORDS)
    categories = {row[2] for table in TABLES.values() for row in table} | {c.category for c in CONTEXTS.values()}
    categories.add("drum pattern")  # sound_library's Hydrogen patterns
    scored = domain_facts.PERCUSSIVE_CATEGORIES | domain_facts.NON_PERCUSSIVE_CATEGORIES
    assert scored <= categories and not domain_facts.PERCUSSIVE_CATEGORIES & domain_facts.NON_PERCUSSIVE_CATEGORIES


@pytest.mark.skipif(not judge.judge_available(), reason="no judge interpreter (.venv-judge); see audiodit/judge.py")
def test_the_tag_names_here_are_the_installed_judges():
    script = "import json, musicnn.configuration as c; print(json.dumps([c.MTT_LABELS, c.MSD_LABELS]))"
    printed = subprocess.run([str(judge.judge_python()), "-I", "-c", script], capture_output=True, text=True,
                             check=True, timeout=60).stdout
    assert json.loads(printed) == [TAG_NAMES[MTT], TAG_NAMES[MSD]]


# ---------------------------------------------------------------------------------------------
# Captions, and the whole script
# ---------------------------------------------------------------------------------------------

def groove_records(prefix: str, n: int) -> list[dict]:
    return [{**r, "id": f"{prefix}{i}", "domain": "arrangement", "caption": f"{r['genre_family']} groove {prefix}{i}"}
            for i, r in enumerate(arrangements(n))]


def test_captions_are_a_seeded_sample_of_the_test_split_only(tmp_path):
    splits = {"train": groove_records("train", 4), "valid": groove_records("valid", 3),
              "test": groove_records("test", 6)}
    data = write_dataset(tmp_path / "grooves", splits, seconds=0.05)
    first = domain_eval.select_captions(data, "test", 4, seed=0)
    assert [r["id"] for r in first] == [r["id"] for r in domain_eval.select_captions(data, "test", 4, seed=0)]
    assert len(first) == 4 and all(r["id"].startswith("test") and r["split"] == "test" for r in first)
    assert {r["id"] for r in domain_eval.select_captions(data, "test", 50, seed=0)} == {f"test{i}" for i in range(6)}
    orders = {tuple(r["id"] for r in domain_eval.select_captions(data, "test", 6, seed=s)) for s in range(5)}
    assert len(orders) > 1
    assert first[0]["caption"] == (data / "test" / f"{first[0]['id']}.txt").read_text().strip()
    assert domain_eval.parse_data_argument(str(data), "test") == ("arrangement", data)
    with pytest.raises(ValueError, match="not 'sound'"):
        domain_eval.parse_data_argument(f"sound={data}", "test")
    with pytest.raises(ValueError, match="at least 2"):
        domain_eval.select_captions(data, "missing", 4, seed=0)


FAKE_WORKER = textwrap.dedent('''
    """Writes judge_worker.py's format with the real tag names and seeded random values."""
    import argparse, json
    import numpy as np
    parser = argparse.ArgumentParser()
    parser.add_argument("--files"); parser.add_argument("--out"); parser.add_argument("--models", nargs="+")
    args = parser.parse_args()
    files = json.load(open(args.files))
    names = json.load(open(__file__.replace(".py", ".json")))
    rng = np.random.default_rng(len(files))
    arrays = {"files": np.array(files, dtype=str), "timings": np.array(json.dumps({"files": len(files)}))}
    for model in args.models:
        arrays[model + ".tags"] = rng.random((len(files), 50)).astype(np.float32)
        arrays[model + ".tag_names"] = np.array(names[model])
        arrays[model + ".embedding"] = rng.random((len(files), 200)).astype(np.float32)
    np.savez(args.out, **arrays)
''')


def test_smoke_run_two_models_two_domains_with_a_fake_judge(tmp_path, monkeypatch, single_thread):
    from audiodit.testing import tiny_pipeline

    model = tmp_path / "tiny"
    tiny_pipeline(seed=0).save_pretrained(model)
    grooves = write_dataset(tmp_path / "grooves", {"train": groove_records("train", 3),
                                                   "test": groove_records("test", 3)})
    sounds = [{"id": f"s{i}", "domain": "sound", "caption": f"sound {i}", "category": c}
              for i, c in enumerate(["drum hit", "effect", "drum loop"])]
    sounds = write_dataset(tmp_path / "sounds", {"train": sounds, "test": sounds})
    worker = tmp_path / "fake_worker.py"
    worker.write_text(FAKE_WORKER)
    worker.with_suffix(".json").write_text(json.dumps(TAG_NAMES))
    monkeypatch.setattr(judge, "judge_files", partial(judge.judge_files, worker=worker))
    out = tmp_path / "results" / "domain_eval_test.md"
    assert domain_eval.main(["--model", f"v1={model}", "--model", f"v2={model}", "--data", f"arrangement={grooves}",
                             "--data", f"sound={sounds}", "--num-prompts", "3", "--seconds", "1", "--steps", "2",
                             "--shuffle-rounds", "20", "--frechet-rounds", "10", "--judge-python", sys.executable,
                             "--audio-out", str(tmp_path / "audio"), "--out", str(out)]) == 0

    report = json.loads(out.with_suffix(".json").read_text())
    assert [m["label"] for m in report["models"]] == ["v1", "v2"] and report["models"][0]["steps"] == 2
    assert set(report["domains"]) == {"arrangement", "sound"}
    arrangement = report["domains"]["arrangement"]
    assert set(arrangement["frechet"][MTT]) == {"train_sample", "v1/vae", "v1/generated", "v1/other_domains",
                                                "v2/vae", "v2/generated", "v2/other_domains"}
    assert set(arrangement["adherence"]) == {"real", "v1/vae", "v1/generated", "v2/vae", "v2/generated"}
    assert set(arrangement["adherence"]["v1/generated"]) == {"drums_auc_drums", "drums_auc_beat", "genre_macro_auc",
                                                             "genre_retrieval"}
    assert {"value", "floor", "floor_std", "p"} == set(arrangement["adherence"]["real"]["drums_auc_drums"])
    assert set(arrangement["value_auc"]["v1/generated"]["genre"]) <= set(domain_facts.GENRE_TAGS)
    assert set(report["domains"]["sound"]["adherence"]["v2/generated"]) == {"percussive_auc_drums",
                                                                           "percussive_auc_beat"}
    assert set(report["separation"]) == {"real", "v1/vae", "v1/generated", "v2/vae", "v2/generated"}
    assert {"ratio", "p", "chance_ratio", "mean_distances", "spread"} <= set(report["separation"]["real"])
    clip = arrangement["per_clip"][0]
    assert {"id", "caption", "drums", "genre", "real", "v1/generated", "v2/vae"} <= set(clip)
    assert "MTT_musicnn:drums" in clip["real"]["tags"]
    assert len(list((tmp_path / "audio" / "sound" / "v2").glob("*.flac"))) == 3
    first, second = (sorted((tmp_path / "audio" / "arrangement" / label).glob("*.flac")) for label in ("v1", "v2"))
    assert [f.read_bytes() for f in first] == [f.read_bytes() for f in second]  # same captions, same noise
    text = out.read_text()
    assert text.startswith("# Held-out evaluation per domain, judged by musicnn: v1, v2")
    assert "## Tag adherence" in text and "## Domain separation" in text
