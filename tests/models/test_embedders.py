"""Conditioning embedders (audiodit/models/embedders.py): the features each one sees."""

import torch

from audiodit.models.embedders import (NO_KEY, NUM_KEYS, TEMPO_RANGE_BPM, KeyEmbedder, beat_features, key_features,
                                       tempo_features)


def test_tempo_features_are_a_clamped_log_scale_and_mark_unknown_tempi():
    bpm = torch.tensor([60.0, 120.0, 240.0, float("nan"), 1.0, 5000.0, 0.0, -3.0])
    features, known = tempo_features(bpm)
    assert known.tolist() == [True, True, True, False, True, True, False, False]
    u = features[:, 0]
    # a doubling is the same step at any speed; out-of-range tempi clamp to the ends
    torch.testing.assert_close(u[1] - u[0], u[2] - u[1])
    assert u[4] == 0.0 and u[5] == 1.0 and float(u[2]) < 1.0
    assert torch.equal(features[~known], torch.zeros_like(features[~known]))
    assert tempo_features(torch.tensor([TEMPO_RANGE_BPM[1]]))[0][0, 0] == 1.0


def test_beat_features_repeat_every_bar_and_vanish_without_tempo():
    bpm = torch.full((4,), 90.0)
    beat = 60.0 / 90.0
    seconds = torch.tensor([0.3, 0.3 + 12 * beat, 0.3 + beat, 0.3])  # 12 beats: a whole number of every cycle
    features = beat_features(seconds, bpm)
    torch.testing.assert_close(features[0], features[1], atol=1e-5, rtol=0)
    assert not torch.allclose(features[0], features[2], atol=1e-3)  # one beat later: other bar phases
    assert torch.equal(beat_features(seconds, torch.full((4,), float("nan"))), torch.zeros(4, features.shape[1]))


def test_key_features_name_the_tonic_the_mode_and_the_scale():
    ids = torch.tensor([0, 9 + 12, 7, 2 + 12, NO_KEY])  # C major, A minor, G major, D minor, none
    features, known = key_features(ids)
    assert known.tolist() == [True, True, True, True, False]
    tonic, mode, scale = features[:, :12], features[:, 12:14], features[:, 14:]
    assert tonic.argmax(dim=1)[:4].tolist() == [0, 9, 7, 2] and tonic.sum(dim=1)[:4].tolist() == [1.0] * 4
    assert mode[:4].tolist() == [[1, 0], [0, 1], [1, 0], [0, 1]]
    white_keys = [1, 0, 1, 0, 1, 1, 0, 1, 0, 1, 0, 1]
    assert scale[0].tolist() == white_keys
    # A minor: the white keys plus its leading tone G#; G major: the white keys with F# for F
    assert scale[1].tolist() == [1, 0, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1]
    assert scale[2].tolist() == [1, 0, 1, 0, 1, 0, 1, 1, 0, 1, 0, 1]
    assert torch.equal(features[4], torch.zeros(features.shape[1]))


def test_every_key_has_its_own_features_and_transposition_rolls_the_scale():
    features, known = key_features(torch.arange(NUM_KEYS))
    assert known.all() and torch.unique(features, dim=0).shape[0] == NUM_KEYS
    for minor in (0, 12):
        for tonic in range(12):
            rolled = torch.roll(features[minor, 14:], shifts=tonic)
            assert torch.equal(features[minor + tonic, 14:], rolled)


def test_key_embedder_starts_at_zero_and_uses_null_for_no_key():
    torch.manual_seed(0)
    embedder = KeyEmbedder(16)
    torch.nn.init.zeros_(embedder.mlp[2].weight)  # as AudioDiTModel.initialize_weights leaves it
    torch.nn.init.zeros_(embedder.mlp[2].bias)
    ids = torch.tensor([3, 15, NO_KEY])
    assert torch.equal(embedder(ids), torch.zeros(3, 16))
    with torch.no_grad():
        torch.nn.init.normal_(embedder.mlp[2].weight)
        embedder.null.fill_(0.5)
    out = embedder(ids)
    assert not torch.allclose(out[0], out[1])  # E-flat major and E-flat minor differ
    assert torch.equal(out[2], torch.full((16,), 0.5))
