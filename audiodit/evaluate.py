"""Evaluate a text-to-audio pipeline on held-out prompts of a rendered music21 corpus.

    python -m audiodit.evaluate --model PIPELINE_DIR --data CORPUS_DIR --out REPORT_DIR \\
        [--num-prompts 32] [--seconds 10] [--steps K] [--guidance G] [--key-guidance G]
        [--key-classifier-scale S] [--seed 0]

Every analyser is someone else's: essentia's `KeyExtractor` and `RhythmExtractor2013`, librosa's
spectral features (both through `audiodit.analysis`), a scikit-learn classifier, scipy's matrix
square root. Four columns:

- real test audio (the ceiling): the analysers on the held-out clips themselves, scored against
  their own captions, cropped to the same `--seconds` as the generations;
- real audio through the VAE: the same clips encoded and decoded by the pipeline's VAE, scored the
  same way: the most a perfect DiT could reach through this VAE (a key the VAE cannot reproduce,
  no DiT can generate);
- model: generations for the held-out captions, scored against those captions;
- shuffled-prompt floor: the same generations scored against a derangement of the captions
  (generation i against caption pi(i), pi(i) != i), averaged over many derangements. Since pi
  permutes the same prompt set, this is the chance score of audio that ignores its prompt; a
  permutation p-value says how often a derangement scores at least as well as the true pairing.

Writes REPORT_DIR/report.json (every number, per-clip estimates), REPORT_DIR/report.md (the table,
also printed) and REPORT_DIR/generated/*.flac. Definitions and caveats: docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from audiodit.analysis import FEATURE_NAMES, KEY_PROFILE, SAMPLE_RATE, analyse_clip, clip_features, pitch_class

TEMPO_TOLERANCE = 0.08  # relative tempo tolerance (MIREX uses 4 %; 8 % forgives small tracker drift)
REQUIRED_FIELDS = ("caption", "tonic", "mode", "bpm", "instrument_family")
HELD_OUT_SPLITS = ("test", "valid")  # never trained on; prompts come from test first


#################################################################################
#                          Corpus and held-out prompts                          #
#################################################################################

def load_split(data_dir, split: str) -> list[dict]:
    """The records (`<id>.json` fields plus `audio_path`) of one corpus split, sorted by id."""
    folder = Path(data_dir) / split
    records = []
    for json_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = json.loads(json_path.read_text())
        missing = [field for field in REQUIRED_FIELDS if field not in record]
        if missing:
            raise ValueError(f"{json_path}: missing fields {missing} (not a music21_corpus sample?)")
        audio_path = json_path.with_suffix(".flac")
        if not audio_path.is_file():
            raise FileNotFoundError(f"{json_path}: no audio file {audio_path.name} beside it")
        caption_path = json_path.with_suffix(".txt")
        if caption_path.is_file():  # the caption the model was trained on
            record["caption"] = caption_path.read_text().strip()
        records.append({**record, "audio_path": str(audio_path)})
    return records


def select_prompts(data_dir, num_prompts: int, seed: int) -> list[dict]:
    """`num_prompts` held-out records, a seeded sample of the test split (then valid if short)."""
    if not Path(data_dir).is_dir():
        raise FileNotFoundError(f"corpus directory {data_dir} does not exist (python -m audiodit.corpora.music21_corpus)")
    chosen = []
    for split in HELD_OUT_SPLITS:
        records = load_split(data_dir, split)
        order = np.random.default_rng([seed, len(chosen)]).permutation(len(records))
        chosen += [records[i] for i in order[: num_prompts - len(chosen)]]
    if len(chosen) < 2:
        raise ValueError(f"{data_dir}: need at least 2 test/valid samples for held-out prompts, found {len(chosen)}")
    return chosen


def sample_records(records: list[dict], limit: int, seed: int) -> list[dict]:
    order = np.random.default_rng(seed).permutation(len(records))[:limit]
    return [records[i] for i in sorted(order)]


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random permutation without fixed points (rejection sampling, ~e tries)."""
    if n < 2:
        raise ValueError(f"a derangement needs at least 2 items, got {n}")
    while True:
        permutation = rng.permutation(n)
        if not np.any(permutation == np.arange(n)):
            return permutation


#################################################################################
#                            Scores against prompts                             #
#################################################################################

def key_relation(tonic: int, mode: str, ref_tonic: int, ref_mode: str) -> str:
    """How a key (tonic pitch class, mode) relates to a reference key: "right", "fifth" (a fifth
    apart in the same mode, either direction), "relative" (A minor for C major and C major for A
    minor), "parallel" (same tonic, other mode) or "other"."""
    interval = (tonic - ref_tonic) % 12
    if mode == ref_mode:
        return "right" if interval == 0 else "fifth" if interval in (5, 7) else "other"
    if interval == 0:
        return "parallel"
    return "relative" if interval == (9 if ref_mode == "major" else 3) else "other"


MIREX_CREDIT = {"right": 1.0, "fifth": 0.5, "relative": 0.3, "parallel": 0.2, "other": 0.0}


def mirex_key_score(tonic: int, mode: str, ref_tonic: int, ref_mode: str) -> float:
    """MIREX weighted key score: 1 same key, 0.5 a fifth apart in the same mode (either
    direction, as MIREX's current implementation; mir_eval issue #337), 0.3 relative, 0.2 parallel."""
    return MIREX_CREDIT[key_relation(tonic, mode, ref_tonic, ref_mode)]


def tempo_hits(estimate: float, target: float, factors=(1.0,), tolerance: float = TEMPO_TOLERANCE) -> bool:
    """Is `estimate` within `tolerance` (relative) of `target` times one of `factors`?"""
    return any(abs(estimate - target * f) <= tolerance * target * f for f in factors)


def adherence(estimates: list[dict], targets: list[dict]) -> dict[str, float]:
    """Prompt-adherence metrics of analysed clips `estimates` against caption records `targets`."""
    if len(estimates) != len(targets) or not estimates:
        raise ValueError(f"need equally many estimates and targets, got {len(estimates)} and {len(targets)}")
    ref_tonics = [pitch_class(t["tonic"]) for t in targets]
    bpms = [float(t["bpm"]) for t in targets]
    return {
        "key_accuracy": float(np.mean([e["tonic"] == rt and e["mode"] == t["mode"]
                                       for e, t, rt in zip(estimates, targets, ref_tonics)])),
        "mode_accuracy": float(np.mean([e["mode"] == t["mode"] for e, t in zip(estimates, targets)])),
        "key_mirex_score": float(np.mean([mirex_key_score(e["tonic"], e["mode"], rt, t["mode"])
                                          for e, t, rt in zip(estimates, targets, ref_tonics)])),
        "tempo_accuracy_octave": float(np.mean([tempo_hits(e["bpm_estimate"], b, (1.0, 2.0, 0.5))
                                                for e, b in zip(estimates, bpms)])),
        "tempo_accuracy_metrical": float(np.mean([tempo_hits(e["bpm_estimate"], b, (1.0, 2.0, 3.0, 0.5, 1 / 3))
                                                  for e, b in zip(estimates, bpms)])),
        "tempo_accuracy": float(np.mean([tempo_hits(e["bpm_estimate"], b) for e, b in zip(estimates, bpms)])),
        "tempo_median_abs_error_bpm": float(np.median([abs(e["bpm_estimate"] - b) for e, b in zip(estimates, bpms)])),
        "tempo_median_abs_error_octave_bpm": float(np.median([min(abs(e["bpm_estimate"] - b * f) for f in (1.0, 2.0, 0.5))
                                                              for e, b in zip(estimates, bpms)])),
        "instrument_accuracy": float(np.mean([e["family_estimate"] == t["instrument_family"]
                                              for e, t in zip(estimates, targets)])),
    }


LOWER_IS_BETTER = {"tempo_median_abs_error_bpm", "tempo_median_abs_error_octave_bpm", "frechet_distance",
                   "vae_mrstft", "vae_mel_l1_db"}


def shuffled_floor(estimates: list[dict], targets: list[dict], rounds: int, seed: int) -> dict:
    """Adherence of `estimates` against deranged `targets`, over `rounds` derangements.

    Returns {"mean": {metric: mean}, "std": {...}, "p_value": {...}, "first_derangement": [...]}:
    p_value is the permutation test of the true pairing (Phipson & Smyth 2010's (b + 1) / (m + 1)),
    with b the derangements scoring at least as well as the model.
    """
    rng = np.random.default_rng(seed)
    model = adherence(estimates, targets)
    permutations = [derangement(len(targets), rng) for _ in range(rounds)]
    scores = [adherence(estimates, [targets[j] for j in permutation]) for permutation in permutations]
    result = {"mean": {}, "std": {}, "p_value": {}, "first_derangement": permutations[0].tolist()}
    for metric, value in model.items():
        values = np.array([score[metric] for score in scores])
        as_good = values <= value if metric in LOWER_IS_BETTER else values >= value
        result["mean"][metric], result["std"][metric] = float(values.mean()), float(values.std())
        result["p_value"][metric] = float((as_good.sum() + 1) / (rounds + 1))
    return result


#################################################################################
#                Instrument classifier and Fréchet feature distance             #
#################################################################################

def fit_instrument_classifier(features: np.ndarray, families: list[str], seed: int = 0):
    """Standardised features -> multinomial logistic regression (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if len(set(families)) < 2:
        raise ValueError(f"the instrument classifier needs at least 2 families in the train split, got {set(families)}")
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=3000, random_state=seed))
    return classifier.fit(features, families)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to feature sets a (N, D) and b (M, D):
    |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2)) (Dowson & Landau 1982; FID, Heusel et al. 2017)."""
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ValueError(f"need two (N>=2, D) feature sets of equal D, got {a.shape} and {b.shape}")
    mean_a, mean_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # singular product (N < D): nudge both covariances, as FID code does
        offset = 1e-6 * np.eye(a.shape[1])
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(root.real)
    return float(max(distance, 0.0))  # round-off can leave tiny negatives for identical sets


#################################################################################
#                                  Evaluation                                   #
#################################################################################

def _log(message: str) -> None:
    print(f"[evaluate] {message}", file=sys.stderr, flush=True)


def load_clip(record: dict, seconds: float) -> np.ndarray:
    """The first `seconds` of a corpus sample, (2, S) at 48 kHz, zero-padded if shorter."""
    from audiodit.audio import load_audio

    return load_audio(record["audio_path"], SAMPLE_RATE, duration=seconds).numpy()


def generate(pipe, prompts: list[dict], seconds: float, steps: int, guidance: float, seed: int,
             batch_size: int, out_dir: Path | None, key_guidance: float = 0.0,
             key_classifier_scale: float = 0.0, **settings) -> list[np.ndarray]:
    """One (2, S) clip per prompt; prompt i uses a CPU generator seeded `seed + i`, so a clip
    does not depend on the batch size. Clips are written to `out_dir` as 24-bit FLAC (None: not
    written). `settings`: further pipeline arguments (e.g. `guidance_interval`)."""
    import torch

    from audiodit.audio import save_audio

    clips = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        generators = [torch.Generator("cpu").manual_seed(seed + start + i) for i in range(len(batch))]
        audios = pipe([record["caption"] for record in batch], audio_end_in_s=seconds, num_inference_steps=steps,
                      guidance_scale=guidance, key_guidance_scale=key_guidance,
                      key_classifier_scale=key_classifier_scale,
                      generator=generators, **settings).audios  # (B, 2, S)
        for index, (record, audio) in enumerate(zip(batch, audios.float().cpu().numpy()), start):
            if out_dir is not None:
                save_audio(out_dir / f"{index:03d}_{record['id']}.flac", audio, SAMPLE_RATE, "PCM_24", overwrite=True)
            clips.append(audio)
        _log(f"generated {len(clips)}/{len(prompts)}")
    return clips


def vae_reconstruction(vae, clips: list[np.ndarray]) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean `audiodit.metrics` reconstruction metrics of clips through the VAE (posterior mode),
    and the reconstructed clips (2, S)."""
    import torch

    from audiodit.metrics import reconstruction_metrics

    rows, decoded_clips = [], []
    for clip in clips:
        audio = torch.from_numpy(clip)[None].to(vae.device, vae.dtype)  # (1, 2, S)
        with torch.no_grad():
            decoded = vae.decode(vae.encode(audio).latent_dist.mode(), length=audio.shape[-1]).sample
        rows.append(reconstruction_metrics(audio[0].float().cpu(), decoded[0].float().cpu()))
        decoded_clips.append(decoded[0].float().cpu().numpy())
    return {f"vae_{name}": float(np.mean([row[name] for row in rows])) for name in rows[0]}, decoded_clips


def per_clip_rows(prompts: list[dict], analyses: list[dict], against: list[dict]) -> list[dict]:
    """One report row per clip: its prompt, the record it is scored against and its estimates
    (the `per_clip` rows that `benchmarks/compare_evals.py` reads)."""
    return [{"id": p["id"], "caption": p["caption"], "scored_against": t["id"], "target_key": f"{t['tonic']} {t['mode']}",
             "target_bpm": t["bpm"], "target_family": t["instrument_family"], "estimated_key": a["key"],
             "key_strength": round(a["strength"], 4), "estimated_bpm": round(a["bpm_estimate"], 2),
             "estimated_family": a["family_estimate"]} for p, a, t in zip(prompts, analyses, against)]


def evaluate(model_dir, data_dir, out_dir, num_prompts: int = 32, seconds: float | None = None,
             steps: int | None = None, guidance: float | None = None, seed: int = 0, batch_size: int = 4,
             max_train_clips: int = 600, max_reference_clips: int = 256, shuffle_rounds: int = 1000,
             device: str | None = None, key_guidance: float | None = None,
             key_classifier_scale: float | None = None) -> dict:
    """Run the whole evaluation; writes REPORT_DIR files and returns the report dict."""
    import torch

    from audiodit.pipeline import AudioDiTPipeline

    started, timings = time.perf_counter(), {}
    out_dir = Path(out_dir)
    if num_prompts < 2:
        raise ValueError(f"--num-prompts must be at least 2 (the floor needs a derangement), got {num_prompts}")

    # 1. Held-out prompts; train clips for the classifier; held-out clips to test it and as the Fréchet reference
    prompts = select_prompts(data_dir, num_prompts, seed)
    train = sample_records(load_split(data_dir, "train"), max_train_clips, seed)
    reference = sample_records([r for split in HELD_OUT_SPLITS for r in load_split(data_dir, split)],
                               max_reference_clips, seed)
    if len(train) < 2 or len(reference) < 2:
        raise ValueError(f"{data_dir}: need at least 2 train and 2 test/valid samples, "
                         f"found {len(train)} and {len(reference)}")

    # 2. Generate
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = AudioDiTPipeline.from_pretrained(model_dir).to(device)
    pipe.set_progress_bar_config(disable=True)
    seconds = float(seconds or min(10.0, pipe.max_audio_length_s))
    if not 0 < seconds <= pipe.max_audio_length_s:
        raise ValueError(f"--seconds must be in (0, {pipe.max_audio_length_s:g}] for this model, got {seconds:g}")
    steps, guidance, key_guidance, key_classifier_scale = pipe.resolve_settings(
        steps or None, guidance, key_guidance, key_classifier_scale)
    steps, guidance = int(steps), float(guidance)
    _log(f"{len(prompts)} prompts x {seconds:g} s, {steps} steps, guidance {guidance:g}, "
         f"key guidance {key_guidance:g}, key classifier {key_classifier_scale:g}, on {device}")
    clock = time.perf_counter()
    generated = generate(pipe, prompts, seconds, steps, guidance, seed, batch_size, out_dir / "generated",
                         key_guidance, key_classifier_scale)
    timings["generate_s"] = time.perf_counter() - clock

    # 3. Analyse generations and the real clips of the same prompts
    clock = time.perf_counter()
    real_clips = [load_clip(record, seconds) for record in prompts]
    model_analysis = [analyse_clip(clip) for clip in generated]
    real_analysis = [analyse_clip(clip) for clip in real_clips]
    timings["analyse_s"] = time.perf_counter() - clock

    # 4. The same real clips through the VAE: reconstruction metrics, and their analysis (what a perfect
    #    DiT could reach through this VAE)
    clock = time.perf_counter()
    reconstruction, decoded = vae_reconstruction(pipe.vae, real_clips)
    vae_analysis = [analyse_clip(clip) for clip in decoded]
    timings["vae_s"] = time.perf_counter() - clock

    # 5. Instrument classifier: fitted on train-split audio, shown to work on held-out audio
    clock = time.perf_counter()
    known = {p["audio_path"]: a["features"] for p, a in zip(prompts, real_analysis)}
    train_features = np.stack([clip_features(load_clip(record, seconds)) for record in train])
    reference_features = np.stack([known[r["audio_path"]] if r["audio_path"] in known
                                   else clip_features(load_clip(r, seconds)) for r in reference])
    classifier = fit_instrument_classifier(train_features, [r["instrument_family"] for r in train], seed)
    reference_families = [r["instrument_family"] for r in reference]
    majority = max(set(reference_families), key=reference_families.count)
    reference_predictions = classifier.predict(reference_features)
    per_family = {family: float(np.mean([p == family for p, f in zip(reference_predictions, reference_families)
                                         if f == family])) for family in sorted(set(reference_families))}
    for analysis in model_analysis + real_analysis + vae_analysis:
        analysis["family_estimate"] = str(classifier.predict(analysis["features"][None])[0])
    timings["classifier_s"] = time.perf_counter() - clock

    # 6. Adherence: ceiling, through the VAE, model, shuffled-prompt floor
    ceiling = adherence(real_analysis, prompts)
    through_vae = adherence(vae_analysis, prompts)
    model = {**adherence(model_analysis, prompts), **reconstruction}
    floor = shuffled_floor(model_analysis, prompts, shuffle_rounds, seed)

    # 7. Fréchet distance to held-out real audio, in features standardised by its statistics
    mean, std = reference_features.mean(axis=0), reference_features.std(axis=0) + 1e-8

    def distance_to_reference(features) -> float:
        return frechet_distance((np.asarray(features) - mean) / std, (reference_features - mean) / std)

    same_size_real = train_features[np.random.default_rng(seed).permutation(len(train))[: len(prompts)]]
    ceiling["frechet_distance"] = distance_to_reference(same_size_real)
    model["frechet_distance"] = distance_to_reference([a["features"] for a in model_analysis])
    through_vae["frechet_distance"] = distance_to_reference([a["features"] for a in vae_analysis])

    timings["total_s"] = time.perf_counter() - started

    # 8. Report
    permutation = floor["first_derangement"]
    report = {
        "settings": {"model": str(model_dir), "data": str(data_dir), "num_prompts": len(prompts), "seconds": seconds,
                     "steps": steps, "guidance_scale": guidance, "key_guidance_scale": key_guidance,
                     "key_classifier_scale": key_classifier_scale,
                     "seed": seed, "device": device,
                     "prompt_splits": sorted({p["split"] for p in prompts}), "key_profile": KEY_PROFILE,
                     "tempo_tolerance": TEMPO_TOLERANCE, "shuffle_rounds": shuffle_rounds,
                     "train_clips": len(train), "reference_clips": len(reference),
                     "frechet_ceiling": f"{len(same_size_real)} train-split clips vs the same reference",
                     "features": list(FEATURE_NAMES)},
        "classifier": {"model": "StandardScaler + LogisticRegression(C=0.5)", "train_clips": len(train),
                       "classes": sorted(set(r["instrument_family"] for r in train)),
                       "held_out_splits": list(HELD_OUT_SPLITS), "held_out_clips": len(reference),
                       "held_out_accuracy": float(np.mean(reference_predictions == np.array(reference_families))),
                       "held_out_majority_class_accuracy": reference_families.count(majority) / len(reference),
                       "held_out_accuracy_per_family": per_family},
        "metrics": {"real": ceiling, "vae": through_vae, "model": model, "shuffled": floor["mean"]},
        "shuffled_std": floor["std"], "p_value_model_vs_shuffled": floor["p_value"],
        "timings_s": {name: round(value, 2) for name, value in timings.items()},
        "per_clip": {"real": per_clip_rows(prompts, real_analysis, prompts),
                     "vae": per_clip_rows(prompts, vae_analysis, prompts),
                     "model": per_clip_rows(prompts, model_analysis, prompts),
                     "shuffled_first_derangement": per_clip_rows(prompts, model_analysis,
                                                             [prompts[j] for j in permutation])},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "report.md").write_text(format_report(report) + "\n")
    return report


#################################################################################
#                                    Report                                     #
#################################################################################

ROWS = (  # (metric key, label, format)
    ("key_accuracy", "Key accuracy (tonic and mode) ↑", "{:.3f}"),
    ("mode_accuracy", "Mode accuracy (major/minor) ↑", "{:.3f}"),
    ("key_mirex_score", "Key MIREX weighted score ↑", "{:.3f}"),
    ("tempo_accuracy_octave", "Tempo accuracy (±8 %, ×1 ×2 ×½) ↑", "{:.3f}"),
    ("tempo_accuracy_metrical", "Tempo accuracy (±8 %, ×1 ×2 ×3 ×½ ×⅓) ↑", "{:.3f}"),
    ("tempo_accuracy", "Tempo accuracy (±8 %, ×1 only) ↑", "{:.3f}"),
    ("tempo_median_abs_error_bpm", "Tempo median absolute error (BPM) ↓", "{:.1f}"),
    ("tempo_median_abs_error_octave_bpm", "Tempo median absolute error, nearest of ×1 ×2 ×½ (BPM) ↓", "{:.1f}"),
    ("instrument_accuracy", "Instrument-family accuracy ↑", "{:.3f}"),
    ("frechet_distance", "Fréchet feature distance to held-out audio ↓", "{:.2f}"),
    ("vae_mrstft", "VAE reconstruction MR-STFT distance ↓", "{:.3f}"),
    ("vae_mel_l1_db", "VAE reconstruction mel L1 (dB) ↓", "{:.2f}"),
    ("vae_si_sdr_db", "VAE reconstruction SI-SDR (dB) ↑", "{:.2f}"),
)


def format_report(report: dict) -> str:
    """The markdown table (rows = metrics; columns = ceiling / through the VAE / model / floor / p)."""
    metrics, p_values, settings = report["metrics"], report["p_value_model_vs_shuffled"], report["settings"]
    lines = ["| Metric | Real test audio (ceiling) | Real audio through the VAE | Model | Shuffled-prompt floor "
             "| p (model vs floor) |", "|---|---|---|---|---|---|"]
    for key, label, fmt in ROWS:
        cells = [fmt.format(metrics[column][key]) if key in metrics.get(column, {}) else "—"
                 for column in ("real", "vae", "model", "shuffled")]
        p_value = f"{p_values[key]:.3f}" if key in p_values else "—"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {p_value} |")
    classifier = report["classifier"]
    lines += [
        "",
        f"{settings['num_prompts']} held-out prompts ({'/'.join(settings['prompt_splits'])} split), "
        f"{settings['seconds']:g} s each, {settings['steps']} steps, guidance {settings['guidance_scale']:g}, "
        f"key guidance {settings.get('key_guidance_scale', 0.0):g}, "
        f"key classifier guidance {settings.get('key_classifier_scale', 0.0):g}, seed {settings['seed']}. "
        f"Floor: mean over {settings['shuffle_rounds']} derangements of the prompts. "
        f"Instrument classifier: {classifier['train_clips']} train-split clips, {len(classifier['classes'])} families, "
        f"accuracy {classifier['held_out_accuracy']:.3f} on {classifier['held_out_clips']} held-out real clips "
        f"(majority class {classifier['held_out_majority_class_accuracy']:.3f}). Fréchet reference: those "
        f"{settings['reference_clips']} held-out clips; ceiling: {settings['frechet_ceiling']}. "
        "VAE rows and the through-the-VAE column: the held-out prompts' real clips encoded and decoded by "
        "the pipeline's VAE; that column is what a perfect DiT could reach through this VAE.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiodit.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="pipeline directory (save_pretrained)")
    parser.add_argument("--data", required=True, help="corpus made by python -m audiodit.corpora.music21_corpus")
    parser.add_argument("--out", required=True, help="report directory (report.json, report.md, generated/)")
    parser.add_argument("--num-prompts", type=int, default=32, help="held-out prompts (test split, then valid)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per clip (default min(10, model max))")
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: the model's)")
    parser.add_argument("--key-guidance", type=float, default=None,
                        help="key guidance scale (default: the model's; 0 = off)")
    parser.add_argument("--key-classifier-scale", type=float, default=None,
                        help="key classifier guidance scale (default: the model's; 0 = off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of prompt choice, noise and derangements")
    parser.add_argument("--batch-size", type=int, default=4, help="prompts generated together")
    parser.add_argument("--max-train-clips", type=int, default=600, help="train-split clips for the classifier")
    parser.add_argument("--max-reference-clips", type=int, default=256, help="test+valid clips (classifier test, Fréchet)")
    parser.add_argument("--shuffle-rounds", type=int, default=1000, help="derangements averaged for the floor")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    args = parser.parse_args(argv)
    report = evaluate(args.model, args.data, args.out, num_prompts=args.num_prompts, seconds=args.seconds,
                      steps=args.steps, guidance=args.guidance, seed=args.seed, batch_size=args.batch_size,
                      max_train_clips=args.max_train_clips, max_reference_clips=args.max_reference_clips,
                      shuffle_rounds=args.shuffle_rounds, device=args.device, key_guidance=args.key_guidance,
                      key_classifier_scale=args.key_classifier_scale)
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
