"""Shared fixtures for training tests: a toy captioned audio folder and a tiny random VAE."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from audiodit.config import Config, load_config
from audiodit.data.synthetic import write_synthetic_dataset
from audiodit.models.vae import AudioVAE

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def toy_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    write_synthetic_dataset(root, num_files=8, seconds=0.6, seed=1)
    return root


@pytest.fixture(scope="session")
def tiny_vae_dir(tmp_path_factory) -> Path:
    """A random tiny VAE saved like a vae-stage export (scaling_factor 1.0: the dit stage estimates it)."""
    directory = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    cfg = load_config(REPO / "configs" / "vae_tiny.yaml").vae
    import dataclasses

    AudioVAE(**dataclasses.asdict(cfg)).save_pretrained(str(directory))
    return directory


def _dit_config(toy_data: Path, vae_dir: Path, out: Path, *overrides: str) -> Config:
    return load_config(
        REPO / "configs" / "dit_tiny.yaml",
        [f"data.train_dir={toy_data}", f"vae_path={vae_dir}", f"training.output_dir={out}", *overrides],
    )


def _vae_config(toy_data: Path, out: Path, *overrides: str) -> Config:
    return load_config(
        REPO / "configs" / "vae_tiny.yaml",
        [f"data.train_dir={toy_data}", f"training.output_dir={out}", *overrides],
    )


@pytest.fixture
def dit_config():
    """dit_config(data_dir, vae_dir, output_dir, *overrides) -> Config from configs/dit_tiny.yaml."""
    return _dit_config


@pytest.fixture
def vae_config():
    """vae_config(data_dir, output_dir, *overrides) -> Config from configs/vae_tiny.yaml."""
    return _vae_config


class Interrupt(Exception):
    """Raised by `interrupted_after`: a run killed right after a checkpoint."""


@pytest.fixture
def interrupted_after(monkeypatch):
    """interrupted_after(step, run) -> runs `run()` with the trainer killed (Interrupt) right after
    it has written the checkpoint of `step`, as a crash would; checkpoints save normally afterwards."""
    from audiodit.training.trainer import Trainer

    original_save = Trainer.save_checkpoint

    def run_until(step, run):
        def save_then_die(self):
            final = original_save(self)
            if self.state.step == step:
                raise Interrupt
            return final

        monkeypatch.setattr(Trainer, "save_checkpoint", save_then_die)
        try:
            with pytest.raises(Interrupt):
                run()
        finally:
            monkeypatch.setattr(Trainer, "save_checkpoint", original_save)

    return run_until
