"""Training: the accelerate loop, checkpoints, EMA, schedules, and the two stages.

    from audiodit.training import train
    from audiodit.config import load_config
    train(load_config("configs/dit_tiny.yaml"))

`STAGES` maps the config's `stage` field to its class. The names below load on first use, so a
light submodule (`audiodit.training.checkpoints`, read by `sample.py --lora`) comes without torch.
"""

import importlib

_EXPORTS = {
    "DiTStage": "audiodit.training.dit_stage",
    "KeyClassifierStage": "audiodit.training.key_classifier_stage",
    "VAEStage": "audiodit.training.vae_stage",
    "NonFiniteLossError": "audiodit.training.trainer",
    "Trainer": "audiodit.training.trainer",
    "TrainResult": "audiodit.training.trainer",
    "train": "audiodit.training.trainer",
}

__all__ = ["STAGES", *sorted(_EXPORTS)]


def __getattr__(name: str):
    if name == "STAGES":
        value = {"vae": __getattr__("VAEStage"), "dit": __getattr__("DiTStage"),
                 "key_classifier": __getattr__("KeyClassifierStage")}
    elif name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    else:
        raise AttributeError(f"module 'audiodit.training' has no attribute {name!r}")
    globals()[name] = value
    return value
