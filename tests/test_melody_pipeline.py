"""Melody conditioning through the pipeline and sample.py (issue 26), on a tiny random model: a
hummed reference and its ids give the same clip, the melody changes the clip, melody guidance is
its own branch, and every misuse is one clear error."""

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodit.cli import main
from audiodit.guidance import guided_velocity
from audiodit.melody import synth_hum
from audiodit.editing import JOIN_FADE_SECONDS
from audiodit.longform import default_context, default_drop, plan_windows
from audiodit.testing import TINY_MAX_SECONDS, tiny_pipeline

SR = 48000


@pytest.fixture(scope="module")
def pipe(single_thread):
    return tiny_pipeline(seed=0, melody_conditioning=True)


@pytest.fixture(scope="module")
def hum():
    return torch.from_numpy(synth_hum([(60, 0.5), (64, 0.5), (67, 1.0)]))  # (S,) 2 s


def run(pipe, **kwargs):
    return pipe("a hummed tune on a flute", audio_end_in_s=2.0, num_inference_steps=2, guidance_scale=3.0,
                generator=torch.Generator().manual_seed(0), **kwargs).audios


def test_reference_audio_and_its_ids_give_the_same_clip(pipe, hum):
    ids = pipe.melody_ids(hum)
    assert ids.dtype == torch.long and ids.shape == (50,) and set(ids.unique().tolist()) <= {-1, 0, 4, 7}
    torch.testing.assert_close(run(pipe, melody=hum), run(pipe, melody=ids), atol=0, rtol=0)
    torch.testing.assert_close(run(pipe, melody=torch.stack([hum, hum])), run(pipe, melody=ids), atol=0, rtol=0)
    assert not torch.allclose(run(pipe, melody=hum), run(pipe))  # the melody changes the clip
    # A shorter melody leaves the rest free: the same as giving "none" (-2) there.
    torch.testing.assert_close(run(pipe, melody=ids[:20]),
                               run(pipe, melody=torch.cat([ids[:20], torch.full((30,), -2)])), atol=0, rtol=0)


def test_melody_guidance_is_a_contrast_branch(pipe, hum):
    conditioning = pipe.prepare_conditioning("a tune", "cpu", 1, 3.0, audio_end_in_s=2.0, melody=hum,
                                             melody_guidance_scale=2.0)
    assert conditioning.branches == 3 and conditioning.contrast_scales == (2.0,)
    melody = conditioning.extra["melody"]  # (3, 50): uncond none, cond the tune, contrast none
    assert (melody[0] == -2).all() and torch.equal(melody[1], pipe.melody_ids(hum)) and (melody[2] == -2).all()
    v = torch.randn(3, 4, 5)  # 3 branches of one waveform
    expected = (v[0] + 3.0 * (v[1] - v[0]) + 2.0 * (v[1] - v[2]))[None]
    torch.testing.assert_close(guided_velocity(v, 3, 3.0, contrast_scales=(2.0,)), expected)
    assert not torch.allclose(run(pipe, melody=hum, melody_guidance_scale=2.0), run(pipe, melody=hum))
    # With key guidance too: [uncond, cond, cond without key, cond without melody], every one but the
    # first with the text.
    key_pipe = tiny_pipeline(seed=0, melody_conditioning=True, key_conditioning=True)
    both = key_pipe.prepare_conditioning("a tune in D minor", "cpu", 2, 3.0, audio_end_in_s=2.0, melody=hum,
                                         key_guidance_scale=1.0, melody_guidance_scale=2.0)
    assert both.branches == 4 and both.contrast_scales == (1.0, 2.0) and both.text.pooled.shape[0] == 8
    assert both.extra["key_ids"].tolist() == [-1, -1, 14, 14, -1, -1, 14, 14]
    assert [(row == -2).all().item() for row in both.extra["melody"]] == [True, True, False, False, False, False,
                                                                           True, True]
    assert key_pipe("a tune in D minor", audio_end_in_s=2.0, num_inference_steps=2, guidance_scale=3.0, melody=hum,
                    key_guidance_scale=1.0, melody_guidance_scale=2.0).audios.shape == (1, 2, 2 * SR)


def test_misuse_is_one_clear_error(pipe, hum):
    with pytest.raises(ValueError, match="no melody conditioning"):
        run(tiny_pipeline(seed=0), melody=hum)
    with pytest.raises(ValueError, match="needs a `melody`"):
        run(pipe, melody_guidance_scale=1.0)
    with pytest.raises(ValueError, match="`melody_guidance_scale` must be >= 0"):
        run(pipe, melody=hum, melody_guidance_scale=-1.0)
    with pytest.raises(ValueError, match=r"must lie in \[-2, 11\]"):
        run(pipe, melody=torch.tensor([0, 12]))


def test_cli_melody_flag(tmp_path, hum):
    model = tmp_path / "model"
    tiny_pipeline(seed=0, melody_conditioning=True).save_pretrained(model)
    sf.write(tmp_path / "hum.wav", hum.numpy(), SR)
    out = tmp_path / "tune.wav"
    assert main(["--model", str(model), "--prompt", "a flute", "--duration", "2", "--steps", "2",
                 "--melody", str(tmp_path / "hum.wav"), "--melody-scale", "1.5", "--out", str(out), "--quiet"]) == 0
    assert sf.info(out).frames == 2 * SR
    import json

    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["melody"] == str(tmp_path / "hum.wav") and sidecar["melody_guidance_scale"] == 1.5
    # the prompt states no key: the melody's own is added to it, and the sidecar says so
    from audiodit.audio import load_audio
    from audiodit.melody import melody_key
    from audiodit.pipeline import AudioDiTPipeline
    from audiodit.prompt_attributes import key_name

    found = key_name(melody_key(AudioDiTPipeline.from_pretrained(model).melody_ids(load_audio(tmp_path / "hum.wav"))))
    assert sidecar["melody_key"] == {"key": found, "from": "melody", "prompt_used": f"a flute, in {found}"}
    assert sidecar["prompt"] == "a flute"
    stated = tmp_path / "stated.wav"
    assert main(["--model", str(model), "--prompt", "a flute in D minor", "--duration", "2", "--steps", "2",
                 "--melody", str(tmp_path / "hum.wav"), "--out", str(stated), "--quiet"]) == 0
    assert json.loads(stated.with_suffix(".json").read_text())["melody_key"] == {"key": "D minor", "from": "prompt"}
    assert main(["--model", str(model), "--prompt", "x", "--melody", str(tmp_path / "missing.wav"),
                 "--out", str(tmp_path / "x.wav")]) == 2
    assert main(["--model", str(model), "--prompt", "x", "--melody-scale", "1", "--out", str(tmp_path / "y.wav")]) == 2
    assert np.isfinite(sf.read(out)[0]).all()


def test_a_continuation_follows_the_melody_from_where_the_new_audio_starts(pipe, hum):
    clip = 0.3 * torch.sin(torch.arange(2 * SR) / SR * 2 * np.pi * 220.0).expand(2, -1)  # (2, S) 2 s

    def extend(**kwargs):
        return pipe("a flute", initial_audio=clip, continuation_in_s=2.0, num_inference_steps=2, guidance_scale=3.0,
                    generator=torch.Generator().manual_seed(0), **kwargs).audios[0]  # (2, 4 s)

    plain, tuned = extend(), extend(melody=hum)
    assert tuned.shape == plain.shape == (2, 4 * SR)
    # the clip is kept as it was up to the join's cross-fade, with or without a melody
    torch.testing.assert_close(tuned[:, :SR], clip[:, :SR].to(tuned), atol=0, rtol=0)
    assert not torch.allclose(tuned[:, 2 * SR:], plain[:, 2 * SR:])  # the new part follows the tune
    # The tune's frame 0 is the continuation's first: the window the pipeline inpaints gets "none"
    # over the context, then the tune.
    seen = []
    original = type(pipe).prepare_conditioning

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("melody", args[13] if len(args) > 13 else None))
        return original(self, *args, **kwargs)

    type(pipe).prepare_conditioning = spy
    try:
        extend(melody=hum)
    finally:
        type(pipe).prepare_conditioning = original
    window, ids = seen[-1], pipe.melody_ids(hum)  # (T_window,): 2 s of context and 2 s of new audio
    context = int(min(2.0, TINY_MAX_SECONDS - 2.0) * pipe.vae.latent_rate)
    assert window.shape == (100,) and (window[:context] == -2).all()
    assert torch.equal(window[context:], ids[:100 - context])


def test_a_long_piece_follows_each_window_s_stretch_of_the_melody(pipe):
    """The piece's melody is cut window by window: a tune that starts after the first window leaves
    that window as it is without a melody, and changes the rest."""
    seconds, window_s = 2.5 * TINY_MAX_SECONDS, TINY_MAX_SECONDS
    frames = pipe.vae.latent_frames(int(seconds * SR))
    first = int(round(window_s * pipe.vae.latent_rate))
    late_tune = torch.cat([torch.full((first,), -2), torch.arange(frames - first) % 12])  # (T,) ids

    def piece(**kwargs):
        return list(pipe.generate_long("a flute", seconds, window_seconds=window_s, context_seconds=0.5,
                                       generator=torch.Generator().manual_seed(3), progress=False,
                                       num_inference_steps=2, guidance_scale=3.0, **kwargs))

    plain = piece()
    seen = []
    original = type(pipe)._generate  # the one-window path each window takes

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("melody"))
        return original(self, *args, **kwargs)

    type(pipe)._generate = spy
    try:
        tuned = piece(melody=late_tune)
    finally:
        type(pipe)._generate = original
    assert torch.cat(tuned, -1).shape == (1, 2, int(seconds * SR))
    rate = pipe.vae.latent_rate
    windows = plan_windows(frames, first, int(round(0.5 * rate)), int(round(default_drop(window_s) * rate)))
    assert len(seen) == len(windows) >= 3
    for window, given in zip(windows, seen):  # each window gets its own stretch, context included
        assert torch.equal(given, late_tune[window.start:window.end])
    torch.testing.assert_close(tuned[0], plain[0], atol=0, rtol=0)  # the first window's new audio
    assert not torch.allclose(torch.cat(tuned[1:], -1), torch.cat(plain[1:], -1))
    none = piece(melody=torch.full((frames,), -2))  # "none" throughout is no melody
    torch.testing.assert_close(torch.cat(none, -1), torch.cat(plain, -1), atol=0, rtol=0)


def test_cli_long_piece_with_a_melody(tmp_path, hum):
    model = tmp_path / "model"
    tiny_pipeline(seed=0, melody_conditioning=True).save_pretrained(model)
    sf.write(tmp_path / "hum.wav", hum.numpy(), SR)
    out = tmp_path / "pieces"
    seconds = 2 * TINY_MAX_SECONDS + 1
    assert main(["--model", str(model), "--prompt", "a flute", "--duration", f"{seconds:g}", "--steps", "2",
                 "--melody", str(tmp_path / "hum.wav"), "--out", f"{out}/", "--quiet", "--variations", "2"]) == 0
    import json

    paths = sorted(out.glob("*.wav"))
    assert len(paths) == 2
    for path in paths:
        assert sf.info(path).frames == seconds * SR
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["melody"] == str(tmp_path / "hum.wav") and "long_form" in sidecar
        assert sidecar["melody_key"]["from"] == "melody"  # one key for the piece
        assert sidecar["long_form"]["sections"][0][1] == sidecar["melody_key"]["prompt_used"]
    # a continuation past one window takes the melody too
    sf.write(tmp_path / "clip.wav", np.zeros((SR, 2), np.float32), SR)
    assert main(["--model", str(model), "--prompt", "x", "--init-audio", str(tmp_path / "clip.wav"),
                 "--continue", f"{2 * TINY_MAX_SECONDS:g}", "--melody", str(tmp_path / "hum.wav"), "--steps", "2",
                 "--out", str(tmp_path / "z.wav"), "--quiet"]) == 0
    assert sf.info(tmp_path / "z.wav").frames == int((1 + 2 * TINY_MAX_SECONDS) * SR)


def test_the_model_s_default_melody_scale_applies_when_none_is_given(tmp_path, hum):
    """`export --melody-scale` stores a default; a call with a melody and no scale uses it, a call
    without a melody or without guidance does not, and a model without melody conditioning refuses it."""
    from audiodit.export import main as export_main

    source, exported = tmp_path / "source", tmp_path / "exported"
    tiny_pipeline(seed=0, melody_conditioning=True).save_pretrained(source)
    assert export_main([str(source), str(exported), "--dtype", "float32", "--melody-scale", "2"]) == 0
    from audiodit.pipeline import AudioDiTPipeline

    pipe = AudioDiTPipeline.from_pretrained(exported)
    assert pipe.default_melody_guidance_scale == 2.0
    assert pipe.resolve_melody_guidance_scale(None, 3.0, hum) == 2.0
    assert pipe.resolve_melody_guidance_scale(None, 3.0, None) == 0.0
    assert pipe.resolve_melody_guidance_scale(None, 1.0, hum) == 0.0
    assert torch.equal(run(pipe, melody=hum), run(pipe, melody=hum, melody_guidance_scale=2.0))
    assert not torch.equal(run(pipe, melody=hum), run(pipe, melody=hum, melody_guidance_scale=0.0))
    plain = tmp_path / "plain"
    tiny_pipeline(seed=0).save_pretrained(plain)
    assert export_main([str(plain), str(tmp_path / "x"), "--melody-scale", "2"]) == 2


def _tone(seconds: float) -> torch.Tensor:
    return 0.3 * torch.sin(torch.arange(int(seconds * SR)) / SR * 2 * np.pi * 220.0).expand(2, -1)  # (2, S)


def test_a_long_continuation_follows_the_melody_call_by_call(pipe):
    """A continuation longer than one window is made call by call; each call takes the stretch of
    the tune after what is already made: a tune that starts after the first call's new audio leaves
    that audio as it is without a melody, and changes what comes after."""
    clip, added = _tone(2.0), 2 * TINY_MAX_SECONDS
    first_call_s = TINY_MAX_SECONDS - 1.0  # a window less the default context (1 s for the tiny model's 5 s)
    frames = int(added * pipe.vae.latent_rate)
    first = int(first_call_s * pipe.vae.latent_rate)
    late_tune = torch.cat([torch.full((first,), -2), torch.arange(frames - first) % 12])  # (T,) ids

    def extend(**kwargs):
        return pipe.continuation("a flute", clip, added, num_inference_steps=2, guidance_scale=3.0,
                                 generator=torch.Generator().manual_seed(0), **kwargs).audios[0]

    plain, tuned = extend(), extend(melody=late_tune)
    assert tuned.shape == plain.shape == (2, int((2.0 + added) * SR))
    made_first = int((2.0 + first_call_s - 0.5) * SR)  # the first call's audio, short of the next join's fade
    torch.testing.assert_close(tuned[:, :made_first], plain[:, :made_first], atol=0, rtol=0)
    assert not torch.allclose(tuned[:, -SR:], plain[:, -SR:])


def test_a_long_inpaint_gives_each_crop_its_stretch_of_the_melody(pipe, hum):
    """Inpainting an input longer than the model goes crop by crop (the tiny model: windows of 5 s
    with 1.25 s of audio either side of 2.5 s of range, so [3, 7] s is regenerated as [3, 5.5] in
    crop [1.75, 6.75] and [5.5, 7] in crop [4.25, 8.25]); the melody runs from the input's start. A
    tune only at 7.5-8 s lies in the second crop alone: the first crop's range comes out as without
    a melody, the second's does not, and the audio outside the range is kept."""
    audio = _tone(2 * TINY_MAX_SECONDS)
    span = (3.0, 7.0)
    frames = pipe.vae.latent_frames(audio.shape[-1])
    rate = pipe.vae.latent_rate
    assert pipe._long_window("a flute", {}) == (5.0, None) and default_context(5.0) == 1.25  # the geometry above

    def inpaint(**kwargs):
        return pipe.inpaint("a flute", audio, span, num_inference_steps=2, guidance_scale=3.0,
                            generator=torch.Generator().manual_seed(1), **kwargs).audios[0]

    plain = inpaint()
    assert torch.equal(inpaint(melody=torch.full((frames,), -2)), plain)
    late = torch.full((frames,), -2)
    first, last = int(7.5 * rate), int(8.0 * rate)
    late[first:last] = torch.arange(last - first) % 12
    tuned = inpaint(melody=late)
    first_crop = slice(3 * SR, int((5.5 - JOIN_FADE_SECONDS) * SR))  # up to the second crop's join fade
    torch.testing.assert_close(tuned[:, first_crop], plain[:, first_crop], atol=0, rtol=0)
    second_crop = slice(int(5.7 * SR), int(6.9 * SR))
    assert not torch.allclose(tuned[:, second_crop], plain[:, second_crop])
    outside = int((span[0] - JOIN_FADE_SECONDS) * SR)  # before the range and its join fade
    torch.testing.assert_close(tuned[:, :outside], audio[:, :outside].to(tuned), atol=0, rtol=0)


def test_a_long_audio_to_audio_follows_the_melody(pipe):
    """Audio-to-audio of an input longer than the model goes window by window with the melody from
    the input's start: "none" everywhere is no melody, a tune changes the output."""
    audio = _tone(1.5 * TINY_MAX_SECONDS)
    frames = pipe.vae.latent_frames(audio.shape[-1])

    def remake(**kwargs):
        return pipe.audio_to_audio("a flute", audio, strength=0.7, num_inference_steps=2, guidance_scale=3.0,
                                   generator=torch.Generator().manual_seed(2), **kwargs).audios[0]

    plain = remake()
    assert plain.shape == audio.shape
    assert torch.equal(remake(melody=torch.full((frames,), -2)), plain)
    assert not torch.allclose(remake(melody=torch.arange(frames) % 12), plain)
