"""`training.lora`: only the adapters train and are checkpointed; the export loads into the base
pipeline; resume is exact and refuses a base model that changed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from audiodit import lora
from audiodit.configuration import ConfigError
from audiodit.pipeline import AudioDiTPipeline
from audiodit.training import train
from audiodit.training.cli import main as train_main
from audiodit.training.trainer import Trainer

# final_layer.linear: a tiny base trained for two steps has a near-zero output layer (adaLN-Zero), which
# would hide what the block adapters do
LORA = ["training.lora.rank=4", "training.lora.target_modules=[attn.qkv,mlp.0,final_layer.linear]",
        "training.lora.text_target_modules=[mlp.c_fc]", "text.trainable=true",
        "training.lr=1e-2", "training.ema_decay=0.9", "training.warmup_steps=0"]


@pytest.fixture(scope="module")
def base_pipeline(toy_data, tiny_vae_dir, tmp_path_factory):
    """A tiny dit run's exported pipeline: the model adapters adapt."""
    from audiodit.config import load_config

    out = tmp_path_factory.mktemp("lora_base") / "run"
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "dit_tiny.yaml", [
        f"data.train_dir={toy_data}", f"vae_path={tiny_vae_dir}", f"training.output_dir={out}",
        "training.max_steps=2", "training.checkpoint_every=2", "text.trainable=true"])
    result = train(cfg)
    pipeline = tmp_path_factory.mktemp("lora_base_pipeline") / "pipe"
    shutil.copytree(result.last_checkpoint / "pipeline", pipeline)
    return pipeline


def _config(dit_config, toy_data, tiny_vae_dir, base, out, *overrides):
    return dit_config(toy_data, tiny_vae_dir, out, f"training.init_from={base}", *LORA, *overrides)


def test_only_adapters_train_and_are_checkpointed_and_the_export_adapts_the_base(
        toy_data, tiny_vae_dir, base_pipeline, tmp_path, dit_config):
    cfg = _config(dit_config, toy_data, tiny_vae_dir, base_pipeline, tmp_path / "run", "training.max_steps=3",
                  "training.checkpoint_every=3")
    trainer = Trainer(cfg)
    base = AudioDiTPipeline.from_pretrained(str(base_pipeline))
    result = trainer.train()
    # the base weights are the pipeline's, untouched by training
    for model, trained in ((base.transformer, trainer.stage.model.transformer), (base.text_encoder, trainer.stage.text_encoder)):
        ours = lora.base_state(trained)
        assert all(torch.equal(ours[name], value) for name, value in model.state_dict().items())
    for name in ("state/model.safetensors", "ema.safetensors"):
        saved = load_file(str(result.last_checkpoint / name))
        assert saved and all(".lora_" in key for key in saved), name
        assert any(key.startswith("text_encoder.") for key in saved) and any(key.startswith("transformer.") for key in saved)
    export = result.last_checkpoint / "lora"
    assert not (result.last_checkpoint / "pipeline").exists()
    info = __import__("json").loads((export / lora.INFO_NAME).read_text())
    assert info["rank"] == 4 and info["base_fingerprint"]["transformer"] == lora.fingerprint(base.transformer)

    def generate(pipe):
        pipe.set_progress_bar_config(disable=True)
        return pipe("a toy tone", audio_end_in_s=0.5, num_inference_steps=2, output_type="latent",
                    generator=torch.Generator().manual_seed(0)).audios

    before = generate(base)
    base.load_lora_weights(export)
    after = generate(base)
    assert (after - before).abs().max() > 1e-3 * before.abs().max()  # float noise would be ~1e-7
    # the export is the EMA of the adapters the trainer holds
    ema = load_file(str(result.last_checkpoint / "ema.safetensors"))
    exported = load_file(str(export / lora.WEIGHTS_NAME))
    for key, value in exported.items():
        component, rest = key.split(".", 1)
        layer, kind = rest.rsplit(".lora_", 1)
        torch.testing.assert_close(ema[f"{component}.{layer}.lora_{kind.replace('.weight', '.default.weight')}"],
                                   value, rtol=0, atol=0)


def test_lora_resume_is_bit_exact_and_refuses_a_changed_base(toy_data, tiny_vae_dir, base_pipeline, tmp_path,
                                                             interrupted_after, dit_config):
    base_pipeline = shutil.copytree(base_pipeline, tmp_path / "base")  # changed at the end
    settings = ["training.max_steps=4", "training.checkpoint_every=2", "text.dropout_prob=0.3"]
    full = train(_config(dit_config, toy_data, tiny_vae_dir, base_pipeline, tmp_path / "full", *settings))
    interrupted_after(2, lambda: train(_config(dit_config, toy_data, tiny_vae_dir, base_pipeline, tmp_path / "part",
                                               *settings)))
    assert train_main(["--resume", "latest", f"training.output_dir={tmp_path / 'part'}"]) == 0
    part = tmp_path / "part" / "checkpoints" / "step-00000004"
    for name in ("state/model.safetensors", "ema.safetensors", f"lora/{lora.WEIGHTS_NAME}"):
        a, b = load_file(str(full.last_checkpoint / name)), load_file(str(part / name))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name

    # the pipeline the adapters were trained on changes: resuming would train them for other weights
    changed = AudioDiTPipeline.from_pretrained(str(base_pipeline))
    with torch.no_grad():
        changed.transformer.blocks[0].attn.qkv.weight.add_(1e-3)
    changed.save_pretrained(str(base_pipeline))
    with pytest.raises(ValueError, match="transformer weights differ from those this run's adapters"):
        Trainer(_config(dit_config, toy_data, tiny_vae_dir, base_pipeline, tmp_path / "full",
                        *settings, "training.max_steps=6"), resume=full.last_checkpoint)


def test_lora_needs_a_model_to_adapt(toy_data, tiny_vae_dir, tmp_path, dit_config):
    with pytest.raises(ConfigError, match="training.lora needs training.init_from"):
        dit_config(toy_data, tiny_vae_dir, tmp_path / "run", "training.lora.rank=4")
    with pytest.raises(ConfigError, match="training.lora.rank must be >= 0"):
        dit_config(toy_data, tiny_vae_dir, tmp_path / "run", "training.lora.rank=-1")
