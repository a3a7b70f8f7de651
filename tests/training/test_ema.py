import pytest
import torch

from audiodit.training.ema import EMA


def _model(value: float) -> torch.nn.Module:
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.fill_(value)
        model.bias.fill_(value)
    return model


def test_ema_follows_the_warmed_up_decay():
    model = _model(0.0)
    ema = EMA(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # decay min(0.5, 1/10) = 0.1 -> 0.9 of the new value
    assert ema.shadow["weight"][0, 0].item() == pytest.approx(0.9)
    ema.update(model)  # decay min(0.5, 2/11)
    assert ema.shadow["weight"][0, 0].item() == pytest.approx(0.9 + (1 - 0.9) * (1 - 2 / 11))


def test_ema_save_load_roundtrip_and_copy_to(tmp_path):
    model = _model(0.0)
    ema = EMA(model, decay=0.9)
    with torch.no_grad():
        model.weight.fill_(3.0)
    for _ in range(3):
        ema.update(model)
    ema.save(tmp_path / "ema.safetensors")
    other = EMA(_model(7.0), decay=0.9)
    other.load(tmp_path / "ema.safetensors")
    assert other.num_updates == 3
    assert torch.equal(other.shadow["weight"], ema.shadow["weight"])
    target = _model(-1.0)
    other.copy_to(target)
    assert torch.equal(target.weight, ema.shadow["weight"])


def test_bad_decay_is_refused():
    with pytest.raises(ValueError, match="decay"):
        EMA(_model(0.0), decay=1.0)
