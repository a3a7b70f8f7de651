"""benchmarks/lora.py: its parameter arithmetic against peft's real adapters, and its statistics."""


import numpy as np

from audiodit import lora
from audiodit.testing import tiny_pipeline
from benchmarks import lora as lora_benchmark


def test_projected_adapter_size_is_what_peft_adds():
    transformer = tiny_pipeline(seed=0).transformer
    expected = lora_benchmark.lora_parameters(transformer, 8, lora.DIT_TARGETS)
    assert expected == lora.add_adapter(transformer, 8, 8, 0.0, lora.DIT_TARGETS)


def test_paired_p_tells_a_consistent_rise_from_noise():
    rng = np.random.default_rng(1)
    assert lora_benchmark.paired_p(0.5 + 0.1 * rng.standard_normal(24)) < 0.001
    assert lora_benchmark.paired_p(rng.standard_normal(24) - 0.3) > 0.5


def test_spectral_distance_ignores_level():
    spectrum = np.linspace(-60, -20, 64)
    assert lora_benchmark.spectral_distance(spectrum, spectrum + 12.0) < 1e-9
    assert lora_benchmark.spectral_distance(spectrum, spectrum[::-1]) > 10
