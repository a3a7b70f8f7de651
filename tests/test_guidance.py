"""How guidance branches are built and combined (`audiodit.guidance`)."""

import math
from types import SimpleNamespace

import pytest
import torch

from audiodit.guidance import (MIN_SIGNAL, STATED, add_contrast_branch, branch_count, check_beat_grid,
                               check_key_classifier, condition_branches, guided_velocity, key_classifier_velocity,
                               stated_key_ids)
from audiodit.models.conditions import GLOBAL_CONDITIONS
from audiodit.models.embedders import NO_KEY
from audiodit.models.key_classifier import LatentKeyClassifier


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
    extra = add_contrast_branch({"key_ids": key_ids, "bpm": bpm}, "key_ids")
    assert extra["key_ids"].tolist() == key_ids.tolist() + [NO_KEY] * batch
    torch.testing.assert_close(extra["bpm"][batch:], torch.cat([bpm[batch:], bpm[batch:]]))
    assert extra["bpm"][:batch].isnan().all()


def test_condition_branches_read_the_prompts_and_leave_the_unconditional_half_empty():
    config = SimpleNamespace(tempo_conditioning=True, beat_conditioning=False, key_conditioning=True)
    prompts = ["a jig in D major, 120 BPM", "a reel"]
    extra = condition_branches(config, prompts, {}, 4, 2, True, "cpu")  # 2 prompts x 2 waveforms
    tempi = extra["bpm"]
    assert all(math.isnan(v) for v in tempi[:4].tolist()) and tempi[4:6].tolist() == [120.0, 120.0]
    assert tempi[6:].isnan().all()
    assert extra["key_ids"].tolist() == [NO_KEY] * 4 + [2, 2, NO_KEY, NO_KEY]
    assert condition_branches(config, prompts, {}, 2, 1, False, "cpu")["key_ids"].tolist() == [2, NO_KEY]
    given = condition_branches(config, prompts, {"bpm": 90, "key": "E minor"}, 2, 1, False, "cpu")
    assert given["bpm"].tolist() == [90.0, 90.0] and given["key_ids"].tolist() == [16, 16]  # arguments win
    tempo_only = SimpleNamespace(tempo_conditioning=True, key_conditioning=False)
    assert set(condition_branches(tempo_only, prompts, {}, 2, 1, True, "cpu")) == {"bpm"}
    plain = SimpleNamespace(tempo_conditioning=False, key_conditioning=False)
    assert condition_branches(plain, prompts, {}, 2, 1, True, "cpu") == {}
    with pytest.raises(ValueError, match="`key` was given, but this model has no key conditioning"):
        condition_branches(plain, prompts, {"key": "D major"}, 2, 1, True, "cpu")
    with pytest.raises(ValueError, match="`bpm` must be positive"):
        condition_branches(config, prompts, {"bpm": -3}, 2, 1, True, "cpu")
    check_beat_grid(SimpleNamespace(beat_conditioning=True, latent_rate=25.0), 25.0)
    with pytest.raises(ValueError, match="beat grid would drift"):
        check_beat_grid(SimpleNamespace(beat_conditioning=True, latent_rate=25.0), 50.0)


def test_every_global_condition_says_how_it_is_stated():
    """A condition in the model's registry must have a way in from prompts and arguments."""
    assert {condition.name for condition in GLOBAL_CONDITIONS} == set(STATED)


def test_stated_keys_come_from_the_key_argument_before_the_prompts():
    prompts = ["a jig in D major", "a reel in B minor"]
    assert stated_key_ids(prompts, None, 2).tolist() == [2, 23]
    assert stated_key_ids(prompts, "F# minor", 2).tolist() == [18, 18]
    assert stated_key_ids(None, ["C major", None], 2).tolist() == [0, NO_KEY]
    assert stated_key_ids(None, None, 3).tolist() == [NO_KEY] * 3
    with pytest.raises(ValueError, match="'H major' is not a key"):
        stated_key_ids(prompts, "H major", 2)
    with pytest.raises(ValueError, match="3 entries but there are 2 prompts"):
        stated_key_ids(prompts, ["C major"] * 3, 2)


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return LatentKeyClassifier(in_channels=4, width=16, dilations=(1, 2)).eval()


def test_key_classifier_velocity_is_the_score_shift_on_the_flow_path(classifier):
    latents, velocity = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    keys, t, scale = torch.tensor([3, 15]), 0.6, 2.0
    noisy = latents.clone().requires_grad_(True)
    classifier.log_prob(noisy, t, keys).sum().backward()
    expected = velocity - scale * t / (1 - t) * noisy.grad
    assert torch.allclose(key_classifier_velocity(classifier, latents, velocity, t, keys, scale), expected, atol=1e-6)
    # Near pure noise the weight stops growing at t / MIN_SIGNAL.
    noisy.grad = None
    classifier.log_prob(noisy, 0.999, keys).sum().backward()
    near_noise = key_classifier_velocity(classifier, latents, velocity, 0.999, keys, 1.0)
    assert torch.allclose(near_noise, velocity - 0.999 / MIN_SIGNAL * noisy.grad, atol=1e-5)


def test_key_classifier_velocity_leaves_unkeyed_rows_and_scale_zero_alone(classifier):
    latents, velocity = torch.randn(2, 4, 9), torch.randn(2, 4, 9)
    keys = torch.tensor([NO_KEY, 5])
    moved = key_classifier_velocity(classifier, latents, velocity, 0.5, keys, 3.0)
    assert torch.equal(moved[0], velocity[0]) and not torch.allclose(moved[1], velocity[1])
    assert torch.equal(key_classifier_velocity(classifier, latents, velocity, 0.5, keys, 0.0), velocity)
    assert torch.equal(key_classifier_velocity(classifier, latents, velocity, 0.5, torch.tensor([NO_KEY] * 2), 3.0),
                       velocity)


def test_an_euler_step_along_the_guided_velocity_raises_the_stated_keys_probability(classifier):
    latents, keys, t, dt = torch.randn(3, 4, 9), torch.tensor([0, 7, 20]), 0.5, 0.05
    velocity = torch.zeros_like(latents)
    guided = key_classifier_velocity(classifier, latents, velocity, t, keys, 1.0)
    with torch.no_grad():
        before = classifier.log_prob(latents, t, keys)
        after = classifier.log_prob(latents - dt * guided, t, keys)  # t decreases: x_{t - dt} = x_t - dt v
    assert (after > before).all()


def test_key_classifier_scale_needs_a_classifier_and_no_sign(classifier):
    check_key_classifier(classifier, 2.0)
    check_key_classifier(None, 0.0)
    with pytest.raises(ValueError, match="needs a pipeline with a `key_classifier`"):
        check_key_classifier(None, 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        check_key_classifier(classifier, -1.0)


def test_guidance_interval_guides_only_the_steps_inside_it(monkeypatch):
    """Inside the interval every branch runs; outside, the conditional branch alone (one pass of B
    rows). An interval holding every step is plain guidance; one holding none is no guidance at all,
    bit for bit, with every condition (tempo, beat grid, key, key guidance) on."""
    from audiodit.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0, tempo_conditioning=True, beat_conditioning=True, key_conditioning=True)
    rows = []
    monkeypatch.setattr(pipe.transformer, "forward", _counting(pipe.transformer.forward, rows))

    def run(**kwargs):
        rows.clear()
        audio = pipe(["a waltz in D minor, 90 BPM", "a march, 120 BPM"], audio_end_in_s=1.0, num_inference_steps=4,
                     generator=[torch.Generator().manual_seed(k) for k in range(2)], **kwargs).audios
        return audio, list(rows)

    guided, guided_rows = run(guidance_scale=3.0, key_guidance_scale=1.0)
    every, every_rows = run(guidance_scale=3.0, key_guidance_scale=1.0, guidance_interval=(0.0, 1.0))
    assert torch.equal(guided, every) and guided_rows == every_rows == [6] * 4  # 3 branches x 2 prompts
    plain, plain_rows = run(guidance_scale=1.0)
    none, none_rows = run(guidance_scale=3.0, key_guidance_scale=1.0, guidance_interval=(0.0, 1e-6))
    assert torch.equal(plain, none) and plain_rows == none_rows == [2] * 4
    part, part_rows = run(guidance_scale=3.0, key_guidance_scale=1.0, guidance_interval=(0.3, 0.8))
    levels = (pipe.scheduler.timesteps / 1000).tolist()  # the noise level of each step of that run
    assert part_rows == [6 if 0.3 <= t <= 0.8 else 2 for t in levels] and 2 in part_rows and 6 in part_rows
    assert not torch.equal(part, guided) and not torch.equal(part, plain)


def _counting(forward, rows):
    def counted(hidden_states, *args, **kwargs):
        rows.append(hidden_states.shape[0])
        return forward(hidden_states, *args, **kwargs)

    return counted
