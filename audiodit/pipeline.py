"""`AudioDiTPipeline`: text -> stereo 48 kHz audio, plus audio-to-audio, inpainting, continuation
and interpolation, written in the shape of diffusers' `StableAudioPipeline`.

Components: `vae` (AudioVAE), `transformer` (AudioDiTModel), `text_encoder` (a conditioner from
`audiodit.conditioners`) and `scheduler` (any diffusers flow-matching scheduler, by default
`FlowMatchEulerDiscreteScheduler`). The transformer works on `vae latents * scaling_factor` and
predicts the rectified-flow velocity (see `audiodit.diffusion`).

Example:
    >>> from audiodit.pipeline import AudioDiTPipeline
    >>> pipe = AudioDiTPipeline.from_pretrained("models/audiodit-small")  # doctest: +SKIP
    >>> out = pipe("A Bach chorale in D minor for organ, 80 BPM", audio_end_in_s=10.0)  # doctest: +SKIP
    >>> out.audios.shape  # (1, 2, 480000): batch, stereo, samples at 48 kHz  # doctest: +SKIP

Timing: the generated clip lasts `audio_end_in_s - audio_start_in_s` seconds; the transformer is
conditioned on `seconds_start = audio_start_in_s` and `seconds_total = audio_end_in_s`.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler, SchedulerMixin
from diffusers.pipelines.pipeline_utils import AudioPipelineOutput
from diffusers.utils.torch_utils import randn_tensor

from audiodit.conditioners import TextConditioner, TextEncoderOutput, pad_and_concat
from audiodit.diffusion import FlowMatching, next_noise_level, repaint, start_step
from audiodit.editing import AudioEditingMixin, as_batch, seam_keep_mask
from audiodit.guidance import (Conditioning, add_contrast_branch, branch_count, check_beat_grid,
                               check_key_classifier, check_key_guidance, condition_branches, guided_velocity,
                               key_classifier_velocity, per_waveform_rows, stated_key_ids)
from audiodit.inputs import check_edits, check_guidance_interval, check_inpaint_range, check_setting
from audiodit.lora import AudioDiTLoraLoaderMixin
from audiodit.models.dit import AudioDiTModel
from audiodit.models.embedders import MELODY_ABSENT
from audiodit.models.key_classifier import LatentKeyClassifier
from audiodit.models.vae import AudioVAE

class AudioDiTPipeline(AudioEditingMixin, AudioDiTLoraLoaderMixin, DiffusionPipeline):
    """Text-to-audio with a latent diffusion transformer over spacetime patches.

    Args:
        vae: `AudioVAE`, stereo 48 kHz waveform <-> latent sequence.
        transformer: `AudioDiTModel`, predicts the flow-matching velocity of scaled latents.
        text_encoder: a text conditioner (CLIP via open_clip or CLAP via transformers).
        scheduler: a diffusers flow-matching scheduler.
        key_classifier: optional `LatentKeyClassifier` for key classifier guidance (`key_classifier_scale`).

    LoRA adapters (`audiodit.lora`): `load_lora_weights(dir, adapter_name=...)`, `set_adapters(names,
    adapter_weights=[...])`, `fuse_lora()`, `unfuse_lora()`, `unload_lora_weights()`.
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"
    _optional_components = ["key_classifier"]
    # Called at every step beside the transformer (0.3M parameters): kept on the device, not offloaded.
    _exclude_from_cpu_offload = ["key_classifier"]
    _callback_tensor_inputs = ["latents"]

    # Importing the component classes here also makes diffusers' loader, which only resolves
    # `model_index.json` entries from modules already imported, find them.
    def __init__(
        self,
        vae: AudioVAE,
        transformer: AudioDiTModel,
        text_encoder: TextConditioner,
        scheduler: SchedulerMixin,
        default_num_inference_steps: int = 50,
        default_guidance_scale: float = 4.0,
        default_key_guidance_scale: float = 0.0,
        key_classifier: LatentKeyClassifier | None = None,
        default_key_classifier_scale: float = 0.0,
        default_melody_guidance_scale: float = 0.0,
    ):
        super().__init__()
        self.register_modules(vae=vae, transformer=transformer, text_encoder=text_encoder, scheduler=scheduler,
                              key_classifier=key_classifier)
        # Sampling defaults chosen for the trained model travel with it in model_index.json.
        self.register_to_config(
            default_num_inference_steps=default_num_inference_steps, default_guidance_scale=default_guidance_scale,
            default_key_guidance_scale=default_key_guidance_scale,
            default_key_classifier_scale=default_key_classifier_scale,
            default_melody_guidance_scale=default_melody_guidance_scale,
        )

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, **kwargs):
        """diffusers' loader, after two checks of a local directory (`audiodit.integrity`):
        `model_index.json` names only audiodit's components and diffusers schedulers (the loader
        imports whatever module it names), and every weights file matches the SHA-256 recorded
        when it was saved (a directory without digests loads with a warning)."""
        from pathlib import Path

        from audiodit.integrity import check_model_index, verify_digests

        directory = Path(pretrained_model_name_or_path)
        if directory.is_dir():
            check_model_index(directory)
            verify_digests(directory, what=f"pipeline {directory}")
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """diffusers' save, then the SHA-256 of every weights file (`audiodit.integrity.DIGESTS`)."""
        from audiodit.integrity import write_digests

        super().save_pretrained(save_directory, *args, **kwargs)
        write_digests(save_directory)

    @property
    def default_num_inference_steps(self) -> int:
        return int(self.config.default_num_inference_steps)

    @property
    def default_guidance_scale(self) -> float:
        return float(self.config.default_guidance_scale)

    @property
    def default_key_guidance_scale(self) -> float:
        """Key guidance used when `key_guidance_scale` is None; 0 for a model without key conditioning."""
        if not getattr(self.transformer.config, "key_conditioning", False):
            return 0.0
        return float(self.config.get("default_key_guidance_scale", 0.0))

    @property
    def default_key_classifier_scale(self) -> float:
        """Key classifier guidance used when `key_classifier_scale` is None; 0 without a classifier."""
        if getattr(self, "key_classifier", None) is None:
            return 0.0
        return float(self.config.get("default_key_classifier_scale", 0.0))

    @property
    def default_melody_guidance_scale(self) -> float:
        """Melody guidance used when a melody is given without `melody_guidance_scale`; 0 for a model
        without melody conditioning."""
        if not getattr(self.transformer.config, "melody_conditioning", False):
            return 0.0
        return float(self.config.get("default_melody_guidance_scale", 0.0))

    def resolve_melody_guidance_scale(self, melody_guidance_scale: float | None, guidance_scale: float,
                                      melody=None) -> float:
        """The melody guidance a call uses: the given scale, else the model's default while there is a
        melody and classifier-free guidance is on (melody guidance is one more branch), else 0."""
        if melody_guidance_scale is not None:
            return float(melody_guidance_scale)
        return self.default_melody_guidance_scale if melody is not None and guidance_scale > 1.0 else 0.0

    def resolve_key_classifier_scale(self, key_classifier_scale: float | None) -> float:
        """The key classifier guidance a call uses: the given scale, else the model's default."""
        return float(self.default_key_classifier_scale if key_classifier_scale is None else key_classifier_scale)

    def resolve_settings(self, num_inference_steps: int | None, guidance_scale: float | None,
                         key_guidance_scale: float | None, key_classifier_scale: float | None) -> tuple:
        """(steps, guidance, key guidance, key classifier scale) a call uses: each given value, else
        the model's default (`resolve_key_guidance_scale`, `resolve_key_classifier_scale`)."""
        steps = self.default_num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance = self.default_guidance_scale if guidance_scale is None else guidance_scale
        return (steps, guidance, self.resolve_key_guidance_scale(key_guidance_scale, guidance),
                self.resolve_key_classifier_scale(key_classifier_scale))

    def resolve_key_guidance_scale(self, key_guidance_scale: float | None, guidance_scale: float) -> float:
        """The key guidance a call uses: the given scale, else the model's default while classifier-free
        guidance is on (key guidance is a third guidance branch), else 0."""
        if key_guidance_scale is not None:
            return float(key_guidance_scale)
        return self.default_key_guidance_scale if guidance_scale > 1.0 else 0.0

    # ------------------------------------------------------------------ properties
    @property
    def sampling_rate(self) -> int:
        return self.vae.sampling_rate

    @property
    def max_audio_length_s(self) -> float:
        return float(self.transformer.config.max_seconds)

    @property
    def latent_scale(self) -> float:
        return float(self.vae.config.scaling_factor)

    def _num_train_timesteps(self) -> float:
        return float(getattr(self.scheduler.config, "num_train_timesteps", 1000))

    # ------------------------------------------------------------------ 1. inputs
    def check_inputs(
        self,
        prompt,
        audio_start_in_s,
        audio_end_in_s,
        num_inference_steps,
        guidance_scale,
        negative_prompt=None,
        strength=1.0,
        initial_audio=None,
        inpaint_range=None,
        continuation_in_s=None,
        latents=None,
        prompt_embeds=None,
        callback_on_step_end_tensor_inputs=None,
        key_guidance_scale=0.0,
        key_classifier_scale=0.0,
        guidance_rescale=0.0,
    ):
        if prompt is None and prompt_embeds is None:
            raise ValueError("Provide `prompt` (a string or a list of strings) or `prompt_embeds`.")
        if prompt is not None and not isinstance(prompt, (str, list)):
            raise ValueError(f"`prompt` must be a string or a list of strings, got {type(prompt).__name__}.")
        if isinstance(prompt, list) and (not prompt or not all(isinstance(p, str) for p in prompt)):
            raise ValueError("`prompt` list must hold at least one string and only strings.")
        if negative_prompt is not None and prompt is not None:
            negatives = [negative_prompt] if isinstance(negative_prompt, str) else negative_prompt
            prompts = [prompt] if isinstance(prompt, str) else prompt
            if len(negatives) not in (1, len(prompts)):
                raise ValueError(
                    f"`negative_prompt` has {len(negatives)} entries but `prompt` has {len(prompts)}."
                )
        if audio_start_in_s < 0:
            raise ValueError(f"`audio_start_in_s` must be >= 0, got {audio_start_in_s}.")
        duration = audio_end_in_s - audio_start_in_s
        if duration <= 0:
            raise ValueError(
                f"`audio_end_in_s` ({audio_end_in_s}) must be greater than `audio_start_in_s` ({audio_start_in_s})."
            )
        if continuation_in_s is None and duration > self.max_audio_length_s + 1e-6:
            raise ValueError(
                f"the requested duration ({duration:g} s) exceeds this model's maximum of "
                f"{self.max_audio_length_s:g} s; use `continuation_in_s` to extend a clip instead."
            )
        check_setting("num_inference_steps", num_inference_steps)
        check_setting("guidance_scale", guidance_scale)
        check_setting("guidance_rescale", guidance_rescale)
        check_key_guidance(self.transformer.config, key_guidance_scale)
        check_key_classifier(getattr(self, "key_classifier", None), key_classifier_scale)
        if key_guidance_scale > 0 and guidance_scale <= 1.0:
            raise ValueError(f"`key_guidance_scale` > 0 needs classifier-free guidance (`guidance_scale` > 1), "
                             f"got guidance_scale {guidance_scale}.")
        check_setting("strength", strength)
        check_edits({"strength": strength < 1.0, "inpaint_range": inpaint_range is not None,
                     "continuation_in_s": continuation_in_s is not None}, initial_audio is not None)
        if inpaint_range is not None:
            check_inpaint_range(*inpaint_range)
        if continuation_in_s is not None and not 0 < continuation_in_s < self.max_audio_length_s:
            raise ValueError(
                f"`continuation_in_s` must be in (0, {self.max_audio_length_s}), got {continuation_in_s}."
            )
        if initial_audio is not None:
            if not torch.is_tensor(initial_audio) or initial_audio.dim() not in (2, 3):
                raise ValueError("`initial_audio` must be a tensor of shape (2, samples) or (batch, 2, samples).")
            if initial_audio.shape[-2] != 2:
                raise ValueError(f"`initial_audio` must be stereo, got {initial_audio.shape[-2]} channels.")
            if initial_audio.shape[-1] == 0:
                raise ValueError("`initial_audio` is empty.")
        if latents is not None and latents.dim() != 3:
            raise ValueError(f"`latents` must have shape (batch, channels, frames), got {tuple(latents.shape)}.")
        for name in callback_on_step_end_tensor_inputs or []:
            if name not in self._callback_tensor_inputs:
                raise ValueError(f"`callback_on_step_end_tensor_inputs` may hold {self._callback_tensor_inputs}, got {name}.")

    # ------------------------------------------------------------------ 2. text
    @torch.no_grad()
    def encode_prompt(
        self,
        prompt: str | list[str],
        device,
        num_waveforms_per_prompt: int = 1,
        do_classifier_free_guidance: bool = True,
        negative_prompt: str | list[str] | None = None,
    ) -> tuple[TextEncoderOutput, TextEncoderOutput | None]:
        """Encode prompts (and the unconditional branch). Each output has batch
        `len(prompt) * num_waveforms_per_prompt`; the unconditional one is the encoder's null
        embedding unless a negative prompt is given."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        cond = self.text_encoder.encode(prompts, device=device)
        cond = self._repeat(cond, num_waveforms_per_prompt)
        if not do_classifier_free_guidance:
            return cond, None
        if negative_prompt is None:
            uncond = self.text_encoder.null_output(cond.pooled.shape[0], device=device)
        else:
            negatives = [negative_prompt] * len(prompts) if isinstance(negative_prompt, str) else list(negative_prompt)
            if len(negatives) == 1:
                negatives = negatives * len(prompts)
            uncond = self._repeat(self.text_encoder.encode(negatives, device=device), num_waveforms_per_prompt)
        return cond, uncond

    @staticmethod
    def _repeat(output: TextEncoderOutput, times: int) -> TextEncoderOutput:
        return TextEncoderOutput(
            embeddings=output.embeddings.repeat_interleave(times, dim=0),
            mask=output.mask.repeat_interleave(times, dim=0),
            pooled=output.pooled.repeat_interleave(times, dim=0),
        )

    # ------------------------------------------------------------------ 3. latents
    def prepare_latents(self, batch_size, num_frames, dtype, device, generator=None, latents=None):
        """Initial Gaussian noise (B, C, T). A list of generators gives one seed per waveform."""
        shape = (batch_size, self.transformer.config.in_channels, num_frames)
        if isinstance(generator, list) and len(generator) != batch_size:
            raise ValueError(f"Got {len(generator)} generators for {batch_size} waveforms; pass one per waveform.")
        if latents is None:
            return randn_tensor(shape, generator=generator, device=device, dtype=dtype)
        if tuple(latents.shape) != shape:
            raise ValueError(f"`latents` must have shape {shape}, got {tuple(latents.shape)}.")
        return latents.to(device=device, dtype=dtype)

    @torch.no_grad()
    def encode_audio(self, audio: torch.Tensor, device, dtype) -> torch.Tensor:
        """Waveform (B, 2, S) -> scaled latents (B, C, T) (the posterior mode)."""
        posterior = self.vae.encode(audio.to(device=device, dtype=self.vae.dtype)).latent_dist
        return (posterior.mode() * self.latent_scale).to(dtype)

    def _frames(self, seconds: float) -> int:
        return self.vae.latent_frames(int(round(seconds * self.sampling_rate)))

    def melody_ids(self, audio, sample_rate: int | None = None) -> torch.Tensor:
        """`(T,)` long: the dominant pitch class of each latent frame of a reference `audio` ((S,) or
        (channels, S) at `sample_rate`, default the pipeline's), NO_PITCH (-1) where it is silent:
        what a melody-conditioned model follows (`audiodit.melody`)."""
        from audiodit.melody import melody_ids

        return melody_ids(torch.as_tensor(audio).float().cpu(), sample_rate or self.sampling_rate, self.vae.latent_rate)

    def _fit_melody(self, melody, frames: int) -> torch.Tensor:
        """A `melody` argument (audio or ids) as `(frames,)` ids: cut, or padded with "none"
        (MELODY_ABSENT, -2)."""
        melody = torch.as_tensor(melody)
        if melody.is_floating_point():
            if melody.dim() not in (1, 2) or melody.shape[-1] == 0:
                raise ValueError(f"`melody` audio must be (S,) or (channels, S), got {tuple(melody.shape)}.")
            ids = self.melody_ids(melody)
        elif melody.dim() == 1:
            ids = melody.long()
            if bool(((ids < MELODY_ABSENT) | (ids > 11)).any()):
                raise ValueError("`melody` ids must lie in [-2, 11] (a pitch class, -1 a rest, -2 none).")
        else:
            raise ValueError(f"`melody` ids must be (T,), got {tuple(melody.shape)}.")
        return torch.nn.functional.pad(ids[:frames].cpu(), (0, max(0, frames - ids.shape[0])), value=MELODY_ABSENT)

    # ------------------------------------------------------------------ __call__
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str] | None = None,
        audio_end_in_s: float | None = None,
        audio_start_in_s: float = 0.0,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        negative_prompt: str | list[str] | None = None,
        guidance_rescale: float = 0.0,
        num_waveforms_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: TextEncoderOutput | None = None,
        initial_audio: torch.Tensor | None = None,
        strength: float = 1.0,
        inpaint_range: tuple[float, float] | None = None,
        continuation_in_s: float | None = None,
        bpm: float | list[float] | None = None,
        key: str | list[str | None] | None = None,
        key_guidance_scale: float | None = None,
        key_classifier_scale: float | None = None,
        melody: torch.Tensor | None = None,
        melody_guidance_scale: float | None = None,
        guidance_interval: tuple[float, float] | None = None,
        output_type: str = "pt",
        return_dict: bool = True,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ):
        """Generate audio.

        Args:
            prompt: text prompt(s).
            audio_end_in_s / audio_start_in_s: timing; duration = end - start seconds (default: 10 s,
                capped at the model maximum; for editing, the initial audio's duration).
            num_inference_steps, guidance_scale, negative_prompt: as in diffusers; None takes the
                defaults saved with the model (`default_num_inference_steps`, `default_guidance_scale`).
            guidance_rescale: rescale the guided velocity's std towards the conditional one
                (Lin et al. 2023, "Common Diffusion Noise Schedules are Flawed", §3.4); 0 disables.
            num_waveforms_per_prompt: variations per prompt.
            generator: a generator, or one per waveform (per-sample seeds).
            latents: initial noise (B, C, T) instead of drawing it.
            prompt_embeds: precomputed `TextEncoderOutput` for the conditional branch.
            initial_audio: stereo 48 kHz waveform (2, S) or (B, 2, S) for editing modes; one longer
                than `max_audio_length_s` (or a continuation longer than one window adds) is edited
                window by window (`AudioEditingMixin._edit_long`).
            strength: audio-to-audio, in (0, 1]: how far the initial audio is noised (1 = ignore it).
            inpaint_range: (start_s, end_s) of `initial_audio` to regenerate; the rest is kept.
            continuation_in_s: extend `initial_audio` by this many seconds, conditioned on its end.
            bpm: tempo per prompt (a number or one per prompt; NaN = none) for a model with tempo
                conditioning; None reads it from each prompt ("... 80 BPM ...", `parse_bpm`), and a
                prompt that states none (or `prompt_embeds`) gets the model's "no tempo" embedding.
                The unconditional branch of guidance never has a tempo, as in training.
            key: key per prompt ("D minor", "F# major"; None = none) for a model with key
                conditioning; None reads it from each prompt (`parse_key`), as `bpm` does.
            key_guidance_scale: for a key-conditioned model, scales what the stated key alone changes
                (a third branch without the key; `audiodit.guidance`); None takes the model's
                `default_key_guidance_scale` while `guidance_scale` > 1, 0 disables.
            key_classifier_scale: with a `key_classifier`, moves every step towards the stated key by
                the classifier's gradient (`audiodit.guidance.key_classifier_velocity`); None takes
                the model's `default_key_classifier_scale`, 0 disables.
            melody: for a model with melody conditioning, the tune to follow: a reference waveform
                ((S,) or (2, S) float at the pipeline's rate; its dominant pitch class per latent
                frame, `melody_ids`) or those ids ((T,) int). Frame 0 is the clip's start (with
                `continuation_in_s`, the new audio's); frames past the melody's end are free. Edits
                longer than the model take it window by window, as `generate_long` does.
            melody_guidance_scale: scales what the melody alone changes (one more branch without it),
                as `key_guidance_scale` does for the key; 0 disables; None: the model's default
                (`default_melody_guidance_scale`, chosen on train-split captions) while
                classifier-free guidance is on (`guidance_scale` > 1), else 0.
            guidance_interval: (low, high) noise levels in [0, 1] (1 is pure noise) at which
                classifier-free guidance (and key and melody guidance, its extra branches) applies;
                the steps outside run the conditional branch alone, one transformer pass instead of
                one per branch (Kynkaanniemi et al. 2024). Key classifier guidance applies at every
                step. None: every step.
            output_type: "pt" (torch (B, 2, S)), "np" (numpy) or "latent" (scaled latents (B, C, T)).
            callback_on_step_end: `fn(pipe, step, timestep, callback_kwargs) -> dict`.

        Returns:
            `AudioPipelineOutput(audios=...)` or a tuple `(audios,)`.
        """
        sampling = dict(  # what every mode passes on to the window(s) it generates
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale, negative_prompt=negative_prompt,
            guidance_rescale=guidance_rescale, bpm=bpm, key=key, key_guidance_scale=key_guidance_scale,
            key_classifier_scale=key_classifier_scale, melody=melody, melody_guidance_scale=melody_guidance_scale,
            guidance_interval=guidance_interval, callback_on_step_end=callback_on_step_end,
            num_waveforms_per_prompt=num_waveforms_per_prompt, generator=generator, output_type=output_type,
            return_dict=return_dict,
        )
        if continuation_in_s is not None:
            return self._continuation(prompt, initial_audio, continuation_in_s, audio_start_in_s, audio_end_in_s,
                                      strength, inpaint_range, latents, prompt_embeds,
                                      callback_on_step_end_tensor_inputs, **sampling)
        return self._any_length(prompt, initial_audio, audio_start_in_s, strength, inpaint_range,
                                audio_end_in_s=audio_end_in_s, latents=latents, prompt_embeds=prompt_embeds,
                                callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs, **sampling)

    # ------------------------------------------------------------------ one window, every mode
    @torch.no_grad()
    def _generate(
        self, prompt=None, audio_start_in_s: float = 0.0, audio_end_in_s: float | None = None, *,
        num_inference_steps: int | None = None, guidance_scale: float | None = None, negative_prompt=None,
        guidance_rescale: float = 0.0, num_waveforms_per_prompt: int = 1, generator=None, latents=None,
        prompt_embeds: TextEncoderOutput | None = None, initial_audio: torch.Tensor | None = None,
        strength: float = 1.0, inpaint_range: tuple[float, float] | None = None, bpm=None, key=None,
        key_guidance_scale: float | None = None, key_classifier_scale: float | None = None, melody=None,
        melody_guidance_scale: float | None = None, guidance_interval: tuple[float, float] | None = None,
        output_type: str = "pt", return_dict: bool = True, callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ):
        """One window of at most the model's length, in any mode but continuation: text-to-audio,
        audio-to-audio (`strength` < 1) and inpainting (`inpaint_range`). Every mode method, long-form
        window and interpolation point comes here, never through `__call__`; arguments and defaults
        are `__call__`'s."""
        num_inference_steps, guidance_scale, key_guidance_scale, key_classifier_scale = self.resolve_settings(
            num_inference_steps, guidance_scale, key_guidance_scale, key_classifier_scale)
        initial_audio = as_batch(initial_audio)
        if audio_end_in_s is None:
            clip_s = min(10.0, self.max_audio_length_s) if initial_audio is None else initial_audio.shape[-1] / self.sampling_rate
            audio_end_in_s = audio_start_in_s + clip_s

        # 1. Check inputs
        self.check_inputs(
            prompt, audio_start_in_s, audio_end_in_s, num_inference_steps, guidance_scale, negative_prompt,
            strength, initial_audio, inpaint_range, None, latents, prompt_embeds,
            callback_on_step_end_tensor_inputs, key_guidance_scale, key_classifier_scale, guidance_rescale,
        )
        device = self._execution_device

        # 2. Conditioning: text, timing, tempo, key and guidance for every branch, built once
        conditioning = self.prepare_conditioning(
            prompt, device, num_waveforms_per_prompt, guidance_scale, negative_prompt, prompt_embeds,
            audio_start_in_s, audio_end_in_s, bpm, key, key_guidance_scale, key_classifier_scale, guidance_rescale,
            melody, melody_guidance_scale, guidance_interval,
        )
        batch_size = conditioning.batch_size
        dtype = self.transformer.dtype

        # 3. Timesteps (audio-to-audio starts part-way along the path, as SD3's img2img does)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        start_index = start_step(num_inference_steps, strength)
        if start_index:
            timesteps = timesteps[start_index * self.scheduler.order :]
        if hasattr(self.scheduler, "set_begin_index"):
            self.scheduler.set_begin_index(start_index * self.scheduler.order)
        t_scale = self._num_train_timesteps()

        # 4. Prepare latents
        duration = audio_end_in_s - audio_start_in_s
        num_samples = int(round(duration * self.sampling_rate))
        num_frames = self.vae.latent_frames(num_samples)
        noise = self.prepare_latents(batch_size, num_frames, dtype, device, generator, latents)
        known, hooks = None, []
        if initial_audio is not None:
            audio = initial_audio[..., :num_samples]
            audio = torch.nn.functional.pad(audio, (0, num_samples - audio.shape[-1]))
            if audio.shape[0] not in (1, batch_size):
                raise ValueError(f"`initial_audio` has batch {audio.shape[0]}, expected 1 or {batch_size}.")
            known = self.encode_audio(audio, device, dtype).expand(batch_size, -1, -1)  # (B, C, T)
            if inpaint_range is not None:
                start_frame = int(inpaint_range[0] * self.vae.latent_rate)
                end_frame = math.ceil(inpaint_range[1] * self.vae.latent_rate)
                keep_mask = seam_keep_mask(num_frames, [(0, start_frame), (end_frame, num_frames)], device, dtype)
                hooks.append(repaint_hook(known, noise, keep_mask, timesteps, t_scale))
        latents = noise
        if known is not None and strength < 1.0:
            t_start = (timesteps[0] / t_scale).to(dtype)
            latents = FlowMatching.add_noise(known, noise, t_start)  # (B, C, T)

        # 5. Denoising loop
        latents = self._denoise(latents, conditioning, timesteps, hooks, callback_on_step_end)

        # 6. Decode
        return self._finish(latents, num_samples, output_type, return_dict)

    # ------------------------------------------------------------------ the shared parts of every mode
    def prepare_conditioning(
        self, prompt, device, num_waveforms_per_prompt: int = 1, guidance_scale: float = 1.0,
        negative_prompt=None, prompt_embeds: TextEncoderOutput | None = None, audio_start_in_s: float = 0.0,
        audio_end_in_s: float = 10.0, bpm=None, key=None, key_guidance_scale: float = 0.0,
        key_classifier_scale: float = 0.0, guidance_rescale: float = 0.0, melody=None,
        melody_guidance_scale: float | None = None, guidance_interval: tuple[float, float] | None = None,
    ) -> Conditioning:
        """The `Conditioning` of one call: the text of every guidance branch (the unconditional one
        the null embedding or the negative prompt), its timing, and the tempo and key the model
        reads (given, or stated in the prompts; never in the unconditional branch)."""
        do_cfg = guidance_scale > 1.0
        if guidance_interval is not None:
            check_guidance_interval(guidance_interval)
            guidance_interval = (float(guidance_interval[0]), float(guidance_interval[1]))
        key_guidance = do_cfg and key_guidance_scale > 0
        given = None if melody is None else torch.as_tensor(melody)
        if given is not None and not given.is_floating_point() and bool((given == MELODY_ABSENT).all()):
            melody = None  # all "none" (a window past the tune's end): no melody, and no guidance branch for it
        melody_guidance_scale = self.resolve_melody_guidance_scale(melody_guidance_scale, guidance_scale, melody)
        check_setting("melody_guidance_scale", melody_guidance_scale)
        if melody is not None and not getattr(self.transformer.config, "melody_conditioning", False):
            raise ValueError("`melody` was given, but this model has no melody conditioning.")
        if melody_guidance_scale > 0 and (melody is None or not do_cfg):
            raise ValueError("`melody_guidance_scale` > 0 needs a `melody` and classifier-free guidance "
                             "(`guidance_scale` > 1).")
        melody_guidance = melody_guidance_scale > 0
        branches = branch_count(do_cfg, key_guidance, melody_guidance)  # conditions per sample in the batch
        if prompt_embeds is None:
            cond, uncond = self.encode_prompt(prompt, device, num_waveforms_per_prompt, do_cfg, negative_prompt)
        else:
            cond = prompt_embeds
            uncond = self.text_encoder.null_output(cond.pooled.shape[0], device=device) if do_cfg else None
        batch_size = cond.pooled.shape[0]
        # every branch after the unconditional one (conditional, key and melody contrasts) has the text
        text = pad_and_concat([uncond] + [cond] * (branches - 1)) if do_cfg else cond
        stated = prompt if prompt_embeds is None else None
        config = self.transformer.config
        check_beat_grid(config, self.vae.latent_rate)
        extra = condition_branches(config, stated, {"bpm": bpm, "key": key}, batch_size, num_waveforms_per_prompt,
                                   do_cfg, device)
        if melody is not None:
            frames = self._frames(audio_end_in_s - audio_start_in_s)
            ids = self._fit_melody(melody, frames).to(device)  # (T,)
            extra["melody"] = per_waveform_rows(ids, batch_size, do_cfg)  # (2B | B, T), uncond absent
        if key_guidance:
            extra = add_contrast_branch(extra, "key_ids", batch_size)  # + the conditional branch without its key
        if melody_guidance:
            extra = add_contrast_branch(extra, "melody", batch_size)  # + the conditional branch without its melody
        classifier_keys = None  # (B,) the stated keys, for key classifier guidance
        if key_classifier_scale > 0:
            classifier_keys = stated_key_ids(stated, key, batch_size // num_waveforms_per_prompt)
            classifier_keys = classifier_keys.repeat_interleave(num_waveforms_per_prompt).to(device)
        seconds_start = torch.full((batch_size,), float(audio_start_in_s), device=device).repeat(branches)
        seconds_total = torch.full((batch_size,), float(audio_end_in_s), device=device).repeat(branches)
        contrasts = (key_guidance_scale,) * key_guidance + (melody_guidance_scale,) * melody_guidance
        return Conditioning(text, seconds_start, seconds_total, extra, branches, guidance_scale, key_guidance_scale,
                            guidance_rescale, classifier_keys, key_classifier_scale, contrasts, guidance_interval)

    def velocity(self, latents: torch.Tensor, timestep: torch.Tensor, conditioning: Conditioning) -> torch.Tensor:
        """The guided velocity (B, C, T) at `latents` (B, C, T) and scheduler `timestep`: one
        transformer pass over every branch (the conditional one alone outside the conditioning's
        guidance interval), combined (`guided_velocity`), then moved by key classifier guidance
        where the conditioning asks for it."""
        t_scale = self._num_train_timesteps()
        dtype = self.transformer.dtype
        c = conditioning.at(float(timestep / t_scale))
        model_input = latents.repeat(c.branches, 1, 1)  # (branches * B, C, T)
        t_model = (timestep / t_scale).expand(model_input.shape[0]).to(dtype)
        velocity = self.transformer(
            model_input,
            timestep=t_model,
            encoder_hidden_states=c.text.embeddings.to(dtype),
            encoder_attention_mask=c.text.mask,
            pooled_text=c.text.pooled.to(dtype),
            seconds_start=c.seconds_start,
            seconds_total=c.seconds_total,
            **c.extra,
        ).sample  # (branches * B, C, T)
        velocity = guided_velocity(velocity, c.branches, c.guidance_scale, c.key_guidance_scale,
                                   c.guidance_rescale, c.contrast_scales)  # (B, C, T)
        if c.classifier_keys is not None:
            velocity = key_classifier_velocity(self.key_classifier, latents, velocity, float(timestep / t_scale),
                                               c.classifier_keys, c.key_classifier_scale)  # (B, C, T)
        return velocity

    def _denoise(self, latents: torch.Tensor, conditioning: Conditioning, timesteps: torch.Tensor,
                 hooks: list[Callable] = (), callback_on_step_end: Callable | None = None) -> torch.Tensor:
        """The one denoising loop of every mode: `latents` (B, C, T) along `timesteps`, each step the
        guided velocity and a scheduler step, then each `hook(step, latents) -> latents` (RePaint's
        kept frames: `repaint_hook`) and the user's `callback_on_step_end`."""
        with self.progress_bar(total=len(timesteps)) as progress:
            for step, timestep in enumerate(timesteps):
                velocity = self.velocity(latents, timestep, conditioning)
                latents = self.scheduler.step(velocity, timestep, latents, return_dict=False)[0]
                for hook in hooks:
                    latents = hook(step, latents)
                if callback_on_step_end is not None:
                    tensors = {"latents": latents}  # the only entry of _callback_tensor_inputs
                    outputs = callback_on_step_end(self, step, timestep, tensors)
                    latents = (outputs or {}).get("latents", latents)
                progress.update()
        return latents

    def _finish(self, latents, num_samples, output_type, return_dict):
        if output_type == "latent":
            audios = latents
        else:
            waveform = self.vae.decode((latents / self.latent_scale).to(self.vae.dtype), length=num_samples).sample
            audios = waveform.float()
            if output_type == "np":
                audios = audios.cpu().numpy()
            elif output_type != "pt":
                raise ValueError(f"`output_type` must be 'pt', 'np' or 'latent', got {output_type!r}.")
        self.maybe_free_model_hooks()
        return AudioPipelineOutput(audios=audios) if return_dict else (audios,)

def repaint_hook(known: torch.Tensor, noise: torch.Tensor, keep_mask: torch.Tensor, timesteps: torch.Tensor,
                 t_scale: float) -> Callable:
    """A `_denoise` hook for inpainting: after each step the kept frames (`keep_mask` 1) follow the
    known latents' own noise path (`audiodit.diffusion.repaint`)."""
    def hook(step: int, latents: torch.Tensor) -> torch.Tensor:
        return repaint(latents, known, noise, keep_mask, next_noise_level(timesteps, step, t_scale))

    return hook


def default_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
