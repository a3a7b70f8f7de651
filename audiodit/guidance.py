"""Classifier-free guidance: which conditions the pipeline's transformer batch holds, and how their
velocities combine.

Each sample runs as up to three branches, stacked along the batch in this order: unconditional
(no text, tempo or key), conditional, and, with key guidance, conditional without its key.
`condition_branches` gives every global condition's per-branch input (`audiodit.models.conditions`;
how prompts and arguments state each: `STATED`).

Plain guidance (Ho & Salimans 2022) runs an unconditional and a conditional branch and moves along
their difference: `v = v_uncond + g (v_cond - v_uncond)`. The unconditional branch drops the text,
tempo and key together, as training does, so `g` scales all of them at once.

Key guidance adds a third branch for a key-conditioned transformer: the conditional one with its
key replaced by the "no key" vector (same text, tempo, timing and noise). The difference
`v_cond - v_no_key` is what the stated key alone changes, and

    v = v_uncond + g (v_cond - v_uncond) + g_key (v_cond - v_no_key)

scales it on its own, as compositional guidance does for several conditions (Liu et al. 2022,
"Compositional Visual Generation with Composable Diffusion Models"). It costs one more branch per
step (3 instead of 2). `python -m benchmarks.key_response --key-guidance` measures what it does.

Key classifier guidance is another way to the stated key: a small classifier of the key of noisy
latents (`audiodit.models.key_classifier`) is a pipeline component, and the gradient of its
log-probability of the stated key moves the guided velocity (`key_classifier_velocity`). It needs
no extra transformer branch, only a classifier forward and backward per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from audiodit.conditioners import TextEncoderOutput
from audiodit.inputs import check_setting
from audiodit.prompt_attributes import parse_key, prompt_keys, prompt_tempi
from audiodit.models.conditions import FRAME_CONDITIONS, GLOBAL_CONDITIONS, switched_on
from audiodit.models.embedders import MELODY_ABSENT, NO_KEY

# Floor of 1 - t in classifier guidance: t / (1 - t) grows without bound towards pure noise, where
# the classifier knows least (it is trained on t <= 0.9).
MIN_SIGNAL = 0.05


@dataclass
class Conditioning:
    """Everything one call conditions the transformer on, for every guidance branch at once, built
    once per call (`AudioDiTPipeline.prepare_conditioning`) and read at every denoising step.

    Rows are stacked in `branch_count` order, `branches` blocks of `batch_size` waveforms each."""

    text: TextEncoderOutput  # embeddings (branches * B, L, D), mask (branches * B, L), pooled (branches * B, D)
    seconds_start: torch.Tensor  # (branches * B,) timing of the clip inside its piece
    seconds_total: torch.Tensor  # (branches * B,)
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # named conditions per row: bpm, key_ids
    branches: int = 1
    guidance_scale: float = 1.0
    key_guidance_scale: float = 0.0
    guidance_rescale: float = 0.0
    classifier_keys: torch.Tensor | None = None  # (B,) stated keys for key classifier guidance, or None
    key_classifier_scale: float = 0.0
    contrast_scales: tuple[float, ...] = ()  # scale of each branch after the conditional one (key, melody)
    guidance_interval: tuple[float, float] | None = None  # noise levels (low, high) guided; None: every step

    @property
    def batch_size(self) -> int:
        return self.text.pooled.shape[0] // self.branches

    def at(self, t: float) -> Conditioning:
        """The conditioning of a step at noise level `t` in [0, 1]: all of it inside
        `guidance_interval`, outside it the conditional branch alone (one transformer pass instead
        of `branches`): guidance only over a range of noise levels, Kynkaanniemi et al. 2024,
        "Applying Guidance in a Limited Interval Improves Sample and Distribution Quality"."""
        if self.branches == 1 or self.guidance_interval is None:
            return self
        low, high = self.guidance_interval
        if low <= t <= high:
            return self
        rows = slice(self.batch_size, 2 * self.batch_size)  # the conditional block, second in branch_count order
        text = TextEncoderOutput(embeddings=self.text.embeddings[rows], mask=self.text.mask[rows],
                                 pooled=self.text.pooled[rows])
        return replace(self, text=text, seconds_start=self.seconds_start[rows], seconds_total=self.seconds_total[rows],
                       extra={name: values[rows] for name, values in self.extra.items()}, branches=1,
                       contrast_scales=(), guidance_interval=None)


def branch_count(do_cfg: bool, key_guidance: bool, melody_guidance: bool = False) -> int:
    """Conditions per sample in the transformer batch: [cond], [uncond, cond], then with guidance
    a contrast branch for each of key guidance (cond without key) and melody guidance (cond
    without melody), in that order."""
    return 1 + int(do_cfg) + int(do_cfg and key_guidance) + int(do_cfg and melody_guidance)


def per_waveform(values: torch.Tensor, none, num_waveforms_per_prompt: int, do_cfg: bool, device) -> torch.Tensor:
    """Per-prompt values `(P,)` -> `(B,)` per waveform, or `(2B,)` with the unconditional half
    (first) set to `none`: guidance's unconditional branch states no tempo or key, as in training."""
    values = values.repeat_interleave(num_waveforms_per_prompt).to(device)  # (B,)
    return torch.cat([torch.full_like(values, none), values]) if do_cfg else values


def per_waveform_rows(values: torch.Tensor, batch_size: int, do_cfg: bool) -> torch.Tensor:
    """One per-frame condition `(T,)` for every waveform: `(B, T)`, or `(2B, T)` with the
    unconditional half (first) "absent" (MELODY_ABSENT), as training drops it with the text."""
    rows = values[None].expand(batch_size, -1)  # (B, T)
    return torch.cat([torch.full_like(rows, MELODY_ABSENT), rows]) if do_cfg else rows


@dataclass(frozen=True)
class Stated:
    """How a global condition of `audiodit.models.conditions` is stated: by the prompts (parsed),
    or by the pipeline's own argument, which wins."""

    argument: str  # the pipeline's keyword ("bpm", "key")
    noun: str  # for messages ("tempo")
    from_prompts: Callable[[list[str]], torch.Tensor]  # prompts -> (P,) values, `absent` where none
    from_argument: Callable[[object, int], torch.Tensor]  # (argument, P) -> (P,) values; ValueError if bad


def _argument_tempi(bpm, count: int) -> torch.Tensor:
    tempi = torch.as_tensor(bpm, dtype=torch.float32).reshape(-1)
    if tempi.numel() == 1:
        tempi = tempi.expand(count)
    if tempi.numel() != count:
        raise ValueError(f"`bpm` has {tempi.numel()} entries but there are {count} prompts.")
    if bool((tempi <= 0).any()):
        raise ValueError(f"`bpm` must be positive (NaN for none), got {tempi.tolist()}.")
    return tempi


def _argument_keys(key, count: int) -> torch.Tensor:
    names = [key] if isinstance(key, str) else list(key)
    names = names * count if len(names) == 1 else names
    if len(names) != count:
        raise ValueError(f"`key` has {len(names)} entries but there are {count} prompts.")
    ids = [NO_KEY if name is None else parse_key(name) for name in names]
    for name, key_id in zip(names, ids):
        if name is not None and key_id == NO_KEY:
            raise ValueError(f"`key` {name!r} is not a key such as 'D minor', 'F# major' or 'B-flat minor'.")
    return torch.tensor(ids, dtype=torch.long)


# Condition name (models.conditions.GLOBAL_CONDITIONS) -> how it is stated. A new global
# condition needs an entry here; the training stage reads captions with the same `from_prompts`.
STATED = {
    "bpm": Stated("bpm", "tempo", prompt_tempi, _argument_tempi),
    "key_ids": Stated("key", "key", prompt_keys, _argument_keys),
}


def stated_values(name: str, prompt, argument, count: int) -> torch.Tensor:
    """`(count,)` values of condition `name`: from the pipeline's `argument` (None: not given),
    else from the prompts, else `absent`."""
    condition = next(c for c in GLOBAL_CONDITIONS if c.name == name)
    if argument is not None:
        return STATED[name].from_argument(argument, count)
    if prompt is not None:
        return STATED[name].from_prompts([prompt] if isinstance(prompt, str) else list(prompt))
    return torch.full((count,), condition.absent, dtype=torch.long if condition.integer else torch.float32)


def stated_key_ids(prompt, key, count: int) -> torch.Tensor:
    """`(count,)` key ids of the prompts: `key` (a name or one per prompt, None = none) wins over
    the key each prompt states; NO_KEY where none is stated (or there is no prompt)."""
    return stated_values("key_ids", prompt, key, count)


def condition_branches(config, prompt, arguments: dict, batch_size: int, num_waveforms_per_prompt: int,
                       do_cfg: bool, device) -> dict[str, torch.Tensor]:
    """`{name: (2B | B,)}` for every global condition a transformer `config` was built with, the
    unconditional half `absent` (as training drops them with the text). `arguments` holds the
    pipeline's keywords (`bpm`, `key`; None = not given), which win over what the prompts state; one
    given for a condition the model lacks is a ValueError."""
    on = {condition.name for condition in switched_on(config, "global")}
    count = batch_size // num_waveforms_per_prompt
    out = {}
    for condition in GLOBAL_CONDITIONS:
        stated = STATED[condition.name]
        given = arguments.get(stated.argument)
        if condition.name not in on:
            if given is not None:
                switch = condition.switch.replace("_", " ")
                raise ValueError(f"`{stated.argument}` was given, but this model has no {switch}; state the "
                                 f"{stated.noun} in the prompt instead.")
            continue
        values = stated_values(condition.name, prompt, given, count)
        out[condition.name] = per_waveform(values, condition.absent, num_waveforms_per_prompt, do_cfg, device)
    return out


def check_beat_grid(config, vae_latent_rate: float) -> None:
    """ValueError when a beat-conditioned transformer counts latent frames at another rate than
    the VAE makes them: its beat grid would drift."""
    if getattr(config, "beat_conditioning", False) and abs(config.latent_rate - vae_latent_rate) > 1e-6:
        raise ValueError(f"the transformer's latent_rate {config.latent_rate} does not match the VAE's "
                         f"{vae_latent_rate}: its beat grid would drift")


def check_key_guidance(config, key_guidance_scale: float) -> None:
    """ValueError unless `key_guidance_scale` suits a transformer `config`: >= 0, and 0 without key
    conditioning (there is no key to guide)."""
    check_setting("key_guidance_scale", key_guidance_scale)
    if key_guidance_scale > 0 and not getattr(config, "key_conditioning", False):
        raise ValueError(f"`key_guidance_scale` {key_guidance_scale:g} needs a model with key conditioning; "
                         "this transformer has no key conditioning.")


def add_contrast_branch(extra: dict[str, torch.Tensor], dropped: str, batch_size: int | None = None
                        ) -> dict[str, torch.Tensor]:
    """Per-branch conditions `(kB, ...)` = [uncond, cond, ...] -> `((k + 1) B, ...)` with one more
    copy of the conditional block (the second, of `batch_size` rows; default: half of them) that
    states nothing for condition `dropped` (key guidance: `key_ids`; melody guidance: `melody`) and
    keeps every other condition's conditional value."""
    absent = next(c.absent for c in GLOBAL_CONDITIONS + FRAME_CONDITIONS if c.name == dropped)
    out = {}
    for name, values in extra.items():
        batch = batch_size or values.shape[0] // 2
        cond = values[batch:2 * batch]  # (B, ...)
        out[name] = torch.cat([values, torch.full_like(cond, absent) if name == dropped else cond])
    return out


def guided_velocity(velocity: torch.Tensor, branches: int, guidance_scale: float,
                    key_guidance_scale: float = 0.0, guidance_rescale: float = 0.0,
                    contrast_scales: tuple[float, ...] | None = None) -> torch.Tensor:
    """`(branches * B, C, T)` velocities in `branch_count` order -> the guided `(B, C, T)`:
    `v_uncond + g (v_cond - v_uncond) + sum_i s_i (v_cond - v_contrast_i)` over the contrast branches
    after the conditional one, with scales `contrast_scales` (default: `key_guidance_scale` for a
    third branch, the key's).

    `guidance_rescale` (Lin et al. 2023, "Common Diffusion Noise Schedules are Flawed", §3.4) pulls
    the guided velocity's std back towards the conditional one; 0 disables it."""
    if branches == 1:
        return velocity
    parts = velocity.chunk(branches)  # each (B, C, T)
    v_uncond, v_cond = parts[0], parts[1]
    guided = v_uncond + guidance_scale * (v_cond - v_uncond)
    if contrast_scales is None:
        contrast_scales = (key_guidance_scale,) * (branches - 2)
    if len(contrast_scales) != branches - 2:
        raise ValueError(f"{branches} branches need {branches - 2} contrast scales, got {len(contrast_scales)}")
    for scale, v_without in zip(contrast_scales, parts[2:]):
        guided = guided + scale * (v_cond - v_without)
    if guidance_rescale > 0:
        ratio = v_cond.std(dim=(1, 2), keepdim=True) / guided.std(dim=(1, 2), keepdim=True)
        guided = guidance_rescale * guided * ratio + (1 - guidance_rescale) * guided
    return guided


def check_key_classifier(classifier, scale: float) -> None:
    """ValueError unless `scale` suits the pipeline's `classifier` (None when it has none): >= 0, and 0
    without a classifier."""
    check_setting("key_classifier_scale", scale)
    if scale > 0 and classifier is None:
        raise ValueError(f"`key_classifier_scale` {scale:g} needs a pipeline with a `key_classifier` "
                         "(python -m audiodit.export --key-classifier DIR); this one has none.")


def key_classifier_velocity(classifier, latents: torch.Tensor, velocity: torch.Tensor, t: float,
                            key_ids: torch.Tensor, scale: float) -> torch.Tensor:
    """The velocity `(B, C, T)` at latents `(B, C, T)` and flow time `t`, moved towards the stated keys
    `key_ids (B,)` by the latent key classifier's gradient (rows with NO_KEY are left alone).

    Classifier guidance (Dhariwal & Nichol 2021) adds `scale * grad log p(key | x_t)` to the score.
    On the path `x_t = (1 - t) x0 + t noise` the noise prediction is `-t * score` and the velocity
    `(noise - x_t) / (1 - t)`, so the same shift of the score moves the velocity by
    `-scale * t / (1 - t) * grad`."""
    known = key_ids != NO_KEY  # (B,)
    if scale == 0 or not bool(known.any()):
        return velocity
    with torch.enable_grad():
        noisy = latents.detach().to(classifier.dtype).requires_grad_(True)  # (B, C, T)
        log_prob = classifier.log_prob(noisy, torch.full((len(noisy),), t, device=noisy.device, dtype=noisy.dtype),
                                       key_ids.clamp_min(0))  # (B,)
        (gradient,) = torch.autograd.grad((log_prob * known).sum(), noisy)  # (B, C, T)
    weight = scale * t / max(1.0 - t, MIN_SIGNAL)
    return velocity - weight * gradient.to(velocity.dtype)
