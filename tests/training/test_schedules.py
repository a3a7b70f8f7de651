import math

import pytest
import torch

from audiodit.training.schedules import build_lr_scheduler, lr_multiplier


def test_warmup_rises_linearly_then_cosine_reaches_zero():
    values = [lr_multiplier(step, 4, 20, "cosine") for step in range(21)]
    assert values[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert values[4] == pytest.approx(1.0)
    assert values[12] == pytest.approx(0.5)  # half way through the decay
    assert values[20] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(values[4:], values[5:]))


def test_linear_constant_and_min_ratio():
    assert lr_multiplier(10, 0, 10, "linear") == pytest.approx(0.0)
    assert lr_multiplier(5, 0, 10, "linear", min_ratio=0.1) == pytest.approx(0.55)
    assert lr_multiplier(1000, 3, 10, "constant") == 1.0


def test_unknown_schedule_fails_when_built():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="unknown lr schedule"):
        build_lr_scheduler(optimizer, 1, 10, "exponential")


def test_scheduler_drives_optimizer_lr():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=2.0)
    scheduler = build_lr_scheduler(optimizer, 2, 6, "cosine")
    seen = []
    for _ in range(6):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen[0] == pytest.approx(1.0) and seen[1] == pytest.approx(2.0)
    assert seen[4] == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 2 / 4)))
