"""The same generated latents through different VAE decoders: what a decoder fine-tune (encoder
frozen, so the DiT's latent space is unchanged) changes in what the model makes.

    python -m experiments.probes.decoder_swap --model models/audiodit-small --lora runs/lora_bench/run \\
        --vae models/audiodit-small/vae --vae runs/decoder_lows/checkpoints/step-00001000/vae \\
        --heldout data/lora_funk_heldout --report experiments/results/decoder_swap_cpu

For the captions of `--heldout` (up to `--captions`), one clip each of latents from the pipeline
(with the `--lora` adapter at scale 1 when given; seed = caption index), decoded by every `--vae`;
the held-out clips themselves beside them. Measures as `prompt_breadth.clip_measures` (medians):
percussive share, energy share below 150 Hz, low-band onset strength; and the distance of the
mean spectrum to the held-out clips' (RMS dB of level-centred mean spectra).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from benchmarks.machine import cpu_model, emit_report
from benchmarks.prompt_breadth import clip_measures, save_spectrogram_grid

from benchmarks.lora import DRUM_MEASURES, heldout_clips, spectral_distance

from audiodit.configuration import atomic_write_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="models/audiodit-small")
    parser.add_argument("--lora", default=None, help="adapter (directory or training run) at scale 1")
    parser.add_argument("--vae", action="append", required=True, help="AudioVAE directory (repeat)")
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--captions", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--report", default=None)
    parser.add_argument("--grid", type=int, default=4, help="captions in the spectrogram PNG beside the report")
    args = parser.parse_args(argv)

    from audiodit.audio import load_audio
    from audiodit.cli import parse_lora
    from audiodit.models.vae import AudioVAE
    from audiodit.pipeline import AudioDiTPipeline

    pipe = AudioDiTPipeline.from_pretrained(args.model)
    pipe.set_progress_bar_config(disable=True)
    if args.lora:
        pipe.load_lora_weights(parse_lora(args.lora)[0], adapter_name="style")
    frames = int(args.seconds * pipe.sampling_rate)
    clips = heldout_clips(Path(args.heldout), args.captions)
    latents = [pipe(caption, audio_end_in_s=args.seconds, num_inference_steps=args.steps, output_type="latent",
                    generator=torch.Generator().manual_seed(index)).audios for index, (caption, _) in enumerate(clips)]
    sets = {"heldout": [clip_measures(load_audio(path)[:, :frames].numpy()) for _, path in clips]}
    for vae_dir in args.vae:
        vae = AudioVAE.from_pretrained(vae_dir).float().eval()
        with torch.no_grad():
            audio = [vae.decode(latent / pipe.latent_scale).sample[0, :, :frames].numpy() for latent in latents]
        sets[vae_dir] = [clip_measures(clip) for clip in audio]
    if args.report and args.grid:
        images, titles = [], []
        for index in range(min(args.grid, len(clips))):
            for name, measures in sets.items():
                images.append(measures[index]["mel_db"])
                titles.append(f"{Path(name).parent.parent.parent.name or name}: {clips[index][0]}")
        save_spectrogram_grid(Path(f"{args.report}.png"), images, titles, columns=len(sets))
    reference = np.stack([m["spectrum_db"] for m in sets["heldout"]]).mean(0)
    rows = {name: {**{measure: float(np.median([m[measure] for m in measures])) for measure in DRUM_MEASURES},
                   "spectral_distance_db": spectral_distance(np.stack([m["spectrum_db"] for m in measures]).mean(0),
                                                             reference)}
            for name, measures in sets.items()}
    report = {"machine": cpu_model(), "model": args.model, "lora": args.lora, "captions": len(clips),
              "steps": args.steps, "rows": rows}
    lines = [f"# The same latents through other decoders ({report['machine']}; {len(clips)} held-out captions, "
             f"adapter {args.lora or 'none'})", "",
             "| decoded by | percussive share | energy share < 150 Hz | low-band onsets | spectral distance dB |",
             "|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['percussive_share']:.3f} | {row['low_energy_share']:.4f} | "
                     f"{row['low_onset_strength']:.2f} | {row['spectral_distance_db']:.2f} |")
    emit_report("\n".join(lines), f"{args.report}.md" if args.report else None)
    if args.report:
        atomic_write_text(Path(f"{args.report}.json"), json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
