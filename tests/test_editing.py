"""The helpers under inpainting, continuation and interpolation (`audiodit.editing`); the editing
modes themselves are exercised through the pipeline in test_pipeline.py."""

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
