"""AudioDiTModel: shapes, identity at init, packing, masks (gradient proofs), save/load, FLOPs."""

import dataclasses

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from audiodit.configuration import ConfigError
from audiodit.models.conditions import CONDITIONS, GLOBAL_CONDITIONS
from audiodit.models.dit import PRESETS, AudioDiTModel, DiTConfig, dit_flops

TEXT_DIM, POOLED_DIM, CHANNELS = 24, 16, 8


def tiny(seed=0, **overrides):
    """Tiny model with every weight randomised: zero-initialised layers would hide bugs."""
    torch.manual_seed(seed)
    kwargs = dict(in_channels=CHANNELS, patch_channels=CHANNELS, patch_frames=1, cross_attention_dim=TEXT_DIM,
                  pooled_dim=POOLED_DIM, attention_backend="sdpa")
    model = AudioDiTModel.from_preset("tiny", **{**kwargs, **overrides}).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def inputs(batch, frames, text_len=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, text_len + 1, (batch,), generator=g)
    return dict(
        hidden_states=torch.randn(batch, CHANNELS, frames, generator=g),
        timestep=torch.rand(batch, generator=g),
        encoder_hidden_states=torch.randn(batch, text_len, TEXT_DIM, generator=g),
        encoder_attention_mask=torch.arange(text_len)[None] < lengths[:, None],
        pooled_text=torch.randn(batch, POOLED_DIM, generator=g),
        seconds_start=torch.rand(batch, generator=g) * 5,
        seconds_total=10 + torch.rand(batch, generator=g) * 10,
    )


def item(kw, i, frames=None):
    """Batch entry i as a batch of one, optionally cropped to its first `frames` frames."""
    one = {k: v[i:i + 1] for k, v in kw.items()}
    if frames is not None:
        one["hidden_states"] = one["hidden_states"][..., :frames]
    return one


def packed_args(kw, frames):
    return dict(latents=[kw["hidden_states"][i, :, :f] for i, f in enumerate(frames)],
                **{k: v for k, v in kw.items() if k != "hidden_states"})


PATCHES = [dict(patch_frames=1), dict(patch_frames=2), dict(patch_frames=3, patch_channels=4),
           dict(patch_frames=2, patch_channels=2)]


# ---- shapes and initialisation -------------------------------------------------------------------

@pytest.mark.parametrize("patch", PATCHES)
def test_output_shape_for_random_lengths(patch):
    model = tiny(**patch)
    for frames in torch.randint(1, 30, (3,), generator=torch.Generator().manual_seed(1)).tolist():
        out = model(**inputs(2, frames)).sample
        assert out.shape == (2, CHANNELS, frames) and torch.isfinite(out).all()


def test_fresh_model_blocks_are_identity_and_velocity_is_zero():
    torch.manual_seed(0)
    model = AudioDiTModel.from_preset("tiny", in_channels=CHANNELS, patch_channels=4, patch_frames=2,
                                      cross_attention_dim=TEXT_DIM, pooled_dim=POOLED_DIM)
    kw = inputs(2, 9)
    seen = []
    hooks = [block.register_forward_hook(lambda mod, args, out: seen.append((args[0], out)))
             for block in model.blocks]
    out = model(**kw).sample
    for hook in hooks:
        hook.remove()
    assert len(seen) == len(model.blocks)
    for block_in, block_out in seen:
        assert block_in.abs().sum() > 0 and torch.equal(block_in, block_out)
    assert torch.equal(out, torch.zeros_like(out))


def test_conditioning_reaches_the_output():
    model, kw = tiny(), inputs(1, 7)
    base = model(**kw).sample
    for key, value in [("timestep", kw["timestep"] * 0.5), ("seconds_total", kw["seconds_total"] + 3),
                       ("seconds_start", kw["seconds_start"] + 1), ("pooled_text", -kw["pooled_text"]),
                       ("encoder_hidden_states", -kw["encoder_hidden_states"])]:
        assert not torch.allclose(model(**{**kw, key: value}).sample, base), key


# ---- packing and padding -------------------------------------------------------------------------

@pytest.mark.parametrize("patch", PATCHES)
def test_packed_equals_each_clip_alone(patch):
    model, frames = tiny(**patch), [9, 4, 13]
    kw = inputs(3, max(frames), seed=2)
    with torch.no_grad():
        packed = model.forward_packed(**packed_args(kw, frames)).sample
        for i, f in enumerate(frames):
            alone = model(**item(kw, i, f)).sample[0]
            assert packed[i].shape == (CHANNELS, f)
            torch.testing.assert_close(packed[i], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("patch", PATCHES)
def test_padded_batch_equals_each_clip_alone(patch):
    model, frames = tiny(**patch), [10, 5, 7]
    kw = inputs(3, 10, seed=3)
    kw["hidden_states"][1, :, 5:] = 1e4  # garbage in padded frames must not matter
    frame_mask = torch.arange(10)[None] < torch.tensor(frames)[:, None]
    with torch.no_grad():
        out = model(**kw, frame_mask=frame_mask).sample
        for i, f in enumerate(frames):
            torch.testing.assert_close(out[i, :, :f], model(**item(kw, i, f)).sample[0], atol=1e-5, rtol=1e-5)
            assert torch.equal(out[i, :, f:], torch.zeros_like(out[i, :, f:]))


def test_gradient_cannot_cross_clips_in_a_packed_sequence():
    model, frames = tiny(patch_frames=2), [7, 6]
    args = packed_args(inputs(2, 7, seed=4), frames)
    args["latents"] = [x.clone().requires_grad_(True) for x in args["latents"]]
    out = model.forward_packed(**args).sample
    grad_a, grad_b = torch.autograd.grad(out[0].square().sum(), args["latents"])
    assert grad_a.abs().sum() > 0
    assert torch.equal(grad_b, torch.zeros_like(grad_b))


def test_gradient_cannot_reach_padding_or_other_batch_items():
    model = tiny(patch_frames=3)
    kw = inputs(2, 11, seed=5)
    latents = kw.pop("hidden_states").requires_grad_(True)
    frame_mask = torch.ones(2, 11, dtype=torch.bool)
    frame_mask[0, 5:] = False  # item 0: 5 real frames, the last real patch is partly padding
    # (hiding all-padding tokens from attention is proven by test_padded_batch_equals_each_clip_alone)
    out = model(latents, **kw, frame_mask=frame_mask).sample
    (grad,) = torch.autograd.grad(out[0, :, :5].square().sum(), latents)
    assert grad[0, :, :5].abs().sum() > 0
    assert torch.equal(grad[0, :, 5:], torch.zeros_like(grad[0, :, 5:]))
    assert torch.equal(grad[1], torch.zeros_like(grad[1]))


def test_padded_text_tokens_change_nothing():
    model, kw = tiny(), inputs(2, 8, text_len=6, seed=6)
    kw["encoder_attention_mask"] = torch.tensor([[True] * 3 + [False] * 3, [True] * 6])
    base = model(**kw).sample
    changed = kw["encoder_hidden_states"].clone()
    changed[0, 3:] = torch.randn(3, TEXT_DIM) * 100
    torch.testing.assert_close(model(**{**kw, "encoder_hidden_states": changed}).sample, base, atol=0, rtol=0)
    changed[0, 1] += 1.0  # a real token does matter
    assert not torch.allclose(model(**{**kw, "encoder_hidden_states": changed}).sample[0], base[0])
    packed = model.forward_packed(**packed_args({**kw, "encoder_hidden_states": changed}, [8, 8])).sample
    torch.testing.assert_close(packed[1], base[1], atol=1e-5, rtol=1e-5)


def test_no_text_at_all_is_finite_and_ignores_padding_values():
    model, kw = tiny(), inputs(2, 5, seed=7)
    kw["encoder_attention_mask"] = torch.zeros(2, 6, dtype=torch.bool)
    out = model(**kw).sample
    other = model(**{**kw, "encoder_hidden_states": torch.randn_like(kw["encoder_hidden_states"])}).sample
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, other, atol=0, rtol=0)
    packed = model.forward_packed(**packed_args(kw, [5, 3])).sample
    torch.testing.assert_close(packed[1], model(**item(kw, 1, 3)).sample[0], atol=1e-5, rtol=1e-5)


# ---- training switches, dtypes, save/load ----------------------------------------------------------

def test_gradient_checkpointing_gives_the_same_gradients():
    kw = inputs(2, 6, seed=8)
    grads = []
    for checkpointing in (False, True):
        model = tiny().train()
        if checkpointing:
            model.enable_gradient_checkpointing()
        model(**kw).sample.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert model.gradient_checkpointing
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_bf16_model_runs_and_stays_close_to_fp32():
    model, kw = tiny(), inputs(2, 9, seed=9)
    ref = model(**kw).sample
    out = model.to(torch.bfloat16)(**kw).sample
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - ref).abs().mean() < 0.05 * ref.abs().mean()


def test_bf16_autocast_runs_forward_and_backward():
    model, kw = tiny(patch_frames=2).train(), inputs(2, 9, seed=11)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**kw).sample
        packed = model.forward_packed(**packed_args(kw, [9, 4])).sample
    (out.float().square().mean() + packed[1].float().square().mean()).backward()
    assert torch.isfinite(out).all() and all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_save_load_round_trip(tmp_path):
    model, kw = tiny(patch_frames=2, patch_channels=4), inputs(2, 7, seed=10)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").exists()
    loaded = AudioDiTModel.from_pretrained(tmp_path).eval()
    assert loaded.dit_config == model.dit_config
    torch.testing.assert_close(loaded(**kw).sample, model(**kw).sample, atol=0, rtol=0)


# ---- config, presets, errors, FLOPs --------------------------------------------------------------

def test_presets_and_config_validation():
    assert AudioDiTModel.from_preset("tiny").config.depth == 2
    small = DiTConfig(**PRESETS["small"])
    assert small == DiTConfig() and small.attention_backend == "auto"
    with torch.device("meta"):
        base = AudioDiTModel.from_preset("base")
    assert 1.0e9 < sum(p.numel() for p in base.parameters()) < 1.4e9
    with pytest.raises(ValueError, match="unknown DiT preset"):
        AudioDiTModel.from_preset("huge")
    with pytest.raises(ConfigError, match="num_heads"):
        DiTConfig(hidden_size=96, num_heads=5)
    with pytest.raises(ConfigError, match="patch_channels"):
        AudioDiTModel.from_preset("tiny", patch_channels=5)
    with pytest.raises(ValueError, match="attention_backend"):
        AudioDiTModel.from_preset("tiny", attention_backend="flash")


def test_bad_inputs_raise_clear_errors():
    model, kw = tiny(), inputs(2, 5)
    with pytest.raises(ValueError, match="hidden_states"):
        model(**{**kw, "hidden_states": torch.zeros(2, CHANNELS + 1, 5)})
    with pytest.raises(ValueError, match="encoder_hidden_states"):
        model(**{**kw, "encoder_hidden_states": torch.zeros(2, 6, TEXT_DIM + 1)})
    with pytest.raises(ValueError, match="pooled_text"):
        model(**{**kw, "pooled_text": torch.zeros(2, 3)})
    with pytest.raises(ValueError, match="timestep"):
        model(**{**kw, "timestep": torch.zeros(3)})
    with pytest.raises(ValueError, match="frame_mask"):
        model(**kw, frame_mask=torch.ones(2, 5))
    with pytest.raises(ValueError, match=r"latents\[1\]"):
        model.forward_packed(**{**packed_args(kw, [5, 5]), "latents": [torch.zeros(CHANNELS, 3), torch.zeros(3, 3)]})


@pytest.mark.parametrize("patch", [dict(patch_frames=1), dict(patch_frames=2, patch_channels=4),
                                   dict(patch_frames=1, tempo_conditioning=True),
                                   dict(patch_frames=2, tempo_conditioning=True, beat_conditioning=True)])
def test_dit_flops_matches_flop_counter(patch):
    model, kw = tiny(**patch), inputs(1, 10, text_len=6)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(**kw)
    tokens = model.grid.num_tokens(10)
    assert counter.get_total_flops() == dit_flops(model.dit_config, tokens, 6)
    assert dit_flops(model.dit_config, 2 * tokens, 6) > 2 * dit_flops(model.dit_config, tokens, 6) - 1e6


def test_scalar_conditioning_broadcasts():
    model, kw = tiny(), inputs(2, 4)
    kw.update(timestep=0.3, seconds_start=0.0, seconds_total=10.0)
    out = model(**kw).sample
    full = model(**{**kw, "timestep": torch.full((2,), 0.3), "seconds_start": torch.zeros(2),
                    "seconds_total": torch.full((2,), 10.0)}).sample
    torch.testing.assert_close(out, full, atol=0, rtol=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_auto_backend_matches_sdpa_on_cuda():
    """On CUDA `auto` picks xformers when installed; either way it must agree with sdpa."""
    kw = {k: v.cuda() for k, v in inputs(3, 13, seed=12).items()}
    outs = []
    for backend in ("auto", "sdpa"):
        model = tiny(patch_frames=2, attention_backend=backend).cuda()
        outs.append((model(**kw).sample, model.forward_packed(**packed_args(kw, [13, 6, 9])).sample))
    torch.testing.assert_close(outs[0][0], outs[1][0], atol=1e-4, rtol=1e-4)
    for a, b in zip(outs[0][1], outs[1][1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_config_fields_are_the_init_arguments():
    import inspect

    params = [p for p in inspect.signature(AudioDiTModel.__init__).parameters if p != "self"]
    assert params == [f.name for f in dataclasses.fields(DiTConfig)]


# ---- tempo conditioning ----------------------------------------------------------------------------

def test_tempo_conditioning_changes_the_output_and_nan_means_none():
    model, kw = tiny(tempo_conditioning=True), inputs(3, 7)
    fast = model(**kw, bpm=torch.tensor([160.0, 160.0, 160.0])).sample
    slow = model(**kw, bpm=90.0).sample
    assert not torch.allclose(fast, slow)
    # one item's tempo changes only that item
    mixed = model(**kw, bpm=torch.tensor([160.0, 90.0, 160.0])).sample
    torch.testing.assert_close(mixed[[0, 2]], fast[[0, 2]], atol=1e-6, rtol=0)
    torch.testing.assert_close(mixed[1], slow[1], atol=1e-6, rtol=0)
    # no tempo (None) is the same as NaN for every item, and differs from any stated tempo
    none = model(**kw).sample
    torch.testing.assert_close(none, model(**kw, bpm=float("nan")).sample, atol=0, rtol=0)
    assert not torch.allclose(none, slow)


def test_tempo_packed_equals_each_clip_alone():
    model, kw = tiny(tempo_conditioning=True, patch_frames=2), inputs(3, 9, seed=4)
    bpm = torch.tensor([70.0, float("nan"), 140.0])
    packed = model.forward_packed(**packed_args(kw, [9, 4, 7]), bpm=bpm).sample
    for i, frames in enumerate([9, 4, 7]):
        alone = model(**item(kw, i, frames), bpm=bpm[i:i + 1]).sample[0]
        torch.testing.assert_close(packed[i], alone, atol=1e-5, rtol=1e-5)


def test_a_new_tempo_embedder_leaves_a_trained_model_unchanged():
    """`training.init_from` adds tempo conditioning to a model trained without it: zero output at first."""
    old, kw = tiny(), inputs(2, 6)
    torch.manual_seed(1)
    new = AudioDiTModel(**{**dict(old.config), "tempo_conditioning": True, "beat_conditioning": True,
                           "key_conditioning": True}).eval()
    missing, unexpected = new.load_state_dict(old.state_dict(), strict=False)
    assert unexpected == [] and missing
    assert all(name.startswith(("tempo_embed.", "beat_embed.", "key_embed.")) for name in missing)
    assert any(name.startswith("key_embed.") for name in missing)
    for bpm, key_ids in ((None, None), (60.0, 5), (torch.tensor([200.0, float("nan")]), torch.tensor([-1, 23]))):
        torch.testing.assert_close(new(**kw, bpm=bpm, key_ids=key_ids).sample, old(**kw).sample, atol=0, rtol=0)


def test_bpm_for_a_model_without_tempo_conditioning_is_an_error():
    model, kw = tiny(), inputs(2, 4)
    with pytest.raises(ValueError, match="no tempo conditioning"):
        model(**kw, bpm=120.0)
    with pytest.raises(ValueError, match="bpm must be a scalar or have 2 entries"):
        tiny(tempo_conditioning=True)(**kw, bpm=torch.tensor([1.0, 2.0, 3.0]))


def test_conditions_come_from_the_registry():
    """Each switched-on condition of models.conditions is one layer under its attribute (its weights'
    prefix), and the transformer takes exactly the registry's global conditions by name."""
    everything = tiny(tempo_conditioning=True, beat_conditioning=True, key_conditioning=True, melody_conditioning=True)
    plain = set(tiny().state_dict())
    for condition in CONDITIONS:
        added = {name for name in set(everything.state_dict()) - plain if name.startswith(condition.attribute + ".")}
        assert added, condition.attribute
    assert {name.split(".")[0] for name in set(everything.state_dict()) - plain} == {c.attribute for c in CONDITIONS}
    kw = inputs(2, 4)
    with pytest.raises(ValueError, match=r"unknown condition\(s\) \['tempo'\]; a transformer takes "
                                         r"\['bpm', 'key_ids', 'melody'\]"):
        everything(**kw, tempo=120.0)
    assert {c.name for c in GLOBAL_CONDITIONS} == {"bpm", "key_ids"}


def test_beat_conditioning_follows_the_grid_and_packs():
    model, kw = tiny(tempo_conditioning=True, beat_conditioning=True, patch_frames=2), inputs(3, 9, seed=5)
    bpm = torch.tensor([100.0, float("nan"), 75.0])
    out = model(**kw, bpm=bpm).sample
    packed = model.forward_packed(**packed_args(kw, [9, 4, 7]), bpm=bpm).sample
    for i, frames in enumerate([9, 4, 7]):
        alone = model(**item(kw, i, frames), bpm=bpm[i:i + 1]).sample[0]
        torch.testing.assert_close(packed[i], alone, atol=1e-5, rtol=1e-5)
    # the beat embedding acts: removing it changes clips with a tempo only
    weight = model.beat_embed.weight.detach().clone()
    with torch.no_grad():
        model.beat_embed.weight.zero_()
    plain = model(**kw, bpm=bpm).sample
    with torch.no_grad():
        model.beat_embed.weight.copy_(weight)
    assert not torch.allclose(out[0], plain[0]) and not torch.allclose(out[2], plain[2])
    torch.testing.assert_close(out[1], plain[1], atol=0, rtol=0)


def test_beat_conditioning_needs_tempo_and_a_positive_rate():
    with pytest.raises(ConfigError, match="beat_conditioning needs dit.tempo_conditioning"):
        DiTConfig(beat_conditioning=True)
    with pytest.raises(ConfigError, match="latent_rate"):
        DiTConfig(latent_rate=0.0)


# ---- key conditioning ------------------------------------------------------------------------------

def test_key_conditioning_changes_the_output_per_item_and_minus_one_means_none():
    model, kw = tiny(key_conditioning=True), inputs(3, 7)
    d_minor = model(**kw, key_ids=torch.tensor([14, 14, 14])).sample
    d_major = model(**kw, key_ids=2).sample
    assert not torch.allclose(d_minor, d_major)
    mixed = model(**kw, key_ids=torch.tensor([14, 2, 14])).sample
    torch.testing.assert_close(mixed[[0, 2]], d_minor[[0, 2]], atol=1e-6, rtol=0)
    torch.testing.assert_close(mixed[1], d_major[1], atol=1e-6, rtol=0)
    none = model(**kw).sample
    torch.testing.assert_close(none, model(**kw, key_ids=-1).sample, atol=0, rtol=0)
    assert not torch.allclose(none, d_major)


def test_key_packed_equals_each_clip_alone():
    model, kw = tiny(key_conditioning=True, tempo_conditioning=True, patch_frames=2), inputs(3, 9, seed=6)
    key_ids, bpm = torch.tensor([0, -1, 21]), torch.tensor([70.0, 90.0, float("nan")])
    packed = model.forward_packed(**packed_args(kw, [9, 4, 7]), bpm=bpm, key_ids=key_ids).sample
    for i, frames in enumerate([9, 4, 7]):
        alone = model(**item(kw, i, frames), bpm=bpm[i:i + 1], key_ids=key_ids[i:i + 1]).sample[0]
        torch.testing.assert_close(packed[i], alone, atol=1e-5, rtol=1e-5)


def test_bad_key_ids_are_errors():
    model, kw = tiny(), inputs(2, 4)
    with pytest.raises(ValueError, match="no key conditioning"):
        model(**kw, key_ids=3)
    keyed = tiny(key_conditioning=True)
    with pytest.raises(ValueError, match="key_ids must be integers"):
        keyed(**kw, key_ids=torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"key_ids must lie in \[-1, 23\], got \[3, 24\]"):
        keyed(**kw, key_ids=torch.tensor([3, 24]))
    with pytest.raises(ValueError, match="key_ids must be a scalar or have 2 entries"):
        keyed(**kw, key_ids=torch.tensor([1, 2, 3]))


def test_flops_count_the_key_embedder():
    plain, keyed = DiTConfig(), DiTConfig(key_conditioning=True)
    assert dit_flops(keyed, 100, 8) > dit_flops(plain, 100, 8)


def test_batched_forward_traces_as_one_graph():
    """`torch.compile(model, fullgraph=True)` needs a forward with no graph break: every conditioning
    input and a frame mask, as the pipeline's sampling loop calls it."""
    import torch._dynamo

    model = tiny(tempo_conditioning=True, beat_conditioning=True, key_conditioning=True)
    kw = inputs(2, 9)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    try:
        with torch.no_grad():
            explanation = torch._dynamo.explain(model)(**kw, frame_mask=mask, bpm=torch.tensor([90.0, float("nan")]),
                                                      key_ids=torch.tensor([2, -1]))
    finally:
        torch._dynamo.reset()
    assert explanation.graph_break_count == 0, [str(b.reason) for b in explanation.break_reasons]
    assert explanation.graph_count == 1


# ---- melody (a per-frame condition) ---------------------------------------------------------------

@pytest.mark.parametrize("patch", [dict(patch_frames=1), dict(patch_frames=3, patch_channels=4)])
def test_melody_condition_is_per_frame_and_local(patch):
    """The melody changes the output; one melody for the batch equals it repeated per item; no
    melody equals an all-"absent" one; each time patch's features are the mean of its frames'."""
    from audiodit.models.embedders import MELODY_ABSENT, melody_features

    model, kw = tiny(melody_conditioning=True, **patch), inputs(2, 7, seed=3)
    melody = torch.tensor([[0, 0, 4, 4, 7, -1, -2], [2, 2, 2, 9, 9, 9, 9]])
    out = model(**kw, melody=melody).sample
    assert out.shape == (2, CHANNELS, 7)
    none = model(**kw).sample
    torch.testing.assert_close(none, model(**kw, melody=torch.full((7,), MELODY_ABSENT)).sample, atol=0, rtol=0)
    assert not torch.allclose(out, none)
    torch.testing.assert_close(model(**kw, melody=melody[0]).sample,
                               model(**kw, melody=melody[:1].expand(2, -1)).sample)
    features = melody_features(melody, patch_frames=3, patches=3)  # 7 frames -> 3 patches of 3, 2 padded
    assert features[0, 0, 0] == pytest.approx(2 / 3) and features[0, 0, 4] == pytest.approx(1 / 3)  # C C E
    assert features[0, 1, 4] == pytest.approx(1 / 3) and features[0, 1, 7] == pytest.approx(1 / 3)  # E G rest
    assert features[0, 1, 12] == pytest.approx(1 / 3) and features[0, 2, 13] == pytest.approx(1.0)  # -2, 2 pads
    torch.testing.assert_close(features.sum(dim=2), torch.ones(2, 3))


def test_melody_errors_and_zero_start():
    model, kw = tiny(melody_conditioning=True), inputs(2, 5)
    with pytest.raises(ValueError, match=r"melody must be \(5,\) or \(2, 5\)"):
        model(**kw, melody=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"melody must lie in \[-2, 11\]"):
        model(**kw, melody=torch.full((5,), 12))
    with pytest.raises(ValueError, match="no melody conditioning"):
        tiny()(**kw, melody=torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="forward_packed takes no melody"):
        model.forward_packed(**packed_args(kw, [5, 3]), melody=torch.zeros(5, dtype=torch.long))
    # Freshly built, the melody layer is zero: adding melody conditioning to a trained model
    # leaves its outputs unchanged until it learns.
    torch.manual_seed(0)
    fresh = AudioDiTModel.from_preset("tiny", in_channels=CHANNELS, patch_channels=CHANNELS,
                                      cross_attention_dim=TEXT_DIM, pooled_dim=POOLED_DIM, melody_conditioning=True)
    assert not fresh.melody_embed.weight.any()


def test_packed_forward_of_a_melody_model_without_melody_matches_batched():
    model, kw = tiny(melody_conditioning=True), inputs(2, 6, seed=1)
    packed = model.forward_packed(**packed_args(kw, [6, 6])).sample
    batched = model(**kw).sample
    for i in range(2):
        torch.testing.assert_close(packed[i], batched[i], atol=1e-5, rtol=1e-5)


def test_widths_come_from_the_vae_and_text_encoder_unless_set_and_must_agree():
    from types import SimpleNamespace

    from audiodit.models.dit import DERIVED

    vae = SimpleNamespace(latent_channels=8, latent_rate=50.0)
    text = SimpleNamespace(hidden_size=48, pooled_dim=40)
    filled = DiTConfig().with_widths(vae, text)
    assert (filled.in_channels, filled.patch_channels, filled.cross_attention_dim, filled.pooled_dim,
            filled.latent_rate) == (8, 8, 48, 40, 50.0)
    assert all(getattr(DiTConfig(), name) is None for name in DERIVED)
    assert DiTConfig(patch_channels=4).with_widths(vae, text).patch_channels == 4  # any divisor, kept
    with pytest.raises(ValueError, match=r"dit.in_channels=32 does not match the VAE/text encoder \(8\); leave"):
        DiTConfig(in_channels=32).with_widths(vae, text)
    with pytest.raises(ValueError, match="dit.pooled_dim"):
        DiTConfig(pooled_dim=128).with_widths(vae, text)
    # the frame rate is read only by the beat grid: another one is kept without it, refused with it
    assert DiTConfig(latent_rate=25.0).with_widths(vae, text).latent_rate == 25.0
    with pytest.raises(ValueError, match="dit.latent_rate"):
        DiTConfig(latent_rate=25.0, tempo_conditioning=True, beat_conditioning=True).with_widths(vae, text)
    # a model built from such a config has the VAE's and text encoder's widths
    model = AudioDiTModel(**dataclasses.asdict(DiTConfig(**PRESETS["tiny"]).with_widths(vae, text)))
    assert model.dit_config == DiTConfig(**PRESETS["tiny"]).with_widths(vae, text)
