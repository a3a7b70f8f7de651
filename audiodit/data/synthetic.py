"""Synthetic captioned audio (tones and noise) for smoke tests and for checking a setup end to end.

    python -m audiodit.data.synthetic --out data/toy --num-files 32 --seconds 2

writes `toy/clip_000.wav` ... with sidecar `.txt` captions ("a 440 Hz sine tone, loud"), so
`train.py` can run on a machine without a dataset.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import soundfile as sf

WAVEFORMS = ("sine", "square", "noise")


def synth_clip(index: int, seconds: float, sample_rate: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """Stereo float32 (S, 2) clip number `index` and its caption (deterministic in index and seed)."""
    rng = np.random.default_rng(seed * 100_003 + index)
    kind = WAVEFORMS[index % len(WAVEFORMS)]
    frequency = float(rng.choice([110.0, 220.0, 440.0, 880.0]))
    gain = float(rng.uniform(0.1, 0.5))
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    if kind == "sine":
        mono = np.sin(2 * math.pi * frequency * t)
    elif kind == "square":
        mono = np.sign(np.sin(2 * math.pi * frequency * t))
    else:
        mono = rng.standard_normal(t.shape)
        mono /= np.abs(mono).max() + 1e-9
    pan = float(rng.uniform(0.2, 0.8))
    stereo = np.stack([mono * (1 - pan), mono * pan], axis=1) * gain * 2
    loudness = "loud" if gain > 0.3 else "quiet"
    caption = f"{kind} noise, {loudness}" if kind == "noise" else f"a {frequency:.0f} Hz {kind} tone, {loudness}"
    return stereo.astype(np.float32), caption


def write_synthetic_dataset(
    root: str | Path, num_files: int = 16, seconds: float = 2.0, sample_rate: int = 48000, seed: int = 0
) -> list[Path]:
    """Write `num_files` wav files with sidecar captions under `root`; returns the audio paths."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(num_files):
        audio, caption = synth_clip(index, seconds, sample_rate, seed)
        path = root / f"clip_{index:03d}.wav"
        sf.write(str(path), audio, sample_rate, subtype="PCM_16")
        path.with_suffix(".txt").write_text(caption + "\n")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--num-files", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--sample-rate", type=int, default=48000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_synthetic_dataset(args.out, args.num_files, args.seconds, args.sample_rate, args.seed)
    print(f"wrote {len(paths)} clips to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
