"""The generation modes beside text-to-audio: the seam mask of inpainting, continuation,
inputs longer than the model, and interpolation between two prompts and seeds.

`AudioEditingMixin` holds one public method per mode (`inpaint`, `continuation`, `audio_to_audio`,
`interpolate`, `generate_long`); the pipeline inherits them. Each reaches the pipeline's one-window
path (`AudioDiTPipeline._generate`, the one denoising loop) directly, never through `__call__`,
which keeps diffusers' keyword form (`pipe(..., continuation_in_s=...)`) by dispatching to them.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput

from audiodit.conditioners import TextEncoderOutput, pad_and_concat
from audiodit.inputs import check_edits, check_setting
from audiodit.models.embedders import MELODY_ABSENT
from audiodit.prompt_attributes import NO_KEY, key_name, parse_key, prompt_tempi

# Latent frames over which inpainting/continuation blend generated and kept material, so seams
# do not click: a raised-cosine ramp instead of a step (0.24 s at 25 Hz).
SEAM_FRAMES = 6
# Continuation: seconds of the context, mirrored, that stand after it in the window the VAE encodes
# (longer than the encoder's reach of about 0.3 s), and the waveform cross-fade at the join.
MIRROR_SECONDS = 1.0
JOIN_CROSSFADE_SECONDS = 0.02
# Inpainting an input longer than the model: the regenerated range is cross-faded into the input
# over this much on each side, outside the range (where the crop holds the input's reconstruction).
JOIN_FADE_SECONDS = 0.1


def as_batch(audio: torch.Tensor | None) -> torch.Tensor | None:
    """An input waveform as a batch: (2, S) -> (1, 2, S); (B, 2, S) and None as they are."""
    return audio.unsqueeze(0) if audio is not None and audio.dim() == 2 else audio


PER_PROMPT = ("negative_prompt", "bpm", "key")  # arguments that may hold one entry per prompt


def _for_prompt(call: dict, which: int, prompts: int) -> dict:
    """`call` for the `which`-th of `prompts` prompts: the per-prompt lists of `PER_PROMPT` cut to
    that prompt's entry (any other list, e.g. a `guidance_interval`, is one value for all)."""
    return {name: (value[which] if name in PER_PROMPT and isinstance(value, list) and len(value) == prompts
                   and prompts > 1 else value)
            for name, value in call.items()}


def rising_ramp(count: int, device) -> torch.Tensor:
    """(count,) raised-cosine weights rising from near 0 to near 1 (both ends left out): the
    waveform cross-fades of continuation and splicing."""
    return 0.5 * (1 - torch.cos(torch.linspace(0, math.pi, count + 2, device=device)[1:-1]))


def splice(original: torch.Tensor, generated: torch.Tensor, start: int, end: int, fade: int) -> torch.Tensor:
    """`original` with samples [start, end) from `generated`, cross-faded over `fade` samples outside
    the range on each side (raised cosine; the two agree there, as `generated` keeps the rest)."""
    out = original.clone()
    left, right = max(start - fade, 0), min(end + fade, original.shape[-1])
    out[..., start:end] = generated[..., start:end]
    for lo, hi, rising in ((left, start, True), (end, right, False)):
        if hi > lo:
            weight = rising_ramp(hi - lo, out.device)  # (hi - lo,)
            weight = weight if rising else weight.flip(0)
            out[..., lo:hi] = (1 - weight) * original[..., lo:hi] + weight * generated[..., lo:hi]
    return out


def slerp(a: torch.Tensor, b: torch.Tensor, weight: float) -> torch.Tensor:
    """Spherical interpolation between two noise tensors: keeps the Gaussian's norm, which a
    straight line between two noises would shrink in the middle."""
    a_flat, b_flat = a.flatten().double(), b.flatten().double()
    cos = torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm())
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-4:
        return ((1 - weight) * a + weight * b).to(a.dtype)
    mixed = (torch.sin((1 - weight) * omega) * a_flat + torch.sin(weight * omega) * b_flat) / torch.sin(omega)
    return mixed.view_as(a).to(a.dtype)


def seam_keep_mask(num_frames: int, keep_ranges: list[tuple[int, int]], device, dtype) -> torch.Tensor:
    """(1, 1, T) weights: 1 where the input is kept, 0 where it is regenerated, raised-cosine
    ramps of SEAM_FRAMES inside the regenerated side of each boundary."""
    keep = torch.zeros(num_frames, dtype=torch.float64)
    for start, end in keep_ranges:
        keep[max(start, 0) : min(end, num_frames)] = 1.0
    ramp = 0.5 * (1 + torch.cos(torch.linspace(0, math.pi, SEAM_FRAMES + 2, dtype=torch.float64)[1:-1]))
    soft = keep.clone()
    for index in range(num_frames):
        if keep[index] == 1:
            continue
        left = next((d for d in range(1, SEAM_FRAMES + 1) if index - d >= 0 and keep[index - d] == 1), None)
        right = next((d for d in range(1, SEAM_FRAMES + 1) if index + d < num_frames and keep[index + d] == 1), None)
        distances = [d for d in (left, right) if d is not None]
        if distances:
            soft[index] = ramp[min(distances) - 1]
    return soft.to(device=device, dtype=dtype).view(1, 1, -1)


class AudioEditingMixin:
    """The mode methods of `AudioDiTPipeline` (need its `_generate` and components)."""

    def _continuation(self, prompt, initial_audio, continuation_in_s, audio_start_in_s=0.0, audio_end_in_s=None,
                      strength=1.0, inpaint_range=None, latents=None, prompt_embeds=None,
                      callback_on_step_end_tensor_inputs=None, **sampling):
        """`continuation` and `__call__(continuation_in_s=...)`: a continuation longer than one
        window adds goes window by window (`_edit_long`), a shorter one is one window (`_continue`)
        once its inputs are checked. `sampling`: `__call__`'s generation arguments."""
        initial_audio = as_batch(initial_audio)
        if self._long_edit(initial_audio, continuation_in_s):
            return self._edit_long(prompt, initial_audio, strength, inpaint_range, continuation_in_s, audio_start_in_s,
                                   latents=latents, prompt_embeds=prompt_embeds, **sampling)
        steps, guidance, key_guidance, classifier_scale = self.resolve_settings(
            sampling.get("num_inference_steps"), sampling.get("guidance_scale"), sampling.get("key_guidance_scale"),
            sampling.get("key_classifier_scale"))
        if initial_audio is not None:
            audio_end_in_s = audio_start_in_s + initial_audio.shape[-1] / self.sampling_rate + continuation_in_s
        elif audio_end_in_s is None:
            audio_end_in_s = audio_start_in_s + min(10.0, self.max_audio_length_s)
        self.check_inputs(
            prompt, audio_start_in_s, audio_end_in_s, steps, guidance, sampling.get("negative_prompt"), strength,
            initial_audio, inpaint_range, continuation_in_s, latents, prompt_embeds,
            callback_on_step_end_tensor_inputs, key_guidance, classifier_scale, sampling.get("guidance_rescale", 0.0),
        )
        for name, value in (("latents", latents), ("prompt_embeds", prompt_embeds)):
            if value is not None:
                raise ValueError(f"`{name}` is not taken by continuation (its window is the clip's end and new frames).")
        if "context_in_s" in sampling:  # set by long continuation for each call, not a public argument
            raise TypeError("continuation() got an unexpected keyword argument 'context_in_s'")
        return self._continue(prompt, initial_audio, continuation_in_s, audio_start_in_s, **sampling)

    def _continue(self, prompt, initial_audio, continuation_in_s, audio_start_in_s, context_in_s=None,
                  output_type="pt", return_dict=True, melody=None, **generation):
        """Extend `initial_audio` by `continuation_in_s`: inpaint a window made of the clip's last
        seconds (the context: `context_in_s`, else as much as the model's maximum leaves) followed
        by new frames, then splice the new part after the clip. `generation`: the other arguments of
        that one window (`_generate`'s).

        The new frames start as the context's last second mirrored, not as silence: the VAE encoder
        sees a little past the context's end, and with zeros there the last kept latents decoded
        as a fade to silence, which the seam's blend carried into the first 0.2 s of the new audio
        (measured: 35-40 dB below the clip; issue 22). The splice cross-fades over
        JOIN_CROSSFADE_SECONDS from the clip into the window's reconstruction of it, so the join
        does not click; the clip before that is kept bit-exact. A `melody` starts where the new
        audio does (the context has none: it is the clip's own)."""
        clip_s = initial_audio.shape[-1] / self.sampling_rate
        context_s = min(clip_s, self.max_audio_length_s - continuation_in_s if context_in_s is None else context_in_s)
        context_samples = int(round(context_s * self.sampling_rate))
        context = initial_audio[..., initial_audio.shape[-1] - context_samples :]  # (B, 2, S_context)
        new_samples = int(round(continuation_in_s * self.sampling_rate))
        mirrored = context.flip(-1)[..., : min(context_samples, new_samples, int(MIRROR_SECONDS * self.sampling_rate))]
        window = torch.cat([context, torch.nn.functional.pad(mirrored, (0, new_samples - mirrored.shape[-1]))], dim=-1)
        window_s = window.shape[-1] / self.sampling_rate
        # The window starts where the context starts inside the original piece.
        window_start_s = audio_start_in_s + clip_s - context_s
        if melody is not None:
            window_frames = self.vae.latent_frames(window.shape[-1])
            new_from = int(context_s * self.vae.latent_rate)  # the first regenerated frame, as inpaint_range's
            melody = torch.cat([torch.full((new_from,), MELODY_ABSENT, dtype=torch.long),
                                self._fit_melody(melody, window_frames - new_from)])  # (T_window,)
        generated = self._generate(
            prompt, window_start_s, window_start_s + window_s, initial_audio=window, inpaint_range=(context_s, window_s),
            output_type="pt", melody=melody, **generation,
        ).audios  # (B, 2, S_window)
        # The context comes back as its VAE reconstruction: keep the original clip, cross-fade its
        # last JOIN_CROSSFADE_SECONDS into that reconstruction, and append the new seconds.
        original = initial_audio.to(generated).expand(generated.shape[0], -1, -1).clone()
        fade = min(int(JOIN_CROSSFADE_SECONDS * self.sampling_rate), context_samples)
        if fade > 0:
            weight = rising_ramp(fade, generated.device)  # (fade,)
            tail = original[..., -fade:]
            original[..., -fade:] = (1 - weight) * tail + weight * generated[..., context_samples - fade:context_samples]
        audios = torch.cat([original, generated[..., context_samples:]], dim=-1)  # (B, 2, S + S_new)
        if output_type == "np":
            audios = audios.cpu().numpy()
        elif output_type != "pt":
            raise ValueError(f"`output_type` for continuation must be 'pt' or 'np', got {output_type!r}.")
        return AudioPipelineOutput(audios=audios) if return_dict else (audios,)

    # ------------------------------------------------------------------ inputs longer than the model
    def _any_length(self, prompt, initial_audio=None, audio_start_in_s=0.0, strength=1.0, inpaint_range=None,
                    **generation):
        """Text-to-audio, audio-to-audio (`strength` < 1) or inpainting (`inpaint_range`): one window
        (`_generate`), or window by window for an input longer than the model (`_edit_long`, which
        takes the input's length as the output's: `audio_end_in_s` does not apply)."""
        initial_audio = as_batch(initial_audio)
        if self._long_edit(initial_audio, None):
            generation.pop("audio_end_in_s", None)
            return self._edit_long(prompt, initial_audio, strength, inpaint_range, None, audio_start_in_s, **generation)
        return self._generate(prompt, audio_start_in_s, initial_audio=initial_audio, strength=strength,
                              inpaint_range=inpaint_range, **generation)

    def _long_edit(self, initial_audio, continuation_in_s) -> bool:
        """Whether an edit works window by window: an input longer than the model's maximum, or a
        continuation longer than one window adds (its maximum less the default context)."""
        from audiodit.longform import one_window_continuation

        if initial_audio is None:
            return False
        if continuation_in_s is not None:
            return continuation_in_s > one_window_continuation(self.max_audio_length_s) + 1e-6
        return initial_audio.shape[-1] > round(self.max_audio_length_s * self.sampling_rate)

    def _edit_long(self, prompt, initial_audio, strength, inpaint_range, continuation_in_s, audio_start_in_s,
                   generator=None, num_waveforms_per_prompt=1, output_type="pt", return_dict=True, **call):
        """Audio-to-audio, inpainting and continuation of inputs longer than the model's maximum,
        one waveform at a time (each prompt x `num_waveforms_per_prompt`, with its generator):

        * audio-to-audio: `generate_long` over the input, each window starting from its stretch of
          the input noised to `strength` and going on from the window before;
        * inpainting: the range is regenerated in crops of at most one long-form window, each with
          up to `default_context` seconds of the audio on either side (the left one already
          edited); outside the range and its JOIN_FADE_SECONDS fades the output is the input, bit-exact;
        * continuation: repeated continuation, each adding at most one window less that context.
        A `melody` in `call` is followed as in one window: from the input's start for audio-to-audio
        and inpainting (each window or crop takes its stretch), from where the new audio starts for
        continuation (each call takes the stretch after what is already made).
        Windows are as long-form's (`long_window_seconds`: shorter at slow stated tempi, so the beat
        grid keeps its phase when their timing is mapped onto the model's range)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
        if not prompts or not all(isinstance(text, str) for text in prompts):
            raise ValueError("editing audio longer than the model's maximum needs `prompt` (a string or a list)")
        for name in ("latents", "prompt_embeds", "callback_on_step_end"):
            if call.pop(name, None) is not None:
                raise ValueError(f"`{name}` is not taken when editing audio longer than the model's "
                                 f"{self.max_audio_length_s:g} s (it works window by window)")
        if output_type not in ("pt", "np"):
            raise ValueError(f"`output_type` for audio longer than the model must be 'pt' or 'np', got {output_type!r}.")
        check_setting("strength", strength)
        check_edits({"strength": strength < 1.0, "inpaint_range": inpaint_range is not None,
                     "continuation_in_s": continuation_in_s is not None}, True)
        seconds = initial_audio.shape[-1] / self.sampling_rate
        if continuation_in_s is not None and (not math.isfinite(continuation_in_s) or continuation_in_s <= 0):
            raise ValueError(f"`continuation_in_s` must be a positive number, got {continuation_in_s}.")
        if inpaint_range is not None and not 0 <= inpaint_range[0] < inpaint_range[1] <= seconds + 1e-6:
            raise ValueError(f"`inpaint_range` must satisfy 0 <= start < end <= {seconds:g} (the input's "
                             f"length), got {inpaint_range}.")
        jobs = [index for index in range(len(prompts)) for _ in range(num_waveforms_per_prompt)]  # prompt of each
        if generator is None:  # each waveform its own noise, as a batched call draws it
            generator = [torch.Generator().manual_seed(int(torch.randint(2**62, ()))) for _ in jobs]
        generators = generator if isinstance(generator, list) else [generator] * len(jobs)
        if len(generators) != len(jobs):
            raise ValueError(f"got {len(generators)} generators for {len(jobs)} waveforms")
        if initial_audio.shape[0] not in (1, len(jobs)):
            raise ValueError(f"`initial_audio` has batch {initial_audio.shape[0]}, expected 1 or {len(jobs)}.")
        melody = call.pop("melody", None)
        if melody is not None:  # ids from the input's start (the new audio's for continuation), "none" past the end
            frames = self._frames(continuation_in_s if continuation_in_s is not None else seconds)
            melody = self._fit_melody(melody, frames)  # (T,)
        outputs = []
        for index, (which, job_generator) in enumerate(zip(jobs, generators)):
            audio = initial_audio[index if initial_audio.shape[0] > 1 else 0].unsqueeze(0).float()  # (1, 2, S)
            text, job_call = prompts[which], _for_prompt(call, which, len(prompts))
            if continuation_in_s is not None:
                made = self._continue_long(text, audio, continuation_in_s, audio_start_in_s, job_generator, job_call,
                                           melody)
            elif inpaint_range is not None:
                made = self._inpaint_long(text, audio, inpaint_range, job_generator, job_call, melody)
            else:
                from audiodit.longform import generate_long

                made = torch.cat(list(generate_long(self, text, seconds, generator=job_generator, initial_audio=audio,
                                                    strength=strength, melody=melody, **job_call)), dim=-1)
            outputs.append(made)
        audios = torch.cat(outputs)  # (B, 2, S)
        if output_type == "np":
            audios = audios.cpu().numpy()
        return AudioPipelineOutput(audios=audios) if return_dict else (audios,)

    def _long_window(self, prompt: str, call: dict) -> tuple[float, float | None]:
        """(window seconds, beat-grid period or None) of long-form generation for `prompt`."""
        from audiodit.longform import beat_period_seconds, long_window_seconds
        from audiodit.prompt_attributes import parse_bpm

        bpm = call.get("bpm")
        tempo = float(bpm) if isinstance(bpm, (int, float)) else parse_bpm(prompt)
        return long_window_seconds(self, None, tempo), beat_period_seconds(self, tempo)

    def _continue_long(self, prompt, audio, continuation_in_s, audio_start_in_s, generator, call, melody=None):
        from audiodit.longform import default_context, model_start_seconds

        rate = self.sampling_rate
        clip_samples = audio.shape[-1]
        window, period = self._long_window(prompt, call)
        context = default_context(window)
        step = int(round((window - context) * rate))  # samples added per call
        target = audio.shape[-1] + int(round(continuation_in_s * rate))
        final_s = audio_start_in_s + target / rate
        while audio.shape[-1] < target:
            add = min(target - audio.shape[-1], step) / rate
            clip_s = audio.shape[-1] / rate
            context_s = min(clip_s, window - add)
            start = model_start_seconds(audio_start_in_s + clip_s - context_s, context_s + add, final_s,
                                        self.max_audio_length_s, period)
            tune = None
            if melody is not None:  # the stretch after the new audio already made
                tune = melody[int((audio.shape[-1] - clip_samples) / rate * self.vae.latent_rate):]
            audio = self._continue(prompt, audio, add, start - (clip_s - context_s), generator=generator,
                                   num_waveforms_per_prompt=1, output_type="pt", return_dict=True,
                                   callback_on_step_end=None, context_in_s=context_s, melody=tune, **call).audios
        return audio[..., :target]

    def _inpaint_long(self, prompt, audio, inpaint_range, generator, call, melody=None):
        from audiodit.longform import default_context, model_start_seconds

        rate = self.sampling_rate
        window, period = self._long_window(prompt, call)
        margin = default_context(window)
        chunk = window - 2 * margin
        total_s = audio.shape[-1] / rate
        start_s, end_s = inpaint_range
        edited = audio.clone()  # (1, 2, S)
        position = start_s
        while position < end_s - 1e-9:
            stop = min(end_s, position + chunk)
            first = int(round(max(0.0, position - margin) * rate))
            last = min(int(round(min(total_s, stop + margin) * rate)), first + int(round(window * rate)))
            crop_start, crop_s = first / rate, (last - first) / rate
            timing = model_start_seconds(crop_start, crop_s, total_s, self.max_audio_length_s, period)
            tune = None if melody is None else melody[int(crop_start * self.vae.latent_rate):]  # the crop's stretch
            generated = self._generate(prompt, timing, timing + crop_s, initial_audio=edited[..., first:last],
                                       inpaint_range=(position - crop_start, stop - crop_start), generator=generator,
                                       output_type="pt", melody=tune, **call).audios.to(edited)  # (1, 2, last - first)
            edited[..., first:last] = splice(edited[..., first:last], generated,
                                             int(round((position - crop_start) * rate)), int(round((stop - crop_start) * rate)),
                                             int(JOIN_FADE_SECONDS * rate))
            position = stop
        return edited

    # ------------------------------------------------------------------ one public method per mode
    @torch.no_grad()
    def inpaint(self, prompt, initial_audio: torch.Tensor, inpaint_range: tuple[float, float], **kwargs):
        """Regenerate `inpaint_range` (start_s, end_s) of `initial_audio` ((2, S) or (B, 2, S), stereo
        48 kHz) and keep the rest; any length (longer inputs go window by window). Other arguments
        as `__call__`'s. Returns `AudioPipelineOutput(audios=(B, 2, S))`."""
        return self._any_length(prompt, initial_audio, inpaint_range=inpaint_range, **kwargs)

    @torch.no_grad()
    def continuation(self, prompt, initial_audio: torch.Tensor, continuation_in_s: float, **kwargs):
        """`initial_audio` followed by `continuation_in_s` new seconds that go on from its end (the
        clip is kept bit-exact up to a short cross-fade); any length. Other arguments as `__call__`'s.
        Returns `AudioPipelineOutput(audios=(B, 2, S + new))`."""
        return self._continuation(prompt, initial_audio, continuation_in_s, **kwargs)

    @torch.no_grad()
    def audio_to_audio(self, prompt, initial_audio: torch.Tensor, strength: float = 0.6, **kwargs):
        """`initial_audio` remade after the prompt: noised to `strength` in (0, 1] (1 ignores it) and
        denoised; any length. Other arguments as `__call__`'s."""
        return self._any_length(prompt, initial_audio, strength=strength, **kwargs)

    def generate_long(self, prompt: str | None = None, seconds: float = 60.0, **kwargs):
        """Yield a piece of any length (beyond `max_audio_length_s`), (1, channels, samples) part by
        part as its windows finish: `audiodit.longform.generate_long`, which documents the arguments
        (`sections`, `window_seconds`, `context_seconds`, `generator`, ...)."""
        from audiodit.longform import generate_long

        return generate_long(self, prompt, seconds, **kwargs)

    @torch.no_grad()
    def interpolate(
        self,
        prompt_start: str,
        prompt_end: str | None = None,
        seed_start: int = 0,
        seed_end: int | None = None,
        num_points: int = 5,
        audio_end_in_s: float | None = None,
        **kwargs,
    ) -> AudioPipelineOutput:
        """Walk from (prompt_start, seed_start) to (prompt_end, seed_end) in `num_points` clips,
        as Riffusion does: text embeddings are interpolated linearly, noise spherically, and the
        tempo (a tempo-conditioned model, both prompts stating one) geometrically; a key-conditioned
        model takes the nearer prompt's key (it switches halfway).
        Returns audios of shape (num_points, 2, S)."""
        if num_points < 2:
            raise ValueError(f"`num_points` must be >= 2, got {num_points}.")
        prompt_end = prompt_start if prompt_end is None else prompt_end
        seed_end = seed_start if seed_end is None else seed_end
        device = self._execution_device
        audio_end_in_s = audio_end_in_s or min(10.0, self.max_audio_length_s)
        ends = pad_and_concat(
            [self.text_encoder.encode([prompt_start], device=device), self.text_encoder.encode([prompt_end], device=device)]
        )
        num_frames = self._frames(audio_end_in_s - kwargs.get("audio_start_in_s", 0.0))
        noises = [
            self.prepare_latents(1, num_frames, self.transformer.dtype, device, torch.Generator("cpu").manual_seed(seed))
            for seed in (seed_start, seed_end)
        ]
        # A tempo-conditioned model: the tempo moves geometrically between the prompts' tempi.
        log_tempi = torch.log2(prompt_tempi([prompt_start, prompt_end]))
        with_tempo = getattr(self.transformer.config, "tempo_conditioning", False) and "bpm" not in kwargs
        with_key = getattr(self.transformer.config, "key_conditioning", False) and "key" not in kwargs
        clips = []
        for weight in np.linspace(0.0, 1.0, num_points):
            if with_tempo:
                kwargs["bpm"] = float(2.0 ** torch.lerp(log_tempi[0], log_tempi[1], float(weight)))
            if with_key:
                key_id = parse_key(prompt_start if weight < 0.5 else prompt_end)
                kwargs["key"] = None if key_id == NO_KEY else key_name(key_id)
            embeds = TextEncoderOutput(
                embeddings=torch.lerp(ends.embeddings[:1], ends.embeddings[1:], float(weight)),
                mask=ends.mask[:1] | ends.mask[1:],
                pooled=torch.lerp(ends.pooled[:1], ends.pooled[1:], float(weight)),
            )
            out = self._generate(
                prompt_embeds=embeds, latents=slerp(noises[0], noises[1], float(weight)),
                audio_end_in_s=audio_end_in_s, output_type="pt", **kwargs,
            )
            clips.append(out.audios)
        return AudioPipelineOutput(audios=torch.cat(clips))
