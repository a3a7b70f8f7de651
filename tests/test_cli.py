"""sample.py / `audiodit` command: outputs, sidecars, no-clobber, and one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from audiodit.audio import load_audio
from audiodit.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _sample(*args, cwd=None):
    return subprocess.run(
        [sys.executable, str(ROOT / "sample.py"), *map(str, args)],
        capture_output=True, text=True, cwd=cwd or ROOT, timeout=300,
    )


def test_generates_files_with_sidecars_and_refuses_to_overwrite(model_dir, tmp_path):
    out = tmp_path / "out"
    result = _sample("--model", model_dir, "--prompt", "a piano melody", "--duration", "0.7", "--steps", "2",
                     "--variations", "2", "--seed", "5", "--out", out, "--format", "flac", "--quiet")
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.flac"))
    assert len(files) == 2
    for path, seed in zip(files, (5, 6)):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (48000, 2, int(0.7 * 48000))
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["prompt"] == "a piano melody" and sidecar["seed"] == seed
        assert sidecar["num_inference_steps"] == 2 and sidecar["duration"] == pytest.approx(0.7)
        # The scales used, resolved from the model's defaults, not "not given".
        assert sidecar["key_guidance_scale"] == 0.0 and sidecar["key_classifier_scale"] == 0.0
    before = files[0].read_bytes()
    again = _sample("--model", model_dir, "--prompt", "a piano melody", "--duration", "0.7", "--steps", "2",
                    "--variations", "2", "--seed", "5", "--out", out, "--format", "flac")
    assert again.returncode == 2
    assert "overwrite" in again.stderr and "Traceback" not in again.stderr
    assert files[0].read_bytes() == before


def test_sidecar_reproduces_a_variation_alone(model_dir, tmp_path):
    assert main(["--model", str(model_dir), "--prompt", "organ", "--duration", "0.5", "--steps", "2",
                 "--variations", "2", "--seed", "1", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    second = sorted((tmp_path / "a").glob("*.wav"))[1]
    seed = json.loads(second.with_suffix(".json").read_text())["seed"]
    assert main(["--model", str(model_dir), "--prompt", "organ", "--duration", "0.5", "--steps", "2",
                 "--seed", str(seed), "--out", str(tmp_path / "b.wav"), "--quiet"]) == 0
    torch.testing.assert_close(load_audio(second), load_audio(tmp_path / "b.wav"), atol=2e-4, rtol=0)


def test_editing_modes_and_prompts_file(model_dir, tmp_path):
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.1 * torch.randn(48000, 2).numpy(), 48000)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# comment\nstrings\n\nbrass\n")
    common = ["--model", str(model_dir), "--steps", "2", "--quiet"]
    assert main(common + ["--prompts-file", str(prompts), "--duration", "0.5", "--out", str(tmp_path / "p")]) == 0
    assert len(list((tmp_path / "p").glob("*.wav"))) == 2
    assert main(common + ["--prompt", "x", "--init-audio", str(clip), "--strength", "0.5",
                          "--out", str(tmp_path / "a2a.wav")]) == 0
    assert sf.info(tmp_path / "a2a.wav").frames == 48000
    assert main(common + ["--prompt", "x", "--init-audio", str(clip), "--inpaint", "0.2", "0.6",
                          "--out", str(tmp_path / "inpaint.wav")]) == 0
    assert main(common + ["--prompt", "x", "--init-audio", str(clip), "--continue", "0.5",
                          "--out", str(tmp_path / "cont.wav")]) == 0
    assert sf.info(tmp_path / "cont.wav").frames == 72000
    assert main(common + ["--prompt", "x", "--interpolate-to", "y", "--interpolation-steps", "3",
                          "--duration", "0.5", "--out", str(tmp_path / "interp")]) == 0
    walk = sorted((tmp_path / "interp").glob("*.wav"))
    assert len(walk) == 3
    # one gain for the whole walk: its loudness changes stay, its loudest point peaks at -1 dBFS
    gains = {json.loads(path.with_suffix(".json").read_text())["normalize"]["gain_db"] for path in walk}
    assert len(gains) == 1
    assert 20 * torch.log10(max(load_audio(path).abs().max() for path in walk)) == pytest.approx(-1.0, abs=0.01)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt", "x", "--duration", "-1"], "--duration"),
        (["--prompt", "x", "--duration", "100000"], "maximum"),
        (["--prompt", "x", "--init-audio", "missing.wav", "--strength", "0.5"], "not found"),
        (["--prompt", "x", "--strength", "1.5", "--init-audio", "README.md"], "--strength"),
        (["--prompt", "x", "--strength", "0.5"], "--init-audio"),
        (["--prompts-file", "nope.txt"], "prompts file"),
        ([], "--prompt"),
        (["--prompt", "x", "--model", "/nonexistent"], "model_index.json"),
        (["--prompt", "x", "--steps", "0"], "--steps"),
        (["--prompt", "x", "--key-guidance", "-1"], "--key-guidance"),
        (["--prompt", "x in D minor", "--duration", "1", "--key-guidance", "2"], "key conditioning"),
        (["--prompt", "x", "--key-classifier-scale", "-1"], "--key-classifier-scale"),
        (["--prompt", "x in D minor", "--duration", "1", "--key-classifier-scale", "2"], "key_classifier"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(model_dir, capsys, args, message):
    if "--model" not in args:
        args = ["--model", str(model_dir)] + args
    assert main(args + ["--out", "/tmp/never-written"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_bad_arguments_print_no_traceback_in_a_subprocess(model_dir):
    result = _sample("--model", model_dir, "--prompt", "x", "--duration", "-3")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("audiodit: error:") and "Traceback" not in result.stderr


def test_output_phase_overrides_the_models_and_is_recorded(model_dir, tmp_path):
    outputs = {}
    from audiodit.models.vae import OUTPUT_PHASES

    for phase in OUTPUT_PHASES:  # every phase the VAE has, through the CLI
        path = tmp_path / f"{phase}.wav"
        assert main(["--model", str(model_dir), "--prompt", "organ", "--duration", "0.5", "--steps", "2",
                     "--output-phase", phase, "--out", str(path), "--quiet"]) == 0
        assert json.loads(path.with_suffix(".json").read_text())["output_phase"] == phase
        outputs[phase] = load_audio(path)
    assert outputs["decoder"].shape == outputs["magnitude"].shape == (2, 24000)
    assert not torch.allclose(outputs["decoder"], outputs["magnitude"], atol=1e-3)
    assert outputs["rebuilt"].shape == (2, 24000) and not torch.allclose(outputs["rebuilt"], outputs["decoder"], atol=1e-3)


def test_compile_compiles_the_transformer_and_gives_the_same_audio(model_dir, tmp_path, monkeypatch):
    from audiodit import cli

    compiled, load = [], cli.load_pipeline

    def spy(*args, **kwargs):
        pipe = load(*args, **kwargs)
        compiled.append(pipe.transformer._compiled_call_impl is not None)  # what nn.Module.compile sets
        return pipe

    monkeypatch.setattr(cli, "load_pipeline", spy)
    audio = {}
    for flags in ([], ["--compile"]):
        path = tmp_path / f"compiled{len(flags)}.wav"
        assert main(["--model", str(model_dir), "--prompt", "organ", "--duration", "0.5", "--steps", "2",
                     "--out", str(path), "--quiet", *flags]) == 0
        audio[len(flags)] = load_audio(path)
        assert json.loads(path.with_suffix(".json").read_text())["compiled"] == bool(flags)
    assert compiled == [False, True]
    torch.testing.assert_close(audio[1], audio[0], atol=1e-3, rtol=0)


def test_new_clips_are_levelled_and_edits_keep_their_level(model_dir, tmp_path, capsys):
    """--normalize: new clips peak at -1 dBFS by default, match `none` up to that one gain, and
    say so in the sidecar; --level and rms move the target; edits keep their level unless asked."""
    common = ["--model", str(model_dir), "--prompt", "organ", "--duration", "0.5", "--steps", "2", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "peak.wav")]) == 0
    assert main([*common, "--out", str(tmp_path / "raw.wav"), "--normalize", "none"]) == 0
    assert main([*common, "--out", str(tmp_path / "rms.wav"), "--normalize", "rms", "--level", "-30"]) == 0
    peak, raw, rms = (load_audio(tmp_path / f"{name}.wav") for name in ("peak", "raw", "rms"))
    sidecar = json.loads((tmp_path / "peak.json").read_text())["normalize"]
    assert sidecar["mode"] == "peak"
    assert 20 * torch.log10(peak.abs().max()) == pytest.approx(-1.0, abs=0.01)
    # the same clip up to one gain (a raw clip over full scale is scaled down when saved, so compare shapes)
    torch.testing.assert_close(peak / peak.abs().max(), raw / raw.abs().max(), atol=3e-4, rtol=0)
    assert json.loads((tmp_path / "raw.json").read_text())["normalize"] == {"mode": "none", "gain_db": 0.0}
    level = 20 * torch.log10(rms.pow(2).mean().sqrt())
    assert level == pytest.approx(-30.0, abs=0.05) or 20 * torch.log10(rms.abs().max()) == pytest.approx(-1.0, abs=0.01)
    # an edit keeps the given audio's level by default
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.01 * torch.randn(48000, 2).numpy(), 48000)
    assert main([*common[:4], "--steps", "2", "--quiet", "--init-audio", str(clip), "--inpaint", "0.2", "0.4",
                 "--out", str(tmp_path / "edit.wav")]) == 0
    assert main([*common[:4], "--steps", "2", "--quiet", "--init-audio", str(clip), "--inpaint", "0.2", "0.4",
                 "--normalize", "none", "--out", str(tmp_path / "edit_none.wav")]) == 0
    assert torch.equal(load_audio(tmp_path / "edit.wav"), load_audio(tmp_path / "edit_none.wav"))
    assert json.loads((tmp_path / "edit.json").read_text())["normalize"]["mode"] == "none"
    # bad requests: one line each
    capsys.readouterr()
    assert main([*common, "--out", str(tmp_path / "x.wav"), "--normalize", "none", "--level", "-3"]) == 2
    assert "--level needs --normalize peak or rms" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "y.wav"), "--level", "3"]) == 2
    assert "--level must be a finite dBFS value <= 0" in capsys.readouterr().err


def test_guidance_interval_reaches_the_pipeline_and_the_sidecar(model_dir, tmp_path, monkeypatch):
    from audiodit.pipeline import AudioDiTPipeline

    seen = []
    original = AudioDiTPipeline.prepare_conditioning

    def spy(self, *args, **kwargs):
        conditioning = original(self, *args, **kwargs)
        seen.append(conditioning.guidance_interval)
        return conditioning

    monkeypatch.setattr(AudioDiTPipeline, "prepare_conditioning", spy)
    out = tmp_path / "a.wav"
    assert main(["--model", str(model_dir), "--prompt", "organ", "--duration", "0.5", "--steps", "2",
                 "--guidance", "3", "--guidance-interval", "0.2", "0.8", "--out", str(out), "--quiet"]) == 0
    assert seen == [(0.2, 0.8)]
    assert json.loads(out.with_suffix(".json").read_text())["guidance_interval"] == [0.2, 0.8]
