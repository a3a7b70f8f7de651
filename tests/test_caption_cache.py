"""Caption-embedding cache: each caption encoded once, lossless storage, invalidation on change."""

import json
import os

import pytest
import torch

from audiodit.caption_cache import INDEX_NAME, CaptionCache, caption_key
from audiodit.conditioners import PRESETS, TextEncoderConfig, build_text_encoder

CAPTIONS = ["a piano", "rain on a tin roof with a slow drum beat", "a piano", "Piano"]


def _encoder(seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = TextEncoderConfig(kind="clip", pretrained="none", **{**PRESETS["tiny"], "trainable": False, **overrides})
    return build_text_encoder(cfg)


@pytest.fixture(scope="module")
def encoder():
    return _encoder()


class CountingEncoder:
    """Wraps `encoder.forward` to count the captions it encodes."""

    def __init__(self, encoder, monkeypatch):
        self.count = 0
        original = encoder.forward

        def forward(tokens, **kwargs):
            self.count += tokens["input_ids"].shape[0]
            return original(tokens, **kwargs)

        monkeypatch.setattr(encoder, "forward", forward)


def test_cached_outputs_equal_the_encoder_outputs(encoder, tmp_path):
    cache = CaptionCache(tmp_path, encoder, batch_size=2)
    reference = encoder.encode(CAPTIONS)
    first = cache.get(CAPTIONS)  # misses: encoded in batches of 2 (float rounding may differ)
    torch.testing.assert_close(first.embeddings, reference.embeddings, rtol=1e-5, atol=1e-6)
    assert torch.equal(first.mask, reference.mask)
    torch.testing.assert_close(first.pooled, reference.pooled, rtol=1e-5, atol=1e-6)
    again = cache.get(CAPTIONS)  # hits: read back from disk, bit-exact
    assert torch.equal(again.embeddings, first.embeddings) and torch.equal(again.mask, first.mask)
    assert torch.equal(again.pooled, first.pooled)


def test_each_distinct_caption_is_encoded_once(encoder, tmp_path, monkeypatch):
    counter = CountingEncoder(encoder, monkeypatch)
    cache = CaptionCache(tmp_path, encoder)
    cache.get(CAPTIONS)
    assert counter.count == 3  # "a piano" twice in the batch, "Piano" is a different caption
    assert cache.stats == {"hits": 1, "misses": 3, "entries": 3}
    cache.get(["a piano", "a new caption"])
    assert counter.count == 4
    assert cache.stats == {"hits": 2, "misses": 4, "entries": 4}
    assert "a new caption" in cache and "never seen" not in cache


def test_a_reopened_cache_serves_everything_from_disk(encoder, tmp_path, monkeypatch):
    CaptionCache(tmp_path, encoder).get(CAPTIONS)
    counter = CountingEncoder(encoder, monkeypatch)
    reopened = CaptionCache(tmp_path, encoder)
    assert len(reopened) == 3
    reopened.get(CAPTIONS[::-1])
    assert counter.count == 0 and reopened.stats["hits"] == len(CAPTIONS)


def test_changed_weights_invalidate_the_cache(tmp_path):
    old_encoder = _encoder(seed=0)
    old = CaptionCache(tmp_path, old_encoder)
    old.get(CAPTIONS)
    old_shards = {name for name in os.listdir(tmp_path) if name.endswith(".safetensors")}
    new_encoder = _encoder(seed=1)  # same config, different weights
    new = CaptionCache(tmp_path, new_encoder)
    assert len(new) == 0 and new.fingerprint != old.fingerprint
    assert not old_shards & set(os.listdir(tmp_path))  # stale shards deleted
    out = new.get(CAPTIONS)
    torch.testing.assert_close(out.pooled, new_encoder.encode(CAPTIONS).pooled, rtol=1e-5, atol=1e-6)
    assert json.loads((tmp_path / INDEX_NAME).read_text())["fingerprint"] == new.fingerprint


def test_changed_config_invalidates_the_cache(tmp_path):
    CaptionCache(tmp_path, _encoder()).get(CAPTIONS)
    assert len(CaptionCache(tmp_path, _encoder(context_length=12))) == 0


def test_dropout_settings_do_not_invalidate(tmp_path):
    CaptionCache(tmp_path, _encoder(dropout_prob=0.1)).get(CAPTIONS)
    assert len(CaptionCache(tmp_path, _encoder(dropout_prob=0.3))) == 3


def test_cache_ignores_training_mode_dropout(encoder, tmp_path):
    encoder.train()
    try:
        out = CaptionCache(tmp_path, encoder).get([f"caption {i}" for i in range(40)])
    finally:
        encoder.eval()
    assert (out.pooled.abs().sum(dim=1) > 0).all()  # no item replaced by the null condition


def test_shards_drop_the_padding_tail_and_files_are_clean(encoder, tmp_path):
    from safetensors import safe_open

    cache = CaptionCache(tmp_path, encoder)
    out = cache.get(["a piano", "rain"])
    shards = [name for name in os.listdir(tmp_path) if name.endswith(".safetensors")]
    assert len(shards) == 1 and not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]
    with safe_open(str(tmp_path / shards[0]), framework="pt") as file:
        stored_length = file.get_tensor("mask").shape[1]
    assert stored_length == int(out.mask.sum(dim=1).max()) < encoder.context_length
    index = json.loads((tmp_path / INDEX_NAME).read_text())
    assert set(index["entries"]) == {caption_key("a piano"), caption_key("rain")}


def test_float16_storage(encoder, tmp_path):
    out = CaptionCache(tmp_path, encoder, dtype=torch.float16).get(CAPTIONS)
    assert out.embeddings.dtype == torch.float16
    torch.testing.assert_close(out.pooled.float(), encoder.encode(CAPTIONS).pooled, rtol=1e-2, atol=1e-2)


def test_cached_outputs_work_with_condition_dropout(encoder, tmp_path):
    out = CaptionCache(tmp_path, encoder).get(CAPTIONS)
    dropped = encoder.drop(out, force_drop_ids=torch.tensor([1, 0, 0, 0]))
    assert (dropped.pooled[0] == 0).all() and dropped.mask[0].sum() == 1
    assert torch.equal(dropped.pooled[1:], out.pooled[1:])


def test_trainable_encoder_and_bad_input_are_refused(tmp_path, encoder):
    with pytest.raises(ValueError, match="trainable"):
        CaptionCache(tmp_path / "a", _encoder(trainable=True))
    with pytest.raises(TypeError, match="list"):
        CaptionCache(tmp_path / "b", encoder).get("a piano")


def test_clear_removes_entries_and_shards(encoder, tmp_path):
    cache = CaptionCache(tmp_path, encoder)
    cache.get(CAPTIONS)
    cache.clear()
    assert len(cache) == 0 and not [n for n in os.listdir(tmp_path) if n.endswith(".safetensors")]
    assert len(CaptionCache(tmp_path, encoder)) == 0
