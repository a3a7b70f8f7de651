"""The helpers under inpainting, continuation and interpolation (`audiodit.editing`); the editing
modes themselves are exercised through the pipeline in test_pipeline.py."""

import pytest
import torch

from audiodit.editing import SEAM_FRAMES, seam_keep_mask, slerp


def test_slerp_hits_both_ends_and_keeps_the_noise_norm():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 8, 50, generator=generator), torch.randn(2, 8, 50, generator=generator)
    torch.testing.assert_close(slerp(a, b, 0.0), a)
    torch.testing.assert_close(slerp(a, b, 1.0), b)
    middle = slerp(a, b, 0.5)
    straight = 0.5 * (a + b)
    assert abs(middle.norm() / a.norm() - 1) < 0.05  # a straight line shrinks to about 1/sqrt(2)
    assert straight.norm() / a.norm() < 0.8


def test_slerp_of_a_tensor_with_itself_is_that_tensor():
    a = torch.randn(1, 4, 9)
    torch.testing.assert_close(slerp(a, a, 0.3), a)


def test_seam_mask_keeps_the_ranges_and_ramps_down_inside_the_regenerated_part():
    frames = 40
    mask = seam_keep_mask(frames, [(0, 10), (30, frames)], "cpu", torch.float32)[0, 0]  # (T,)
    assert mask.shape == (frames,)
    assert (mask[:10] == 1).all() and (mask[30:] == 1).all()
    ramp = mask[10 : 10 + SEAM_FRAMES]
    assert (ramp < 1).all() and (ramp > 0).all() and (ramp[1:] < ramp[:-1]).all()  # falls away from the kept side
    assert (mask[10 + SEAM_FRAMES : 30 - SEAM_FRAMES] == 0).all()
    torch.testing.assert_close(mask[30 - SEAM_FRAMES : 30], ramp.flip(0))


def test_seam_mask_clips_ranges_to_the_clip():
    mask = seam_keep_mask(12, [(-5, 3), (10, 99)], "cpu", torch.float64)[0, 0]
    assert mask.shape == (12,) and (mask[:3] == 1).all() and (mask[10:] == 1).all()


def test_the_mode_methods_are_the_calls_they_name():
    """pipe.inpaint / continuation / audio_to_audio give what the equivalent __call__ gives."""
    from audiodit.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    clip = 0.2 * torch.randn(2, 48000, generator=torch.Generator().manual_seed(0))
    common = dict(num_inference_steps=2, guidance_scale=2.0)
    pairs = [
        (pipe.inpaint("a bell", clip, (0.3, 0.6), generator=torch.Generator().manual_seed(1), **common),
         pipe("a bell", initial_audio=clip, inpaint_range=(0.3, 0.6), generator=torch.Generator().manual_seed(1),
              **common)),
        (pipe.continuation("a bell", clip, 0.5, generator=torch.Generator().manual_seed(2), **common),
         pipe("a bell", initial_audio=clip, continuation_in_s=0.5, generator=torch.Generator().manual_seed(2),
              **common)),
        (pipe.audio_to_audio("a bell", clip, 0.5, generator=torch.Generator().manual_seed(3), **common),
         pipe("a bell", initial_audio=clip, strength=0.5, generator=torch.Generator().manual_seed(3), **common)),
    ]
    for method, call in pairs:
        assert torch.equal(method.audios, call.audios)
    assert pairs[1][0].audios.shape[-1] == 48000 + 24000
    assert not torch.equal(pairs[2][0].audios[..., :48000], clip.expand(1, -1, -1))  # it was remade


def test_no_mode_goes_through_call(monkeypatch):
    """Every mode method (and long inputs, long-form windows and interpolation points) reaches the
    one-window path directly: with `__call__` made to fail, each still runs (issue 23)."""
    from audiodit.pipeline import AudioDiTPipeline
    from audiodit.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    max_samples = int(pipe.max_audio_length_s * 48000)
    short = 0.2 * torch.randn(2, 48000, generator=torch.Generator().manual_seed(0))
    long = 0.2 * torch.randn(2, max_samples + 48000, generator=torch.Generator().manual_seed(1))

    def refuse(*args, **kwargs):
        raise AssertionError("a mode went through __call__")

    monkeypatch.setattr(AudioDiTPipeline, "__call__", refuse)
    common = dict(num_inference_steps=2, guidance_scale=2.0, generator=torch.Generator().manual_seed(2))
    for clip in (short, long):
        assert pipe.inpaint("a bell", clip, (0.3, 0.6), **common).audios.shape[-1] == clip.shape[-1]
        assert pipe.continuation("a bell", clip, 0.5, **common).audios.shape[-1] == clip.shape[-1] + 24000
        assert pipe.audio_to_audio("a bell", clip, 0.5, **common).audios.shape[-1] == clip.shape[-1]
    assert pipe.interpolate("a bell", "a drum", num_points=2, audio_end_in_s=0.5,
                            num_inference_steps=2).audios.shape[0] == 2
    parts = list(pipe.generate_long("a bell", seconds=pipe.max_audio_length_s + 1.0, num_inference_steps=2,
                                    progress=False))
    assert sum(part.shape[-1] for part in parts) == max_samples + 48000


def test_continuation_refuses_what_it_cannot_take():
    """`latents` and `prompt_embeds` were silently dropped by continuation; now one clear error."""
    from audiodit.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0)
    clip = torch.zeros(2, 48000)
    noise = torch.randn(1, pipe.transformer.config.in_channels, 10)
    with pytest.raises(ValueError, match="`latents` is not taken by continuation"):
        pipe.continuation("a bell", clip, 0.5, latents=noise, num_inference_steps=2)


def test_only_per_prompt_arguments_are_split_between_prompts():
    """A long edit of two prompts runs each alone: bpm, key and negative prompt lists are cut to the
    prompt's entry; a two-number guidance interval (a list, as sample.py and sidecars give it) is not."""
    from audiodit.editing import _for_prompt

    call = {"guidance_interval": [0.2, 0.85], "bpm": [90.0, 120.0], "key": ["D minor", None], "guidance_scale": 3.0}
    assert _for_prompt(call, 1, 2) == {"guidance_interval": [0.2, 0.85], "bpm": 120.0, "key": None,
                                       "guidance_scale": 3.0}
    assert _for_prompt(call, 0, 1) == call  # one prompt: nothing to split


def test_continuation_keeps_its_window_context_to_itself():
    from audiodit.testing import tiny_pipeline

    with pytest.raises(TypeError, match="context_in_s"):
        tiny_pipeline(seed=0).continuation("a bell", torch.zeros(2, 48000), 0.5, context_in_s=0.2, num_inference_steps=2)
