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


def test_continuation_has_no_silent_gap_or_click_at_the_join():
    # Issue 22: `--continue` left about 0.2 s of near-silence (35-40 dB down) and a click after
    # the join. A clip the model made itself (in its own domain), extended by 2 s.
    import math

    pipe = AudioDiTPipeline.from_pretrained(DEFAULT_MODEL, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    prompt = "A chorale for organ in A major, 80 BPM"
    clip = pipe(prompt, audio_end_in_s=4.0, num_inference_steps=10, generator=torch.Generator().manual_seed(1),
                output_type="pt").audios[:1]
    out = pipe(prompt, initial_audio=clip, continuation_in_s=2.0, num_inference_steps=10,
               generator=torch.Generator().manual_seed(0), output_type="pt").audios[0]
    sr, join = pipe.sampling_rate, clip.shape[-1]
    torch.testing.assert_close(out[:, :join - sr // 50], clip[0, :, :join - sr // 50], atol=0, rtol=0)

    def level_db(segment):
        return 10 * math.log10(float(segment.pow(2).mean()) + 1e-12)

    before, after = level_db(out[:, join - sr // 2:join]), level_db(out[:, join:join + sr // 2])
    assert abs(after - before) < 4.0, (before, after)
    for start in range(join, join + sr // 2, sr // 10):  # no 0.1 s stretch after the join falls silent
        assert level_db(out[:, start:start + sr // 10]) > before - 12.0
    steps = (out[:, 1:] - out[:, :-1]).abs().mean(0)
    around = steps[join - sr // 2:join + sr // 2]
    assert float(steps[join - 3:join + 3].max()) < 2.0 * float(around.quantile(0.99))


def test_the_readmes_python_example_runs_and_saves_audio(tmp_path, monkeypatch):
    # The README's Python block as written, on the bundled model, shortened (2 steps, 1 s).
    import soundfile as sf

    readme = (DEFAULT_MODEL.parents[1] / "README.md").read_text()
    start = readme.index("```python\nimport torch\nfrom audiodit.pipeline import AudioDiTPipeline")
    code = readme[start + len("```python\n"):readme.index("```", start + 10)]
    shortened = code.replace("audio_end_in_s=10.0", "audio_end_in_s=1.0").replace("num_inference_steps=50", "num_inference_steps=2")
    assert shortened != code
    monkeypatch.chdir(DEFAULT_MODEL.parents[1])
    namespace = {}
    exec(compile(shortened.replace('"chorale.flac"', repr(str(tmp_path / "chorale.flac"))), "README.md", "exec"), namespace)
    info = sf.info(tmp_path / "chorale.flac")
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 48000)


def test_the_readmes_long_form_example_runs_and_saves_the_whole_piece(tmp_path, monkeypatch):
    # The README's generate_long block as written after the first block, shortened (40 s, 2 steps).
    import soundfile as sf

    readme = (DEFAULT_MODEL.parents[1] / "README.md").read_text()
    blocks = []
    for marker in ("```python\nimport torch\nfrom audiodit.pipeline import AudioDiTPipeline", "```python\nparts = "):
        start = readme.index(marker)
        blocks.append(readme[start + len("```python\n"):readme.index("```", start + 10)])
    first = blocks[0].replace("audio_end_in_s=10.0", "audio_end_in_s=1.0").replace("num_inference_steps=50",
                                                                                   "num_inference_steps=2")
    first = first.replace('"chorale.flac"', repr(str(tmp_path / "chorale.flac")))
    long = blocks[1].replace("seconds=180,", "seconds=40, num_inference_steps=2,")
    assert long != blocks[1]
    monkeypatch.chdir(DEFAULT_MODEL.parents[1])
    namespace = {}
    exec(compile(first + long.replace('"dance.flac"', repr(str(tmp_path / "dance.flac"))), "README.md", "exec"),
         namespace)
    info = sf.info(tmp_path / "dance.flac")
    assert (info.samplerate, info.channels, info.frames) == (48000, 2, 40 * 48000)
