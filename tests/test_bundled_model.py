"""The model shipped in the repository loads offline and makes real (non-silent) stereo audio."""

import json

import torch

from audiodit.cli import DEFAULT_MODEL
from audiodit.pipeline import AudioDiTPipeline

MAX_BYTES = 60 * 1024 * 1024


def test_bundled_model_is_small_safetensors_only():
    files = [path for path in DEFAULT_MODEL.rglob("*") if path.is_file()]
    assert (DEFAULT_MODEL / "model_index.json").is_file()
    assert sum(path.stat().st_size for path in files) < MAX_BYTES
    weights = [path for path in files if path.suffix in (".safetensors", ".bin", ".pt", ".ckpt")]
    assert weights and all(path.suffix == ".safetensors" for path in weights)
    index = json.loads((DEFAULT_MODEL / "model_index.json").read_text())
    assert index["_class_name"] == "AudioDiTPipeline"


def test_bundled_model_generates_non_silent_stereo_48k():
    pipe = AudioDiTPipeline.from_pretrained(DEFAULT_MODEL, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    audio = pipe("A Bach chorale in G major for church organ, 80 BPM, 4/4, centred.", audio_end_in_s=2.0,
                 num_inference_steps=8, generator=torch.Generator("cpu").manual_seed(0)).audios
    assert audio.shape == (1, 2, 96000)
    assert torch.isfinite(audio).all()
    rms = audio.pow(2).mean().sqrt()
    assert rms > 1e-3, f"bundled model produced near-silence (RMS {rms:.2e})"
    assert audio.abs().max() <= 1.5


def test_bundled_model_guides_towards_the_stated_key_with_its_key_classifier():
    pipe = AudioDiTPipeline.from_pretrained(DEFAULT_MODEL, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.key_classifier is not None and pipe.default_key_classifier_scale > 0
    prompt, key_id = "A Bach chorale in F# minor for church organ, 80 BPM, 4/4, centred.", 6 + 12
    latents = {scale: pipe(prompt, audio_end_in_s=4.0, num_inference_steps=8, key_classifier_scale=scale,
                           output_type="latent", generator=torch.Generator("cpu").manual_seed(0)).audios
               for scale in (0.0, None)}  # None: the model's default
    with torch.no_grad():
        log_prob = {scale: float(pipe.key_classifier.log_prob(x, 0.0, torch.tensor([key_id])))
                    for scale, x in latents.items()}
    assert log_prob[None] > log_prob[0.0]
