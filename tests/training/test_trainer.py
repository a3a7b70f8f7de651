"""End-to-end runs of the training loop on tiny configs (CPU, a few steps each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from audiodit.config import load_config
from audiodit.data.preencode import main as preencode_main
from audiodit.data.synthetic import write_synthetic_dataset
from audiodit.models.vae import AudioVAE
from audiodit.training import NonFiniteLossError, train
from audiodit.training.checkpoints import CheckpointError
from audiodit.training.cli import main as train_main
from audiodit.training.dit_stage import DiTStage
from audiodit.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]


def _load_pipeline(directory):
    import audiodit.conditioners  # noqa: F401  (diffusers resolves components by module name)
    import audiodit.models.dit  # noqa: F401
    import audiodit.models.vae  # noqa: F401
    from audiodit.pipeline import AudioDiTPipeline

    return AudioDiTPipeline.from_pretrained(str(directory))


def _tensorboard_tags(log_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for events in log_dir.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events), size_guidance={"audio": 0, "images": 0, "scalars": 0})
        accumulator.Reload()
        for kind, names in accumulator.Tags().items():
            if isinstance(names, list):
                tags.update(names)
    return tags


def test_dit_one_epoch_exports_a_pipeline_that_generates(toy_data, tiny_vae_dir, tmp_path, dit_config):
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", "training.max_epochs=1",
                     "training.max_steps=100", "training.sample_every=4", "training.log_every=1",
                     f"data.val_dir={toy_data}", "training.val_batches=2")
    result = train(cfg)
    assert result.step == 4  # 8 clips / batch 2, one epoch
    saved = load_config(tmp_path / "run" / "config.yaml")  # the widths the stage took from the VAE/text tower
    assert (saved.dit.in_channels, saved.dit.patch_channels) == (8, 8) and saved.dit.cross_attention_dim == 32
    assert result.last_checkpoint.name == "step-00000004"
    pipe = _load_pipeline(result.last_checkpoint / "pipeline")
    assert pipe.vae.config.scaling_factor != 1.0  # estimated from the first batches
    audio = pipe(["a 440 Hz sine tone"], audio_end_in_s=0.5, num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).audios
    assert audio.shape == (1, 2, 24000) and torch.isfinite(audio).all()
    from audiodit.cli import main as sample_main

    samples = tmp_path / "samples"
    assert sample_main(["--model", str(result.last_checkpoint / "pipeline"), "--prompt", "a tone",
                        "--duration", "0.5", "--steps", "2", "--out", str(samples), "--quiet"]) == 0
    assert len(list(samples.glob("*.wav"))) == 1
    # The export holds the EMA weights, not the raw ones.
    ema = load_file(str(result.last_checkpoint / "ema.safetensors"))
    exported = pipe.transformer.state_dict()
    name = next(k for k in exported if k.endswith("weight"))
    assert torch.equal(exported[name], ema["transformer." + name])
    tags = _tensorboard_tags(tmp_path / "run" / "logs")
    assert {"train/loss", "train/lr", "train/grad_norm", "train/samples_per_s"} <= tags
    assert {"dit/sample_0/audio", "dit/sample_0/spectrogram", "val/loss"} <= tags


def test_vae_one_epoch_with_adversarial_phase_exports_a_vae(toy_data, tmp_path, vae_config):
    cfg = vae_config(toy_data, tmp_path / "run", "training.max_epochs=1", "training.max_steps=100",
                     "training.adversarial_start_step=2", "training.log_every=1", "training.sample_every=4",
                     "data.clip_seconds=0.25")
    trainer = Trainer(cfg)
    disc_before = {k: v.clone() for k, v in trainer.stage.discriminator.state_dict().items()}
    result = trainer.train()
    assert result.step == 4
    disc_after = trainer.stage.discriminator.state_dict()
    assert any(not torch.equal(disc_before[k], disc_after[k]) for k in disc_before)  # D was trained
    vae = AudioVAE.from_pretrained(str(result.last_checkpoint / "vae"))
    audio = torch.randn(1, 2, 4800) * 0.1
    assert vae(audio).sample.shape == audio.shape
    tags = _tensorboard_tags(tmp_path / "run" / "logs")
    assert {"train/adversarial", "train/discriminator_loss", "vae/reconstruction/spectrogram"} <= tags


def test_fresh_vae_run_starts_at_the_data_mean_spectrum(toy_data, tmp_path, vae_config):
    # Issue 3: the vae stage's setup puts the decoder's log-magnitude bias at the mean log-magnitude
    # of the first training batches, and the EMA (exported weights) starts from those weights too.
    cfg = vae_config(toy_data, tmp_path / "run", "training.scaling_batches=2", "data.clip_seconds=0.25")
    trainer = Trainer(cfg)
    vae = trainer.stage.model.vae
    expected, moments = None, None
    for index, batch in enumerate(trainer._early_batches()):
        if index == 2:
            break
        lengths = [int(n) for n in batch["num_samples"]]
        mean = vae.mean_log_magnitude(batch["audio"], lengths)
        expected = mean if expected is None else expected + mean
        item = vae.encoder_input_moments(batch["audio"], lengths)  # (2, features)
        moments = item if moments is None else moments + item
    bins = vae.config.n_fft // 2 + 1
    bias = vae.decoder_head.bias.detach().view(vae.audio_channels, 2, bins)[:, 0]
    torch.testing.assert_close(bias, expected / 2)
    # ... and the encoder's log-magnitude input is standardised with the same batches' statistics.
    mean, square = moments / 2
    torch.testing.assert_close(vae.encoder_input_mean, mean)
    torch.testing.assert_close(vae.encoder_input_std, (square - mean.square()).clamp_min(1e-4).sqrt())
    assert bias.mean() < -1.0  # the synthetic clips are far quieter than the untrained decoder (0)
    exported = trainer._export_state()["vae.decoder_head.bias"]
    torch.testing.assert_close(exported, vae.decoder_head.bias.detach())


class _Interrupt(Exception):
    pass


def test_resume_is_bit_exact(toy_data, tiny_vae_dir, tmp_path, interrupted_after, dit_config):
    # Crosses an epoch boundary (4 batches per epoch), accumulates 2 micro-batches, trains the text
    # tower with condition dropout: every source of randomness and data position must be restored.
    settings = ["training.max_steps=6", "training.checkpoint_every=3", "training.grad_accum_steps=2",
                "text.trainable=true", "text.dropout_prob=0.3", "data.num_buckets=2",
                f"data.val_dir={toy_data}", "training.val_batches=1"]  # validation must not disturb the RNG
    full = train(dit_config(toy_data, tiny_vae_dir, tmp_path / "full", *settings))
    interrupted_after(3, lambda: train(dit_config(toy_data, tiny_vae_dir, tmp_path / "part", *settings)))
    assert train_main(["--resume", "latest", f"training.output_dir={tmp_path / 'part'}"]) == 0

    part_final = tmp_path / "part" / "checkpoints" / "step-00000006"
    for name in ("state/model.safetensors", "ema.safetensors"):
        a, b = load_file(str(full.last_checkpoint / name)), load_file(str(part_final / name))
        assert a.keys() == b.keys()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}:{key} differs after resume"
    state = json.loads((part_final / "trainer_state.json").read_text())
    assert (state["epoch"], state["batch_in_epoch"], state["samples_seen"]) == (2, 4, 24)  # 12 batches of 4 per epoch; the next epoch starts lazily


def test_failed_checkpoint_write_keeps_previous_usable(toy_data, tiny_vae_dir, tmp_path, monkeypatch, dit_config):
    from audiodit.training import checkpoints

    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", "training.max_steps=4",
                     "training.checkpoint_every=2")
    original_publish = checkpoints.CheckpointManager.publish

    def die_before_rename(self, tmp, step):
        if step == 4:
            raise _Interrupt  # everything written into tmp, killed before the rename
        return original_publish(self, tmp, step)

    monkeypatch.setattr(checkpoints.CheckpointManager, "publish", die_before_rename)
    with pytest.raises(_Interrupt):
        train(cfg)
    monkeypatch.undo()
    root = tmp_path / "run" / "checkpoints"
    assert (root / "latest").read_text().strip() == "step-00000002"
    assert not (root / "step-00000004").exists() and list(root.glob(".tmp-*"))
    result = train(cfg, resume=root / "step-00000002")
    assert result.step == 4 and (root / "latest").read_text().strip() == "step-00000004"
    assert not list(root.glob(".tmp-*"))


def test_fresh_run_into_existing_run_is_refused(toy_data, tiny_vae_dir, tmp_path, capsys):
    args = ["--config", str(REPO / "configs" / "dit_tiny.yaml"), f"data.train_dir={toy_data}", f"vae_path={tiny_vae_dir}",
            f"training.output_dir={tmp_path / 'run'}", "training.max_steps=1",
            "training.gradient_checkpointing=true", "training.mixed_precision=bf16"]  # both paths run
    assert train_main(args) == 0
    assert train_main(args) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="already holds checkpoints"):
        train(load_config(args[1], args[2:]))
    assert train_main(args + ["--overwrite"]) == 0


def test_non_finite_losses_are_skipped_then_stop_the_run(toy_data, tiny_vae_dir, tmp_path, monkeypatch, dit_config):
    original = DiTStage.compute_losses
    calls = {"n": 0}

    def sometimes_nan(self, model, inputs, step):
        calls["n"] += 1
        out = original(self, model, inputs, step)
        if calls["n"] in (2, 3):
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(DiTStage, "compute_losses", sometimes_nan)
    result = train(dit_config(toy_data, tiny_vae_dir, tmp_path / "a", "training.max_steps=3"))
    assert result.step == 3 and result.nonfinite_total == 2

    monkeypatch.setattr(DiTStage, "compute_losses",
                        lambda self, model, inputs, step: {"loss": torch.tensor(float("inf"), requires_grad=True)})
    with pytest.raises(NonFiniteLossError, match="3 non-finite losses in a row"):
        train(dit_config(toy_data, tiny_vae_dir, tmp_path / "b", "training.max_nonfinite_in_a_row=3"))


def test_bad_files_are_skipped_counted_and_reported(tiny_vae_dir, tmp_path, dit_config):
    data = tmp_path / "data"
    write_synthetic_dataset(data, num_files=4, seconds=0.6, seed=2)
    (data / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10)
    (data / "empty.wav").write_bytes(b"")
    sf.write(str(data / "short.wav"), np.zeros((100, 2), np.float32), 48000)
    sf.write(str(data / "mono_22k.wav"), np.full(22050, 0.1, np.float32), 22050)  # resampled, kept
    nan_audio = np.zeros((48000, 2), np.float32)
    nan_audio[::1000] = np.nan
    sf.write(str(data / "nan.wav"), nan_audio, 48000, subtype="FLOAT")  # header fine, samples not
    (data / "notes.md").write_text("not audio")
    result = train(dit_config(data, tiny_vae_dir, tmp_path / "run", "training.max_epochs=1",
                              "training.max_steps=100", "data.batch_size=1"))
    assert result.step == 6  # 4 tones + mono_22k + nan.wav's slot (filled by the next file)
    skipped = result.data_report.skipped
    assert set(skipped) == {"corrupt.wav", "empty.wav", "short.wav", "nan.wav"}
    assert "empty" in skipped["empty.wav"] and "corrupt" in skipped["corrupt.wav"]
    saved = json.loads((tmp_path / "run" / "data_report.json").read_text())
    assert set(saved["skipped"]) == set(skipped)
    assert saved["notes"] == {"no caption (trained as unconditional)": 2}


def test_cli_and_dit_training_from_latents(tmp_path, toy_data, tiny_vae_dir, dit_config):
    out = tmp_path / "latents"
    assert preencode_main(["--vae", str(tiny_vae_dir), "--data", str(toy_data), "--out", str(out),
                           "--config", str(REPO / "configs" / "dit_tiny.yaml"), "data.min_seconds=0.1"]) == 0
    cfg = dit_config(out, tiny_vae_dir, tmp_path / "run", "data.format=latents", "training.max_steps=2")
    result = train(cfg)
    assert result.step == 2 and (result.last_checkpoint / "pipeline" / "model_index.json").is_file()


def test_vae_training_streams_webdataset_shards(toy_data, tmp_path, vae_config):
    from audiodit.data.webdataset import write_shards

    write_shards(toy_data, tmp_path / "shards", shard_size=4)
    cfg = vae_config(tmp_path / "shards", tmp_path / "run", "data.format=webdataset", "training.max_steps=2",
                     "data.shuffle_buffer=2", "data.clip_seconds=0.25", "data.num_workers=2")
    result = train(cfg)
    assert result.step == 2 and (result.last_checkpoint / "vae" / "config.json").is_file()


def test_stop_at_step_cuts_a_run_short_on_its_full_schedule(toy_data, tiny_vae_dir, tmp_path, dit_config):
    """`training.stop_at_step` ends early while the LR follows the schedule of max_steps."""
    lrs = {}
    for name, overrides in {"cut": ["training.max_steps=6", "training.stop_at_step=2"],
                            "short": ["training.max_steps=2"]}.items():
        trainer = Trainer(dit_config(toy_data, tiny_vae_dir, tmp_path / name, "training.warmup_steps=0",
                                     "training.checkpoint_every=100", *overrides))
        result = trainer.train()
        assert result.step == 2 and result.last_checkpoint.name == "step-00000002"
        lrs[name] = trainer.scheduler.get_last_lr()[0]
    assert lrs["cut"] > 0.5 * trainer.cfg.training.lr > lrs["short"]  # cosine over 6 steps vs over 2


@pytest.mark.parametrize("override, key", [
    ("training.max_steps=0", "training.max_steps"),
    ("training.grad_accum_steps=0", "training.grad_accum_steps"),
    ("training.checkpoint_every=0", "training.checkpoint_every"),
    ("training.log_every=0", "training.log_every"),
    ("training.lr=-1e-4", "training.lr"),
    ("training.lr=.nan", "training.lr"),
    ("training.ema_decay=1.5", "training.ema_decay"),
    ("training.betas=[0.9,1.0]", "training.betas"),
    ("training.stop_at_step=99", "training.stop_at_step"),
    ("data.batch_size=0", "data.batch_size"),
    ("data.clip_seconds=0", "data.clip_seconds"),
    ("diffusion.num_inference_steps=0", "diffusion.num_inference_steps"),
])
def test_impossible_training_settings_are_config_errors_before_any_work(toy_data, tiny_vae_dir, tmp_path, capsys,
                                                                         override, key):
    # Each once ran as a silent no-op run that exited 0, or divided by zero after set-up (issue 22).
    out = tmp_path / "run"
    args = ["--config", str(REPO / "configs" / "dit_tiny.yaml"), f"data.train_dir={toy_data}",
            f"vae_path={tiny_vae_dir}", f"training.output_dir={out}", "training.max_steps=2", override]
    assert train_main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0], err
    assert not out.exists()


def test_a_failed_resume_leaves_the_runs_config_as_it_was(toy_data, tiny_vae_dir, tmp_path, capsys, dit_config):
    out = tmp_path / "run"
    train(dit_config(toy_data, tiny_vae_dir, out, "training.max_steps=1", "training.checkpoint_every=1"))
    saved = (out / "config.yaml").read_text()
    # An override the checkpoint cannot take (another architecture) fails while loading the state.
    with pytest.raises(Exception, match="size mismatch|Missing key|Unexpected key"):
        train_main(["--resume", "latest", f"training.output_dir={out}", "training.max_steps=3", "dit.depth=3"])
    assert (out / "config.yaml").read_text() == saved


def test_a_damaged_checkpoint_is_refused_on_resume_naming_the_file(toy_data, tiny_vae_dir, tmp_path, capsys,
                                                                     dit_config):
    from audiodit.integrity import DIGESTS

    out = tmp_path / "run"
    result = train(dit_config(toy_data, tiny_vae_dir, out, "training.max_steps=1", "training.checkpoint_every=1"))
    assert (result.last_checkpoint / DIGESTS).is_file()
    capsys.readouterr()  # the first run's progress bar
    weights = result.last_checkpoint / "state" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header + 5] ^= 0x01  # one flipped bit in the weights
    weights.write_bytes(bytes(data))
    assert train_main(["--resume", "latest", f"training.output_dir={out}", "training.max_steps=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "state/model.safetensors is damaged" in err[0], err


class _Planted:
    """Unpickling this runs code: what a tampered checkpoint would hold."""

    def __reduce__(self):
        return (exec, ("import builtins; builtins.PLANTED_PICKLE_RAN = True",))


def test_resume_reads_no_pickle_and_a_planted_one_never_runs(toy_data, tiny_vae_dir, tmp_path, dit_config):
    import builtins
    import pickle

    out = tmp_path / "run"
    result = train(dit_config(toy_data, tiny_vae_dir, out, "training.max_steps=1", "training.checkpoint_every=1"))
    state = result.last_checkpoint / "state"
    suffixes = {path.suffix for path in state.iterdir()}
    assert suffixes <= {".safetensors", ".json"}, suffixes  # nothing that needs unpickling
    for name in ("random_states_0.pkl", "custom_checkpoint_0.pkl", "optimizer.bin"):
        (state / name).write_bytes(pickle.dumps(_Planted()))
    assert train_main(["--resume", "latest", f"training.output_dir={out}", "training.max_steps=2"]) == 0
    assert not getattr(builtins, "PLANTED_PICKLE_RAN", False)


def test_a_checkpoint_in_accelerates_pickle_format_is_not_resumed(toy_data, tiny_vae_dir, tmp_path, capsys, dit_config):
    out = tmp_path / "run"
    result = train(dit_config(toy_data, tiny_vae_dir, out, "training.max_steps=1", "training.checkpoint_every=1"))
    capsys.readouterr()
    (result.last_checkpoint / "state" / "lr_scheduler.json").unlink()  # what a checkpoint from before looks like
    assert train_main(["--resume", "latest", f"training.output_dir={out}", "training.max_steps=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pickle format" in err[0] and "training.init_from=" in err[0], err


def test_packed_training_gives_the_padded_loss_and_gradients():
    """training.packed runs each clip's real frames as one sequence (forward_packed): the velocity on
    real frames, the masked loss and every gradient equal the padded batch's."""
    from audiodit.diffusion import FlowMatching
    from audiodit.testing import tiny_components
    from audiodit.training.dit_stage import DiTTrainModule

    parts = tiny_components(seed=0, tempo_conditioning=True, beat_conditioning=True, key_conditioning=True)
    module = DiTTrainModule(parts["transformer"].train(), None)
    generator = torch.Generator().manual_seed(0)
    channels, frames = parts["vae"].latent_channels, 30
    x0 = torch.randn(3, channels, frames, generator=generator)
    noise = torch.randn(3, channels, frames, generator=generator)
    frame_mask = torch.arange(frames)[None] < torch.tensor([30, 17, 9])[:, None]  # (B, T), three lengths
    t = torch.tensor([0.2, 0.5, 0.9])
    with torch.no_grad():  # a frozen tower's output, as the stage gives it
        text = parts["text_encoder"].encode(["a waltz", "rain on a roof", "a drum loop"])
    args = (FlowMatching.add_noise(x0, noise, t), t, torch.zeros(3), torch.tensor([30.0, 17.0, 9.0]) / 25,
            frame_mask)
    conditions = {"bpm": torch.tensor([90.0, float("nan"), 120.0]), "key_ids": torch.tensor([3, -1, 7])}
    results = []
    for packed in (False, True):
        module.zero_grad()
        velocity = module(*args, text=text, conditions=conditions, packed=packed)
        loss = FlowMatching.loss(velocity, x0, noise, frame_mask)
        loss.backward()
        results.append((velocity * frame_mask[:, None], loss, {n: p.grad.clone() for n, p in module.named_parameters()
                                                                if p.grad is not None}))
    (padded, padded_loss, padded_grads), (packed, packed_loss, packed_grads) = results
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed_loss, padded_loss, atol=1e-6, rtol=1e-5)
    assert packed_grads.keys() == padded_grads.keys() and packed_grads
    for name in padded_grads:
        torch.testing.assert_close(packed_grads[name], padded_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_packed_runs_train_and_melody_is_refused(toy_data, tiny_vae_dir, tmp_path, dit_config):
    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "run", "training.max_steps=2", "training.packed=true",
                     "data.num_buckets=4", "training.log_every=1")
    result = train(cfg)
    assert result.step == 2 and result.nonfinite_total == 0
    from audiodit.training.trainer import Trainer

    cfg = dit_config(toy_data, tiny_vae_dir, tmp_path / "melody", "training.packed=true",
                     "dit.melody_conditioning=true")
    with pytest.raises(ValueError, match="training.packed takes no per-frame condition"):
        Trainer(cfg)
