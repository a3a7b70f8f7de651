"""The latent key classifier: shapes for any length, masked frames ignored, noise level used, round trip."""

import pytest
import torch

from audiodit.models.key_classifier import LatentKeyClassifier


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return LatentKeyClassifier(in_channels=4, width=16, dilations=(1, 2)).eval()


@pytest.mark.parametrize("frames", [1, 7, 33])
def test_logits_cover_the_24_keys_for_any_length(classifier, frames):
    logits = classifier(torch.randn(3, 4, frames), torch.rand(3)).logits
    assert logits.shape == (3, 24) and torch.isfinite(logits).all()


def test_a_scalar_noise_level_applies_to_every_clip(classifier):
    latents = torch.randn(2, 4, 9)
    assert torch.equal(classifier(latents, 0.5).logits, classifier(latents, torch.tensor([0.5, 0.5])).logits)


def test_the_noise_level_changes_the_logits(classifier):
    latents = torch.randn(2, 4, 9)
    assert not torch.allclose(classifier(latents, 0.0).logits, classifier(latents, 0.9).logits)


def test_padded_frames_cannot_change_the_logits(classifier):
    latents = torch.randn(2, 4, 12, requires_grad=True)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 7:] = False
    classifier(latents, 0.3, mask).logits.sum().backward()
    assert latents.grad[1, :, 7:].abs().max() == 0
    assert latents.grad[1, :, :7].abs().max() > 0
    alone = classifier(latents[1:, :, :7].detach(), 0.3).logits
    assert torch.allclose(classifier(latents.detach(), 0.3, mask).logits[1:], alone, atol=1e-6)


def test_log_prob_is_the_log_softmax_of_the_stated_key(classifier):
    latents, keys = torch.randn(3, 4, 9), torch.tensor([0, 13, 23])
    expected = torch.log_softmax(classifier(latents, 0.2).logits, -1)[torch.arange(3), keys]
    assert torch.allclose(classifier.log_prob(latents, 0.2, keys), expected)


def test_wrong_channel_count_is_refused(classifier):
    with pytest.raises(ValueError, match=r"\(B, 4, T\)"):
        classifier(torch.randn(1, 5, 9), 0.0)


def test_save_and_load_round_trip(classifier, tmp_path):
    classifier.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    loaded = LatentKeyClassifier.from_pretrained(tmp_path).eval()
    latents = torch.randn(2, 4, 9)
    assert torch.equal(loaded(latents, 0.4).logits, classifier(latents, 0.4).logits)
