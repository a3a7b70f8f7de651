"""Training the latent key classifier on latents the test makes, where each key has its own pattern."""

import json

import pytest
import torch
from safetensors.torch import save_file

from audiodit.models.key_classifier import LatentKeyClassifier
from audiodit.prompt_attributes import key_name
from audiodit.training.key_classifier import main, train_key_classifier

CHANNELS, FRAMES = 8, 25


def write_latents(root, clips_per_key: int, seed: int, extra_captions=()):
    """A latent directory in `audiodit.data.preencode`'s layout: every clip is its key's fixed
    pattern (the same for every seed) plus fresh noise, captioned with that key."""
    patterns = torch.randn(24, CHANNELS, 1, generator=torch.Generator().manual_seed(123))  # one per key
    generator = torch.Generator().manual_seed(seed)
    tensors, samples = {}, []
    captions = [(f"A piece in {key_name(key)} for piano.", key) for key in range(24) for _ in range(clips_per_key)]
    captions += [(caption, None) for caption in extra_captions]
    for number, (caption, key) in enumerate(captions):
        base = patterns[key] if key is not None else torch.zeros(CHANNELS, 1)
        tensors[str(number)] = base + 0.5 * torch.randn(CHANNELS, FRAMES, generator=generator)
        samples.append({"id": f"clip{number}.flac", "shard": "latents-00000.safetensors", "key": str(number),
                        "frames": FRAMES, "seconds_offset": 0.0, "seconds_total": FRAMES / 25.0, "caption": caption})
    root.mkdir(parents=True)
    save_file(tensors, str(root / "latents-00000.safetensors"))
    vae = {"latent_channels": CHANNELS, "hop_length": 1920, "sampling_rate": 48000, "latent_rate": 25.0,
           "scaling_factor": 1.0}
    (root / "index.json").write_text(json.dumps({"version": 1, "vae": vae, "captions": None, "samples": samples,
                                                 "report": {"skipped": {}, "notes": {}}}))
    return root


@pytest.fixture(scope="module")
def latent_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("latents")
    return (write_latents(root / "train", 3, seed=0, extra_captions=["rain on a tin roof"]),
            write_latents(root / "val", 1, seed=1))


def test_the_classifier_learns_keys_it_was_never_shown_this_noise_for(latent_dirs, tmp_path):
    train, val = latent_dirs
    report = train_key_classifier(train, tmp_path / "out", val, steps=150, batch_size=24, clip_seconds=1.0,
                                  lr=3e-3, width=32, log_every=50)
    assert report["train_clips"] == 72  # the caption without a key is left out
    assert report["val_clips"] == 24
    clean = report["val"]["t=0"]
    assert clean["key_accuracy"] >= 0.5, clean  # chance is 1/24
    loaded = LatentKeyClassifier.from_pretrained(tmp_path / "out" / "key_classifier")
    assert loaded.config.in_channels == CHANNELS
    assert json.loads((tmp_path / "out" / "report.json").read_text())["val"] == report["val"]
    # it ran through the shared trainer: a run directory with its config and a checkpoint's export
    assert (tmp_path / "out" / "config.yaml").is_file()
    assert (tmp_path / "out" / "checkpoints" / "step-00000150" / "key_classifier" / "config.json").is_file()


def test_an_existing_output_directory_is_never_overwritten(latent_dirs, tmp_path, capsys):
    train, _ = latent_dirs
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    assert main(["--train", str(train), "--out", str(tmp_path / "out"), "--steps", "1"]) == 2
    assert "exists" in capsys.readouterr().err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_bad_settings_are_refused_before_training(latent_dirs, tmp_path):
    train, val = latent_dirs
    rescaled = tmp_path / "rescaled"
    import shutil

    shutil.copytree(val, rescaled)
    index = json.loads((rescaled / "index.json").read_text())
    index["vae"]["scaling_factor"] = 2.0
    (rescaled / "index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match="latents scaled by 2.0, the training latents by 1.0"):
        train_key_classifier(train, tmp_path / "c", rescaled, steps=1)
    with pytest.raises(ValueError, match="--max-t"):
        train_key_classifier(train, tmp_path / "a", max_t=1.0, steps=1)
    with pytest.raises(ValueError, match="--steps"):
        train_key_classifier(train, tmp_path / "b", steps=0)
    assert not any((tmp_path / name).exists() for name in ("a", "b", "c"))


def test_train_py_trains_it_as_a_stage_and_resumes_exactly(latent_dirs, tmp_path):
    """`stage: key_classifier` through the shared trainer: a run killed after its first checkpoint
    and resumed ends with the weights of the run that was never stopped; validation reads latents."""
    from safetensors.torch import load_file

    from audiodit.config import load_config
    from audiodit.training.trainer import train

    train_dir, val_dir = latent_dirs

    def config(out):
        return load_config("configs/key_classifier_small.yaml", [
            f"data.train_dir={train_dir}", f"data.val_dir={val_dir}", "data.clip_seconds=1.0", "data.batch_size=8",
            "key_classifier.width=16", "training.max_steps=6", "training.checkpoint_every=3",
            "training.warmup_steps=1", f"training.output_dir={out}", "training.log_every=1"])

    whole = train(config(tmp_path / "whole"))
    first = config(tmp_path / "parts")
    first.training.stop_at_step = 3
    train(first)
    resumed = train(config(tmp_path / "parts"), resume=tmp_path / "parts" / "checkpoints" / "step-00000003")
    assert whole.step == resumed.step == 6
    # the run directory is what export takes: its latest checkpoint's classifier joins a pipeline
    from audiodit.export import export_pipeline
    from audiodit.pipeline import AudioDiTPipeline
    from audiodit.testing import tiny_pipeline

    tiny_pipeline(seed=0).save_pretrained(tmp_path / "pipe")
    export_pipeline(tmp_path / "pipe", tmp_path / "with_classifier", key_classifier=tmp_path / "whole")
    attached = AudioDiTPipeline.from_pretrained(str(tmp_path / "with_classifier")).key_classifier
    assert attached.config.width == 16
    weights = [load_file(str(run.last_checkpoint / "key_classifier" / "diffusion_pytorch_model.safetensors"))
               for run in (whole, resumed)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][name], weights[1][name]) for name in weights[0])


def test_the_stage_refuses_audio_and_keyless_data(latent_dirs, tmp_path):
    from audiodit.config import load_config
    from audiodit.training.trainer import Trainer

    train_dir, _ = latent_dirs
    cfg = load_config("configs/key_classifier_small.yaml", [f"data.train_dir={train_dir}", "data.format=folder",
                                                            f"training.output_dir={tmp_path / 'a'}"])
    with pytest.raises(ValueError, match="pre-encoded latents: set data.format=latents"):
        Trainer(cfg)
    keyless = write_latents(tmp_path / "keyless", 0, seed=0, extra_captions=["rain", "wind", "a dog barking"])
    cfg = load_config("configs/key_classifier_small.yaml", [f"data.train_dir={keyless}",
                                                            f"training.output_dir={tmp_path / 'b'}"])
    with pytest.raises(ValueError, match="0 clip\\(s\\) with a stated key"):
        Trainer(cfg)
