"""Exponential moving average of model weights, kept in float32 on the model's device.

Sampling from EMA weights is standard for diffusion models (DiT paper §4 uses decay 0.9999). The
decay warms up as min(decay, (1 + step) / (10 + step)) so that early averages are not dominated by
the random initialisation. The shadow weights are saved as safetensors beside each checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


class EMA:
    """EMA of every floating-point parameter that trains and every floating-point buffer of `model`
    (keys = its state_dict keys). A frozen parameter's average is itself, so it is not kept (a LoRA
    run's EMA holds only the adapters)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.num_updates = 0
        frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
        self.shadow = {
            name: value.detach().float().clone()
            for name, value in model.state_dict().items()
            if value.is_floating_point() and name not in frozen
        }

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        decay = self.current_decay()
        for name, value in model.state_dict().items():
            if name in self.shadow:
                self.shadow[name].lerp_(value.detach().float(), 1.0 - decay)
        self.num_updates += 1

    def state_dict_for(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """`model`'s state dict with the averaged values, cast to each tensor's own dtype."""
        state = model.state_dict()
        return {
            name: self.shadow[name].to(value.dtype) if name in self.shadow else value
            for name, value in state.items()
        }

    def copy_to(self, model: torch.nn.Module) -> None:
        model.load_state_dict(self.state_dict_for(model))

    def save(self, path: str | Path) -> None:
        tensors = {name: value.contiguous().cpu() for name, value in self.shadow.items()}
        save_file(tensors, str(path), metadata={"num_updates": str(self.num_updates)})

    def load(self, path: str | Path) -> None:
        tensors = load_file(str(path))
        missing = set(self.shadow) - set(tensors)
        if missing:
            raise ValueError(f"{path}: EMA file lacks {len(missing)} weights, e.g. {sorted(missing)[:3]}")
        with safe_open(str(path), framework="pt") as handle:
            self.num_updates = int((handle.metadata() or {}).get("num_updates", 0))
        for name, value in self.shadow.items():
            value.copy_(tensors[name])
