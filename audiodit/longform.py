"""Any length from one prompt: windows of at most the model's length, each inpainted after the end of
the one before, decoded and handed out as they finish.

    piece:    |---- window 0 ----|
                          |ctx|---- window 1 ----|
                                            |ctx|---- window 2 ----|

Window 0 is an ordinary text-to-audio call. Every later window starts with the last
`context_frames` latents of the piece so far, kept on their own noise path while the rest is denoised
(RePaint, as inpainting does, through the pipeline's step-end hook), so the music goes on from where it
was instead of starting again. Only latents are passed between windows: nothing is decoded and
re-encoded.

Timing: the model knows clips of at most `max_seconds` (its `seconds_start`/`seconds_total` inputs are
clamped there). A window's place in the piece is mapped onto that range (the first window starts at
0, the last ends at `max_seconds`, the rest in proportion), so the piece has a beginning, a middle and
an end. With beat conditioning the mapped start is moved to the nearest time with the same phase on
the beat grid as the window's true place (the grid repeats every `beat_period_beats` beats), so the
beat grid continues across windows.

A window's last seconds (`default_drop`: 2.5 s of a 24 s window) are not kept: the model ends a
clip there, and the next window makes them again. They are not thrown away either: they are decoded
and cross-faded, at equal power, into the next window's audio of the same time (2 s, all but the
decoder's margin), so two continuations of one context meet without a step in level or a burst of
new onsets at the join. Measured on 22 joins of four 90 s pieces (`benchmarks/long_form.py`'s
measure, 25 steps), spectral flux at the join over its controls: 2.2 with no cross-fade, 1.65 with
0.48 s, 1.37 with 1.44 s, 1.10 with 2 s.

Decoding (`StreamingDecoder`): finished latents are decoded in parts with `margin` frames of context
on each side (dropped) and the parts cross-faded over `overlap` frames; the decoder's phase advance
continues across parts (`AudioVAE.decode(first_latent_frame=...)`). Memory stays that of one window
whatever the length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch

# torch is imported where it is used: the CLI checks long-form arguments with this module before
# anything heavy is loaded.

DEFAULT_CONTEXT_SECONDS = 6.0  # or a quarter of a shorter window (`default_context`)
DEFAULT_WINDOW_SECONDS = 24.0
MIN_NEW_SECONDS = 2.0  # a window adds at least this much
# What generate_long sets in each window's pipeline call.
RESERVED_CALL_ARGUMENTS = frozenset({"audio_start_in_s", "audio_end_in_s", "latents", "output_type",
                                     "callback_on_step_end", "num_waveforms_per_prompt", "initial_audio",
                                     "strength", "inpaint_range", "continuation_in_s", "prompt_embeds"})
DROP_SECONDS = 2.5  # a window's last 2.5 s (at most a tenth of it) are made again by the next one
DECODE_MARGIN_FRAMES = 12  # 0.48 s at 25 Hz on each side of a decoded part, then dropped
DECODE_OVERLAP_FRAMES = 6  # parts cross-fade over 0.24 s


def default_context(window_seconds: float) -> float:
    """Seconds of context a window of `window_seconds` goes on from unless told."""
    return min(DEFAULT_CONTEXT_SECONDS, 0.25 * window_seconds)


def one_window_continuation(max_seconds: float) -> float:
    """The longest continuation one window adds: the model's maximum less the default context.
    Longer ones go on window by window."""
    return max_seconds - default_context(min(DEFAULT_WINDOW_SECONDS, max_seconds))


def default_drop(window_seconds: float) -> float:
    """Seconds at a window's end that the next window makes again (and cross-fades into)."""
    return min(DROP_SECONDS, 0.1 * window_seconds)


def check_window(window_seconds: float, context_seconds: float, max_seconds: float) -> None:
    """The window fits the model, and leaves room for its context, the dropped end and new audio."""
    if not math.isfinite(window_seconds) or not 0 < window_seconds <= max_seconds + 1e-6:
        raise ValueError(f"`window_seconds` must be in (0, {max_seconds:g}] (the model's maximum), "
                         f"got {window_seconds}")
    drop = default_drop(window_seconds)
    most = window_seconds - MIN_NEW_SECONDS - drop
    if not math.isfinite(context_seconds) or not 0 <= context_seconds <= most:
        raise ValueError(f"`context_seconds` must be in [0, {max(most, 0):g}] for a {window_seconds:g} s window (each "
                         f"window adds at least {MIN_NEW_SECONDS:g} s and makes its last {drop:g} s "
                         f"again), got {context_seconds}")


def long_window_seconds(pipe, window_seconds: float | None, bpm: float) -> float:
    """The window a piece is made in: the one asked for, else DEFAULT_WINDOW_SECONDS (at most the
    model's maximum), shortened for a beat-conditioned model so a beat-grid period fits beside it
    (`model_start_seconds` then keeps the beat phase) unless that leaves too short a window."""
    if window_seconds is not None:
        return window_seconds
    max_seconds = pipe.max_audio_length_s
    window = min(DEFAULT_WINDOW_SECONDS, max_seconds)
    period = beat_period_seconds(pipe, bpm)
    if period is not None:
        shortest = default_context(window) + default_drop(window) + MIN_NEW_SECONDS
        if max_seconds - period >= shortest:
            window = min(window, max_seconds - period)
    return window


def beat_period_beats() -> Fraction:
    """Beats after which every beat-grid feature repeats: the least common multiple of the periods
    (1 / cycles per beat) of `BEAT_CYCLES` (12 beats: half beats, beats, bars of 2, 3 and 4)."""
    from audiodit.models.embedders import BEAT_CYCLES

    periods = [1 / Fraction(cycles).limit_denominator(64) for cycles in BEAT_CYCLES]
    numerator = math.lcm(*(period.numerator for period in periods))
    denominator = math.gcd(*(period.denominator for period in periods))
    return Fraction(numerator, denominator)


def beat_period_seconds(pipe, bpm: float) -> float | None:
    """Seconds after which a beat-conditioned model's beat grid repeats at `bpm`; None when the
    model has no beat conditioning or no tempo is stated."""
    if not getattr(pipe.transformer.config, "beat_conditioning", False) or not math.isfinite(bpm) or bpm <= 0:
        return None
    return float(beat_period_beats()) * 60.0 / bpm


@dataclass(frozen=True)
class Window:
    start: int  # first latent frame in the piece
    frames: int  # latent frames it spans (its context included)
    context: int  # leading frames kept from the piece so far (0 for the first window)
    keep: int  # frames of it that become the piece: [start, start + keep); the rest is made again

    @property
    def end(self) -> int:
        return self.start + self.frames

    @property
    def committed(self) -> int:
        """The piece's frames up to here are final once this window is made."""
        return self.start + self.keep


def plan_windows(total_frames: int, window_frames: int, context_frames: int, drop_frames: int = 0) -> list[Window]:
    """Windows covering [0, total_frames). A window's last `drop_frames` are not kept (the model
    ends a clip there, and a clip's end decays), except where the piece ends; the next window
    begins `context_frames` before the first frame not kept and makes it again."""
    if total_frames < 1 or window_frames < 1:
        raise ValueError(f"need total_frames >= 1 and window_frames >= 1, got {total_frames}, {window_frames}")
    if not 0 <= context_frames or context_frames + drop_frames >= window_frames or drop_frames < 0:
        raise ValueError(f"need context_frames >= 0, drop_frames >= 0 and their sum < window_frames "
                         f"({window_frames}), got {context_frames} and {drop_frames}")
    windows, start, context = [], 0, 0
    while True:
        frames = min(window_frames, total_frames - start)
        last = start + frames >= total_frames
        windows.append(Window(start, frames, context, frames if last else frames - drop_frames))
        if last:
            return windows
        start, context = windows[-1].committed - context_frames, context_frames


def model_start_seconds(piece_start: float, window: float, piece: float, max_seconds: float,
                        period: float | None = None) -> float:
    """The `seconds_start` a window of `window` s at `piece_start` of a `piece` s piece is given:
    its place mapped onto [0, max_seconds - window]; with a beat-grid `period` (seconds), the time
    nearest that place with `piece_start`'s phase on the grid (when the range holds one)."""
    room = max(max_seconds - window, 0.0)
    ideal = 0.0 if piece <= window else room * piece_start / (piece - window)
    if period is None or period <= 0 or not math.isfinite(period):
        return ideal
    below = ideal - (ideal - piece_start) % period  # same phase as piece_start, at or below ideal
    candidates = [value for value in (below, below + period) if -1e-9 <= value <= room + 1e-9]
    if not candidates:
        return ideal
    return max(0.0, min(room, min(candidates, key=lambda value: abs(value - ideal))))


class StreamingDecoder:
    """Latents in (pushed as they are finished), waveform out, in parts of bounded size.

    `push(latents)` takes scaled latents (1, C, t) that follow those pushed before and returns the
    audio (1, ch, s) now final; `finish()` returns the rest. Concatenated, the outputs are the whole
    piece, `frames * hop_length` samples.

    `push(latents, provisional=k)`: the last k frames are a guess that the next push replaces (a
    window's end, which the next window makes again). They give this part's decode its right
    context, and the audio of all but their last `margin` frames (which only serve as the right
    context) is cross-faded, at equal power, into the
    audio of the frames that replace them: two continuations of one context meet without a step."""

    def __init__(self, vae, latent_scale: float, margin: int = DECODE_MARGIN_FRAMES,
                 overlap: int = DECODE_OVERLAP_FRAMES):
        if margin < 0 or overlap < 0:
            raise ValueError(f"margin and overlap must be >= 0, got {margin}, {overlap}")
        self.vae, self.scale, self.margin, self.overlap = vae, latent_scale, margin, overlap
        self.hop = vae.hop_length
        self.buffer = None  # scaled latents from frame `buffer_start` on
        self.buffer_start = 0
        self.frames = 0  # latents pushed (and not replaced)
        self.emitted = 0  # frames whose audio has been returned
        self.tail = None  # audio of the frames after `emitted`, to cross-fade into their next decode
        self.tail_equal_power = False  # the tail is another continuation (a join), not the same audio

    def push(self, latents: torch.Tensor, provisional: int = 0) -> torch.Tensor:
        import torch

        if not 0 <= provisional <= latents.shape[-1]:
            raise ValueError(f"provisional must be in [0, {latents.shape[-1]}] frames, got {provisional}")
        self.buffer = latents if self.buffer is None else torch.cat([self.buffer, latents], dim=-1)
        self.frames += latents.shape[-1]
        if provisional:
            until = self.frames - provisional
            tail = max(provisional - self.margin, 0)  # its audio needs a right margin too
            out = self._decode(until, tail, self.frames, equal_power_tail=True)
            self.frames = until  # forget the guess: the next push starts here
            self.buffer = self.buffer[..., :until - self.buffer_start]
            return out
        # A part needs its right margin to be final; keep `overlap` more for the next cross-fade.
        until = self.frames - self.margin - self.overlap
        if until - self.emitted < max(self.overlap, 1):
            return self._empty()
        return self._decode(until, self.overlap, min(self.frames, until + self.overlap + self.margin), False)

    def finish(self) -> torch.Tensor:
        if self.frames == self.emitted:
            return self._empty()
        return self._decode(self.frames, 0, self.frames, False)

    def _empty(self) -> torch.Tensor:
        reference = self.buffer
        return reference.new_zeros(reference.shape[0], self.vae.audio_channels, 0)

    def _decode(self, until: int, tail_frames: int, last: int, equal_power_tail: bool) -> torch.Tensor:
        """Decode frames [emitted - margin, last), return the audio of [emitted, until) and keep
        that of [until, until + tail_frames) as the next tail."""
        import torch

        if self.tail is not None and (until - self.emitted) * self.hop < self.tail.shape[-1]:
            raise ValueError(f"a push must add at least {self.tail.shape[-1] // self.hop} final frames "
                             f"after the cross-fade before it")
        first = max(self.emitted - self.margin, self.buffer_start)
        part = self.buffer[..., first - self.buffer_start:last - self.buffer_start]
        with torch.no_grad():
            audio = self.vae.decode((part / self.scale).to(self.vae.dtype), first_latent_frame=first).sample.float()
        audio = audio[..., (self.emitted - first) * self.hop:(until + tail_frames - first) * self.hop]
        if self.tail is not None:
            fade = self.tail.shape[-1]
            weight = (torch.arange(fade, device=audio.device, dtype=audio.dtype) + 0.5) / fade
            if self.tail_equal_power:  # unrelated fine structure: keep the power, not the amplitude
                fade_out, fade_in = torch.cos(0.5 * math.pi * weight), torch.sin(0.5 * math.pi * weight)
            else:
                fade_out, fade_in = 1 - weight, weight
            audio = torch.cat([fade_out * self.tail + fade_in * audio[..., :fade], audio[..., fade:]], dim=-1)
        cut = (until - self.emitted) * self.hop
        out, tail = audio[..., :cut], audio[..., cut:]
        self.tail = tail if tail.shape[-1] else None
        self.tail_equal_power = equal_power_tail
        self.emitted = until
        # Latents before the next part's left margin are no longer needed.
        drop = max(self.emitted - self.margin, self.buffer_start) - self.buffer_start
        self.buffer, self.buffer_start = self.buffer[..., drop:], self.buffer_start + drop
        return out


def _repaint_hook(known: torch.Tensor, noise: torch.Tensor, context: int, t_scale: float):
    """A step-end hook that keeps the first `context` frames on the known latents' own noise path
    (`editing.repaint`). The boundary is hard: a soft one averages unrelated latents, which decodes
    quieter (a dip at the join, measured), and releasing the last context frames part way measured worse."""
    import torch

    from audiodit.diffusion import next_noise_level, repaint

    keep_mask = known.new_zeros(1, 1, noise.shape[-1])
    keep_mask[..., :context] = 1.0
    known = torch.nn.functional.pad(known[..., :context], (0, noise.shape[-1] - context))  # (1, C, T)

    def hook(pipe, step, timestep, tensors):
        # an audio-to-audio window runs the schedule's tail: its steps count from the begin index
        t_next = next_noise_level(pipe.scheduler.timesteps, (getattr(pipe.scheduler, "begin_index", 0) or 0) + step, t_scale)
        return {"latents": repaint(tensors["latents"], known, noise, keep_mask, t_next)}

    return hook


def section_prompt(sections: list[tuple[float, str]], seconds: float) -> str:
    """The prompt of the section that holds `seconds` (sections sorted by start, the first at 0)."""
    chosen = sections[0][1]
    for start, prompt in sections:
        if start <= seconds + 1e-9:
            chosen = prompt
    return chosen


def check_sections(sections: list[tuple[float, str]], seconds: float) -> list[tuple[float, str]]:
    """Sections sorted by start; the first must start at 0 and every start lie inside the piece."""
    if not sections:
        raise ValueError("`sections` needs at least one (start_seconds, prompt)")
    ordered = sorted((float(start), prompt) for start, prompt in sections)
    for start, prompt in ordered:
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"section at {start:g} s has no prompt")
        if not math.isfinite(start) or not 0 <= start < seconds:
            raise ValueError(f"section start {start:g} s is outside the piece (0 to {seconds:g} s)")
    if ordered[0][0] != 0.0:
        raise ValueError(f"the first section must start at 0 s, got {ordered[0][0]:g} s")
    return ordered


def generate_long(pipe, prompt: str | None, seconds: float, *, sections: list[tuple[float, str]] | None = None,
                  window_seconds: float | None = None, context_seconds: float | None = None,
                  generator: torch.Generator | None = None, num_inference_steps: int | None = None,
                  bpm: float | None = None, progress: bool = True, initial_audio: torch.Tensor | None = None,
                  strength: float = 1.0, melody=None, **call_kwargs) -> Iterator[torch.Tensor]:
    """Yield the waveform of a `seconds`-long piece, (1, channels, samples) part after part.

    `prompt`, or `sections` [(start_seconds, prompt), ...] for a piece whose prompt changes (a
    window takes the prompt of the section where its new material starts); the tempo (`bpm`, else
    the first prompt's) and key stay the first prompt's unless given. `window_seconds` (default
    DEFAULT_WINDOW_SECONDS, at most the model's maximum, shorter for a slow tempo:
    `long_window_seconds`) and `context_seconds` (each later window starts with this much of the
    piece so far; default `default_context`). Other keyword arguments go to every window's pipeline
    call (guidance scales, key, negative prompt, ...).

    Audio-to-audio of a long input: `initial_audio` (1, channels, samples) of `seconds` and
    `strength` < 1; each window starts from its stretch of the input noised to `strength`, later
    windows holding their context as above.

    `melody` (a model with melody conditioning): a reference waveform or its ids, as the pipeline
    takes them, for the whole piece from its start; each window follows its own stretch of it, and
    past the melody's end the piece goes on free."""
    import torch

    from audiodit.diffusion import start_step
    from audiodit.prompt_attributes import parse_bpm

    if prompt is None and sections is None:
        raise ValueError("give `prompt` or `sections`")
    taken = sorted(set(call_kwargs) & RESERVED_CALL_ARGUMENTS)
    if taken:
        raise ValueError(f"generate_long sets {', '.join(f'`{name}`' for name in taken)} of each window itself")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"`seconds` must be positive, got {seconds}")
    sections = check_sections(sections if sections is not None else [(0.0, prompt)], seconds)
    max_seconds = pipe.max_audio_length_s
    rate = pipe.vae.latent_rate
    first_prompt = sections[0][1]
    tempo = float(bpm) if bpm is not None else parse_bpm(first_prompt)  # NaN: none
    window_seconds = long_window_seconds(pipe, window_seconds, tempo)
    context_seconds = default_context(window_seconds) if context_seconds is None else context_seconds
    check_window(window_seconds, context_seconds, max_seconds)
    window_frames = max(int(round(window_seconds * rate)), 1)
    context_frames = int(round(context_seconds * rate))
    total_frames = pipe.vae.latent_frames(int(round(seconds * pipe.sampling_rate)))
    windows = plan_windows(total_frames, window_frames, context_frames, int(round(default_drop(window_seconds) * rate)))
    steps = pipe.default_num_inference_steps if num_inference_steps is None else num_inference_steps
    tune = None if melody is None else pipe._fit_melody(melody, total_frames)  # (T,) ids, "none" past its end
    edit = {}
    if initial_audio is not None:
        edit = {"strength": strength}
        hop = pipe.vae.hop_length
        needed = total_frames * hop
        initial_audio = torch.nn.functional.pad(initial_audio[..., :needed], (0, max(needed - initial_audio.shape[-1], 0)))
        steps_run = steps - start_step(steps, strength)  # as the pipeline starts part-way
    else:
        steps_run = steps
    config = pipe.transformer.config
    period = beat_period_seconds(pipe, tempo)
    if getattr(config, "tempo_conditioning", False):
        call_kwargs["bpm"] = tempo
    elif bpm is not None:
        call_kwargs["bpm"] = bpm  # the pipeline says why a model without tempo conditioning refuses it
    if getattr(config, "key_conditioning", False) and call_kwargs.get("key") is None:
        from audiodit.prompt_attributes import NO_KEY, key_name, parse_key

        key_id = parse_key(first_prompt)
        call_kwargs["key"] = [None] if key_id == NO_KEY else key_name(key_id)  # [None]: no key, not "read it"
    generator = generator if generator is not None else torch.Generator("cpu").manual_seed(0)
    decoder = StreamingDecoder(pipe.vae, pipe.latent_scale)
    t_scale = pipe._num_train_timesteps()
    dtype, device = pipe.transformer.dtype, pipe._execution_device
    piece_seconds = total_frames / rate
    bar_config = dict(getattr(pipe, "_progress_bar_config", {}))
    pipe.set_progress_bar_config(disable=True)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(windows) * steps_run, disable=not progress or bar_config.get("disable", False),
               desc=f"{len(windows)} windows", unit="step")
    previous = None  # scaled latents of the window before (1, C, frames)
    remaining = int(round(seconds * pipe.sampling_rate))  # samples still to hand out
    try:
        for window in windows:
            start_s = window.start / rate
            length_s = window.frames / rate
            new_start_s = (window.start + window.context) / rate
            model_start = model_start_seconds(start_s, length_s, piece_seconds, max_seconds, period)
            noise = pipe.prepare_latents(1, window.frames, dtype, device, generator)
            repaint = None
            if window.context:
                known = previous[..., previous.shape[-1] - window.context:]
                repaint = _repaint_hook(known, noise, window.context, t_scale)

            def on_step(pipe_, step, timestep, tensors, repaint=repaint):
                bar.update()
                return tensors if repaint is None else repaint(pipe_, step, timestep, tensors)

            if initial_audio is not None:  # the window's stretch of the input
                edit["initial_audio"] = initial_audio[..., window.start * hop:window.end * hop]
            if tune is not None:  # and of the tune
                edit["melody"] = tune[window.start:window.end]
            latents = pipe._generate(section_prompt(sections, new_start_s), model_start, model_start + length_s,
                                     latents=noise, num_inference_steps=steps, output_type="latent",
                                     callback_on_step_end=on_step, **edit, **call_kwargs).audios
            previous = latents[..., :window.keep]
            # The window's end, made again by the next one, is pushed as a guess to fade out of.
            audio = decoder.push(latents[..., window.context:], provisional=window.frames - window.keep)
            audio = audio[..., :remaining]
            remaining -= audio.shape[-1]
            if audio.shape[-1]:
                yield audio
        audio = decoder.finish()[..., :remaining]
        if audio.shape[-1]:
            yield audio
    finally:
        bar.close()
        pipe.set_progress_bar_config(**bar_config)
