import tarfile

import pytest
import torch
from torch.utils.data import DataLoader

from audiodit.data.folder import collate
from audiodit.data.synthetic import write_synthetic_dataset
from audiodit.data.webdataset import AudioWebDataset, expand_urls, main, write_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("wds")
    write_synthetic_dataset(root / "audio", num_files=8, seconds=0.5, seed=6)
    (root / "audio" / "zz_broken.wav").write_bytes(b"RIFFbroken")
    assert main(["--data", str(root / "audio"), "--out", str(root / "shards"), "--shard-size", "2"]) == 0
    return root / "shards"


def _ids(dataset, count, num_workers=0):
    loader = DataLoader(dataset, batch_size=1, num_workers=num_workers, collate_fn=collate)
    ids = []
    for batch in loader:
        ids += batch["id"]
        if len(ids) >= count:
            return ids


def test_writer_packs_audio_and_metadata_and_refuses_to_overwrite(shards, tmp_path):
    names = sorted(p.name for p in shards.glob("*.tar"))
    assert names == [f"shard-{i:06d}.tar" for i in range(4)]  # 8 good files, 2 per shard
    with tarfile.open(shards / names[0]) as tar:
        assert tar.getnames() == ["000000000.wav", "000000000.json", "000000001.wav", "000000001.json"]
    with pytest.raises(FileExistsError):
        write_shards(shards.parent / "audio", shards)
    assert expand_urls(str(shards / "shard-{000000..000001}.tar")) == [str(shards / names[0]), str(shards / names[1])]


def test_processes_and_workers_read_disjoint_shards(shards):
    seen = []
    for rank in range(2):
        dataset = AudioWebDataset(str(shards), clip_seconds=0.25, min_seconds=0.1, rank=rank, world_size=2,
                                  shuffle_buffer=1, seed=3)
        seen.append(_ids(dataset, 4, num_workers=2))  # 2 shards per rank, 1 per worker, 2 clips each
    assert len(set(seen[0])) == len(set(seen[1])) == 4
    assert not set(seen[0]) & set(seen[1])
    assert len(set(seen[0]) | set(seen[1])) == 8


def test_stream_repeats_crops_and_resumes_by_position(shards):
    kwargs = dict(clip_seconds=0.25, min_seconds=0.1, shuffle_buffer=3, seed=1)
    dataset = AudioWebDataset(str(shards), **kwargs)
    items = [item for _, item in zip(range(12), iter(dataset))]  # 8 clips: the stream goes on
    assert all(item["audio"].shape == (2, 12000) for item in items)
    assert all(0.0 <= item["seconds_start"] <= 0.25 + 1e-9 for item in items)
    resumed = AudioWebDataset(str(shards), **kwargs)
    resumed.set_position(5)  # batch_size 1: skip 5 samples
    tail = [item for _, item in zip(range(7), iter(resumed))]
    assert [(i["id"], i["seconds_start"]) for i in tail] == [(i["id"], i["seconds_start"]) for i in items[5:]]
    assert all(torch.equal(a["audio"], b["audio"]) for a, b in zip(tail, items[5:]))


def test_bad_samples_are_skipped_and_reported(tmp_path):
    write_synthetic_dataset(tmp_path / "audio", num_files=2, seconds=0.5)
    with tarfile.open(tmp_path / "shard-000000.tar", "w") as tar:
        for name in ("clip_000.wav", "clip_001.wav"):
            tar.add(tmp_path / "audio" / name, arcname=name.replace("clip_", "k"))
        broken = tmp_path / "kbad.wav"
        broken.write_bytes(b"\x00" * 64)
        tar.add(broken, arcname="kbad.wav")
    dataset = AudioWebDataset(str(tmp_path / "shard-000000.tar"), clip_seconds=0.25, min_seconds=0.1,
                              shuffle_buffer=1)
    items = [item for _, item in zip(range(3), iter(dataset))]
    reported = [path for item in items for path, _ in item["skipped"]]
    assert any(path.endswith(":kbad") for path in reported)
    assert all(torch.isfinite(item["audio"]).all() for item in items)


def test_too_few_shards_for_the_processes_is_a_clear_error(shards):
    with pytest.raises(ValueError, match="cannot feed"):
        AudioWebDataset(str(shards / "shard-000000.tar"), world_size=2)
