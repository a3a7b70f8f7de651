"""Every generation mode gives the same audio as when these digests were recorded (issue 23: the
pipeline is restructured with behaviour unchanged).

A tiny seeded pipeline with every condition (text, timing, tempo with its beat grid, key, key
guidance, key classifier guidance, guidance rescale) runs text-to-audio, audio-to-audio,
inpainting, continuation, interpolation, long-form generation and window-by-window editing of a
long input with fixed seeds. `output_digests.json` holds, per case, the SHA-256 of the output's
float32 bytes and 32 of its samples. On the CPU and torch version that recorded them the digests
must match bit for bit; anywhere else the samples must match to 1e-4 (kernels differ between CPUs
in the last bits). Re-record only for a change meant to alter outputs:

    python tests/test_output_digests.py --record
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.machine import cpu_model  # the benchmarks' machine name

RECORD = Path(__file__).with_name("output_digests.json")
SR = 48000


def machine() -> str:
    """The CPU (its name, which a virtual machine may cut to "AMD EPYC", and the vector kernels torch
    picks on it: the same name has run AVX2 and AVX512 kernels, whose sums differ in the last bits),
    the thread count and the torch version."""
    return (f"{cpu_model()} ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads) | "
            f"torch {torch.__version__}")


def build_pipeline():
    from audiodit.models.key_classifier import LatentKeyClassifier
    from audiodit.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0, tempo_conditioning=True, beat_conditioning=True, key_conditioning=True)
    torch.manual_seed(1)
    classifier = LatentKeyClassifier(in_channels=pipe.transformer.config.in_channels, width=16, dilations=(1, 2))
    pipe.register_modules(key_classifier=classifier.eval())
    return pipe


def _audio(seconds: float, seed: int) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    tone = 0.3 * torch.sin(2 * torch.pi * (220 + 40 * seed) * t) * (1 + 0.5 * torch.sin(2 * torch.pi * 2 * t))
    return torch.stack([tone, 0.8 * tone])  # (2, S)


def _seed(value: int) -> torch.Generator:
    return torch.Generator().manual_seed(value)


COMMON = dict(num_inference_steps=3, guidance_scale=3.0, key_guidance_scale=1.5, key_classifier_scale=5.0,
              guidance_rescale=0.3)
PROMPTS = ["A waltz in D minor for piano, 90 BPM", "A march in Bb major, 120 BPM"]


def cases(pipe) -> dict[str, np.ndarray]:
    """Every mode's output, (B, 2, S) float32."""
    out = {}
    out["text_to_audio"] = pipe(PROMPTS, audio_end_in_s=2.0, num_waveforms_per_prompt=2,
                                generator=[_seed(k) for k in range(4)], **COMMON).audios
    out["negative_prompt_and_start"] = pipe(PROMPTS[0], negative_prompt="noise", audio_start_in_s=1.0,
                                            audio_end_in_s=2.5, generator=_seed(5), **COMMON).audios
    out["audio_to_audio"] = pipe(PROMPTS[0], initial_audio=_audio(2.0, 0), strength=0.6, generator=_seed(6),
                                 **COMMON).audios
    out["inpaint"] = pipe(PROMPTS[1], initial_audio=_audio(3.0, 1), inpaint_range=(1.0, 2.0), generator=_seed(7),
                          **COMMON).audios
    out["continuation"] = pipe(PROMPTS[0], initial_audio=_audio(2.0, 2), continuation_in_s=1.5,
                               generator=_seed(8), **COMMON).audios
    out["interpolation"] = pipe.interpolate(PROMPTS[0], PROMPTS[1], seed_start=1, seed_end=2, num_points=3,
                                            audio_end_in_s=1.0, **COMMON).audios
    out["long_form"] = torch.cat(list(pipe.generate_long(PROMPTS[1], seconds=8.0, generator=_seed(9), **COMMON)),
                                 dim=-1)
    out["long_audio_to_audio"] = pipe(PROMPTS[0], initial_audio=_audio(7.0, 3), strength=0.7, generator=_seed(10),
                                      **COMMON).audios
    out["long_inpaint"] = pipe(PROMPTS[1], initial_audio=_audio(7.0, 4), inpaint_range=(2.0, 5.5),
                               generator=_seed(11), **COMMON).audios
    out["long_continuation"] = pipe(PROMPTS[0], initial_audio=_audio(3.0, 5), continuation_in_s=6.0,
                                    generator=_seed(12), **COMMON).audios
    return {name: audio.detach().float().cpu().numpy() for name, audio in out.items()}


def fingerprint(audio: np.ndarray) -> dict:
    flat = np.ascontiguousarray(audio, dtype=np.float32).reshape(-1)
    picks = np.linspace(0, flat.size - 1, 32).round().astype(int)
    return {"shape": list(audio.shape), "sha256": hashlib.sha256(flat.tobytes()).hexdigest(),
            "samples": [float(flat[i]) for i in picks], "rms": float(np.sqrt(np.mean(flat.astype(np.float64) ** 2)))}


@pytest.fixture(scope="module")
def outputs():
    with torch.no_grad():
        return {name: fingerprint(audio) for name, audio in cases(build_pipeline()).items()}


def recorded_cases() -> list[str]:
    return list(json.loads(RECORD.read_text())["cases"]) if RECORD.exists() else []


@pytest.mark.parametrize("name", recorded_cases())
def test_every_mode_gives_the_recorded_audio(outputs, name):
    recorded = json.loads(RECORD.read_text())
    expected, ours = recorded["cases"][name], outputs[name]
    assert ours["shape"] == expected["shape"]
    assert ours["rms"] > 1e-4  # the case makes sound: a digest of silence would prove little
    np.testing.assert_allclose(ours["samples"], expected["samples"], atol=1e-4, rtol=1e-3)
    assert ours["rms"] == pytest.approx(expected["rms"], rel=1e-3)
    if recorded["machine"] == machine():
        assert ours["sha256"] == expected["sha256"], f"{name}: not bit-identical on the recording machine"


def test_the_record_covers_every_case(outputs):
    assert set(json.loads(RECORD.read_text())["cases"]) == set(outputs)


if __name__ == "__main__" and "--record" in sys.argv:
    with torch.no_grad():
        record = {"machine": machine(), "cases": {name: fingerprint(audio)
                                                  for name, audio in cases(build_pipeline()).items()}}
    RECORD.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {RECORD}: {len(record['cases'])} cases on {record['machine']}")
