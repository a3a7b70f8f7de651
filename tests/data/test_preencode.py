import dataclasses
import json
from pathlib import Path

import pytest
import torch

from audiodit.audio import load_audio
from audiodit.conditioners import TextEncoderConfig, build_text_encoder
from audiodit.config import load_config
from audiodit.data.latents import LatentDataset
from audiodit.data.preencode import main as preencode_main
from audiodit.data.preencode import preencode
from audiodit.data.synthetic import write_synthetic_dataset
from audiodit.models.vae import AudioVAE

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    write_synthetic_dataset(root / "audio", num_files=3, seconds=1.0, seed=4)
    (root / "audio" / "broken.wav").write_bytes(b"not audio at all")
    torch.manual_seed(0)
    vae = AudioVAE(**dataclasses.asdict(load_config(REPO / "configs" / "vae_tiny.yaml").vae))
    text = build_text_encoder(TextEncoderConfig(trainable=False, context_length=16, width=32, layers=1,
                                                heads=2, embed_dim=32))
    index = preencode(vae, root / "audio", root / "latents", text, min_seconds=0.1, max_seconds=0.6,
                      shard_size=4)
    return root, vae, text, index


def test_index_shards_segments_and_report(encoded):
    root, vae, _text, index = encoded
    samples = index["samples"]
    assert len(samples) == 6  # 3 files of 1 s, split into 0.6 s + 0.4 s segments
    assert {s["shard"] for s in samples} == {"latents-00000.safetensors", "latents-00001.safetensors"}
    assert [s["seconds_offset"] for s in samples[:2]] == [0.0, 0.6]
    assert samples[0]["frames"] == vae.latent_frames(28800) and samples[1]["frames"] == vae.latent_frames(19200)
    assert list(index["report"]["skipped"]) == ["broken.wav"]
    assert json.loads((root / "latents" / "index.json").read_text()) == index
    with pytest.raises(FileExistsError):
        preencode(vae, root / "audio", root / "latents")


def test_latent_dataset_crops_match_direct_encoding(encoded):
    root, vae, _text, index = encoded
    dataset = LatentDataset(root / "latents", clip_seconds=0.2, seed=1)
    dataset.check_vae(vae)
    item = dataset[(0, 3)]
    sample = index["samples"][0]
    audio = load_audio(root / "audio" / sample["id"].split("#")[0], duration=0.6)
    with torch.no_grad():
        full = vae.encode(audio[None]).latent_dist.mode()[0]  # (C, T)
    start = round((item["seconds_start"] - sample["seconds_offset"]) * dataset.latent_rate)
    crop = item["num_frames"]
    assert crop == dataset.clip_frames == 5  # 0.2 s at 25 latent frames/s
    assert torch.allclose(item["latents"][:, :crop], full[:, start:start + crop], atol=1e-5)
    assert item["seconds_total"] == pytest.approx(1.0) and item["caption"] == sample["caption"]


def test_caption_cache_holds_every_caption(encoded):
    from audiodit.caption_cache import CaptionCache

    root, _vae, text, index = encoded
    cache = CaptionCache(root / "latents" / "captions", text)
    captions = [s["caption"] for s in index["samples"]]
    out = cache.get(captions)
    assert cache.stats["misses"] == 0 and out.embeddings.shape[:2] == (6, 16)


def test_wrong_vae_is_refused(encoded):
    root, *_ = encoded
    other = AudioVAE(latent_channels=4, encoder_dim=8, decoder_dim=8, encoder_frame_blocks=1,
                     encoder_latent_blocks=1, decoder_latent_blocks=1, decoder_frame_blocks=1)
    with pytest.raises(ValueError, match="latent_channels"):
        LatentDataset(root / "latents").check_vae(other)


def test_melody_is_stored_per_latent_frame_and_cropped_with_the_latents(tmp_path):
    """preencode --melody: each segment's dominant pitch class per latent frame, read back by the
    dataset for exactly the frames of its latent crop."""
    import soundfile as sf

    from audiodit.melody import NO_PITCH, synth_hum

    hum = synth_hum([(62, 0.6), (None, 0.2), (69, 0.8)])  # D, a rest, A: 1.6 s
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "hum.wav", hum, 48000)
    (tmp_path / "audio" / "hum.txt").write_text("a hummed tune")
    torch.manual_seed(0)
    vae = AudioVAE(**dataclasses.asdict(load_config(REPO / "configs" / "vae_tiny.yaml").vae))
    index = preencode(vae, tmp_path / "audio", tmp_path / "latents", melody=True, min_seconds=0.1)
    assert index["melody"] is True
    frames = index["samples"][0]["frames"]
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "latents" / index["samples"][0]["shard"]))["0.melody"]
    assert stored.dtype == torch.int8 and stored.shape == (frames,)
    assert (stored[2:12] == 2).all() and (stored[16:18] == NO_PITCH).all() and (stored[22:38] == 9).all()
    dataset = LatentDataset(tmp_path / "latents", clip_seconds=0.4, seed=3)
    item = dataset[(0, 1)]
    start = round(item["seconds_start"] * dataset.latent_rate)
    assert item["melody"].dtype == torch.long and item["melody"].shape == (dataset.clip_frames,)
    assert torch.equal(item["melody"], stored[start:start + dataset.clip_frames].long())
    plain = LatentDataset(tmp_path / "latents", clip_seconds=0.4)
    plain.has_melody = False  # an index written without --melody
    assert "melody" not in plain[0]


def test_links_to_one_file_are_encoded_once_and_read_back_alike(tmp_path):
    """A weighted mix lists a clip twice as two links to one file: one tensor, two index rows with
    their own ids and captions, and the dataset reads the same latents for both."""
    import os

    write_synthetic_dataset(tmp_path / "source", num_files=2, seconds=0.5, seed=2)
    (tmp_path / "mix").mkdir()
    source = sorted((tmp_path / "source").glob("*.wav"))[0]
    for copy, caption in enumerate(["first caption", "second caption"]):
        os.symlink(source, tmp_path / "mix" / f"clip__{copy}.wav")
        (tmp_path / "mix" / f"clip__{copy}.txt").write_text(caption)
    other = sorted((tmp_path / "source").glob("*.wav"))[1]
    os.symlink(other, tmp_path / "mix" / "other__0.wav")
    torch.manual_seed(0)
    vae = AudioVAE(**dataclasses.asdict(load_config(REPO / "configs" / "vae_tiny.yaml").vae))
    index = preencode(vae, tmp_path / "mix", tmp_path / "latents", min_seconds=0.1)
    rows = {sample["id"]: sample for sample in index["samples"]}
    assert sorted(rows) == ["clip__0.wav", "clip__1.wav", "other__0.wav"]
    first, second = rows["clip__0.wav"], rows["clip__1.wav"]
    assert (first["shard"], first["key"]) == (second["shard"], second["key"])
    assert rows["other__0.wav"]["key"] != first["key"]
    assert (first["caption"], second["caption"]) == ("first caption", "second caption")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "latents" / first["shard"]), framework="pt") as handle:
        assert len(list(handle.keys())) == 2  # two files encoded, not three
    dataset = LatentDataset(tmp_path / "latents", clip_seconds=2.0, seed=0)  # whole clips: no crop
    by_id = {dataset[i]["id"]: dataset[i] for i in range(len(dataset))}
    assert torch.equal(by_id["clip__0.wav"]["latents"], by_id["clip__1.wav"]["latents"])
    assert by_id["clip__1.wav"]["caption"] == "second caption"
