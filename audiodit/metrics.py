"""Reconstruction metrics for stereo audio, and a command that reports them for a folder.

All functions take `reference` and `estimate` waveforms (B, ch, S) (or (ch, S)) of equal shape at
`sample_rate` and return one value per item (B,):

- `multi_resolution_stft_distance`: mean over FFT sizes 2048..128 of spectral convergence plus
  log-magnitude L1 (the same quantity as the training loss; 0 = identical, lower is better).
- `mel_l1_db`: mean absolute difference of 128-band mel spectrograms in dB (floored at -100 dB).
- `si_sdr`: scale-invariant signal-to-distortion ratio in dB (Le Roux et al. 2019), per channel,
  averaged over channels (higher is better; it needs the phase right, so a vocoder-style decoder
  that only matches spectra can score low while sounding right).

Command line (reconstructs every audio file under DIR through a VAE and prints a table + mean):

    python -m audiodit.metrics DIR --vae runs/vae/pipeline      # pipeline dir (vae/ subfolder) or VAE dir
    python -m audiodit.metrics DIR --reference REF_DIR          # compare files with the same names
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from audiodit.losses import MultiResolutionSTFTLoss, magnitude_spectrogram, mel_filterbank

METRICS = ("mrstft", "mel_l1_db", "si_sdr_db")


def _as_batch(reference: torch.Tensor, estimate: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    reference, estimate = torch.as_tensor(reference).float(), torch.as_tensor(estimate).float()
    if reference.shape != estimate.shape:
        raise ValueError(f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} "
                         "must have the same shape")
    if reference.ndim == 2:
        reference, estimate = reference[None], estimate[None]
    if reference.ndim != 3:
        raise ValueError(f"expected (channels, samples) or (batch, channels, samples), got {tuple(reference.shape)}")
    return reference, estimate


@torch.no_grad()
def multi_resolution_stft_distance(reference, estimate, fft_sizes=(2048, 1024, 512, 256, 128)) -> torch.Tensor:
    reference, estimate = _as_batch(reference, estimate)
    loss = MultiResolutionSTFTLoss(fft_sizes)
    return torch.stack([loss(r[None], e[None]) for r, e in zip(reference, estimate)])


@torch.no_grad()
def mel_l1_db(reference, estimate, sample_rate: int = 48000, n_fft: int = 2048, n_mels: int = 128) -> torch.Tensor:
    reference, estimate = _as_batch(reference, estimate)
    filters = mel_filterbank(sample_rate, n_fft, n_mels)

    def mel_db(audio):  # (B, ch, S) -> (B, ch, n_mels, frames) dB
        mel = torch.matmul(filters, magnitude_spectrogram(audio, n_fft))
        return 20.0 * torch.log10(mel.clamp(min=1e-5))

    return (mel_db(reference) - mel_db(estimate)).abs().mean(dim=(1, 2, 3))


@torch.no_grad()
def si_sdr(reference, estimate, eps: float = 1e-8) -> torch.Tensor:
    reference, estimate = _as_batch(reference, estimate)
    reference = reference - reference.mean(-1, keepdim=True)
    estimate = estimate - estimate.mean(-1, keepdim=True)
    # Project the estimate onto the reference: the scaled reference is the "target" part.
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.square().sum(-1, keepdim=True) + eps)
    target = scale * reference
    ratio = target.square().sum(-1) / ((estimate - target).square().sum(-1) + eps)  # (B, ch)
    return (10.0 * torch.log10(ratio + eps)).mean(-1)


def reconstruction_metrics(reference, estimate, sample_rate: int = 48000) -> dict[str, float]:
    """All metrics for one clip (ch, S) -> {"mrstft", "mel_l1_db", "si_sdr_db"}."""
    return {
        "mrstft": multi_resolution_stft_distance(reference, estimate).item(),
        "mel_l1_db": mel_l1_db(reference, estimate, sample_rate).item(),
        "si_sdr_db": si_sdr(reference, estimate).item(),
    }


#################################################################################
#                                 Command line                                  #
#################################################################################

def load_vae(path: str | Path):
    """An `AudioVAE` from a VAE directory, a pipeline directory's `vae/` subfolder, or a vae-stage
    run or checkpoint (its latest `vae/` export, as `sample.py --vae` takes)."""
    from audiodit.models.vae import AudioVAE
    from audiodit.training.checkpoints import resolve_vae_dir

    path = Path(path)
    if (path / "vae" / "config.json").is_file():
        return AudioVAE.from_pretrained(path, subfolder="vae")
    if (path / "config.json").is_file():
        return AudioVAE.from_pretrained(path)
    try:
        return AudioVAE.from_pretrained(resolve_vae_dir(path, "the VAE", ("vae",)))
    except (ValueError, OSError) as err:
        raise FileNotFoundError(f"{path}: neither a VAE directory (config.json), a pipeline (vae/config.json) "
                                f"nor a vae run with an export ({err})") from None


def _audio_files(directory: Path) -> list[Path]:
    from audiodit.audio import AUDIO_EXTENSIONS

    if not directory.is_dir():
        raise NotADirectoryError(f"{directory} is not a directory")
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def evaluate_folder(directory, vae=None, reference_dir=None, max_seconds: float | None = None) -> list[dict]:
    """One row {"file", metrics...} per audio file under `directory`, reconstructed through `vae`
    or compared with the file of the same relative path under `reference_dir`."""
    from audiodit.audio import load_audio

    if (vae is None) == (reference_dir is None):
        raise ValueError("give exactly one of vae and reference_dir")
    directory = Path(directory)
    sample_rate = vae.sampling_rate if vae is not None else 48000
    rows = []
    for path in _audio_files(directory):
        audio = load_audio(path, sample_rate=sample_rate, duration=None)  # (2, S)
        if max_seconds is not None:
            audio = audio[:, : int(max_seconds * sample_rate)]
        if vae is not None:
            with torch.no_grad():
                latents = vae.encode(audio[None]).latent_dist.mode()
                estimate = vae.decode(latents, length=audio.shape[-1]).sample[0]
            reference = audio
        else:
            reference = load_audio(Path(reference_dir) / path.relative_to(directory), sample_rate=sample_rate)
            length = min(reference.shape[-1], audio.shape[-1])
            reference, estimate = reference[:, :length], audio[:, :length]
        rows.append({"file": str(path.relative_to(directory)),
                     **reconstruction_metrics(reference, estimate, sample_rate)})
    return rows


def format_table(rows: list[dict]) -> str:
    width = max([len("file"), len("mean")] + [len(r["file"]) for r in rows])
    lines = [f"{'file':<{width}}  " + "  ".join(f"{m:>10}" for m in METRICS)]
    for row in rows + ([{"file": "mean", **{m: sum(r[m] for r in rows) / len(rows) for m in METRICS}}]
                       if rows else []):
        lines.append(f"{row['file']:<{width}}  " + "  ".join(f"{row[m]:>10.4f}" for m in METRICS))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiodit.metrics", description=__doc__.split("\n")[0])
    parser.add_argument("directory", help="folder of audio files (searched recursively)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--vae", help="VAE directory or pipeline directory with a vae/ subfolder")
    source.add_argument("--reference", help="folder of reference files with the same relative names")
    parser.add_argument("--max-seconds", type=float, default=None, help="only the first N seconds of each file")
    args = parser.parse_args(argv)
    vae = None
    if args.vae:
        vae = load_vae(args.vae).eval()
        vae.enable_tiling()
    rows = evaluate_folder(args.directory, vae=vae, reference_dir=args.reference, max_seconds=args.max_seconds)
    if not rows:
        print(f"no audio files under {args.directory}", file=sys.stderr)
        return 1
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
