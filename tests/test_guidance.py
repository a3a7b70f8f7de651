"""How guidance branches are built and combined (`audiodit.guidance`)."""

import math
from types import SimpleNamespace

import pytest
import torch

from audiodit.guidance import add_key_contrast_branch, branch_count, guided_velocity, key_branches, tempo_branches
from audiodit.models.embedders import NO_KEY


def _branches(count, batch=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 4, 7, generator=generator) for _ in range(count)]  # each (B, C, T)


def test_branch_count():
    assert [branch_count(False, False), branch_count(True, False), branch_count(True, True)] == [1, 2, 3]


def test_plain_guidance_is_the_classifier_free_formula():
    v_uncond, v_cond = _branches(2)
    guided = guided_velocity(torch.cat([v_uncond, v_cond]), 2, 4.0)
    torch.testing.assert_close(guided, v_uncond + 4.0 * (v_cond - v_uncond))
    torch.testing.assert_close(guided_velocity(v_cond, 1, 4.0), v_cond)  # no guidance: untouched


def test_key_guidance_adds_the_scaled_key_difference_and_zero_adds_nothing():
    v_uncond, v_cond, v_no_key = _branches(3)
    stacked = torch.cat([v_uncond, v_cond, v_no_key])
    plain = guided_velocity(torch.cat([v_uncond, v_cond]), 2, 4.0)
    torch.testing.assert_close(guided_velocity(stacked, 3, 4.0, 2.5), plain + 2.5 * (v_cond - v_no_key))
    torch.testing.assert_close(guided_velocity(stacked, 3, 4.0, 0.0), plain)


def test_full_rescale_gives_the_conditional_std_per_sample():
    v_uncond, v_cond, v_no_key = _branches(3)
    guided = guided_velocity(torch.cat([v_uncond, v_cond, v_no_key]), 3, 6.0, 2.0, guidance_rescale=1.0)
    torch.testing.assert_close(guided.std(dim=(1, 2)), v_cond.std(dim=(1, 2)))


@pytest.mark.parametrize("batch", [1, 3])
def test_contrast_branch_copies_the_conditional_half_without_its_key(batch):
    key_ids = torch.tensor([NO_KEY] * batch + list(range(2, 2 + batch)))  # (2B,) = [uncond, cond]
    bpm = torch.tensor([float("nan")] * batch + [60.0 + i for i in range(batch)])
    extra = add_key_contrast_branch({"key_ids": key_ids, "bpm": bpm})
    assert extra["key_ids"].tolist() == key_ids.tolist() + [NO_KEY] * batch
    torch.testing.assert_close(extra["bpm"][batch:], torch.cat([bpm[batch:], bpm[batch:]]))
    assert extra["bpm"][:batch].isnan().all()


def test_tempo_and_key_branches_read_the_prompts_and_leave_the_unconditional_half_empty():
    config = SimpleNamespace(tempo_conditioning=True, beat_conditioning=False, key_conditioning=True)
    prompts = ["a jig in D major, 120 BPM", "a reel"]
    tempi = tempo_branches(config, 25.0, prompts, None, 4, 2, True, "cpu")["bpm"]  # 2 prompts x 2 waveforms
    assert all(math.isnan(v) for v in tempi[:4].tolist()) and tempi[4:6].tolist() == [120.0, 120.0]
    assert tempi[6:].isnan().all()
    assert key_branches(config, prompts, None, 2, 1, False, "cpu")["key_ids"].tolist() == [2, NO_KEY]
    plain = SimpleNamespace(tempo_conditioning=False, key_conditioning=False)
    assert tempo_branches(plain, 25.0, prompts, None, 2, 1, True, "cpu") == {}
    with pytest.raises(ValueError, match="no key conditioning"):
        key_branches(plain, prompts, "D major", 2, 1, True, "cpu")
