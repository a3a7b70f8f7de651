"""Fast pipeline tests with tiny seeded components and 2 steps (the diffusers fast-test recipe)."""

import json

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler

from audiodit.pipeline import AudioDiTPipeline
from audiodit.testing import tiny_pipeline

SR = 48000


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0)


def _run(pipe, prompt="a piano melody", seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", 2)
    if "initial_audio" not in kwargs:
        kwargs.setdefault("audio_end_in_s", 1.0)
    return pipe(prompt, generator=torch.Generator("cpu").manual_seed(seed), **kwargs).audios


@pytest.mark.parametrize("seconds", [0.5, 1.0, 1.37, 2.0])
def test_output_is_stereo_48k_of_the_requested_length(pipe, seconds):
    audio = _run(pipe, audio_end_in_s=seconds)
    assert audio.shape == (1, 2, int(round(seconds * SR)))
    assert torch.isfinite(audio).all()


def test_start_offset_sets_duration_to_end_minus_start(pipe):
    audio = _run(pipe, audio_start_in_s=3.0, audio_end_in_s=4.5)
    assert audio.shape[-1] == int(round(1.5 * SR))


def test_output_types(pipe):
    as_np = _run(pipe, output_type="np")
    assert isinstance(as_np, np.ndarray) and as_np.shape == (1, 2, SR)
    latents = _run(pipe, output_type="latent")
    frames = pipe.vae.latent_frames(SR)
    assert latents.shape == (1, pipe.transformer.config.in_channels, frames)
    with pytest.raises(ValueError, match="output_type"):
        _run(pipe, output_type="mp3")


def test_same_seed_same_audio_different_seed_different_audio(pipe):
    first, again, other = _run(pipe, seed=7), _run(pipe, seed=7), _run(pipe, seed=8)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert (first - other).abs().max() > 1e-4


def test_batch_equals_one_by_one(pipe):
    prompts = ["a piano melody", "an organ chorale in d minor"]
    seeds = [3, 4]
    batch = pipe(
        prompts, audio_end_in_s=1.0, num_inference_steps=2, negative_prompt="noise",
        generator=[torch.Generator("cpu").manual_seed(s) for s in seeds],
    ).audios
    for index, (prompt, seed) in enumerate(zip(prompts, seeds)):
        single = _run(pipe, prompt, seed, negative_prompt="noise")
        torch.testing.assert_close(batch[index : index + 1], single, rtol=1e-4, atol=1e-5)


def test_variations_use_one_generator_each(pipe):
    generators = [torch.Generator("cpu").manual_seed(s) for s in (1, 2)]
    audio = pipe("a flute", audio_end_in_s=1.0, num_inference_steps=2, num_waveforms_per_prompt=2,
                 generator=generators).audios
    assert audio.shape[0] == 2
    torch.testing.assert_close(audio[1:], _run(pipe, "a flute", 2), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="generators"):
        pipe("a flute", audio_end_in_s=1.0, num_inference_steps=2, num_waveforms_per_prompt=2,
             generator=[torch.Generator("cpu").manual_seed(1)])


def test_guidance_and_negative_prompt_change_the_output(pipe):
    # The tiny transformer's output layer is zero at initialisation; perturb it so text matters.
    plain = _run(pipe, guidance_scale=1.0)
    guided = _run(pipe, guidance_scale=5.0)
    negative = _run(pipe, guidance_scale=5.0, negative_prompt="a loud drum")
    assert (plain - guided).abs().max() > 1e-5
    assert (guided - negative).abs().max() > 1e-5
    rescaled = _run(pipe, guidance_scale=5.0, guidance_rescale=0.7)
    assert torch.isfinite(rescaled).all() and (rescaled - guided).abs().max() > 1e-6


def test_save_load_round_trip_gives_identical_audio(pipe, tmp_path):
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["transformer"][1] == "AudioDiTModel" and index["vae"][1] == "AudioVAE"
    loaded = AudioDiTPipeline.from_pretrained(tmp_path)
    torch.testing.assert_close(_run(loaded, seed=5), _run(pipe, seed=5), rtol=0, atol=0)
    # Each component also loads alone.
    from audiodit.models.dit import AudioDiTModel
    from audiodit.models.vae import AudioVAE

    AudioDiTModel.from_pretrained(tmp_path, subfolder="transformer")
    AudioVAE.from_pretrained(tmp_path, subfolder="vae")
    assert not list(tmp_path.rglob("*.bin")), "weights must be safetensors"


def test_callback_can_edit_latents(pipe):
    seen = []

    def callback(pipeline, step, timestep, tensors):
        seen.append(step)
        return {"latents": torch.zeros_like(tensors["latents"])}

    silent = _run(pipe, output_type="latent", callback_on_step_end=callback)
    assert seen == [0, 1]
    assert silent.abs().max() == 0


def test_scheduler_can_be_swapped(pipe):
    from diffusers import FlowMatchHeunDiscreteScheduler

    original = pipe.scheduler
    try:
        pipe.scheduler = FlowMatchHeunDiscreteScheduler.from_config(original.config)
        assert _run(pipe).shape == (1, 2, SR)
    finally:
        pipe.scheduler = original


# --------------------------------------------------------------------------------- editing


@pytest.fixture(scope="module")
def clip():
    time = torch.arange(2 * SR) / SR
    tone = 0.3 * torch.sin(2 * torch.pi * 220 * time) * torch.exp(-time)
    return torch.stack([tone, 0.8 * tone])  # (2, S)


def test_audio_to_audio_low_strength_stays_near_the_input(pipe, clip):
    reconstruction = pipe.vae.decode(pipe.vae.encode(clip[None]).latent_dist.mode(), length=clip.shape[-1]).sample
    near = _run(pipe, initial_audio=clip, strength=0.2, num_inference_steps=5)
    far = _run(pipe, initial_audio=clip, strength=1.0, num_inference_steps=5)
    assert near.shape == clip[None].shape
    assert (near - reconstruction).abs().mean() < (far - reconstruction).abs().mean()


def test_inpainting_keeps_the_untouched_range(pipe, clip):
    reconstruction = pipe.vae.decode(pipe.vae.encode(clip[None]).latent_dist.mode(), length=clip.shape[-1]).sample
    out = _run(pipe, initial_audio=clip, inpaint_range=(0.8, 1.2))
    assert out.shape == clip[None].shape
    # Away from the seams (decoder receptive field), the kept range is the input's reconstruction.
    margin = int(0.45 * SR)
    keep = slice(0, int(0.8 * SR) - margin)
    torch.testing.assert_close(out[..., keep], reconstruction[..., keep], rtol=1e-3, atol=1e-4)
    assert (out[..., int(0.9 * SR) : int(1.1 * SR)] - reconstruction[..., int(0.9 * SR) : int(1.1 * SR)]).abs().max() > 1e-4


def test_continuation_extends_and_keeps_the_clip_exactly(pipe, clip):
    from audiodit.editing import JOIN_CROSSFADE_SECONDS

    out = _run(pipe, initial_audio=clip, continuation_in_s=0.6)
    assert out.shape == (1, 2, clip.shape[-1] + int(0.6 * SR))
    kept = clip.shape[-1] - int(JOIN_CROSSFADE_SECONDS * SR)  # only the last 20 ms fade into the window
    torch.testing.assert_close(out[0, :, :kept], clip[:, :kept], rtol=0, atol=0)


def test_interpolation_endpoints_match_plain_generation(pipe):
    walk = pipe.interpolate("a piano", "an organ", seed_start=1, seed_end=2, num_points=3,
                            audio_end_in_s=1.0, num_inference_steps=2).audios
    assert walk.shape == (3, 2, SR)
    start = _run(pipe, "a piano", seed=1)
    torch.testing.assert_close(walk[:1], start, rtol=1e-4, atol=1e-5)
    assert (walk[1] - walk[0]).abs().max() > 1e-5


# --------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(audio_end_in_s=-1.0), "audio_end_in_s"),
        (dict(audio_end_in_s=1e4), "maximum"),
        (dict(num_inference_steps=0), "num_inference_steps"),
        (dict(strength=0.0, initial_audio=torch.zeros(2, SR)), "strength"),
        (dict(strength=1.5, initial_audio=torch.zeros(2, SR)), "strength"),
        (dict(strength=0.5), "initial_audio"),
        (dict(inpaint_range=(1.0, 0.5), initial_audio=torch.zeros(2, SR)), "inpaint_range"),
        (dict(initial_audio=torch.zeros(1, SR), strength=0.5), "stereo"),
        (dict(continuation_in_s=1.0), "initial_audio"),
        (dict(guidance_scale=-1.0), "guidance_scale"),
        (dict(latents=torch.zeros(1, 3)), "latents"),
    ],
)
def test_bad_inputs_raise_value_error(pipe, kwargs, message):
    kwargs.setdefault("audio_end_in_s", 1.0)
    with pytest.raises(ValueError, match=message):
        pipe("a piano", num_inference_steps=kwargs.pop("num_inference_steps", 2), **kwargs)


def test_bad_prompt_types(pipe):
    with pytest.raises(ValueError, match="prompt"):
        pipe(None, audio_end_in_s=1.0)
    with pytest.raises(ValueError, match="prompt"):
        pipe(["a", 3], audio_end_in_s=1.0)


def test_plain_diffusion_pipeline_loader_with_custom_pipeline(pipe, tmp_path):
    """`DiffusionPipeline.from_pretrained` looks pipeline classes up inside diffusers; with
    `custom_pipeline` pointing at audiodit's installed module it loads ours. diffusers asks for
    `trust_remote_code` for any custom pipeline file, even a local one (documented in the README)."""
    pipe.save_pretrained(tmp_path)
    import audiodit.pipeline as module

    loaded = DiffusionPipeline.from_pretrained(tmp_path, custom_pipeline=module.__file__, trust_remote_code=True)
    assert type(loaded).__name__ == "AudioDiTPipeline"
    assert isinstance(loaded.scheduler, FlowMatchEulerDiscreteScheduler)


# --------------------------------------------------------------------------------- tempo conditioning


@pytest.fixture(scope="module")
def tempo_pipe():
    return tiny_pipeline(seed=0, tempo_conditioning=True, beat_conditioning=True)


def _capture_bpm(pipe, monkeypatch):
    """Record the `bpm` the transformer receives at each step."""
    seen, forward = [], pipe.transformer.forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("bpm"))
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", spy)
    return seen


def test_tempo_is_read_from_the_prompt_and_the_unconditional_branch_has_none(tempo_pipe, monkeypatch):
    seen = _capture_bpm(tempo_pipe, monkeypatch)
    _run(tempo_pipe, ["a jig, 120 BPM", "a slow air"], num_waveforms_per_prompt=2, guidance_scale=3.0)
    bpm = seen[0]
    assert bpm.shape == (8,)  # (unconditional 4, conditional 4)
    assert torch.isnan(bpm[:4]).all()
    assert bpm[4:6].tolist() == [120.0, 120.0] and torch.isnan(bpm[6:]).all()
    seen.clear()
    _run(tempo_pipe, ["a jig, 120 BPM", "a slow air"], bpm=[90.0, 60.0], guidance_scale=1.0)  # explicit wins
    assert seen[0].tolist() == [90.0, 60.0]


def test_the_stated_tempo_changes_the_audio(tempo_pipe):
    fast = _run(tempo_pipe, "a jig, 160 BPM")
    torch.testing.assert_close(fast, _run(tempo_pipe, "a jig, 160 BPM", bpm=160.0), rtol=0, atol=0)
    assert not torch.allclose(fast, _run(tempo_pipe, "a jig, 160 BPM", bpm=60.0))  # same text, other tempo


def test_bad_bpm_is_an_error(pipe, tempo_pipe):
    with pytest.raises(ValueError, match="no tempo conditioning"):
        _run(pipe, "a jig", bpm=120.0)
    with pytest.raises(ValueError, match="2 prompts"):
        _run(tempo_pipe, ["a", "b"], bpm=[1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="positive"):
        _run(tempo_pipe, "a", bpm=-5.0)


def test_interpolation_moves_the_tempo_geometrically(tempo_pipe, monkeypatch):
    seen = _capture_bpm(tempo_pipe, monkeypatch)
    tempo_pipe.interpolate("a reel, 60 BPM", "a reel, 240 BPM", num_points=3, audio_end_in_s=0.5,
                           num_inference_steps=1, guidance_scale=1.0)
    assert [round(float(b[0]), 3) for b in seen] == [60.0, 120.0, 240.0]


# --------------------------------------------------------------------------------- key conditioning


@pytest.fixture(scope="module")
def key_pipe():
    return tiny_pipeline(seed=0, key_conditioning=True)


def _capture_key_ids(pipe, monkeypatch):
    seen, forward = [], pipe.transformer.forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("key_ids"))
        return forward(*args, **kwargs)

    monkeypatch.setattr(pipe.transformer, "forward", spy)
    return seen


def test_key_is_read_from_the_prompt_and_the_unconditional_branch_has_none(key_pipe, monkeypatch):
    seen = _capture_key_ids(key_pipe, monkeypatch)
    _run(key_pipe, ["a chorale in D minor", "a jig"], num_waveforms_per_prompt=2, guidance_scale=3.0)
    assert seen[0].tolist() == [-1] * 4 + [14, 14, -1, -1]  # (unconditional 4, conditional 4)
    seen.clear()
    _run(key_pipe, ["a chorale in D minor", "a jig"], key=["F# major", None], guidance_scale=1.0)  # explicit wins
    assert seen[0].tolist() == [6, -1]


def test_the_stated_key_changes_the_audio(key_pipe):
    d_minor = _run(key_pipe, "a chorale in D minor")
    torch.testing.assert_close(d_minor, _run(key_pipe, "a chorale in D minor", key="D minor"), rtol=0, atol=0)
    assert not torch.allclose(d_minor, _run(key_pipe, "a chorale in D minor", key="Ab major"))


def test_bad_key_is_an_error(pipe, key_pipe):
    with pytest.raises(ValueError, match="no key conditioning"):
        _run(pipe, "a jig", key="D major")
    with pytest.raises(ValueError, match="'H minor' is not a key"):
        _run(key_pipe, "a jig", key="H minor")
    with pytest.raises(ValueError, match="3 entries but there are 2 prompts"):
        _run(key_pipe, ["a", "b"], key=["C major", "D major", "E major"])


def test_interpolation_switches_the_key_halfway(key_pipe, monkeypatch):
    seen = _capture_key_ids(key_pipe, monkeypatch)
    key_pipe.interpolate("a reel in G major", "a reel", num_points=3, audio_end_in_s=0.5,
                         num_inference_steps=1, guidance_scale=1.0)
    assert [int(ids[0]) for ids in seen] == [7, -1, -1]


def test_a_beat_grid_at_another_frame_rate_than_the_vae_is_refused():
    pipe = tiny_pipeline(seed=0, tempo_conditioning=True, beat_conditioning=True, latent_rate=50.0)
    with pytest.raises(ValueError, match="latent_rate"):
        _run(pipe, "a jig, 120 BPM")


def test_key_guidance_adds_a_branch_without_the_key(key_pipe, monkeypatch):
    seen = _capture_key_ids(key_pipe, monkeypatch)
    _run(key_pipe, ["a chorale in D minor", "a jig in A major"], guidance_scale=3.0, key_guidance_scale=2.0)
    assert seen[0].tolist() == [-1, -1, 14, 9, -1, -1]  # (unconditional, conditional, conditional without key)


def test_key_guidance_changes_the_audio_only_when_the_prompt_states_a_key(key_pipe):
    plain = _run(key_pipe, "a chorale in D minor", guidance_scale=3.0)
    torch.testing.assert_close(_run(key_pipe, "a chorale in D minor", guidance_scale=3.0, key_guidance_scale=0.0),
                               plain, rtol=0, atol=0)
    assert (_run(key_pipe, "a chorale in D minor", guidance_scale=3.0, key_guidance_scale=3.0)
            - plain).abs().max() > 1e-5
    # No key stated: the third branch equals the conditional one, so the extra term is zero.
    no_key = _run(key_pipe, "a chorale", guidance_scale=3.0)
    torch.testing.assert_close(_run(key_pipe, "a chorale", guidance_scale=3.0, key_guidance_scale=3.0), no_key,
                               rtol=0, atol=1e-5)


def test_default_key_guidance_travels_with_the_model(key_pipe, tmp_path, monkeypatch):
    assert key_pipe.default_key_guidance_scale == 0.0
    key_pipe.register_to_config(default_key_guidance_scale=2.0)
    try:
        key_pipe.save_pretrained(tmp_path)
    finally:
        key_pipe.register_to_config(default_key_guidance_scale=0.0)
    loaded = AudioDiTPipeline.from_pretrained(tmp_path)
    assert loaded.default_key_guidance_scale == 2.0
    seen = _capture_key_ids(loaded, monkeypatch)
    _run(loaded, "a reel in G major", guidance_scale=3.0)  # None: the model's default
    _run(loaded, "a reel in G major", guidance_scale=1.0)  # no guidance: no key branch either
    assert [ids.tolist() for ids in seen] == [[-1, 7, -1]] * 2 + [[7]] * 2  # 2 steps each


def test_bad_key_guidance_is_an_error(pipe, key_pipe):
    with pytest.raises(ValueError, match="key_guidance_scale` must be >= 0"):
        _run(key_pipe, "a jig in D major", guidance_scale=3.0, key_guidance_scale=-1.0)
    with pytest.raises(ValueError, match="needs a model with key conditioning"):
        _run(pipe, "a jig in D major", guidance_scale=3.0, key_guidance_scale=1.0)
    with pytest.raises(ValueError, match="needs classifier-free guidance"):
        _run(key_pipe, "a jig in D major", guidance_scale=1.0, key_guidance_scale=1.0)


@pytest.fixture(scope="module")
def classifier_pipe():
    from audiodit.models.key_classifier import LatentKeyClassifier

    pipe = tiny_pipeline(seed=0)
    torch.manual_seed(0)
    classifier = LatentKeyClassifier(in_channels=pipe.transformer.config.in_channels, width=16, dilations=(1, 2))
    pipe.register_modules(key_classifier=classifier.eval())
    return pipe


def test_key_classifier_guidance_moves_only_clips_that_state_a_key(pipe, classifier_pipe):
    keyed = ["a chorale in D minor", "a jig"]
    off = _run(classifier_pipe, keyed, guidance_scale=3.0, key_classifier_scale=0.0)
    torch.testing.assert_close(off, _run(pipe, keyed, guidance_scale=3.0))  # same weights otherwise
    on = _run(classifier_pipe, keyed, guidance_scale=3.0, key_classifier_scale=50.0)
    assert (on[0] - off[0]).abs().max() > 1e-4
    torch.testing.assert_close(on[1], off[1])  # "a jig" states no key


def test_key_classifier_guidance_raises_the_classifiers_probability_of_the_key(classifier_pipe):
    prompt = "a chorale in F# minor"
    latents = {scale: _run(classifier_pipe, prompt, guidance_scale=1.0, key_classifier_scale=scale,
                           output_type="latent", num_inference_steps=4) for scale in (0.0, 20.0)}
    with torch.no_grad():
        log_prob = {scale: float(classifier_pipe.key_classifier.log_prob(x, 0.0, torch.tensor([18])))
                    for scale, x in latents.items()}
    assert log_prob[20.0] > log_prob[0.0]


def test_the_key_classifier_and_its_default_scale_travel_with_the_model(classifier_pipe, tmp_path):
    classifier_pipe.register_to_config(default_key_classifier_scale=7.0)
    try:
        classifier_pipe.save_pretrained(tmp_path / "with")
        reference = _run(classifier_pipe, "a chorale in D minor")
    finally:
        classifier_pipe.register_to_config(default_key_classifier_scale=0.0)
    loaded = AudioDiTPipeline.from_pretrained(tmp_path / "with")
    assert loaded.default_key_classifier_scale == 7.0
    torch.testing.assert_close(_run(loaded, "a chorale in D minor"), reference)
    tiny_pipeline(seed=0).save_pretrained(tmp_path / "without")
    plain = AudioDiTPipeline.from_pretrained(tmp_path / "without")
    assert plain.key_classifier is None and plain.default_key_classifier_scale == 0.0


def test_key_classifier_scale_without_a_classifier_is_an_error(pipe):
    with pytest.raises(ValueError, match="needs a pipeline with a `key_classifier`"):
        _run(pipe, "a jig in D major", key_classifier_scale=1.0)


def test_next_noise_level_goes_by_position_for_schedules_that_repeat_timesteps():
    from audiodit.diffusion import next_noise_level

    heun_like = torch.tensor([1000.0, 500.0, 500.0, 0.0])  # second-order schedulers repeat inner timesteps
    assert [float(next_noise_level(heun_like, position, 1000.0)) for position in range(4)] == [0.5, 0.5, 0.0, 0.0]
