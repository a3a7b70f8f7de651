"""Exporting a pipeline in fp16 halves it, keeps its outputs close, and never clobbers."""

import pytest
import torch

from audiodit.export import export_pipeline, main
from audiodit.pipeline import AudioDiTPipeline
from audiodit.testing import tiny_pipeline


def _size(path):
    return sum(file.stat().st_size for file in path.rglob("*.safetensors"))


def test_fp16_export_is_smaller_loads_as_fp32_and_matches(tmp_path):
    pipe = tiny_pipeline(seed=0)
    pipe.save_pretrained(tmp_path / "fp32")
    export_pipeline(tmp_path / "fp32", tmp_path / "fp16", steps=3, guidance=2.5)
    assert _size(tmp_path / "fp16") < 0.6 * _size(tmp_path / "fp32")
    loaded = AudioDiTPipeline.from_pretrained(tmp_path / "fp16")
    assert loaded.transformer.dtype == torch.float32
    assert (loaded.default_num_inference_steps, loaded.default_guidance_scale) == (3, 2.5)
    kwargs = dict(audio_end_in_s=0.5, num_inference_steps=2, guidance_scale=2.5)
    ours = loaded("a piano", generator=torch.Generator().manual_seed(0), **kwargs).audios
    reference = pipe("a piano", generator=torch.Generator().manual_seed(0), **kwargs).audios
    assert (ours - reference).abs().max() < 0.05 * reference.abs().max() + 1e-4


def test_export_refuses_to_overwrite_and_rejects_non_pipelines(tmp_path, capsys):
    tiny_pipeline(seed=0).save_pretrained(tmp_path / "src")
    (tmp_path / "dst").mkdir()
    with pytest.raises(FileExistsError):
        export_pipeline(tmp_path / "src", tmp_path / "dst")
    assert main([str(tmp_path / "nothing"), str(tmp_path / "out")]) == 2
    assert "model_index.json" in capsys.readouterr().err
    assert main([str(tmp_path / "src"), str(tmp_path / "dst"), "--overwrite"]) == 0
    assert (tmp_path / "dst" / "model_index.json").is_file()


def test_export_sets_the_default_key_guidance_and_refuses_it_without_key_conditioning(tmp_path, capsys):
    tiny_pipeline(seed=0, key_conditioning=True).save_pretrained(tmp_path / "key")
    export_pipeline(tmp_path / "key", tmp_path / "key_fp16", key_guidance=1.5)
    assert AudioDiTPipeline.from_pretrained(tmp_path / "key_fp16").default_key_guidance_scale == 1.5
    tiny_pipeline(seed=0).save_pretrained(tmp_path / "plain")
    assert main([str(tmp_path / "plain"), str(tmp_path / "out"), "--key-guidance", "2"]) == 2
    assert "no key conditioning" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_export_sets_the_vae_output_phase(tmp_path, capsys):
    tiny_pipeline(seed=0).save_pretrained(tmp_path / "src")
    export_pipeline(tmp_path / "src", tmp_path / "magnitude", output_phase="magnitude")
    assert AudioDiTPipeline.from_pretrained(tmp_path / "magnitude").vae.config.output_phase == "magnitude"
    assert AudioDiTPipeline.from_pretrained(tmp_path / "src").vae.config.output_phase == "decoder"
    with pytest.raises(ValueError, match="--output-phase must be one of"):
        export_pipeline(tmp_path / "src", tmp_path / "bad", output_phase="griffin_lim")
    assert not (tmp_path / "bad").exists()


def test_export_adds_a_key_classifier_with_its_default_scale(tmp_path, capsys):
    from audiodit.models.key_classifier import LatentKeyClassifier

    pipe = tiny_pipeline(seed=0)
    pipe.save_pretrained(tmp_path / "src")
    channels = pipe.transformer.config.in_channels
    LatentKeyClassifier(in_channels=channels, width=16, dilations=(1,)).save_pretrained(tmp_path / "run" / "key_classifier")
    export_pipeline(tmp_path / "src", tmp_path / "dst", key_classifier=tmp_path / "run", key_classifier_scale=4.0)
    loaded = AudioDiTPipeline.from_pretrained(tmp_path / "dst")
    assert isinstance(loaded.key_classifier, LatentKeyClassifier) and loaded.default_key_classifier_scale == 4.0
    assert list((tmp_path / "dst" / "key_classifier").glob("*.safetensors"))
    assert main([str(tmp_path / "src"), str(tmp_path / "none"), "--key-classifier-scale", "2"]) == 2
    assert "needs a pipeline with a `key_classifier`" in capsys.readouterr().err
    LatentKeyClassifier(in_channels=channels + 1, width=16, dilations=(1,)).save_pretrained(tmp_path / "wide")
    assert main([str(tmp_path / "src"), str(tmp_path / "bad"), "--key-classifier", str(tmp_path / "wide")]) == 2
    assert f"reads {channels + 1} latent channels" in capsys.readouterr().err
    assert not (tmp_path / "none").exists() and not (tmp_path / "bad").exists()


def test_export_ships_a_decoder_with_the_models_encoder_and_refuses_another(tmp_path, capsys):
    from audiodit.models.vae import AudioVAE

    pipe = tiny_pipeline(seed=0)
    pipe.save_pretrained(tmp_path / "src")
    decoder = AudioVAE.from_pretrained(str(tmp_path / "src" / "vae"))
    with torch.no_grad():  # a fine-tuned decoder: encoder untouched, its own (wrong) latent scale
        for name, parameter in decoder.named_parameters():
            if name.startswith("decoder"):
                parameter.add_(0.05 * torch.randn_like(parameter))
    decoder.register_to_config(scaling_factor=3.0)
    decoder.save_pretrained(str(tmp_path / "decoder"))
    export_pipeline(tmp_path / "src", tmp_path / "dst", dtype="float32", vae=tmp_path / "decoder")
    shipped = AudioDiTPipeline.from_pretrained(tmp_path / "dst")
    assert shipped.vae.config.scaling_factor == pipe.vae.config.scaling_factor
    for name, weight in shipped.vae.state_dict().items():
        assert torch.equal(weight, (decoder if name.startswith("decoder") else pipe.vae).state_dict()[name]), name
    other = AudioVAE.from_pretrained(str(tmp_path / "src" / "vae"))
    with torch.no_grad():
        next(p for n, p in other.named_parameters() if n.startswith("encoder")).add_(1.0)
    other.save_pretrained(str(tmp_path / "other"))
    assert main([str(tmp_path / "src"), str(tmp_path / "bad"), "--vae", str(tmp_path / "other")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the loader's progress bars
    assert err.startswith("audiodit.export: error: --vae") and "encodes differently from the model's VAE" in err
    assert not (tmp_path / "bad").exists()
