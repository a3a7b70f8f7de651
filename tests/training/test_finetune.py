"""Fine-tuning: `training.init_from` (start from trained weights) and `training.freeze`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from audiodit.config import load_config
from audiodit.models.vae import AudioVAE
from audiodit.pipeline import AudioDiTPipeline
from audiodit.training import train
from audiodit.training.checkpoints import resolve_resume
from audiodit.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def trained_vae_dir(tmp_path_factory):
    """A tiny VAE with non-default weights and a scaling factor, as a DiT run would export it."""
    directory = tmp_path_factory.mktemp("trained_vae")
    torch.manual_seed(3)
    vae = AudioVAE(**{**dataclasses.asdict(load_config(REPO / "configs" / "vae_tiny.yaml").vae), "scaling_factor": 0.5})
    with torch.no_grad():
        for parameter in vae.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    vae.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="module")
def dit_run(toy_data, tiny_vae_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dit_base") / "run"
    cfg = load_config(REPO / "configs" / "dit_tiny.yaml", [
        f"data.train_dir={toy_data}", f"vae_path={tiny_vae_dir}", f"training.output_dir={out}",
        "training.max_steps=2", "training.checkpoint_every=2"])
    train(cfg)
    return out


def _state(module):
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def test_vae_decoder_fine_tune_keeps_the_encoder_and_the_scaling_factor(toy_data, trained_vae_dir, tmp_path, vae_config):
    cfg = vae_config(toy_data, tmp_path / "run", f"training.init_from={trained_vae_dir}",
                     "training.freeze=[vae.encoder]", "training.max_steps=3", "training.ema_decay=0.9",
                     "data.clip_seconds=0.25", "training.lr=1e-3")
    trainer = Trainer(cfg)
    start = _state(trainer.stage.model.vae)
    trained = AudioVAE.from_pretrained(str(trained_vae_dir)).state_dict()
    for name, weight in trained.items():  # no random init, no data-mean decoder bias: the trained weights
        torch.testing.assert_close(start[name], weight, rtol=0, atol=0)
    result = trainer.train()
    exported = AudioVAE.from_pretrained(str(result.last_checkpoint / "vae"))
    assert exported.config.scaling_factor == 0.5  # the DiT trained on this latent scale keeps working
    after = exported.state_dict()
    encoder = [name for name in after if name.startswith("encoder")]
    decoder = [name for name in after if name.startswith("decoder")]
    assert encoder and decoder
    # exported = EMA weights: the EMA started from the trained weights, so the frozen encoder is exact
    assert all(torch.equal(after[name], trained[name]) for name in encoder)
    assert any(not torch.equal(after[name], trained[name]) for name in decoder)
    assert trainer.stage.state_dict() == {"scaling_factor": 0.5}  # restored on --resume


def test_dit_fine_tune_starts_from_the_pipeline_and_can_freeze_the_text_tower(toy_data, tiny_vae_dir, dit_run,
                                                                            tmp_path, dit_config):
    base = AudioDiTPipeline.from_pretrained(str(resolve_resume("latest", dit_run) / "pipeline"))
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", f"training.init_from={dit_run}",
                     "text.trainable=true", "training.freeze=[text_encoder]", "training.max_steps=2", "training.ema_decay=0",
                     "training.lr=1e-3")
    trainer = Trainer(cfg)
    # the VAE in vae_path has scaling 1.0: the scale the pipeline was trained at is taken, not re-estimated
    assert trainer.stage.vae.config.scaling_factor == base.vae.config.scaling_factor != 1.0
    for name, weight in base.transformer.state_dict().items():
        torch.testing.assert_close(trainer.stage.model.transformer.state_dict()[name], weight, rtol=0, atol=0)
    result = trainer.train()
    tuned = AudioDiTPipeline.from_pretrained(str(result.last_checkpoint / "pipeline"))
    assert tuned.vae.config.scaling_factor == base.vae.config.scaling_factor
    assert all(torch.equal(w, base.text_encoder.state_dict()[n]) for n, w in tuned.text_encoder.state_dict().items())
    assert any(not torch.equal(w, base.transformer.state_dict()[n]) for n, w in tuned.transformer.state_dict().items())
    audio = tuned(["a tone"], audio_end_in_s=0.5, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).audios
    assert audio.shape == (1, 2, 24000) and torch.isfinite(audio).all()


def test_dit_init_from_a_mismatched_architecture_names_the_field(toy_data, tiny_vae_dir, dit_run, tmp_path, dit_config):
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", f"training.init_from={dit_run}", "dit.depth=1")
    with pytest.raises(ValueError, match="depth: config 1"):
        Trainer(cfg)


def test_dit_init_from_a_vae_directory_is_refused(toy_data, tiny_vae_dir, trained_vae_dir, tmp_path, dit_config):
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", f"training.init_from={trained_vae_dir}")
    with pytest.raises(ValueError, match="starts from a pipeline"):
        Trainer(cfg)


def _vae_copy(source, target, scaling_factor, noise=0.0):
    vae = AudioVAE.from_pretrained(str(source))
    vae.register_to_config(scaling_factor=scaling_factor)
    with torch.no_grad():
        for parameter in vae.parameters():
            parameter.add_(noise * torch.randn_like(parameter))
    vae.save_pretrained(str(target))
    return target


def test_dit_init_from_a_pipeline_at_another_scale_is_refused(toy_data, tiny_vae_dir, dit_run, tmp_path, dit_config):
    rescaled = _vae_copy(tiny_vae_dir, tmp_path / "vae", 0.5)  # same encoder, another latent scale
    cfg = dit_config(toy_data, rescaled, tmp_path / "run", f"training.init_from={dit_run}")
    with pytest.raises(ValueError, match="scaling_factor 9.*sets 0.5"):
        Trainer(cfg)


def test_dit_init_from_with_another_encoder_estimates_the_new_scale(toy_data, tiny_vae_dir, dit_run, tmp_path,
                                                                     dit_config, capsys):
    torch.manual_seed(1)
    other = _vae_copy(tiny_vae_dir, tmp_path / "vae", 1.0, noise=0.05)  # a retrained VAE: new latents
    base = AudioDiTPipeline.from_pretrained(str(resolve_resume("latest", dit_run) / "pipeline"))
    trainer = Trainer(dit_config(toy_data, other, tmp_path / "run", f"training.init_from={dit_run}"))
    scale = trainer.stage.vae.config.scaling_factor
    assert scale != 1.0 and abs(scale - base.vae.config.scaling_factor) > 1e-3
    assert "encoder in vae_path differs" in capsys.readouterr().out
    for name, weight in base.transformer.state_dict().items():
        torch.testing.assert_close(trainer.stage.model.transformer.state_dict()[name], weight, rtol=0, atol=0)


def test_init_from_a_missing_path_and_unknown_freeze_prefix_are_errors(toy_data, tmp_path, vae_config):
    with pytest.raises(ValueError, match="training.init_from='.*nowhere'"):
        Trainer(vae_config(toy_data, tmp_path / "a", f"training.init_from={tmp_path / 'nowhere'}"))
    with pytest.raises(ValueError, match="'vae.encodr' matches no parameter.*vae.encoder_in"):
        Trainer(vae_config(toy_data, tmp_path / "b", "training.freeze=[vae.encodr]"))


def test_dit_fine_tune_from_a_float16_export(toy_data, tiny_vae_dir, dit_run, tmp_path, dit_config):
    # models/audiodit-small is stored in float16: its VAE as vae_path and its weights as init_from work,
    # the encoder counts as the same (fp16 rounding), and training runs in float32.
    from audiodit.export import main as export_main

    exported = tmp_path / "fp16"
    assert export_main([str(resolve_resume("latest", dit_run) / "pipeline"), str(exported), "--dtype", "float16"]) == 0
    cfg = dit_config(toy_data, exported / "vae", tmp_path / "run", f"training.init_from={exported}",
                     "training.max_steps=1", "training.ema_decay=0")
    trainer = Trainer(cfg)
    assert trainer.stage.vae.dtype == torch.float32
    assert next(trainer.stage.model.parameters()).dtype == torch.float32
    assert trainer.stage.vae.config.scaling_factor == AudioDiTPipeline.from_pretrained(str(exported)).vae.config.scaling_factor
    assert trainer.train().step == 1


def test_vae_path_and_init_from_resolve_pipelines_and_runs(dit_run, tmp_path):
    from audiodit.training.dit_stage import resolve_vae_path
    from audiodit.training.stage import resolve_init_source

    pipeline = resolve_resume("latest", dit_run) / "pipeline"
    assert resolve_init_source(dit_run) == pipeline
    assert resolve_vae_path(str(pipeline)) == pipeline / "vae"  # vae_path may name a whole pipeline
    with pytest.raises(ValueError, match="vae_path=.*holds no vae/ export"):
        resolve_vae_path(str(dit_run))  # a dit run exports pipelines, not VAEs
    with pytest.raises(ValueError, match="vae_path=.*neither a model or pipeline directory"):
        resolve_vae_path(str(tmp_path))


def test_dit_init_from_a_model_without_tempo_adds_tempo_beat_and_key_conditioning(toy_data, tiny_vae_dir, dit_run,
                                                                                  tmp_path, dit_config):
    """A pipeline trained without tempo or key gains them: its weights load, the new embedders start at
    zero output."""
    base = AudioDiTPipeline.from_pretrained(str(resolve_resume("latest", dit_run) / "pipeline"))
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", f"training.init_from={dit_run}",
                     "dit.tempo_conditioning=true", "dit.beat_conditioning=true", "dit.key_conditioning=true",
                     "training.max_steps=1", "training.ema_decay=0")
    trainer = Trainer(cfg)
    transformer = trainer.stage.model.transformer
    for name, weight in base.transformer.state_dict().items():
        torch.testing.assert_close(transformer.state_dict()[name], weight, rtol=0, atol=0)
    x, text = torch.randn(1, base.transformer.config.in_channels, 6), base.text_encoder.encode(["a tone"])
    args = (x, torch.tensor([0.5]), text.embeddings, text.mask, text.pooled, 0.0, 1.0)
    with torch.no_grad():
        torch.testing.assert_close(transformer.eval()(*args, bpm=100.0, key_ids=14).sample,
                                   base.transformer(*args).sample)
    tuned = AudioDiTPipeline.from_pretrained(str(trainer.train().last_checkpoint / "pipeline"))
    config = tuned.transformer.config
    assert config.tempo_conditioning and config.beat_conditioning and config.key_conditioning
    audio = tuned(["a tone in D minor, 100 BPM"], audio_end_in_s=0.5, num_inference_steps=2,
                  generator=torch.Generator().manual_seed(0)).audios
    assert audio.shape == (1, 2, 24000) and torch.isfinite(audio).all()
    # the reverse (dropping a trained model's tempo conditioning) would lose weights: refused
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "back", f"training.init_from={tmp_path / 'run'}")
    with pytest.raises(ValueError, match="tempo_conditioning"):
        Trainer(cfg)
    # a beat grid at another frame rate than the VAE's would drift: refused
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "rate", "dit.tempo_conditioning=true",
                     "dit.beat_conditioning=true", "dit.latent_rate=50.0")
    with pytest.raises(ValueError, match="latent_rate"):
        Trainer(cfg)


@pytest.mark.parametrize("trainable", [False, True])
def test_tempo_and_key_are_dropped_exactly_where_the_text_is(toy_data, tiny_vae_dir, tmp_path, dit_config,
                                                             trainable):
    """Classifier-free guidance's unconditional branch has neither text nor tempo nor key, as in sampling."""
    from audiodit.prompt_attributes import key_name

    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", "dit.tempo_conditioning=true", "dit.key_conditioning=true",
                     "text.dropout_prob=0.5", f"text.trainable={str(trainable).lower()}", "training.max_steps=1")
    trainer = Trainer(cfg)
    stage = trainer.stage
    stage.set_training(True)
    batch = next(trainer._early_batches())
    size = len(batch["caption"])
    batch["caption"] = [f"a tone in {key_name(i % 24)}, {60 + 10 * i} BPM" for i in range(size)]
    torch.manual_seed(0)
    drops = []
    for _ in range(8):
        inputs = stage.prepare_batch(batch)
        if trainable:
            tokens, drop_ids = inputs["tokens"], inputs["drop_ids"]
            text = stage.text_encoder(tokens, force_drop_ids=drop_ids)
        else:
            text = inputs["text"]
        dropped = ~text.mask[:, 1:].any(dim=1) & (text.pooled == 0).all(dim=1)  # the null condition
        assert torch.equal(torch.isnan(inputs["bpm"]), dropped)
        kept = ~dropped
        assert inputs["bpm"][kept].tolist() == [60.0 + 10 * i for i in range(size) if kept[i]]
        assert torch.equal(inputs["key_ids"] == -1, dropped)
        assert inputs["key_ids"][kept].tolist() == [i % 24 for i in range(size) if kept[i]]
        drops.append(dropped)
    rate = torch.stack(drops).float().mean()
    assert 0.2 < rate < 0.8  # dropout_prob 0.5 actually drops
    stage.set_training(False)
    inputs = stage.prepare_batch(batch)
    assert not torch.isnan(inputs["bpm"]).any() and (inputs["key_ids"] >= 0).all()  # no dropout outside training


def test_melody_comes_from_the_audio_and_is_dropped_with_the_text_and_on_its_own(toy_data, tiny_vae_dir, tmp_path,
                                                                                  dit_config):
    """dit.melody_conditioning (issue 26): each clip's dominant pitch class per latent frame, absent
    (-2) wherever the text is dropped and for about data.melody_drop of the rest; a step trains."""
    from audiodit.melody import chromagram, dominant_pitch_classes

    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", "dit.melody_conditioning=true", "text.dropout_prob=0.3",
                     "data.melody_drop=0.5", "training.max_steps=2")
    trainer = Trainer(cfg)
    stage = trainer.stage
    stage.set_training(True)
    batch = next(trainer._early_batches())
    torch.manual_seed(0)
    text_drops, melody_drops = [], []
    for _ in range(8):
        inputs = stage.prepare_batch(batch)
        melody, frames = inputs["melody"], inputs["x0"].shape[-1]
        assert melody.shape == (len(batch["caption"]), frames)
        absent = (melody == -2).all(dim=1)
        dropped = inputs["drop_ids"].cpu()
        assert bool(absent[dropped].all())  # no melody where there is no text
        for row in torch.nonzero(~absent).flatten().tolist():
            ids = dominant_pitch_classes(chromagram(batch["audio"][row], 48000, stage.vae.latent_rate))[:frames]
            assert torch.equal(melody[row, :len(ids)].cpu(), ids)
        text_drops.append(dropped)
        melody_drops.append(absent[~dropped])
    assert 0.2 < torch.cat(melody_drops).float().mean() < 0.8  # melody_drop 0.5 on the kept clips
    stage.set_training(False)
    assert not (stage.prepare_batch(batch)["melody"] == -2).all(dim=1).any()  # no dropout outside training
    result = Trainer(cfg).train()
    assert result.last_checkpoint is not None


def test_vae_fine_tune_into_interpolate_upsampling(toy_data, trained_vae_dir, tmp_path, vae_config):
    # VAE v2's recipe (issue 24): a VAE trained with transposed upsampling is fine-tuned with the
    # interpolating one; every other weight starts as trained, the new convolution from the old one
    cfg = vae_config(toy_data, tmp_path / "run", f"training.init_from={trained_vae_dir}",
                     "vae.decoder_upsample=interpolate", "training.max_steps=2", "data.clip_seconds=0.25")
    trainer = Trainer(cfg)
    start = _state(trainer.stage.model.vae)
    trained = AudioVAE.from_pretrained(str(trained_vae_dir)).state_dict()
    for name, weight in trained.items():
        if not name.startswith("decoder_up.1."):
            torch.testing.assert_close(start[name], weight, rtol=0, atol=0)
    centre = trained["decoder_up.1.weight"].mean(-1).T  # (out, in)
    converted = start["decoder_up.1.1.weight"]  # (out, in, 2k - 1)
    torch.testing.assert_close(converted[:, :, converted.shape[-1] // 2], centre)
    result = trainer.train()
    assert AudioVAE.from_pretrained(str(result.last_checkpoint / "vae")).config.decoder_upsample == "interpolate"


def test_vae_stage_adds_the_stft_consistency_term(toy_data, tmp_path, vae_config):
    from audiodit.losses import stft_consistency_loss
    from audiodit.training.vae_stage import VAETrainModule

    cfg = vae_config(toy_data, tmp_path / "run", "training.vae_loss.consistency_weight=0.5", "data.clip_seconds=0.25")
    trainer = Trainer(cfg)
    stage = trainer.stage
    real = 0.1 * torch.randn(2, 2, 12000, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(1)
    losses = stage.compute_losses(VAETrainModule(stage.model.vae), {"audio": real}, step=0)
    torch.manual_seed(1)
    without = dataclasses.replace(cfg.training.vae_loss, consistency_weight=0.0)
    stage.cfg.training.vae_loss = without
    plain = stage.compute_losses(VAETrainModule(stage.model.vae), {"audio": real}, step=0)
    assert "consistency" in losses and "consistency" not in plain
    torch.testing.assert_close(losses["loss"], plain["loss"] + 0.5 * losses["consistency"])
    # the training module's audio is what decode makes of the same latents
    vae = stage.model.vae
    latents = torch.randn(1, vae.latent_channels, 5)
    spectrum = vae.decode_spectrum(latents)
    torch.testing.assert_close(vae.spectrum_to_audio(spectrum), vae.decode(latents).sample)
    remade = vae.spectrum_to_audio(spectrum)
    assert 0 < float(stft_consistency_loss(spectrum, remade, vae.config.n_fft, vae.config.stft_hop_length, vae.window))


def _readme_finetune_commands() -> list[list[str]]:
    """The `python train.py ...` lines of the README's fine-tuning block, as argument lists."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text()
    block = readme[readme.index("**Fine-tuning.**"):]
    block = block[block.index("```bash") + len("```bash"):]
    block = block[:block.index("```")]
    commands = [shlex.split(line, comments=True) for line in re.sub(r"\\\n\s*", " ", block).splitlines()
                if line.strip()]
    commands = [command for command in commands if command[:2] == ["python", "train.py"]]
    assert len(commands) == 2, commands  # the block's other lines (sample.py --vae, export --vae) have tests of their own
    return commands


@pytest.mark.parametrize("which", [0, 1])
def test_the_readmes_finetuning_commands_run_on_the_bundled_model(toy_data, tmp_path, which):
    # As written, with only data and length shrunk: the configs they name must fit the bundled model.
    from audiodit.training.cli import main as train_main

    command = _readme_finetune_commands()[which][2:]
    overrides = [f"data.train_dir={toy_data}", f"training.output_dir={tmp_path / 'run'}", "training.max_steps=1",
                 "training.checkpoint_every=1", "data.batch_size=2", "data.min_seconds=0.5", "data.clip_seconds=0.5",
                 "training.warmup_steps=0"]
    assert train_main(command + overrides) == 0
    assert (tmp_path / "run" / "checkpoints" / "latest").is_file()


def test_caption_augmentation_drops_tempo_and_key_with_their_words(toy_data, tiny_vae_dir, tmp_path, dit_config):
    """data.caption_*_drop (issue 24): the tempo and key the DiT receives are those left in the
    augmented caption; evaluation batches are never augmented; a frozen tower skips its cache."""
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", "dit.tempo_conditioning=true", "dit.key_conditioning=true",
                     "text.dropout_prob=0.0", "text.trainable=true", "training.max_steps=1",
                     "data.caption_tempo_drop=0.5", "data.caption_key_drop=0.5")
    trainer = Trainer(cfg)
    stage = trainer.stage
    stage.set_training(True)
    batch = next(trainer._early_batches())
    size = len(batch["caption"])
    batch["caption"] = [f"a tone in D minor, {60 + 10 * i} BPM" for i in range(size)]
    torch.manual_seed(0)
    tempo_kept, key_kept = [], []
    for _ in range(16):
        inputs = stage.prepare_batch(batch)
        bpm, keys = inputs["bpm"], inputs["key_ids"]
        tempo_kept += (~torch.isnan(bpm)).tolist()
        key_kept += (keys == 14).tolist()
        assert set(keys.tolist()) <= {14, -1}
        assert all(value == 60 + 10 * i for i, value in enumerate(bpm.tolist()) if value == value)
    assert 0.3 < sum(tempo_kept) / len(tempo_kept) < 0.7 and 0.3 < sum(key_kept) / len(key_kept) < 0.7
    torch.manual_seed(3)
    first = stage.prepare_batch(batch)
    torch.manual_seed(3)
    again = stage.prepare_batch(batch)  # the global RNG decides: a resumed run draws alike
    assert torch.equal(first["bpm"].nan_to_num(-1), again["bpm"].nan_to_num(-1))
    assert torch.equal(first["key_ids"], again["key_ids"])
    stage.set_training(False)
    inputs = stage.prepare_batch(batch)
    assert not torch.isnan(inputs["bpm"]).any() and (inputs["key_ids"] == 14).all()  # never while evaluating


def test_dit_init_from_a_tower_without_word_vectors_adds_them_at_zero_output(toy_data, tiny_vae_dir, dit_run,
                                                                             tmp_path, dit_config):
    """text.word_vectors on a model trained without them (model v2 phase 5): the trained tower's
    weights load, the new map starts at zero, so the conditioning is unchanged at step 0."""
    import numpy as np

    from audiodit.word_vectors import bpe_vocabulary, save_table

    tokens = bpe_vocabulary()
    vectors = np.zeros((len(tokens), 3), np.float32)
    known = np.zeros(len(tokens), bool)
    for row, token in enumerate(tokens):
        if token in ("tone</w>", "noise</w>"):
            vectors[row], known[row] = np.random.default_rng(row).normal(size=3), True
    save_table(tmp_path / "words.safetensors", vectors, known, "test")

    base = AudioDiTPipeline.from_pretrained(str(resolve_resume("latest", dit_run) / "pipeline"))
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", f"training.init_from={dit_run}",
                     "text.trainable=true", f"text.word_vectors={tmp_path / 'words.safetensors'}",
                     "training.max_steps=1", "training.ema_decay=0")
    trainer = Trainer(cfg)
    encoder = trainer.stage.text_encoder.eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder.encode(["a tone and noise"]).embeddings,
                                   base.text_encoder.encode(["a tone and noise"]).embeddings, rtol=0, atol=0)
    tuned = AudioDiTPipeline.from_pretrained(str(trainer.train().last_checkpoint / "pipeline"))
    assert tuned.text_encoder.config.word_vector_dim == 3
    assert tuned.text_encoder.text_model.token_embedding.word_proj.weight.abs().sum() > 0  # it trained
