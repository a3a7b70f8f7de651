"""sample.py at its edges (issue 22): every user error is one `audiodit: error:` line with exit 2,
found before the model loads; no clip of a run replaces another; a stopped or failing run keeps
what it finished and leaves no audio without its sidecar; files honour the umask; lossy formats."""

import errno
import json
import math
import os
import struct

import numpy as np
import pytest
import soundfile as sf

from audiodit import cli


@pytest.fixture
def no_model_load(monkeypatch):
    """Fail the test if the pipeline is loaded: the error must come before any heavy work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the bad input was reported")

    monkeypatch.setattr(cli, "load_pipeline", refuse)


def run(capsys, *args):
    code = cli.main([str(arg) for arg in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *needles):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("audiodit: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


@pytest.mark.parametrize("args, needle", [
    (["--duration", "nan"], "--duration"),
    (["--duration", "inf"], "--duration"),
    (["--duration", "4000"], "--duration 4000 exceeds the long-form maximum of 3600 s"),
    (["--start", "nan"], "--start"),
    (["--guidance", "nan"], "--guidance"),
    (["--steps", "1000000000"], "--steps must be at most"),
    (["--variations", "100000"], "--variations must be at most"),
    (["--interpolate-to", "b", "--interpolation-steps", "5000"], "--interpolation-steps"),
    (["--overwrite", "--skip-existing"], "--skip-existing"),
    (["--device", "banana"], "--device"),
    (["--out", "clip.m4a"], "cannot write .m4a"),
    (["--out", "clip.mp3", "--format", "wav"], "disagree"),
])
def test_bad_values_are_one_line_before_the_model_loads(model_dir, tmp_path, capsys, no_model_load, args, needle):
    args = [a.replace("clip.", str(tmp_path / "clip.")) for a in args]
    code, _, err = run(capsys, "--model", model_dir, "--prompt", "a", "--duration", "1", "--out", tmp_path / "out",
                       *args)  # the tiny model makes at most 5 s; a later flag wins
    assert_one_line_error(code, err, needle)


def test_cuda_without_cuda_is_refused_before_loading(model_dir, tmp_path, capsys, no_model_load):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal is for machines without it")
    code, _, err = run(capsys, "--model", model_dir, "--prompt", "a", "--duration", "1", "--device", "cuda",
                       "--out", tmp_path / "o")
    assert_one_line_error(code, err, "--device cuda", "CUDA is not available")


def _flac_claiming(path, frames: int):
    """A valid one-second FLAC whose STREAMINFO header claims `frames` samples."""
    sf.write(path, np.zeros((48000, 2), dtype=np.float32), 48000, format="FLAC")
    data = bytearray(path.read_bytes())
    assert data[:4] == b"fLaC"
    start = 8 + 10  # "fLaC", the block header, then min/max block and frame sizes
    (packed,) = struct.unpack(">Q", bytes(data[start:start + 8]))
    packed = (packed & ~((1 << 36) - 1)) | (frames & ((1 << 36) - 1))
    data[start:start + 8] = struct.pack(">Q", packed)
    path.write_bytes(bytes(data))


def _bad_init_audio(kind, tmp_path):
    path = tmp_path / f"{kind}.wav"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("this is not audio\n")
    elif kind == "truncated":
        sf.write(path, np.zeros((48000, 2), dtype=np.int16), 48000, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:30])  # cut inside the header
    elif kind == "nan":
        sf.write(path, np.full((4800, 2), np.nan, dtype=np.float32), 48000, subtype="FLOAT")
    elif kind == "no_samples":
        sf.write(path, np.zeros((0, 2), dtype=np.int16), 48000, subtype="PCM_16")
    elif kind == "absurd_header":
        path = tmp_path / "absurd.flac"
        _flac_claiming(path, 2**36 - 1)  # 16 days of audio: must not be allocated
    return path


@pytest.mark.parametrize("kind", ["empty", "text", "truncated", "nan", "no_samples", "absurd_header"])
def test_bad_init_audio_is_one_line_before_the_model_loads(model_dir, tmp_path, capsys, no_model_load, kind):
    path = _bad_init_audio(kind, tmp_path)
    code, _, err = run(capsys, "--model", model_dir, "--prompt", "a", "--init-audio", path, "--strength", "0.5",
                       "--out", tmp_path / "out")
    assert_one_line_error(code, err, "--init-audio")


def test_inpaint_past_the_end_of_the_init_audio_is_refused(model_dir, tmp_path, capsys, no_model_load):
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.zeros((48000, 2), dtype=np.float32), 48000)
    code, _, err = run(capsys, "--model", model_dir, "--prompt", "a", "--init-audio", clip, "--inpaint", "0.5", "3",
                       "--out", tmp_path / "out")
    assert_one_line_error(code, err, "--inpaint", "past the end")


def test_prompts_file_that_is_not_utf8_is_named(model_dir, tmp_path, capsys, no_model_load):
    prompts = tmp_path / "prompts.txt"
    prompts.write_bytes(b"a piano\n\xff\xfe organ\n")
    code, _, err = run(capsys, "--model", model_dir, "--prompts-file", prompts, "--out", tmp_path / "out")
    assert_one_line_error(code, err, "--prompts-file", "not UTF-8")


def test_output_directory_that_cannot_be_written_is_refused_up_front(model_dir, tmp_path, capsys, no_model_load):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = run(capsys, "--model", model_dir, "--prompt", "a", "--duration", "1", "--out", blocker / "sub")
    assert_one_line_error(code, err, "cannot write to output directory")


def test_clips_that_map_to_one_name_get_distinct_files(model_dir, tmp_path, capsys):
    long = "a slow organ chorale in a minor key with a long held pedal note under it"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(["organ", "organ", long + " one", long + " two"]) + "\n")
    out = tmp_path / "out"
    for extra in ([], ["--overwrite"]):  # --overwrite must not let one clip of the run replace another
        code, stdout, err = run(capsys, "--model", model_dir, "--prompts-file", prompts, "--duration", "0.3",
                                "--steps", "1", "--out", out, "--quiet", *extra)
        assert code == 0, err
        written = stdout.split()
        assert len(written) == len(set(written)) == 4
    sidecars = {path.name: json.loads(path.read_text())["prompt"] for path in out.glob("*.json")}
    assert sorted(sidecars.values()) == sorted(["organ", "organ", long + " one", long + " two"])
    assert "organ_seed0-2.json" in sidecars


def test_a_stopped_run_keeps_its_finished_clips_and_skip_existing_resumes(model_dir, tmp_path, capsys, monkeypatch):
    from audiodit.pipeline import AudioDiTPipeline

    monkeypatch.setattr(cli, "CHUNK", 2)
    calls = []
    original = AudioDiTPipeline.__call__

    def stop_on_second_chunk(self, *args, **kwargs):
        calls.append(kwargs["num_waveforms_per_prompt"])
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user stops a long run
        return original(self, *args, **kwargs)

    monkeypatch.setattr(AudioDiTPipeline, "__call__", stop_on_second_chunk)
    out = tmp_path / "out"
    args = ["--model", str(model_dir), "--prompt", "organ", "--variations", "5", "--duration", "0.3", "--steps", "1",
            "--out", str(out), "--quiet"]
    with pytest.raises(KeyboardInterrupt):
        cli.main(args)
    assert capsys.readouterr().out.split() == [str(out / "organ_seed0.wav"), str(out / "organ_seed1.wav")]
    kept = sorted(path.name for path in out.glob("*.wav"))
    assert kept == ["organ_seed0.wav", "organ_seed1.wav"] and calls == [2, 2]
    assert all(path.with_suffix(".json").is_file() for path in out.glob("*.wav"))
    before = {name: (out / name).read_bytes() for name in kept}
    monkeypatch.setattr(AudioDiTPipeline, "__call__", original)
    code, stdout, err = run(capsys, *args, "--skip-existing")
    assert code == 0, err
    assert sorted(os.path.basename(p) for p in stdout.split()) == [f"organ_seed{k}.wav" for k in (2, 3, 4)]
    assert {name: (out / name).read_bytes() for name in kept} == before
    code, stdout, err = run(capsys, *args, "--skip-existing")
    assert code == 0 and stdout == "" and "exists already" in err


def test_a_full_disk_leaves_no_audio_without_its_sidecar(model_dir, tmp_path, capsys, monkeypatch):
    def disk_full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(cli, "atomic_write_text", disk_full)
    out = tmp_path / "out"
    code, _, err = run(capsys, "--model", model_dir, "--prompt", "organ", "--duration", "0.3", "--steps", "1",
                       "--out", out, "--quiet")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "No space left on device" in err
    assert list(out.glob("*.wav")) == [] and list(out.glob("*.tmp")) == []


def test_outputs_honour_the_umask_and_lossy_formats_are_files(model_dir, tmp_path, capsys, monkeypatch):
    from audiodit import configuration

    monkeypatch.setattr(configuration, "_UMASK", None)  # read again under the umask set here
    old = os.umask(0o022)
    try:
        outputs = {}
        for fmt in ("mp3", "ogg", "opus", "flac"):
            path = tmp_path / f"clip_{fmt}.{fmt}"  # the sidecar is <stem>.json
            code, _, err = run(capsys, "--model", model_dir, "--prompt", "organ", "--duration", "1", "--steps", "1",
                               "--out", path, "--quiet")
            assert code == 0, err
            assert path.is_file(), f"--out clip.{fmt} must write a file"
            outputs[fmt] = path
            for written in (path, path.with_suffix(".json")):
                assert written.stat().st_mode & 0o777 == 0o644, (written, oct(written.stat().st_mode))
        assert sf.info(outputs["mp3"]).format == "MP3" and sf.info(outputs["ogg"]).subtype == "VORBIS"
        assert sf.info(outputs["opus"]).subtype == "OPUS"
        # Lossy, but the same clip: its level within a few dB of the lossless copy's.
        reference, _ = sf.read(outputs["flac"], dtype="float32")
        for fmt in ("mp3", "ogg", "opus"):
            decoded, rate = sf.read(outputs[fmt], dtype="float32")
            assert rate == 48000 and decoded.shape[1] == 2
            level = 10 * math.log10(np.mean(decoded ** 2) / np.mean(reference ** 2))
            assert abs(level) < 3.0, (fmt, level)
    finally:
        os.umask(old)


def test_file_names_that_are_not_utf8_are_written_and_printed(model_dir, tmp_path, capsysbinary):
    name = os.fsdecode(b"clip-\xff.wav")  # a byte that is not UTF-8, as the OS hands it over
    code = cli.main(["--model", str(model_dir), "--prompt", "organ", "--duration", "0.3", "--steps", "1",
                     "--out", str(tmp_path / name), "--quiet"])
    captured = capsysbinary.readouterr()
    assert code == 0, captured.err
    assert captured.out == os.fsencode(tmp_path / name) + b"\n"  # the name's own bytes, like ls prints them
    assert (tmp_path / name).is_file() and (tmp_path / name).with_suffix(".json").is_file()


def test_init_audio_whose_name_is_not_utf8_is_read(model_dir, tmp_path, capsys):
    clip = tmp_path / "clip.wav"
    sf.write(clip, 0.1 * np.ones((24000, 2), dtype=np.float32), 48000)
    odd = os.path.join(os.fsencode(tmp_path), b"init-\xff.wav")
    os.rename(clip, odd)
    code, _, err = run(capsys, "--model", model_dir, "--prompt", "organ", "--init-audio", os.fsdecode(odd),
                       "--strength", "0.5", "--steps", "1", "--out", tmp_path / "out", "--quiet")
    assert code == 0, err
    assert len(list((tmp_path / "out").glob("*.wav"))) == 1


def test_errors_found_by_the_pipeline_name_the_flags(model_dir, tmp_path, capsys, monkeypatch):
    # Checks that need the loaded model (e.g. how long a continuation may get) are the pipeline's;
    # their messages reach the user in flag terms, not as Python argument names.
    from audiodit.pipeline import AudioDiTPipeline

    def refuse(self, *args, **kwargs):
        raise ValueError("`continuation_in_s` (40 s) with `initial_audio` exceeds the maximum")

    monkeypatch.setattr(AudioDiTPipeline, "__call__", refuse)
    code, _, err = run(capsys, "--model", model_dir, "--prompt", "organ", "--duration", "1", "--steps", "1",
                       "--out", tmp_path / "out", "--quiet")
    assert_one_line_error(code, err, "--continue (40 s) with --init-audio exceeds")
    assert not list((tmp_path / "out").glob("*.wav"))


def test_skip_existing_remakes_a_clip_left_without_its_sidecar(model_dir, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--model", model_dir, "--prompt", "organ", "--variations", "2", "--duration", "0.3", "--steps", "1",
            "--out", out, "--quiet"]
    assert run(capsys, *args)[0] == 0
    (out / "organ_seed1.json").unlink()  # killed between the audio and its sidecar
    code, stdout, err = run(capsys, *args, "--skip-existing")
    assert code == 0, err
    assert [os.path.basename(p) for p in stdout.split()] == ["organ_seed1.wav"]
    assert (out / "organ_seed1.json").is_file()


def test_a_model_saving_absurd_default_steps_needs_steps(model_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    index = json.loads((model / "model_index.json").read_text())
    index["default_num_inference_steps"] = 10**9
    (model / "model_index.json").write_text(json.dumps(index))
    code, _, err = run(capsys, "--model", model, "--prompt", "organ", "--duration", "0.3", "--out", tmp_path / "a")
    assert_one_line_error(code, err, "default steps", "--steps")
    code, _, err = run(capsys, "--model", model, "--prompt", "organ", "--duration", "0.3", "--steps", "1",
                       "--out", tmp_path / "b", "--quiet")
    assert code == 0, err


def test_a_model_with_missing_weights_is_one_line_about_the_model(model_dir, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    (model / "weights_digests.json").unlink()  # hand-made: no digests to name the file
    (model / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    code, _, err = run(capsys, "--model", model, "--prompt", "organ", "--duration", "0.3", "--out", tmp_path / "o")
    assert_one_line_error(code, err, "cannot load the model at")


def test_vae_swaps_in_a_decoder_with_the_models_encoder_and_refuses_another(model_dir, tmp_path, capsys):
    import torch

    from audiodit.cli import main
    from audiodit.models.vae import AudioVAE

    same = AudioVAE.from_pretrained(str(model_dir / "vae"))
    with torch.no_grad():  # a "fine-tuned decoder": the encoder untouched
        for name, parameter in same.named_parameters():
            if name.startswith("decoder"):
                parameter.add_(0.05 * torch.randn_like(parameter))
    same.save_pretrained(str(tmp_path / "decoder"))
    other = AudioVAE.from_pretrained(str(model_dir / "vae"))
    with torch.no_grad():
        next(p for n, p in other.named_parameters() if n.startswith("encoder")).add_(1.0)
    other.save_pretrained(str(tmp_path / "other"))
    common = ["--model", str(model_dir), "--prompt", "a march", "--duration", "0.5", "--steps", "2", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "base.wav")]) == 0
    assert main([*common, "--vae", str(tmp_path / "decoder"), "--out", str(tmp_path / "swapped.wav")]) == 0
    from audiodit.audio import load_audio

    assert not torch.allclose(load_audio(tmp_path / "base.wav"), load_audio(tmp_path / "swapped.wav"), atol=1e-4)
    assert json.loads((tmp_path / "swapped.json").read_text())["vae"] == str(tmp_path / "decoder")
    capsys.readouterr()
    assert main([*common, "--vae", str(tmp_path / "other"), "--out", str(tmp_path / "x.wav")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "encodes differently from the model's VAE" in err[0], err
