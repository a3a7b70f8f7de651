"""Classifier-free guidance: which conditions the pipeline's transformer batch holds, and how their
velocities combine.

Plain guidance (Ho & Salimans 2022) runs an unconditional and a conditional branch and moves along
their difference: `v = v_uncond + g (v_cond - v_uncond)`. The unconditional branch drops the text,
tempo and key together, as training does, so `g` scales all of them at once.

Key guidance adds a third branch for a key-conditioned transformer: the conditional one with its
key replaced by the "no key" vector (same text, tempo, timing and noise). The difference
`v_cond - v_no_key` is what the stated key alone changes, and

    v = v_uncond + g (v_cond - v_uncond) + g_key (v_cond - v_no_key)

scales it on its own, as compositional guidance does for several conditions (Liu et al. 2022,
"Compositional Visual Generation with Composable Diffusion Models"). It costs one more branch per
step (3 instead of 2). `benchmarks/key_response.py --key-guidance` measures what it does.
"""

from __future__ import annotations

import torch

from audiodit.models.embedders import NO_KEY


def branch_count(do_cfg: bool, key_guidance: bool) -> int:
    """Conditions per sample in the transformer batch: [cond], [uncond, cond] or
    [uncond, cond, cond without key]."""
    return 1 + int(do_cfg) + int(key_guidance)


def add_key_contrast_branch(extra: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Per-branch conditioning `(2B,)` = [uncond, cond] -> `(3B,)` = [uncond, cond, cond], where the
    third copy's `key_ids` is NO_KEY and everything else (e.g. `bpm`) is the conditional value."""
    out = {}
    for name, values in extra.items():
        cond = values[values.shape[0] // 2 :]  # (B,)
        out[name] = torch.cat([values, torch.full_like(cond, NO_KEY) if name == "key_ids" else cond])  # (3B,)
    return out


def guided_velocity(velocity: torch.Tensor, branches: int, guidance_scale: float,
                    key_guidance_scale: float = 0.0, guidance_rescale: float = 0.0) -> torch.Tensor:
    """`(branches * B, C, T)` velocities in `branch_count` order -> the guided `(B, C, T)`.

    `guidance_rescale` (Lin et al. 2023, "Common Diffusion Noise Schedules are Flawed", §3.4) pulls
    the guided velocity's std back towards the conditional one; 0 disables it."""
    if branches == 1:
        return velocity
    parts = velocity.chunk(branches)  # each (B, C, T)
    v_uncond, v_cond = parts[0], parts[1]
    guided = v_uncond + guidance_scale * (v_cond - v_uncond)
    if branches == 3:
        guided = guided + key_guidance_scale * (v_cond - parts[2])
    if guidance_rescale > 0:
        ratio = v_cond.std(dim=(1, 2), keepdim=True) / guided.std(dim=(1, 2), keepdim=True)
        guided = guidance_rescale * guided * ratio + (1 - guidance_rescale) * guided
    return guided
