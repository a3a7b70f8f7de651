"""Text conditioners with tiny random configs, offline: CLIP (open_clip) and CLAP (transformers)."""

import json
import os

import pytest
import torch

from audiodit.conditioners import (
    PRESETS,
    CLAPTextConditioner,
    CLIPTextConditioner,
    TextConditioner,
    TextEncoderConfig,
    TextEncoderOutput,
    build_text_encoder,
)

PROMPTS = ["a piano", "rain on a tin roof with a slow drum beat", ""]
TINY = PRESETS["tiny"]  # context 16, width 32, 2 layers, 2 heads, pooled 32


def write_tiny_clap_dir(directory, vocabulary_files=True):
    """A CLAP directory: a tiny ClapTextConfig plus a byte-level BPE tokenizer trained offline on a
    few sentences (RoBERTa special tokens). Without vocabulary files, a tokenizer that only knows
    its special tokens (the measured trap)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import ClapTextConfig, PreTrainedTokenizerFast, RobertaTokenizer

    if vocabulary_files:
        bpe = Tokenizer(models.BPE(unk_token="<unk>"))
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        bpe.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        bpe.train_from_iterator(["a piano melody with strings", "rain on a tin roof", "a slow drum beat"], trainer)
        bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>",
                                            pad_token="<pad>", unk_token="<unk>", mask_token="<mask>")
    else:
        tokenizer = RobertaTokenizer()
    tokenizer.save_pretrained(directory)
    ClapTextConfig(vocab_size=320, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=2, projection_dim=24, max_position_embeddings=40).save_pretrained(directory)
    return str(directory)


@pytest.fixture(scope="module")
def clap_dir(tmp_path_factory):
    return write_tiny_clap_dir(tmp_path_factory.mktemp("clap"))


def _build(kind, clap_dir, **overrides):
    torch.manual_seed(0)
    if kind == "clip":
        cfg = TextEncoderConfig(kind="clip", model_name="ViT-B-32", pretrained="none", trainable=False, **TINY)
    else:  # the CLAP config in clap_dir is tiny already; context length from the preset
        cfg = TextEncoderConfig(kind="clap", model_name=clap_dir, pretrained="none", trainable=False,
                                context_length=16, width=None, layers=None, heads=None, embed_dim=None)
    return build_text_encoder(TextEncoderConfig(**{**cfg.__dict__, **overrides}))


@pytest.fixture(scope="module", params=["clip", "clap"])
def encoder(request, clap_dir):
    return _build(request.param, clap_dir)


def _assert_same(a: TextEncoderOutput, b: TextEncoderOutput):
    torch.testing.assert_close(a.embeddings, b.embeddings, rtol=0, atol=0)
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=0, atol=0)


# ----------------------------------------------------------------------------
# Shapes, masks, pooled output
# ----------------------------------------------------------------------------


def test_output_shapes_and_dims(encoder):
    out = encoder.encode(PROMPTS)
    batch, length = len(PROMPTS), encoder.context_length
    assert out.embeddings.shape == (batch, length, encoder.hidden_size)
    assert out.mask.shape == (batch, length) and out.mask.dtype == torch.bool
    assert out.pooled.shape == (batch, encoder.pooled_dim)
    assert torch.isfinite(out.embeddings).all() and torch.isfinite(out.pooled).all()
    expected = (32, 32) if isinstance(encoder, CLIPTextConditioner) else (32, 24)
    assert (encoder.hidden_size, encoder.pooled_dim) == expected


def test_mask_is_a_prefix_covering_the_tokens_and_padding_is_zero(encoder):
    out = encoder.encode(PROMPTS)
    lengths = out.mask.sum(dim=1)
    for row, length in zip(out.mask, lengths):
        assert row[:length].all() and not row[length:].any()  # True up to the end token, then padding
    assert lengths[0] < lengths[1]  # the longer prompt has more tokens
    assert lengths[2] == 2  # empty prompt: start and end tokens only
    assert (out.embeddings[~out.mask] == 0).all()
    assert (out.embeddings[out.mask].abs().sum(dim=-1) > 0).all()


def test_clip_mask_ends_at_the_end_of_text_token_even_with_bang():
    # "!" is a real BPE token; the mask must not rely on token ids being non-zero.
    encoder = _build("clip", None)
    tokens = encoder.tokenize(["a piano !", "a piano"])
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    for row_ids, row_mask in zip(ids, mask):
        end = int((row_ids == encoder.tokenizer.eot_token_id).nonzero()[0])
        assert row_mask[: end + 1].all() and not row_mask[end + 1 :].any()
    assert mask[0].sum() == mask[1].sum() + 1


def test_too_long_prompts_are_truncated(encoder):
    out = encoder.encode(["piano " * 100])
    assert out.mask.all() and out.embeddings.shape[1] == encoder.context_length


def test_outputs_do_not_depend_on_the_rest_of_the_batch(encoder):
    alone = encoder.encode(PROMPTS[:1])
    batch = encoder.encode(PROMPTS)
    torch.testing.assert_close(batch.embeddings[:1], alone.embeddings, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(batch.pooled[:1], alone.pooled, rtol=1e-5, atol=1e-6)


def test_pooled_output_distinguishes_prompts(encoder):
    out = encoder.encode(PROMPTS)
    assert (out.pooled[0] - out.pooled[1]).abs().max() > 1e-4


def test_tokenize_rejects_a_single_string(encoder):
    with pytest.raises(TypeError, match="list"):
        encoder.tokenize("a piano")


# ----------------------------------------------------------------------------
# Null condition and dropout
# ----------------------------------------------------------------------------


def test_null_output_is_zero_with_one_attendable_position(encoder):
    null = encoder.null_output(3, "cpu")
    cond = encoder.encode(PROMPTS)
    assert null.embeddings.shape == cond.embeddings.shape and null.pooled.shape == cond.pooled.shape
    assert (null.embeddings == 0).all() and (null.pooled == 0).all()
    assert null.mask[:, 0].all() and not null.mask[:, 1:].any()
    # Softmax cross-attention over the null keys stays finite; a fully masked row would be NaN.
    query = torch.randn(3, 5, encoder.hidden_size)

    def attend(mask):
        scores = query @ null.embeddings.transpose(1, 2)  # (B, 5, L)
        return scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(dim=-1) @ null.embeddings

    assert torch.isfinite(attend(null.mask)).all()
    assert torch.isnan(attend(torch.zeros_like(null.mask))).all()


def test_force_drop_ids_replace_exactly_those_items(encoder):
    tokens = encoder.tokenize(PROMPTS)
    plain = encoder(tokens)
    dropped = encoder(tokens, force_drop_ids=torch.tensor([1, 0, 1]))
    null = encoder.null_output(3, "cpu")
    for index in (0, 2):
        assert torch.equal(dropped.embeddings[index], null.embeddings[index])
        assert torch.equal(dropped.mask[index], null.mask[index]) and torch.equal(dropped.pooled[index], null.pooled[index])
    assert torch.equal(dropped.embeddings[1], plain.embeddings[1]) and torch.equal(dropped.pooled[1], plain.pooled[1])
    with pytest.raises(ValueError, match="force_drop_ids"):
        encoder(tokens, force_drop_ids=torch.tensor([1, 0]))


def test_random_dropout_only_in_training_mode_and_seeded(encoder):
    batch = 4000
    fake = TextEncoderOutput(embeddings=torch.ones(batch, 4, encoder.hidden_size), mask=torch.ones(batch, 4, dtype=torch.bool),
                             pooled=torch.ones(batch, encoder.pooled_dim))
    encoder.eval()
    assert encoder.drop(fake) is fake
    encoder.train()
    try:
        first = encoder.drop(fake, generator=torch.Generator().manual_seed(3))
        again = encoder.drop(fake, generator=torch.Generator().manual_seed(3))
    finally:
        encoder.eval()
    assert torch.equal(first.pooled, again.pooled)
    dropped = (first.pooled == 0).all(dim=1)
    assert abs(dropped.float().mean().item() - encoder.config.dropout_prob) < 0.03  # p = 0.1
    assert (first.mask[dropped].sum(dim=1) == 1).all() and first.mask[~dropped].all()


def test_dropout_prob_out_of_range_is_refused():
    with pytest.raises(ValueError, match="dropout_prob"):
        TextEncoderConfig(dropout_prob=1.0)


# ----------------------------------------------------------------------------
# Save / load as a pipeline component
# ----------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_outputs(encoder, tmp_path):
    encoder.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert "diffusion_pytorch_model.safetensors" in files and not any(f.endswith((".bin", ".pt")) for f in files)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == type(encoder).__name__ and config["context_length"] == encoder.context_length
    loaded = type(encoder).from_pretrained(tmp_path, local_files_only=True)
    _assert_same(loaded.encode(PROMPTS), encoder.encode(PROMPTS))
    assert loaded.fingerprint() == encoder.fingerprint()
    assert not any(p.requires_grad for p in loaded.parameters())


def test_round_trip_inside_a_diffusers_pipeline_directory(encoder, tmp_path):
    from diffusers import DiffusionPipeline

    class TextOnlyPipeline(DiffusionPipeline):
        def __init__(self, text_encoder):
            super().__init__()
            self.register_modules(text_encoder=text_encoder)

    TextOnlyPipeline(encoder).save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["text_encoder"] == ["audiodit.conditioners", type(encoder).__name__]
    loaded = TextOnlyPipeline.from_pretrained(tmp_path, local_files_only=True)
    _assert_same(loaded.text_encoder.encode(PROMPTS), encoder.encode(PROMPTS))


def test_clap_config_records_the_architecture(clap_dir, tmp_path):
    encoder = _build("clap", clap_dir, width=16, layers=1, heads=2, embed_dim=8)
    encoder.save_pretrained(tmp_path / "text_encoder")
    saved = json.loads((tmp_path / "text_encoder" / "config.json").read_text())["text_config"]
    assert (saved["hidden_size"], saved["num_hidden_layers"], saved["projection_dim"]) == (16, 1, 8)
    assert os.path.exists(tmp_path / "text_encoder" / "tokenizer" / "tokenizer.json")
    loaded = CLAPTextConditioner.from_pretrained(tmp_path, subfolder="text_encoder")
    assert (loaded.hidden_size, loaded.pooled_dim) == (16, 8)
    _assert_same(loaded.encode(PROMPTS), encoder.encode(PROMPTS))


# ----------------------------------------------------------------------------
# Frozen by default, trainable on request
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["clip", "clap"])
def test_frozen_encoder_has_no_gradients_and_stays_in_eval(kind, clap_dir):
    encoder = _build(kind, clap_dir)
    assert not any(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert encoder.training and not encoder.text_model.training  # dropout switch on, tower in eval
    assert not encoder.encode(PROMPTS).pooled.requires_grad


@pytest.mark.parametrize("kind", ["clip", "clap"])
def test_trainable_encoder_receives_gradients(kind, clap_dir):
    encoder = _build(kind, clap_dir, trainable=True, dropout_prob=0.0).train()
    assert encoder.text_model.training
    out = encoder.encode(PROMPTS)
    (out.embeddings.square().mean() + out.pooled.square().mean()).backward()
    grads = [p.grad for p in encoder.parameters() if p.requires_grad]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


# ----------------------------------------------------------------------------
# Weights, errors
# ----------------------------------------------------------------------------


def test_unknown_kind_names_the_value():
    cfg = TextEncoderConfig(**TINY)
    cfg.kind = "t5"
    with pytest.raises(ValueError, match="'t5'"):
        build_text_encoder(cfg)


def test_unknown_open_clip_model_is_refused():
    with pytest.raises(ValueError, match="ViT-Q-99"):
        CLIPTextConditioner(model_name="ViT-Q-99")


def _tiny_full_clip(context_length=16):
    import open_clip

    torch.manual_seed(1)
    text_cfg = {"context_length": context_length, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}
    vision_cfg = {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16}
    return open_clip.CLIP(embed_dim=32, vision_cfg=vision_cfg, text_cfg=text_cfg).eval()


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_clip_text_tower_from_a_full_clip_checkpoint_matches_open_clip(tmp_path, suffix):
    from safetensors.torch import save_file

    clip = _tiny_full_clip()
    path = str(tmp_path / f"clip{suffix}")
    state = {k: v.contiguous() for k, v in clip.state_dict().items()}
    save_file(state, path) if suffix == ".safetensors" else torch.save(state, path)
    encoder = _build("clip", None, pretrained=path)
    assert not any(name.startswith("visual") for name in encoder.state_dict())
    tokens = encoder.tokenize(PROMPTS)
    with torch.no_grad():
        reference = clip.encode_text(tokens["input_ids"])
    torch.testing.assert_close(encoder(tokens).pooled, reference, rtol=1e-5, atol=1e-6)


def test_shorter_context_keeps_outputs_of_a_causal_tower(tmp_path):
    from safetensors.torch import save_file

    path = str(tmp_path / "clip.safetensors")
    save_file({k: v.contiguous() for k, v in _tiny_full_clip(context_length=16).state_dict().items()}, path)
    long = _build("clip", None, pretrained=path)
    short = _build("clip", None, pretrained=path, context_length=8)
    prompts = ["a piano", "rain"]
    a, b = long.encode(prompts), short.encode(prompts)
    torch.testing.assert_close(a.embeddings[:, :8], b.embeddings, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(a.pooled, b.pooled, rtol=1e-5, atol=1e-6)


def test_clip_checkpoint_errors_are_clear(tmp_path, monkeypatch):
    import open_clip

    with pytest.raises(FileNotFoundError, match="does not exist"):
        _build("clip", None, pretrained=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ValueError, match="neither a file nor an open_clip tag"):
        _build("clip", None, pretrained="laion9000")

    def unreachable(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", unreachable)
    with pytest.raises(RuntimeError, match="local checkpoint path"):
        _build("clip", None, pretrained="laion2b_s34b_b79k")
    with pytest.raises(ValueError, match="QuickGELU"):
        _build("clip", None, pretrained="openai")
    from safetensors.torch import save_file

    save_file({"logit_scale": torch.ones(())}, str(tmp_path / "vision_only.safetensors"))
    with pytest.raises(ValueError, match="lacks text-tower weights"):
        _build("clip", None, pretrained=str(tmp_path / "vision_only.safetensors"))


def test_clap_weights_from_a_directory_match_transformers(clap_dir, tmp_path):
    from transformers import ClapTextConfig, ClapTextModelWithProjection

    torch.manual_seed(2)
    reference = ClapTextModelWithProjection(ClapTextConfig.from_pretrained(clap_dir)).eval()
    reference.save_pretrained(tmp_path)
    encoder = _build("clap", clap_dir, pretrained=str(tmp_path))
    tokens = encoder.tokenize(PROMPTS)
    with torch.no_grad():
        expected = reference(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"].long())
    out = encoder(tokens)
    torch.testing.assert_close(out.pooled, expected.text_embeds, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.embeddings[out.mask], expected.last_hidden_state[out.mask], rtol=1e-5, atol=1e-6)


def test_degraded_clap_tokenizer_is_refused(tmp_path):
    directory = write_tiny_clap_dir(tmp_path / "broken", vocabulary_files=False)
    with pytest.raises(ValueError, match="cannot tokenize ordinary words") as error:
        _build("clap", directory)
    assert directory in str(error.value)


def test_missing_clap_directory_is_a_clear_error(tmp_path):
    with pytest.raises(OSError, match="local directory"):
        _build("clap", str(tmp_path / "no_such_clap"))


def test_fingerprint_follows_the_weights(encoder):
    before = encoder.fingerprint()
    assert encoder.fingerprint() == before
    parameter = next(encoder.parameters())
    with torch.no_grad():
        parameter.add_(1.0)
    try:
        assert encoder.fingerprint() != before
    finally:
        with torch.no_grad():
            parameter.sub_(1.0)


def test_presets_build():
    encoder = TextConditioner.from_preset("tiny", trainable=False)
    assert isinstance(encoder, CLIPTextConditioner) and encoder.hidden_size == TINY["width"]
    with pytest.raises(ValueError, match="preset"):
        TextConditioner.from_preset("huge")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", ["clip", "clap"])
def test_cuda_outputs_match_cpu(kind, clap_dir):
    encoder = _build(kind, clap_dir)
    expected = encoder.encode(PROMPTS)
    encoder.to("cuda")
    out = encoder.encode(PROMPTS)
    assert out.embeddings.device.type == "cuda" and out.mask.device.type == "cuda"
    torch.testing.assert_close(out.pooled.cpu(), expected.pooled, rtol=1e-3, atol=1e-4)
    assert torch.equal(out.mask.cpu(), expected.mask)
    tokens = {name: value.cuda() for name, value in encoder.tokenize(PROMPTS).items()}
    dropped = encoder(tokens, force_drop_ids=torch.tensor([1, 0, 0]))
    assert dropped.pooled.device.type == "cuda" and (dropped.pooled[0] == 0).all()
