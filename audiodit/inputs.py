"""The rules for generation settings, written once for the pipeline and the CLI.

`AudioDiTPipeline.check_inputs` (and the long-audio editing path) and `sample.py`'s `validate` call
the same checks; the CLI shows their messages in flag terms (`audiodit.cli.in_flag_terms`:
`` `strength` `` -> `--strength`), before it loads a model. A rule changes in one place. Checks
that need the loaded model (how long a clip may be, whether it has key conditioning) stay with the
pipeline.
"""

from __future__ import annotations

import math

# setting -> (test, what a value must be)
RULES = {
    "num_inference_steps": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer"),
    "guidance_scale": (lambda v: v >= 0, ">= 0"),
    "guidance_rescale": (lambda v: 0.0 <= v <= 1.0, "in [0, 1]"),
    "key_guidance_scale": (lambda v: v >= 0, ">= 0"),
    "key_classifier_scale": (lambda v: v >= 0, ">= 0"),
    "melody_guidance_scale": (lambda v: v >= 0, ">= 0"),
    "strength": (lambda v: 0.0 < v <= 1.0, "in (0, 1]"),
}
EDITS = ("strength", "inpaint_range", "continuation_in_s")  # the modes that edit `initial_audio`


def check_setting(name: str, value) -> None:
    """ValueError unless `value` is a finite number that keeps `RULES[name]`."""
    test, must = RULES[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number, got {value}")
    if not test(value):
        raise ValueError(f"`{name}` must be {must}, got {value}")


def check_edits(used: dict[str, bool], has_initial_audio: bool) -> None:
    """ValueError unless at most one edit mode of `EDITS` is `used`, and only with initial audio."""
    modes = [f"`{name}`" for name in EDITS if used.get(name)]
    if modes and not has_initial_audio:
        raise ValueError(f"{' and '.join(modes)} {'needs' if len(modes) == 1 else 'need'} `initial_audio` "
                         "(the audio to edit)")
    if len(modes) > 1:
        raise ValueError(f"use only one of {', '.join(modes)}")


def check_guidance_interval(interval) -> None:
    """ValueError unless `interval` is (low, high) noise levels with 0 <= low < high <= 1 (finite)."""
    try:
        low, high = (float(value) for value in interval)
    except (TypeError, ValueError):
        raise ValueError(f"`guidance_interval` must be two noise levels (low, high), got {interval!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 <= low < high <= 1.0):
        raise ValueError(f"`guidance_interval` must satisfy 0 <= low < high <= 1, got {low:g} {high:g}")


def check_inpaint_range(start: float, end: float) -> None:
    """ValueError unless 0 <= start < end (finite)."""
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
        raise ValueError(f"`inpaint_range` must satisfy 0 <= start < end, got {start:g} {end:g}")
