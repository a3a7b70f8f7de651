"""Learning-rate schedules: linear warm-up, then cosine, linear or constant decay.

A schedule is a multiplier of the peak learning rate as a function of the optimizer step, wrapped in
`torch.optim.lr_scheduler.LambdaLR` so that accelerate saves and restores it with the optimizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

SCHEDULES = ("cosine", "linear", "constant")


def lr_multiplier(
    step: int, warmup_steps: int, max_steps: int, schedule: str, min_ratio: float = 0.0
) -> float:
    """Fraction of the peak learning rate at optimizer step `step` (0-based).

    Warm-up rises linearly from 1/warmup_steps to 1 (never exactly 0: a zero first step wastes a
    batch). The decay goes from 1 at the end of warm-up to `min_ratio` at `max_steps`.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown lr schedule {schedule!r}; choose one of {SCHEDULES}")
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    decay_steps = max(1, max_steps - warmup_steps)
    progress = min(1.0, max(0.0, (step - warmup_steps) / decay_steps))
    if schedule == "linear":
        shape = 1.0 - progress
    else:
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * shape


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer,
    warmup_steps: int,
    max_steps: int,
    schedule: str,
    min_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    lr_multiplier(0, warmup_steps, max_steps, schedule)  # validate the name now, not at step 1
    fn: Callable[[int], float] = lambda step: lr_multiplier(  # noqa: E731
        step, warmup_steps, max_steps, schedule, min_ratio
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
