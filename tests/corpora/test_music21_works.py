"""Tests for audiodit/corpora/music21_works.py: the corpus listing (one work per stem, merged ABC
voices, no fixtures) and the split by work (fractions, groups that share a split, balanced order)."""

from audiodit.corpora import music21_works as works_module


def test_work_listing_and_splits():
    works = works_module.list_works()
    ids = [work.work_id for work in works]
    assert len(ids) == len(set(ids)) and ids == sorted(ids)
    assert ids.count("bach/bwv277") == 1  # in the corpus as .krn and .mxl: one work
    assert "josquin/oVenusBant" in ids  # three ABC tunes that are the voices of one chanson: merged
    assert not any(i.startswith("josquin/oVenusBant#") for i in ids)
    assert sum(i.startswith("essenFolksong/erk5#") for i in ids) > 10  # a folk-song book is many works
    assert not any(i.startswith(("demos/", "theoryExercises/")) for i in ids)
    splits = [works_module.split_of(i) for i in ids]
    fractions = {name: splits.count(name) / len(splits) for name in ("train", "valid", "test")}
    assert 0.87 < fractions["train"] < 0.93
    assert 0.03 < fractions["valid"] < 0.07 and 0.03 < fractions["test"] < 0.07
    # Versions of one chorale and movements of one quartet are one group.
    assert works_module.split_group("bach/bwv248.9-1") == works_module.split_group("bach/bwv248.9-s") == "bach/bwv248.9"
    assert works_module.split_group("beethoven/opus59no1/movement2") == "beethoven/opus59no1"
    order = works_module.balanced_order(works, seed=0)
    assert sorted(w.work_id for w in order) == ids and order == works_module.balanced_order(works, seed=0)
    assert len({w.collection for w in order[:20]}) == 20  # a small --limit still spans collections
