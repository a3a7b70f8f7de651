"""Export a trained pipeline for shipping: `python -m audiodit.export SRC DST [--dtype float16]`.

Copies a pipeline directory (e.g. a checkpoint's `pipeline/` export, which holds EMA weights)
into DST with weights cast to `--dtype` (half the size in fp16; loading casts back to the
caller's dtype, fp32 by default) and, optionally, new sampling defaults, the VAE's output phase and
a key classifier (`--key-classifier DIR`, as written by `python -m audiodit.training.key_classifier`,
with `--key-classifier-scale` its default guidance scale), a default melody guidance scale
(`--melody-scale`, for a melody-conditioned model), and another VAE with the same encoder
(`--vae DIR`: a decoder fine-tuned with `training.freeze: [vae.encoder]`). DST must not exist
unless `--overwrite` is given; the copy is written beside DST and renamed into place, so a failed
export never leaves half a model behind.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def adopt_vae(pipe, vae) -> None:
    """Make `vae` the pipeline's VAE. It must encode as the pipeline's does (the transformer knows
    only those latents), and it takes the pipeline's latent scale. Raises ValueError otherwise."""
    if not pipe.vae.same_encoder_as(vae):
        raise ValueError("encodes differently from the model's VAE, so its latents are not the ones the "
                         "transformer knows; only a VAE with the model's encoder (e.g. a decoder fine-tuned with "
                         "training.freeze: [vae.encoder]) can stand in")
    vae.register_to_config(scaling_factor=float(pipe.vae.config.scaling_factor))
    pipe.register_modules(vae=vae)


def export_pipeline(source: Path, destination: Path, dtype: str = "float16", steps: int | None = None,
                    guidance: float | None = None, overwrite: bool = False,
                    key_guidance: float | None = None, output_phase: str | None = None,
                    key_classifier: Path | None = None, key_classifier_scale: float | None = None,
                    vae: Path | None = None, melody_scale: float | None = None) -> Path:
    from audiodit.configuration import staged_directory
    from audiodit.inputs import check_setting
    from audiodit.guidance import check_key_classifier, check_key_guidance
    from audiodit.models.key_classifier import LatentKeyClassifier
    from audiodit.models.vae import check_output_phase
    from audiodit.pipeline import AudioDiTPipeline
    from audiodit.training.checkpoints import resolve_export

    if not (source / "model_index.json").is_file():
        raise ValueError(f"{source} is not a pipeline directory (model_index.json missing)")
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination} exists (use --overwrite)")
    pipe = AudioDiTPipeline.from_pretrained(source, dtype=torch.float32)
    if steps is not None:
        pipe.register_to_config(default_num_inference_steps=steps)
    if guidance is not None:
        pipe.register_to_config(default_guidance_scale=guidance)
    if key_guidance is not None:
        try:
            check_key_guidance(pipe.transformer.config, key_guidance)
        except ValueError as err:
            raise ValueError(f"--key-guidance for {source}: {err}") from err
        pipe.register_to_config(default_key_guidance_scale=key_guidance)
    if vae is not None:
        from audiodit.models.vae import AudioVAE
        from audiodit.training.checkpoints import resolve_vae_dir

        folder = resolve_vae_dir(vae, "--vae", ("vae",))
        try:
            adopt_vae(pipe, AudioVAE.from_pretrained(str(folder), dtype=torch.float32))
        except ValueError as err:
            raise ValueError(f"--vae {vae} {err}") from None
    if output_phase is not None:
        check_output_phase(output_phase, "--output-phase")
        pipe.vae.register_to_config(output_phase=output_phase)
    if key_classifier is not None:
        folder = key_classifier / "key_classifier"
        if not folder.is_dir() and (key_classifier / "checkpoints").is_dir():  # a key_classifier training run
            folder = resolve_export(key_classifier, "--key-classifier", ("key_classifier",))
        elif not folder.is_dir():
            folder = key_classifier
        if not (folder / "config.json").is_file():
            raise ValueError(f"--key-classifier {key_classifier}: no LatentKeyClassifier there (config.json missing)")
        classifier = LatentKeyClassifier.from_pretrained(folder, torch_dtype=torch.float32)
        if classifier.config.in_channels != pipe.transformer.config.in_channels:
            raise ValueError(f"--key-classifier {key_classifier}: it reads {classifier.config.in_channels} latent "
                             f"channels, the transformer makes {pipe.transformer.config.in_channels}")
        pipe.register_modules(key_classifier=classifier)
    if key_classifier_scale is not None:
        try:
            check_key_classifier(pipe.key_classifier, key_classifier_scale)
        except ValueError as err:
            raise ValueError(f"--key-classifier-scale for {source}: {err}") from err
        pipe.register_to_config(default_key_classifier_scale=key_classifier_scale)
    if melody_scale is not None:
        if not pipe.transformer.config.get("melody_conditioning", False):
            raise ValueError(f"--melody-scale for {source}: its transformer has no melody conditioning")
        try:
            check_setting("melody_guidance_scale", melody_scale)
        except ValueError as err:
            raise ValueError(f"--melody-scale for {source}: {err}") from err
        pipe.register_to_config(default_melody_guidance_scale=melody_scale)
    pipe.to(getattr(torch, dtype))
    with staged_directory(destination, replace=overwrite) as staging:
        pipe.save_pretrained(staging)
    return destination


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="pipeline directory to export")
    parser.add_argument("destination", type=Path, help="new pipeline directory")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    parser.add_argument("--steps", type=int, help="new default number of inference steps")
    parser.add_argument("--guidance", type=float, help="new default guidance scale")
    parser.add_argument("--key-guidance", type=float, help="new default key guidance scale (key-conditioned models)")
    parser.add_argument("--output-phase", choices=("decoder", "magnitude", "rebuilt"),
                        help="the VAE's output phase (AudioVAE.decode); magnitude: bass bins rebuilt from the "
                             "magnitudes; rebuilt: the whole phase built from the decoder's magnitudes")
    parser.add_argument("--key-classifier", type=Path,
                        help="add this LatentKeyClassifier (python -m audiodit.training.key_classifier --out DIR)")
    parser.add_argument("--key-classifier-scale", type=float, help="new default key classifier guidance scale")
    parser.add_argument("--melody-scale", type=float,
                        help="new default melody guidance scale (melody-conditioned models)")
    parser.add_argument("--vae", type=Path,
                        help="use this VAE (or a vae-stage run's latest export): it must have the model's encoder")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        path = export_pipeline(args.source, args.destination, args.dtype, args.steps, args.guidance, args.overwrite,
                               args.key_guidance, args.output_phase, args.key_classifier, args.key_classifier_scale,
                               args.vae, args.melody_scale)
    except (ValueError, FileExistsError) as err:
        print(f"audiodit.export: error: {err}", file=sys.stderr)
        return 2
    size = sum(file.stat().st_size for file in path.rglob("*") if file.is_file())
    print(f"{path}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
