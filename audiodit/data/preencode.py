"""Pre-encode an audio folder: VAE latents in sharded safetensors files, captions in a caption cache.

    python -m audiodit.data.preencode --vae runs/vae --data data/audio --out data/latents \
        [--config configs/dit_small.yaml] [--text-encoder DIR] [--shard-size 256] [--max-seconds 600]

Training the DiT from these (`data.format: latents`, `data.train_dir: data/latents`) skips audio
decoding, resampling and the VAE encoder on every step: the fast path.

Output:
    index.json                  samples (id, shard, key, frames, seconds_offset, seconds_total,
                                caption), the VAE's latent geometry, and the skip report
    latents-00000.safetensors   one (C, T_i) tensor per sample, keyed by its row in the shard;
                                unscaled posterior means (the trainer multiplies by scaling_factor)
    captions/                   `audiodit.caption_cache.CaptionCache` of the frozen text encoder

Files that are links to one audio file (a weighted mix's copies, `audiodit.data.mix`) are encoded
once and their index rows share the tensor. Files longer than `--max-seconds` are split into
consecutive segments; each keeps its offset so the timing conditioning (`seconds_start`,
`seconds_total`) stays true to the original file. Bad files are skipped and reported exactly as by
the folder dataset. Every file is written through a temporary name and renamed, and `index.json` is
written last: an interrupted run leaves no index, never one that points at missing data.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import torch
from safetensors.torch import save_file
from tqdm.auto import tqdm

from audiodit.audio import AudioLoadError, load_audio
from audiodit.config import Config, load_config
from audiodit.configuration import atomic_write_text
from audiodit.data.folder import scan_audio_folder
from audiodit.data.latents import INDEX, INDEX_VERSION
from audiodit.data.report import SkipReport
from audiodit.melody import melody_ids


def load_text_encoder(path: str | None, cfg: Config):
    """A saved conditioner directory (`save_pretrained`), or one built from the config's `text`."""
    import audiodit.conditioners as conditioners

    if path is None:
        return conditioners.build_text_encoder(cfg.text)
    class_name = json.loads((Path(path) / "config.json").read_text()).get("_class_name", "")
    cls = getattr(conditioners, class_name, None)
    if cls is None or not issubclass(cls, conditioners.TextConditioner):
        raise ValueError(f"{path}: config.json names {class_name!r}, not an audiodit text conditioner")
    return cls.from_pretrained(path)


def _write_shard(out: Path, number: int, tensors: dict[str, torch.Tensor]) -> str:
    name = f"latents-{number:05d}.safetensors"
    tmp = out / f".{name}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, out / name)
    return name


@torch.no_grad()
def preencode(
    vae,
    data_dir: str | Path,
    out_dir: str | Path,
    text_encoder=None,
    sample_rate: int = 48000,
    min_seconds: float = 1.0,
    max_seconds: float = 600.0,
    shard_size: int = 256,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    normalize: str = "none",
    target_db: float = -1.0,
    melody: bool = False,
) -> dict:
    """Encode every usable file under `data_dir` into `out_dir`; returns the index (also written).

    `melody`: also store each segment's melody, the dominant pitch class of every latent frame
    (`audiodit.melody`; int8, NO_PITCH where silent) as `<key>.melody`, for melody conditioning."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / INDEX).exists():
        raise FileExistsError(f"{out / INDEX} exists; choose an empty --out directory")
    vae = vae.to(device).eval()
    vae.enable_tiling()
    report = SkipReport()
    records = scan_audio_folder(data_dir, min_seconds, report)
    samples, pending, shard_number = [], {}, 0
    encoded = {}  # (resolved file, offset, duration) -> its first sample: a mix's weighted copies are links to one file

    def flush():
        nonlocal pending, shard_number
        if pending:
            name = _write_shard(out, shard_number, pending)
            for sample in samples:
                if sample["shard"] is None:
                    sample["shard"] = name
            pending, shard_number = {}, shard_number + 1

    for record in tqdm(records, desc="pre-encoding", dynamic_ncols=True):
        segments = max(1, math.ceil(record.seconds / max_seconds))
        for segment in range(segments):
            offset = segment * max_seconds
            duration = min(max_seconds, record.seconds - offset)
            if duration <= 0:
                break
            same_audio = (os.path.realpath(record.path), offset, duration)
            first = encoded.get(same_audio)
            if first is not None:  # the same audio again: the same tensor, no second encoding
                samples.append({**first, "id": record.id if segments == 1 else f"{record.id}#{segment}",
                                "caption": record.caption})
                continue
            try:
                audio = load_audio(record.path, sample_rate, 2, duration=duration, offset=offset,
                                   normalize=normalize, target_db=target_db)  # (2, S)
            except (AudioLoadError, ValueError) as err:
                report.skip(record.id, getattr(err, "reason", str(err)))
                break
            latents = vae.encode(audio[None].to(device)).latent_dist.mode()[0]  # (C, T)
            key = str(len(pending))
            pending[key] = latents.to(dtype).cpu().contiguous()
            if melody:  # (T,) int8, fitted to the latents' length
                ids = melody_ids(audio.cpu(), sample_rate, float(vae.latent_rate), latents.shape[-1])
                pending[f"{key}.melody"] = ids.to(torch.int8).contiguous()
            samples.append({
                "id": record.id if segments == 1 else f"{record.id}#{segment}",
                "shard": None, "key": key, "frames": int(latents.shape[-1]),
                "seconds_offset": offset, "seconds_total": record.seconds, "caption": record.caption,
            })
            encoded[same_audio] = samples[-1]
            if len(pending) >= shard_size:
                flush()
    flush()

    captions_dir = None
    if text_encoder is not None and not text_encoder.config.trainable:
        from audiodit.caption_cache import CaptionCache

        cache = CaptionCache(out / "captions", text_encoder.to(device).eval())
        unique = sorted({sample["caption"] for sample in samples})
        for start in range(0, len(unique), 256):
            cache.get(unique[start:start + 256])
        captions_dir = "captions"
    index = {
        "version": INDEX_VERSION,
        "vae": {
            "latent_channels": int(vae.latent_channels), "hop_length": int(vae.hop_length),
            "sampling_rate": int(vae.sampling_rate), "latent_rate": float(vae.latent_rate),
            "scaling_factor": float(vae.config.scaling_factor),
        },
        "captions": captions_dir,
        "melody": bool(melody),
        "samples": samples,
        "report": report.to_dict(),
    }
    atomic_write_text(out / INDEX, json.dumps(index, indent=1) + "\n")
    print(f"pre-encoded {len(samples)} segment(s) from {len(records)} file(s) into {out}")
    print(report.summary())
    return index


def main(argv: list[str] | None = None) -> int:
    from audiodit.training.dit_stage import resolve_vae_path
    from audiodit.models.vae import AudioVAE

    parser = argparse.ArgumentParser(description="Pre-encode audio + captions for DiT training.")
    parser.add_argument("--vae", required=True, help="AudioVAE directory or a vae-stage run directory")
    parser.add_argument("--data", required=True, help="audio folder (captions as for data.format=folder)")
    parser.add_argument("--out", required=True, help="output directory (must not hold an index.json)")
    parser.add_argument("--config", help="config whose audio/text/data settings apply (default: built-in)")
    parser.add_argument("--text-encoder", help="saved text conditioner directory (default: the config's text)")
    parser.add_argument("--no-captions", action="store_true", help="do not pre-encode captions")
    parser.add_argument("--melody", action="store_true",
                        help="also store each latent frame's dominant pitch class (melody conditioning)")
    parser.add_argument("--shard-size", type=int, default=256, help="samples per safetensors shard")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="longer files are split into segments")
    parser.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args(argv)

    cfg = load_config(args.config, args.overrides)
    vae = AudioVAE.from_pretrained(str(resolve_vae_path(args.vae)))
    text_encoder = None if args.no_captions else load_text_encoder(args.text_encoder, cfg)
    preencode(
        vae, args.data, args.out, text_encoder, sample_rate=cfg.audio.sample_rate,
        min_seconds=cfg.data.min_seconds, max_seconds=args.max_seconds, shard_size=args.shard_size,
        dtype=getattr(torch, args.dtype), device=args.device,
        normalize=cfg.audio.normalize, target_db=cfg.audio.target_db, melody=args.melody,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
