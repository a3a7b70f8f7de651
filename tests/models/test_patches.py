"""Spacetime patches: exact round trips on random lengths, token masks, positions."""

import pytest
import torch

from audiodit.models.patches import PatchGrid

PATCH_SIZES = [(1, 8), (2, 8), (3, 4), (4, 2), (5, 1)]  # (patch_frames, patch_channels) with C = 8


@pytest.mark.parametrize("patch_frames,patch_channels", PATCH_SIZES)
def test_round_trip_on_random_lengths(patch_frames, patch_channels):
    grid = PatchGrid(8, patch_frames, patch_channels)
    g = torch.Generator().manual_seed(patch_frames * 10 + patch_channels)
    for frames in torch.randint(1, 40, (6,), generator=g).tolist() + [1, patch_frames, patch_frames + 1]:
        latents = torch.randn(3, 8, frames, generator=g)
        tokens = grid.patchify(latents)
        assert tokens.shape == (3, -(-frames // patch_frames) * (8 // patch_channels), patch_frames * patch_channels)
        assert tokens.shape[1] == grid.num_tokens(frames)
        assert torch.equal(grid.unpatchify(tokens, frames), latents)


def test_token_holds_the_right_values():
    grid = PatchGrid(4, patch_frames=2, patch_channels=2)
    latents = torch.arange(4 * 3, dtype=torch.float32).view(1, 4, 3)  # value = 3 * channel + frame
    tokens = grid.patchify(latents)  # 2 time patches x 2 groups
    # Token 1 = time patch 0, channel group 1 (channels 2, 3), frame-major inside the token.
    assert tokens[0, 1].tolist() == [6.0, 9.0, 7.0, 10.0]
    # Token 3 = time patch 1, group 1: frame 2 is real, frame 3 is zero padding.
    assert tokens[0, 3].tolist() == [8.0, 11.0, 0.0, 0.0]


def test_token_mask_marks_only_all_padding_tokens():
    grid = PatchGrid(4, patch_frames=3, patch_channels=2)
    frame_mask = torch.tensor([[True] * 7 + [False] * 5])  # 12 frames, 7 real -> patches 0..2 real
    mask = grid.token_mask(frame_mask)
    assert mask.shape == (1, grid.num_tokens(12))
    assert mask.tolist() == [[True] * 6 + [False] * 2]


def test_positions_are_patch_centres_in_latent_frames():
    grid = PatchGrid(4, patch_frames=2, patch_channels=2)
    time, group = grid.positions(5)
    assert time.tolist() == [0.5, 0.5, 2.5, 2.5, 4.5, 4.5]
    assert group.tolist() == [0, 1, 0, 1, 0, 1]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="patch_channels"):
        PatchGrid(8, 1, 3)
    with pytest.raises(ValueError, match="patch_frames"):
        PatchGrid(8, 0, 8)
    grid = PatchGrid(8, 2, 8)
    with pytest.raises(ValueError, match="patchify expects"):
        grid.patchify(torch.zeros(1, 4, 10))
    with pytest.raises(ValueError, match="unpatchify expects"):
        grid.unpatchify(torch.zeros(1, 5, 16), frames=12)
