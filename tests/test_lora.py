"""LoRA adapters (audiodit.lora): adding, saving, loading, scaling, combining, fusing, unloading, and
`sample.py --lora`."""

import json
import logging

import pytest
import torch
from peft.utils import get_peft_model_state_dict

from audiodit import lora
from audiodit.cli import LORA_WEIGHTS, main
from audiodit.integrity import IntegrityError
from audiodit.testing import tiny_pipeline

PROMPT = "a funk groove with drums"


def _generate(pipe, seed: int = 0):
    return pipe(PROMPT, audio_end_in_s=0.5, num_inference_steps=2, generator=torch.Generator().manual_seed(seed)).audios


def _adapt(pipe, seed: int, name: str = "default", rank: int = 4) -> None:
    """An adapter on both models with random (non-zero) B, so that it changes the output."""
    lora.add_adapter(pipe.transformer, rank, rank, 0.0, lora.DIT_TARGETS, adapter_name=name)
    lora.add_adapter(pipe.text_encoder, rank, rank, 0.0, lora.TEXT_TARGETS, adapter_name=name)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for model in (pipe.transformer, pipe.text_encoder):
            for parameter_name, parameter in model.named_parameters():
                if f"lora_B.{name}." in parameter_name:
                    parameter.copy_(0.2 * torch.randn(parameter.shape, generator=generator))


@pytest.fixture(scope="module")
def adapter_dir(tmp_path_factory):
    """An adapter of tiny_pipeline(seed=0), saved; and the audio the adapted pipeline made."""
    pipe = tiny_pipeline(seed=0)
    _adapt(pipe, seed=1)
    directory = tmp_path_factory.mktemp("adapter")
    pipe.save_lora_weights(directory, info={"base_fingerprint": {"transformer": lora.fingerprint(pipe.transformer)}})
    return directory, _generate(pipe)


def test_a_fresh_adapter_changes_nothing_and_scale_zero_is_the_base_model_exactly():
    pipe = tiny_pipeline(seed=0)
    base = _generate(pipe)
    lora.add_adapter(pipe.transformer, 4, 4, 0.0, lora.DIT_TARGETS)
    assert torch.equal(_generate(pipe), base)  # B starts at zero
    trainable = [name for name, parameter in pipe.transformer.named_parameters() if parameter.requires_grad]
    assert trainable and all(".lora_" in name for name in trainable)
    with torch.no_grad():
        for name, parameter in pipe.transformer.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.2)
    assert not torch.allclose(_generate(pipe), base, atol=1e-3)
    pipe.set_adapters(["default"], adapter_weights=[0.0])
    assert torch.equal(_generate(pipe), base)


def test_a_saved_adapter_loads_into_a_fresh_pipeline_and_makes_the_same_audio(adapter_dir):
    directory, adapted = adapter_dir
    assert {path.name for path in directory.iterdir()} == {lora.WEIGHTS_NAME, lora.INFO_NAME, "weights_digests.json"}
    pipe = tiny_pipeline(seed=0)
    base = _generate(pipe)
    pipe.load_lora_weights(directory, adapter_name="style")
    assert pipe.get_list_adapters() == {"transformer": ["style"], "text_encoder": ["style"]}
    assert torch.equal(_generate(pipe), adapted)
    assert not torch.allclose(adapted, base, atol=1e-3)
    pipe.unload_lora_weights()  # never fused: the model is exactly the base again
    assert torch.equal(_generate(pipe), base)
    assert not pipe.get_list_adapters().get("transformer")


def test_adapter_tensors_are_peft_state_dict_and_the_file_holds_only_adapters(adapter_dir):
    from safetensors.torch import load_file

    pipe = tiny_pipeline(seed=0)
    _adapt(pipe, seed=1)
    state = {f"transformer.{name}": value for name, value in pipe.transformer.state_dict().items()}
    ours = lora.adapter_tensors(state, "transformer")
    theirs = get_peft_model_state_dict(pipe.transformer, adapter_name="default")
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    saved = load_file(str(adapter_dir[0] / lora.WEIGHTS_NAME))
    assert saved and all(".lora_" in name for name in saved)
    assert {name.split(".")[0] for name in saved} == {"transformer", "text_encoder"}
    assert LORA_WEIGHTS == lora.WEIGHTS_NAME  # the CLI checks for the file without importing torch


def test_two_adapters_add_up_in_each_adapted_layer():
    pipe = tiny_pipeline(seed=0)
    _adapt(pipe, seed=1, name="a")
    _adapt(pipe, seed=2, name="b")
    layer = pipe.transformer.blocks[0].attn.qkv
    x = torch.randn(3, layer.in_features)

    def output(names, weights):
        pipe.set_adapters(names, adapter_weights=weights)
        return layer(x)

    none = output(["a", "b"], [0.0, 0.0])
    only_a, only_b = output(["a"], [1.0]) - none, output(["b"], [0.5]) - none
    torch.testing.assert_close(output(["a", "b"], [1.0, 0.5]) - none, only_a + only_b, atol=1e-6, rtol=0)
    torch.testing.assert_close(output(["a"], [2.0]) - none, 2 * only_a, atol=1e-6, rtol=0)


def test_loading_keeps_the_scales_of_adapters_already_active(adapter_dir):
    pipe = tiny_pipeline(seed=0)
    pipe.load_lora_weights(adapter_dir[0], adapter_name="first")
    pipe.set_adapters(["first"], adapter_weights=[0.0])
    pipe.load_lora_weights(adapter_dir[0], adapter_name="second")
    assert sorted(pipe.get_active_adapters()) == ["first", "second"]
    assert torch.equal(_generate(pipe), adapter_dir[1])  # first at 0, second at 1 = the adapter once
    with pytest.raises(ValueError, match="named 'second' is loaded already"):
        pipe.load_lora_weights(adapter_dir[0], adapter_name="second")


def test_fuse_matches_the_unfused_adapter_and_unfuse_restores_the_weights(adapter_dir):
    pipe = tiny_pipeline(seed=0)
    base_weights = {k: v.clone() for k, v in lora.base_state(pipe.transformer).items()}
    pipe.load_lora_weights(adapter_dir[0])
    pipe.fuse_lora()
    torch.testing.assert_close(_generate(pipe), adapter_dir[1], atol=1e-4, rtol=0)
    pipe.unfuse_lora()
    for name, value in lora.base_state(pipe.transformer).items():
        torch.testing.assert_close(value, base_weights[name], atol=1e-6, rtol=0)


def test_a_damaged_or_missing_adapter_is_refused_naming_the_problem(adapter_dir, tmp_path):
    import shutil

    damaged = tmp_path / "damaged"
    shutil.copytree(adapter_dir[0], damaged)
    data = bytearray((damaged / lora.WEIGHTS_NAME).read_bytes())
    data[-3] ^= 0x01
    (damaged / lora.WEIGHTS_NAME).write_bytes(bytes(data))
    pipe = tiny_pipeline(seed=0)
    with pytest.raises(IntegrityError, match=f"{lora.WEIGHTS_NAME} is damaged"):
        pipe.load_lora_weights(damaged)
    with pytest.raises(FileNotFoundError, match="not a LoRA adapter"):
        pipe.load_lora_weights(tmp_path)
    with pytest.raises(ValueError, match="not a LoRA state dict"):
        pipe.load_lora_weights({"transformer.blocks.0.attn.qkv.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="name none of transformer, text_encoder"):
        pipe.load_lora_weights({"unet.x.lora_A.weight": torch.zeros(2, 2)})


def test_an_adapter_trained_on_other_weights_warns(adapter_dir, caplog):
    pipe = tiny_pipeline(seed=5)  # same architecture, other weights
    with caplog.at_level(logging.WARNING, logger="audiodit.lora"):
        pipe.load_lora_weights(adapter_dir[0])
    assert "trained on another transformer" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="audiodit.lora"):
        tiny_pipeline(seed=0).load_lora_weights(adapter_dir[0])
    assert "trained on another" not in caplog.text


def test_a_target_that_matches_no_layer_names_the_layers():
    pipe = tiny_pipeline(seed=0)
    with pytest.raises(ValueError, match=r"'attn\.qvk' matches no linear layer of AudioDiTModel; .*attn\.qkv"):
        lora.add_adapter(pipe.transformer, 4, 4, 0.0, ["attn.qvk"])
    assert all(parameter.requires_grad for parameter in pipe.transformer.parameters())  # left as it was


def test_fingerprint_ignores_adapters_and_sees_weight_changes():
    pipe = tiny_pipeline(seed=0)
    before = lora.fingerprint(pipe.transformer)
    lora.add_adapter(pipe.transformer, 4, 4, 0.0, lora.DIT_TARGETS)
    assert lora.fingerprint(pipe.transformer) == before
    with torch.no_grad():
        pipe.transformer.blocks[0].attn.qkv.base_layer.weight[0, 0] += 1e-3
    assert lora.fingerprint(pipe.transformer) != before


# ----------------------------------------------------------------------------- sample.py --lora

def test_cli_lora_scales_are_applied_and_recorded(model_dir, adapter_dir, tmp_path):
    common = ["--model", str(model_dir), "--prompt", PROMPT, "--duration", "0.5", "--steps", "2", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "base.wav")]) == 0
    assert main([*common, "--lora", f"{adapter_dir[0]}:0", "--out", str(tmp_path / "zero.wav")]) == 0
    assert main([*common, "--lora", f"{adapter_dir[0]}:1.5", "--lora", str(adapter_dir[0]),
                 "--out", str(tmp_path / "two.wav")]) == 0
    from audiodit.audio import load_audio

    base, zero, two = (load_audio(tmp_path / f"{name}.wav") for name in ("base", "zero", "two"))
    assert torch.equal(zero, base)
    assert not torch.allclose(two, base, atol=1e-3)
    records = json.loads((tmp_path / "two.json").read_text())["lora"]
    assert [(record["path"], record["scale"]) for record in records] == [(str(adapter_dir[0]), 1.5),
                                                                          (str(adapter_dir[0]), 1.0)]
    assert all(len(record["sha256"]) == 64 for record in records)
    assert "lora" not in json.loads((tmp_path / "base.json").read_text())


@pytest.mark.parametrize("spec, message", [
    ("{missing}", "not a LoRA adapter"),
    ("{adapter}:inf", "the scale must be a finite number"),
    ("{model}", "not a LoRA adapter"),
])
def test_cli_bad_lora_is_one_line(model_dir, adapter_dir, tmp_path, capsys, spec, message):
    spec = spec.format(missing=tmp_path / "nothing", adapter=adapter_dir[0], model=model_dir)
    code = main(["--model", str(model_dir), "--prompt", "x", "--duration", "0.5", "--steps", "2", "--quiet",
                 "--lora", spec, "--out", str(tmp_path / "x.wav")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x.wav").exists()
