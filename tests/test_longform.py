"""audiodit/longform.py: window plans, timing placement on the beat grid, the streaming decoder
against a whole decode, continuity between windows, prompt sections, and the CLI's long-form path."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audiodit.audio import AudioStreamWriter, partial_path
from audiodit.cli import main
from audiodit.longform import (StreamingDecoder, default_drop, beat_period_beats, check_sections,
                               check_window, model_start_seconds, plan_windows, section_prompt)
from audiodit.testing import TINY_MAX_SECONDS, tiny_pipeline


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline(seed=0, tempo_conditioning=True, beat_conditioning=True)


@pytest.mark.parametrize("total,window,context,drop", [(1, 10, 2, 1), (10, 10, 2, 1), (11, 10, 2, 1),
                                                       (237, 40, 9, 5), (500, 33, 0, 0), (64, 8, 3, 4)])
def test_windows_cover_the_piece_once_each_going_on_from_its_context(total, window, context, drop):
    windows = plan_windows(total, window, context, drop)
    assert windows[0].start == 0 and windows[0].context == 0 and windows[-1].end == total
    committed = 0
    for before, after in zip(windows, windows[1:]):
        assert after.start == before.committed - context and after.context == context
        assert before.keep == before.frames - drop  # the end of every window but the last is made again
    for window_plan in windows:
        assert window_plan.frames <= window
        assert window_plan.start + window_plan.context == committed  # new frames start where the piece stopped
        committed = window_plan.committed
    assert committed == total


def test_bad_window_plans_are_refused():
    for args in [(0, 10, 2), (10, 0, 0), (10, 10, 10), (10, 10, -1), (10, 10, 5, 5)]:
        with pytest.raises(ValueError):
            plan_windows(*args)


def test_beat_grid_repeats_every_twelve_beats():
    assert beat_period_beats() == 12  # bars of 3 and of 4 beats line up again after 12


@pytest.mark.parametrize("bpm", [None, 60.0, 97.0, 128.0])
def test_model_start_maps_the_piece_onto_the_model_and_keeps_the_beat_phase(bpm):
    period = None if bpm is None else 12 * 60 / bpm
    piece, window = 180.0, 24.0
    most = 30.0 if period is None else window + period + 0.5  # room for one beat-grid period
    starts = [model_start_seconds(s, window, piece, most, period) for s in np.arange(0.0, piece - window + 1e-9, 17)]
    assert all(0.0 <= s <= most - window + 1e-9 for s in starts)
    assert model_start_seconds(0.0, window, piece, most, period) == pytest.approx(0.0)
    if period is None:
        assert model_start_seconds(piece - window, window, piece, most) == pytest.approx(most - window)
        assert starts == sorted(starts)  # beginning, middle, end: in order
    else:
        for true_start, start in zip(np.arange(0.0, piece - window + 1e-9, 17), starts):
            phase = (start - true_start) / period
            assert abs(phase - round(phase)) < 1e-9  # the same place on the beat grid
    assert model_start_seconds(0.0, 10.0, 8.0, most, period) == 0.0  # a piece shorter than a window
    # No time with the same beat phase fits: the place in the piece wins.
    assert model_start_seconds(80.0, 24.0, 180.0, 30.0, 12.0) == pytest.approx(6.0 * 80.0 / 156.0)  # 80 = 8 mod 12


def test_window_leaves_room_for_a_beat_grid_period(pipe):
    """A tempo whose 12-beat period would not fit beside the default window gets a shorter one."""
    from audiodit.longform import long_window_seconds

    assert long_window_seconds(pipe, None, float("nan")) == TINY_MAX_SECONDS
    assert long_window_seconds(pipe, None, 1200.0) == pytest.approx(TINY_MAX_SECONDS - 0.6)  # period 0.6 s
    assert long_window_seconds(pipe, 4.0, 1200.0) == 4.0  # asked for: kept
    assert long_window_seconds(pipe, None, 30.0) == TINY_MAX_SECONDS  # period 24 s: no window fits, keep it


def test_streaming_decoder_equals_decoding_the_whole_piece(pipe):
    """Parts decoded with margins and the phase advance's offset, pushed in uneven pieces, give the
    whole piece's decode (the decoder's own phase; its reach is inside the margin)."""
    vae = pipe.vae
    vae.register_to_config(output_phase="decoder")
    generator = torch.Generator().manual_seed(1)
    latents = torch.randn(1, vae.latent_channels, 173, generator=generator)  # scaled latents
    scale = pipe.latent_scale
    decoder = StreamingDecoder(vae, scale)
    parts, start = [], 0
    for size in (40, 3, 55, 1, 74):
        parts.append(decoder.push(latents[..., start:start + size]))
        start += size
    parts.append(decoder.finish())
    streamed = torch.cat(parts, dim=-1)
    with torch.no_grad():
        whole = vae.decode(latents / scale).sample
    assert streamed.shape == whole.shape == (1, vae.audio_channels, 173 * vae.hop_length)
    assert torch.allclose(streamed, whole, atol=1e-5)
    assert sum(part.shape[-1] > 0 for part in parts) >= 3  # audio came out before the end
    with pytest.raises(ValueError, match="first_latent_frame"):
        vae.decode(latents, first_latent_frame=-1)


def test_each_window_goes_on_from_the_piece_so_far(pipe, monkeypatch):
    """Window n + 1 starts with window n's last kept latents, exactly, and the piece has the
    length asked for; a second run with the seed is the same audio."""
    calls = []
    original = type(pipe)._generate  # the one-window path each window takes

    def spy(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        calls.append((args, kwargs, out.audios.clone()))
        return out

    monkeypatch.setattr(type(pipe), "_generate", spy)
    seconds = 13.3
    audio = torch.cat(list(pipe.generate_long("a march, 120 BPM", seconds, window_seconds=TINY_MAX_SECONDS,
                                              context_seconds=1.0, generator=torch.Generator().manual_seed(5),
                                              progress=False)), dim=-1)
    assert audio.shape == (1, 2, int(round(seconds * pipe.sampling_rate)))
    assert torch.isfinite(audio).all() and audio.abs().max() > 0
    rate = pipe.vae.latent_rate
    windows = plan_windows(pipe.vae.latent_frames(audio.shape[-1]), int(round(TINY_MAX_SECONDS * rate)),
                           int(round(rate)), int(round(default_drop(TINY_MAX_SECONDS) * rate)))
    assert len(calls) == len(windows) >= 3
    for index in range(1, len(windows)):
        before, after = calls[index - 1][2], calls[index][2]
        context = windows[index].context
        assert torch.equal(after[..., :context], before[..., windows[index - 1].keep - context:windows[index - 1].keep])
    for (_, kwargs, _) in calls:  # the tempo of the prompt, every window
        assert kwargs["bpm"] == 120.0 and kwargs["output_type"] == "latent"
    again = torch.cat(list(pipe.generate_long("a march, 120 BPM", seconds, window_seconds=TINY_MAX_SECONDS,
                                              context_seconds=1.0, generator=torch.Generator().manual_seed(5),
                                              progress=False)), dim=-1)
    assert torch.equal(audio, again)


def test_sections_change_the_prompt_where_their_window_starts(pipe, monkeypatch):
    prompts = []
    original = type(pipe)._generate

    def spy(self, prompt=None, *args, **kwargs):
        prompts.append(prompt)
        return original(self, prompt, *args, **kwargs)

    monkeypatch.setattr(type(pipe), "_generate", spy)
    list(pipe.generate_long(None, 12.0, sections=[(6.0, "strings"), (0.0, "piano")], window_seconds=4.0,
                            context_seconds=0.5, progress=False))
    assert prompts[0] == "piano" and prompts[-1] == "strings" and set(prompts) == {"piano", "strings"}
    assert section_prompt([(0.0, "a"), (5.0, "b")], 4.99) == "a" and section_prompt([(0.0, "a"), (5.0, "b")], 5) == "b"
    for bad in ([], [(1.0, "late start")], [(0.0, "a"), (12.0, "at the end")], [(0.0, " ")], [(math.nan, "a")]):
        with pytest.raises(ValueError):
            check_sections(bad, 12.0)


def test_arguments_generate_long_sets_itself_are_refused(pipe):
    with pytest.raises(ValueError, match="`latents`, `output_type`"):
        next(pipe.generate_long("a", 12.0, latents=None, output_type="np", progress=False))
    with pytest.raises(ValueError, match="`seconds` must be positive"):
        next(pipe.generate_long("a", math.nan, progress=False))


def test_window_and_context_are_checked():
    check_window(24.0, 6.0, 30.0)
    for window, context in [(31.0, 6.0), (0.0, 0.0), (24.0, 21.5), (24.0, -1.0), (math.nan, 1.0)]:
        with pytest.raises(ValueError):
            check_window(window, context, 30.0)


def test_stream_writer_keeps_what_was_written_and_commits_whole(tmp_path):
    path = tmp_path / "piece.wav"
    writer = AudioStreamWriter(path)
    writer.write(np.full((2, 4800), 0.25, np.float32))
    writer.write(np.full((2, 2400), 1.5, np.float32))  # beyond full scale: clipped and counted
    assert sf.info(str(partial_path(path))).frames == 7200 and not path.exists()  # a kill here keeps 7200
    assert writer.clipped == 2 * 2400
    assert writer.commit() == path and not partial_path(path).exists()
    audio, rate = sf.read(str(path), always_2d=True)
    assert rate == 48000 and audio.shape == (7200, 2) and np.abs(audio).max() <= 1.0
    with pytest.raises(FileExistsError):
        AudioStreamWriter(path)
    with pytest.raises(ValueError, match="suffix"):
        AudioStreamWriter(tmp_path / "piece.m4a")


def test_cli_makes_a_piece_longer_than_the_model_and_records_how(model_dir, tmp_path):
    out = tmp_path / "long.flac"
    code = main(["--model", str(model_dir), "--prompt", "a waltz", "--section", "6", "a march", "--duration", "11",
                 "--steps", "2", "--window", "4", "--out", str(out), "--quiet"])
    assert code == 0
    info = sf.info(str(out))
    assert info.frames == 11 * 48000 and info.channels == 2 and not partial_path(out).exists()
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["duration"] == 11.0
    assert sidecar["long_form"]["sections"] == [[0.0, "a waltz"], [6.0, "a march"]]
    assert sidecar["long_form"]["window"] == 4.0 and sidecar["long_form"]["window_context"] == 1.0
    assert sidecar["normalize"] == {"mode": "none", "gain_db": 0.0}  # written as made: no levelling


@pytest.mark.parametrize("args,message", [
    (["--duration", "3", "--window", "2"], "--window is for long-form"),
    (["--duration", "12", "--window", "9"], "--window must be in (0, 5]"),
    (["--duration", "12", "--window-context", "3"], "--window-context must be in [0, 2.5]"),
    (["--duration", "12", "--section", "12", "x"], "--section 12 must start inside the piece"),
    (["--duration", "12", "--section", "soon", "x"], "--section needs SECONDS PROMPT"),
    (["--duration", "4000"], "--duration 4000 exceeds the long-form maximum of 3600 s"),
    (["--duration", "12", "--interpolate-to", "x"], "interpolation makes clips of at most 5 s"),
    (["--duration", "12", "--normalize", "peak"], "--normalize peak is not available for long-form pieces"),
])
def test_bad_long_form_arguments_exit_2_with_one_line(model_dir, capsys, args, message):
    code = main(["--model", str(model_dir), "--prompt", "a", *args, "--out", "unused.wav"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
