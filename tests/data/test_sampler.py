import pytest

from audiodit.data.sampler import BucketBatchSampler


def _flatten(batches):
    return [index for batch in batches for index, _epoch in batch]


def test_ranks_get_equal_disjoint_shares_and_batches_stay_in_one_bucket():
    buckets = [0, 1, 2] * 7  # 21 items in 3 buckets
    samplers = [BucketBatchSampler(buckets, 3, seed=1, rank=r, world_size=2) for r in range(2)]
    batches = [list(s) for s in samplers]
    assert len(batches[0]) == len(batches[1]) == len(samplers[0]) == 4  # 3 x (3+3+1) = 9 batches -> 8 usable
    assert not set(_flatten(batches[0])) & set(_flatten(batches[1]))
    for batch in batches[0] + batches[1]:
        assert len({buckets[index] for index, _ in batch}) == 1


def test_order_depends_on_seed_and_epoch_only():
    buckets = [0] * 12
    sampler = BucketBatchSampler(buckets, 4, seed=5)
    sampler.set_epoch(2)
    first = list(sampler)
    sampler.set_epoch(2)
    assert list(sampler) == first
    assert all(epoch == 2 for batch in first for _, epoch in batch)
    sampler.set_epoch(3)
    assert _flatten(list(sampler)) != _flatten(first)
    assert sorted(_flatten(first)) == list(range(12))  # every item once per epoch


def test_start_batch_resumes_mid_epoch():
    sampler = BucketBatchSampler([0, 1] * 10, 2, seed=0)
    sampler.set_epoch(1)
    full = list(sampler)
    sampler.set_epoch(1, start_batch=3)
    assert list(sampler) == full[3:]
    assert list(sampler) == full  # the skip applies to one pass only


def test_too_little_data_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than one batch per process"):
        BucketBatchSampler([0], 1, world_size=2)
