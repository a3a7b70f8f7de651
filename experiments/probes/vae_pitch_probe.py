"""Does a VAE keep pitch? Two measurements on a rendered music21 corpus.

    python -m experiments.probes.vae_pitch_probe VAE_OR_PIPELINE_DIR CORPUS_DIR [--train-clips 60] [--test-clips 20]

1. Linear probe: ridge regression from the posterior means (5 latent frames of context) to the
   chroma of the same audio (librosa `chroma_cqt` at the latent rate, 25 Hz), fitted on train-split
   clips and scored (R^2) on test-split clips. Latents that carry pitch score well above 0.
2. Reconstructions: essentia's key of each test clip and of its VAE reconstruction, how many
   distinct keys the reconstructions get, and the correlation of their mean chroma with the
   original's.

The first 10 s of each clip are used. Prints a markdown report; `--out FILE` also writes it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from audiodit import analysis
from audiodit import evaluate as ev
from audiodit.audio import load_audio
from audiodit.models.vae import AudioVAE


SECONDS = 10.0
CONTEXT = 5  # latent frames per probe input (2 either side)
CHROMA_RATE = 22050  # librosa's usual rate; hop 882 = 25 frames/s


def load_vae(path: Path) -> AudioVAE:
    path = path / "vae" if (path / "model_index.json").is_file() else path
    return AudioVAE.from_pretrained(str(path)).float().eval()


def clips_of(corpus: Path, split: str, limit: int) -> list[dict]:
    records = ev.load_split(corpus, split)
    return records[:: max(1, len(records) // limit)][:limit]


def chroma(audio: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.chroma_cqt(y=analysis.to_mono(audio, 48000, CHROMA_RATE), sr=CHROMA_RATE, hop_length=882)


@torch.no_grad()
def probe_rows(vae: AudioVAE, record: dict) -> tuple[np.ndarray, np.ndarray]:
    audio = load_audio(record["audio_path"], 48000, duration=SECONDS)  # (2, S)
    latents = vae.encode(audio[None]).latent_dist.mean[0].numpy()  # (C, T)
    target = chroma(audio.numpy())  # (12, frames)
    frames = min(latents.shape[1], target.shape[1]) - CONTEXT + 1
    inputs = np.concatenate([latents[:, i : i + frames] for i in range(CONTEXT)], axis=0).T  # (frames, C * CONTEXT)
    return inputs, target[:, CONTEXT // 2 : CONTEXT // 2 + frames].T  # (frames, 12)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("vae", type=Path, help="AudioVAE directory or pipeline directory")
    parser.add_argument("corpus", type=Path, help="python -m audiodit.corpora.music21_corpus output")
    parser.add_argument("--train-clips", type=int, default=60)
    parser.add_argument("--test-clips", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None, help="also write the report here")
    args = parser.parse_args(argv)
    from sklearn.linear_model import Ridge

    started = time.perf_counter()
    vae = load_vae(args.vae)
    train, test = clips_of(args.corpus, "train", args.train_clips), clips_of(args.corpus, "test", args.test_clips)
    x_train, y_train = map(np.concatenate, zip(*[probe_rows(vae, r) for r in train]))
    x_test, y_test = map(np.concatenate, zip(*[probe_rows(vae, r) for r in test]))
    ridge = Ridge(alpha=1.0).fit(x_train, y_train)
    r2_train, r2_test = ridge.score(x_train, y_train), ridge.score(x_test, y_test)

    rows = []
    for record in test:
        audio = load_audio(record["audio_path"], 48000, duration=SECONDS)
        with torch.no_grad():
            decoded = vae.decode(vae.encode(audio[None]).latent_dist.mode(), length=audio.shape[-1]).sample[0].numpy()
        real_key, vae_key = analysis.estimate_key(audio.numpy()), analysis.estimate_key(decoded)
        correlation = np.corrcoef(chroma(audio.numpy()).mean(axis=1), chroma(decoded).mean(axis=1))[0, 1]
        rows.append({"id": record["id"], "caption_key": record["key"], "real_key": real_key["key"],
                     "reconstruction_key": vae_key["key"], "mean_chroma_correlation": round(float(correlation), 3)})
    caption = [(analysis.pitch_class(r["tonic"]), r["mode"]) for r in test]
    def accuracy(column: str) -> float:
        keys = [row[column].split() for row in rows]
        return float(np.mean([k[0] != "none" and (analysis.pitch_class(k[0]), k[1]) == c for k, c in zip(keys, caption)]))

    summary = {
        "vae": str(args.vae), "corpus": str(args.corpus), "train_clips": len(train), "test_clips": len(test),
        "probe_r2_test": round(float(r2_test), 3), "probe_r2_train": round(float(r2_train), 3),
        "key_accuracy_real": accuracy("real_key"), "key_accuracy_reconstruction": accuracy("reconstruction_key"),
        "distinct_reconstruction_keys": len({row["reconstruction_key"] for row in rows}),
        "mean_chroma_correlation": round(float(np.mean([row["mean_chroma_correlation"] for row in rows])), 3),
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }
    lines = [f"# VAE pitch probe: {args.vae}", "", "```json", json.dumps(summary, indent=1), "```", "",
             "| clip | caption key | key of real clip | key of reconstruction | mean-chroma correlation |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['id']} | {r['caption_key']} | {r['real_key']} | {r['reconstruction_key']} | "
              f"{r['mean_chroma_correlation']} |" for r in rows]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
