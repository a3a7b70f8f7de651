"""Fixtures shared across test modules."""

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tiny models on one intra-op thread. They gain nothing from more, and on a
    shared 2-core machine OpenMP workers spin-waiting for a busy core made a training step 50x
    slower (measured: 10 s vs 0.15 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A saved tiny pipeline (`audiodit.testing.tiny_pipeline(seed=0)`) for the CLI to load."""
    from audiodit.testing import tiny_pipeline

    path = tmp_path_factory.mktemp("tiny_model")
    tiny_pipeline(seed=0).save_pretrained(path)
    return path
