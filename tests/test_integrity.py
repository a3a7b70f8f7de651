"""Damaged weights and foreign code are refused at load time (issue 22): pipelines, VAEs and training
checkpoints record the SHA-256 of each weights file and loading checks it; model_index.json may name
only audiodit's components and diffusers schedulers."""

import json
import logging
import sys

import pytest

from audiodit.integrity import DIGESTS, IntegrityError
from audiodit.models.vae import AudioVAE
from audiodit.pipeline import AudioDiTPipeline
from audiodit.testing import tiny_pipeline


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "pipe"
    tiny_pipeline(seed=0).save_pretrained(path)
    return path


def flip_a_weight_byte(path):
    """Change one byte inside the tensor data (past the safetensors JSON header), as bit rot would."""
    data = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(data[:8], "little")
    data[header + (len(data) - header) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_saved_pipeline_records_its_digests_and_loads(saved):
    digests = json.loads((saved / DIGESTS).read_text())["sha256"]
    assert "transformer/diffusion_pytorch_model.safetensors" in digests and "vae/diffusion_pytorch_model.safetensors" in digests
    AudioDiTPipeline.from_pretrained(saved)


@pytest.mark.parametrize("damage", ["flip", "zero", "remove"])
def test_damaged_weights_are_refused_naming_the_file(saved, damage):
    target = saved / "transformer" / "diffusion_pytorch_model.safetensors"
    if damage == "flip":
        flip_a_weight_byte(target)
    elif damage == "zero":
        target.write_bytes(bytes(target.stat().st_size))
    else:
        target.unlink()
    with pytest.raises(IntegrityError, match="transformer/diffusion_pytorch_model.safetensors"):
        AudioDiTPipeline.from_pretrained(saved)


def test_a_pipeline_without_digests_loads_with_a_warning(saved, caplog):
    (saved / DIGESTS).unlink()
    with caplog.at_level(logging.WARNING, logger="audiodit.integrity"):
        AudioDiTPipeline.from_pretrained(saved)
    assert any(DIGESTS in record.getMessage() for record in caplog.records)


def test_model_index_naming_foreign_code_is_refused_before_it_is_imported(saved, tmp_path, monkeypatch):
    module = tmp_path / "mods" / "planted_module.py"
    module.parent.mkdir()
    module.write_text("import builtins\nbuiltins.PLANTED_MODULE_RAN = True\nclass Evil: pass\n")
    monkeypatch.syspath_prepend(str(module.parent))
    index = json.loads((saved / "model_index.json").read_text())
    index["key_classifier"] = ["planted_module", "Evil"]
    (saved / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(IntegrityError, match="planted_module.Evil"):
        AudioDiTPipeline.from_pretrained(saved)
    import builtins

    assert not getattr(builtins, "PLANTED_MODULE_RAN", False) and "planted_module" not in sys.modules


def test_a_vae_export_is_checked_on_its_own(tmp_path):
    path = tmp_path / "vae"
    AudioVAE.from_preset("tiny").save_pretrained(path)
    assert (path / DIGESTS).is_file()
    AudioVAE.from_pretrained(path)
    flip_a_weight_byte(path / "diffusion_pytorch_model.safetensors")
    with pytest.raises(IntegrityError, match="diffusion_pytorch_model.safetensors is damaged"):
        AudioVAE.from_pretrained(path)


def test_a_pipelines_vae_loaded_alone_is_checked_against_the_pipelines_digests(saved):
    AudioVAE.from_pretrained(saved, subfolder="vae")
    AudioVAE.from_pretrained(saved / "vae")
    flip_a_weight_byte(saved / "vae" / "diffusion_pytorch_model.safetensors")
    for path, kwargs in ((saved, {"subfolder": "vae"}), (saved / "vae", {})):
        with pytest.raises(IntegrityError, match="vae/diffusion_pytorch_model.safetensors is damaged"):
            AudioVAE.from_pretrained(path, **kwargs)


def test_a_model_index_entry_that_is_not_two_names_is_refused(saved):
    index = json.loads((saved / "model_index.json").read_text())
    index["vae"] = ["audiodit.models.vae", ["AudioVAE"]]
    (saved / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(IntegrityError, match="must name a module and a class"):
        AudioDiTPipeline.from_pretrained(saved)
