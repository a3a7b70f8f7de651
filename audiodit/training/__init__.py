"""Training: the accelerate loop, checkpoints, EMA, schedules, and the two stages.

    from audiodit.training import train
    from audiodit.config import load_config
    train(load_config("configs/dit_tiny.yaml"))

`STAGES` maps the config's `stage` field to its class.
"""

from audiodit.training.dit_stage import DiTStage
from audiodit.training.trainer import NonFiniteLossError, Trainer, TrainResult, train
from audiodit.training.vae_stage import VAEStage

STAGES = {"vae": VAEStage, "dit": DiTStage}

__all__ = ["STAGES", "DiTStage", "NonFiniteLossError", "Trainer", "TrainResult", "VAEStage", "train"]
