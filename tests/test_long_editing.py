"""Audio-to-audio, inpainting and continuation of inputs longer than the model's maximum: window by
window (audiodit.editing `_edit_long`, audiodit.longform.generate_long)."""

import pytest
import soundfile as sf
import torch

from audiodit.cli import main
from audiodit.editing import JOIN_CROSSFADE_SECONDS, JOIN_FADE_SECONDS
from audiodit.longform import default_context, default_drop, plan_windows
from audiodit.testing import TINY_MAX_SECONDS, tiny_pipeline

RATE = 48000


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def _input(seconds: float, seed: int = 0) -> torch.Tensor:
    """A stereo test signal: a tone with some noise, (2, samples)."""
    generator = torch.Generator().manual_seed(seed)
    t = torch.arange(int(round(seconds * RATE))) / RATE
    tone = 0.2 * torch.sin(2 * torch.pi * (220 + 40 * seed) * t)
    return torch.stack([tone, tone]) + 0.02 * torch.randn(2, t.numel(), generator=generator)


def _generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_audio_to_audio_of_a_long_input_works_window_by_window(pipe, monkeypatch):
    audio = _input(12.0)
    calls = []
    original = type(pipe)._generate  # the one-window path every long-form window takes

    def spy(self, *args, **kwargs):
        if kwargs.get("output_type") == "latent":
            calls.append(kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "_generate", spy)
    out = pipe("a march", initial_audio=audio, strength=0.6, num_inference_steps=4, generator=_generator(3)).audios
    assert out.shape == (1, 2, audio.shape[-1]) and torch.isfinite(out).all()
    # each window gets its own stretch of the input, noised to the strength asked for
    rate, hop = pipe.vae.latent_rate, pipe.vae.hop_length
    window = min(24.0, TINY_MAX_SECONDS)
    windows = plan_windows(pipe.vae.latent_frames(audio.shape[-1]), int(round(window * rate)),
                           int(round(default_context(window) * rate)), int(round(default_drop(window) * rate)))
    assert len(calls) == len(windows) >= 3
    for kwargs, planned in zip(calls, windows):
        assert kwargs["strength"] == 0.6
        stretch = kwargs["initial_audio"]
        assert stretch.shape[-1] == planned.frames * hop
        assert torch.equal(stretch[0], audio[:, planned.start * hop:planned.end * hop])
    monkeypatch.undo()
    # strength 1 ignores the input: the same as long-form generation of its length with that noise
    ignored = pipe("a march", initial_audio=audio, strength=1.0, num_inference_steps=4, generator=_generator(3)).audios
    made = torch.cat(list(pipe.generate_long("a march", audio.shape[-1] / RATE, num_inference_steps=4,
                                             generator=_generator(3), progress=False)), dim=-1)
    assert torch.equal(ignored, made)
    other_input = pipe("a march", initial_audio=_input(12.0, seed=1), strength=0.6, num_inference_steps=4,
                       generator=_generator(3)).audios
    assert not torch.allclose(other_input, out, atol=1e-4)


@pytest.mark.parametrize("span", [(5.0, 6.0), (1.5, 9.5)])  # one crop; several crops in turn
def test_inpainting_a_long_input_keeps_everything_outside_the_range(pipe, span):
    audio = _input(12.0)
    out = pipe("a march", initial_audio=audio, inpaint_range=span, num_inference_steps=2,
               generator=_generator(0)).audios[0]
    assert out.shape == audio.shape and torch.isfinite(out).all()
    fade = int(JOIN_FADE_SECONDS * RATE)
    start, end = int(round(span[0] * RATE)), int(round(span[1] * RATE))
    assert torch.equal(out[:, :start - fade], audio[:, :start - fade])
    assert torch.equal(out[:, end + fade:], audio[:, end + fade:])
    assert not torch.allclose(out[:, start:end], audio[:, start:end], atol=1e-3)


def test_continuing_past_one_window_keeps_the_clip_and_adds_every_second(pipe):
    audio = _input(3.0)
    out = pipe("a march", initial_audio=audio, continuation_in_s=9.0, num_inference_steps=2,
               generator=_generator(0)).audios[0]
    assert out.shape[-1] == audio.shape[-1] + 9 * RATE and torch.isfinite(out).all()
    keep = audio.shape[-1] - int(JOIN_CROSSFADE_SECONDS * RATE)
    assert torch.equal(out[:, :keep], audio[:, :keep])
    assert out[:, -RATE:].abs().max() > 0  # the last second was made too


def test_long_edits_refuse_what_they_cannot_take(pipe):
    audio = _input(8.0)
    with pytest.raises(ValueError, match=r"inpaint_range. must satisfy 0 <= start < end <= 8"):
        pipe("a march", initial_audio=audio, inpaint_range=(6.0, 9.0))
    with pytest.raises(ValueError, match="`latents` is not taken when editing audio longer"):
        pipe("a march", initial_audio=audio, strength=0.5, latents=torch.zeros(1, 16, 10))


def test_cli_edits_an_input_longer_than_the_model(model_dir, tmp_path):
    clip = tmp_path / "long.wav"
    sf.write(clip, _input(8.0).T.numpy(), RATE)
    assert main(["--model", str(model_dir), "--prompt", "a march", "--init-audio", str(clip), "--strength", "0.5",
                 "--steps", "2", "--out", str(tmp_path / "a2a.wav"), "--quiet"]) == 0
    assert main(["--model", str(model_dir), "--prompt", "a march", "--init-audio", str(clip), "--inpaint", "6", "7",
                 "--steps", "2", "--out", str(tmp_path / "inpaint.wav"), "--quiet"]) == 0
    assert main(["--model", str(model_dir), "--prompt", "a march", "--init-audio", str(clip), "--continue", "7",
                 "--steps", "2", "--out", str(tmp_path / "continued.wav"), "--quiet"]) == 0
    assert sf.info(tmp_path / "a2a.wav").frames == sf.info(tmp_path / "inpaint.wav").frames == 8 * RATE
    assert sf.info(tmp_path / "continued.wav").frames == 15 * RATE


def test_long_edits_check_their_arguments_before_any_work(pipe):
    audio = _input(8.0)
    with pytest.raises(ValueError, match="use only one of `strength`, `continuation_in_s`"):
        pipe("a march", initial_audio=audio, continuation_in_s=30.0, strength=0.5)
    with pytest.raises(ValueError, match="must be a positive number"):
        pipe("a march", initial_audio=audio, continuation_in_s=float("inf"))
    with pytest.raises(ValueError, match="'pt' or 'np'"):
        pipe("a march", initial_audio=audio, strength=0.5, output_type="latent")


def test_long_variations_differ_and_each_prompt_takes_its_own_negative_prompt(pipe):
    audio = _input(7.0)
    torch.manual_seed(0)
    two = pipe("a march", initial_audio=audio, strength=0.7, num_inference_steps=2, num_waveforms_per_prompt=2).audios
    assert two.shape[0] == 2 and not torch.equal(two[0], two[1])
    both = pipe(["a march", "a waltz"], negative_prompt=["noise", "hum"], initial_audio=audio, strength=0.7,
                num_inference_steps=2, generator=[_generator(1), _generator(2)]).audios
    alone = pipe("a waltz", negative_prompt="hum", initial_audio=audio, strength=0.7, num_inference_steps=2,
                 generator=_generator(2)).audios
    assert torch.equal(both[1], alone[0])
