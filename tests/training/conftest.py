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
