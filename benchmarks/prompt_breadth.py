"""Does the model make different things for different prompts, and drums when asked?

A fixed set of prompts of the kind users type (`PROMPTS`), grouped by domain: score-like captions
(what the bundled model was trained on), genre arrangements with drums, drumless music,
soundtrack-style recordings and sounds. Each prompt says whether it asks for drums (True), asks
for none (False) or neither (None). Every prompt is generated with the same `--seeds` noises
(seed `--seed + k` for clip k of every prompt), so two clips of one seed differ only by their
prompt. Each `--model` gets the same prompts and noises, side by side in one run.

Per clip (mono at 22.05 kHz, 2048-point STFT, hop 512; librosa): the percussive share (HPSS
percussive energy / total, Fitzgerald 2010's median-filter split), the share of energy below
150 Hz, the low-band onset strength (rises of the < 150 Hz amplitude above its maximum over the
previous 93 ms, summed per second, in units of the clip's mean amplitude: about 6 for a bare kick
drum at 120 BPM, 3 for the same under a chord, 0 for a sustained chord, 0.1 for white noise, but
also 3 for a low rumble of brown noise, so read it beside the flatness),
spectral flatness, RMS level, the longest inner silence (`inner_gap_s`: frames 40 dB below the
clip's loudest, with sound before and after; silence at the ends does not count) and the long-term
average mel spectrum (64 bands, dB).

Reported per model:

* drums where asked: the percussive share and low-band onset strength of drum prompts against
  drumless prompts (per-prompt means over seeds), with a one-sided permutation p-value of the
  difference (Phipson & Smyth 2010's (b + 1) / (m + 1)) and the AUC (probability that a drum
  prompt scores above a drumless one; 0.5 = no difference); again without the score-like
  prompts, which are all drumless and in the bundled model's training domain;
* prompts and domains separate: spectral distance (RMS dB over the mel bands of level-centred
  average spectra) between clips of one seed with different prompts over that between two seeds
  of one prompt ("prompt separation": > 1 when the prompt changes a clip more than the noise
  does), and between clips of different domains over that between different prompts of one
  domain ("domain separation": about 1 when domains sound alike, > 1 when they separate; with
  its permutation p and chance ratio), the mean correlation of the average spectra of different
  sound prompts (1.00 when every sound prompt gives the same spectrum), per-domain means;
* dropouts: the share of music-prompt clips (every domain but sounds) with an inner silence of
  1 s or more, which no music prompt asks for;
* per prompt: every number, and a PNG grid of the mel spectrograms of all clips beside the report;
* when `audiodit.judge` (musicnn's taggers, in an interpreter of their own) is installed: its
  MTT "drums" probability as one more drum measure, each clip's top tags, and the prompt and
  domain separation of its embeddings (cosine distance); otherwise the report says why not.

`--reference-dir [DOMAIN=]DIR` (repeatable) measures real audio the same way (up to
`--reference-clips` files each, cropped to `--seconds`): what real audio scores, and how far the
separation of its sets goes.

    python -m benchmarks.prompt_breadth --model models/audiodit-small --out outputs/prompt_breadth \\
        --report benchmarks/results/prompt_breadth_cpu
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch
from benchmarks.machine import cpu_model, emit_report

from audiodit.analysis import FEATURE_RATE, SAMPLE_RATE, to_mono
from audiodit.configuration import atomic_write_text

N_FFT, HOP = 2048, 512  # at FEATURE_RATE: 93 ms windows, 43 frames per second
N_MELS = 64
LOW_HZ = 150.0  # kick drums and bass live below this; a tonal texture puts < 1 % of its energy here
ONSET_MEMORY = 4  # frames (93 ms): a rise counts above the band's maximum over these, as SuperFlux's
                  # maximum filter does (Boeck & Widmer 2013); it halves what noise flicker scores
MEASURES = ("percussive_share", "low_onset_strength", "low_energy_share", "flatness", "rms_db", "inner_gap_s")
GAP_DB = 40.0  # a frame this far below the clip's loudest is silent
GAP_SECONDS = 1.0  # an inner gap this long is a dropout no music prompt asks for
DRUM_MEASURES = ("percussive_share", "low_onset_strength", "low_energy_share")
PERMUTATIONS = 2000

# (prompt, domain, wants_drums): what users type, grouped by domain. Fixed, so runs compare.
PROMPTS = [
    ("A Bach chorale in D minor for church organ, 80 BPM, 4/4, centred.", "score", False),
    ("A traditional folk tune in G major for flute, 100 BPM", "score", False),
    ("A Mozart piano sonata movement in C major", "score", False),
    ("A traditional jig in A major for violin, 120 BPM, 6/8", "score", False),
    ("A Palestrina mass movement for choir, 66 BPM", "score", False),
    ("A traditional hornpipe in Bb major for brass ensemble, 92 BPM", "score", False),
    ("upbeat funk groove with slap bass and drums", "genre", True),
    ("heavy metal guitar riff", "genre", None),
    ("lofi hip hop beat", "genre", True),
    ("electronic dance music with a four-on-the-floor kick", "genre", True),
    ("classic rock song with electric guitar, bass and drums, 120 BPM", "genre", True),
    ("bossa nova with nylon guitar, soft percussion and upright bass", "genre", True),
    ("swing jazz trio with brushes on the snare and a walking bass, 140 BPM", "genre", True),
    ("roots reggae with a one-drop drum beat and an offbeat guitar skank", "genre", True),
    ("boom bap hip hop beat with a punchy kick and snare, 90 BPM", "genre", True),
    ("drum and bass with fast breakbeats, 174 BPM", "genre", True),
    ("latin salsa with congas, timbales and a piano montuno", "genre", True),
    ("a solo piano ballad, slow and gentle", "drumless", False),
    ("a string quartet playing a slow romantic melody", "drumless", False),
    ("an ambient synth pad, evolving and spacious, no drums", "drumless", False),
    ("a solo acoustic guitar fingerpicking a folk melody", "drumless", False),
    ("a melancholic cello solo, 60 BPM", "drumless", False),
    ("a choir singing a cappella in a cathedral", "drumless", False),
    ("orchestral game soundtrack, epic battle theme", "soundtrack", None),
    ("calm fantasy village music", "soundtrack", None),
    ("8-bit chiptune video game music, fast and cheerful", "soundtrack", None),
    ("dark ambient dungeon music with low drones", "soundtrack", None),
    ("cinematic trailer music with huge taiko drums", "soundtrack", True),
    ("a relaxing piano melody for a cozy game menu screen", "soundtrack", False),
    ("retro synthwave racing game music with driving drums", "soundtrack", True),
    ("rain on a tin roof", "sound", None),
    ("a dog barking", "sound", None),
    ("a man speaking", "sound", None),
    ("a door slam", "sound", None),
    ("footsteps on a wooden floor", "sound", None),
    ("strong wind blowing through trees", "sound", None),
    ("a loud explosion", "sound", None),
    ("birds chirping in a forest", "sound", None),
    ("a single kick drum hit", "sound", True),
    ("a drum loop at 120 BPM", "sound", True),
]


#################################################################################
#                                Clip measures                                  #
#################################################################################

def clip_measures(audio, sample_rate: int = SAMPLE_RATE) -> dict:
    """The measures of one clip, (2, S) or (S,) float at `sample_rate`, plus its average mel
    spectrum `spectrum_db` (N_MELS,) and its mel spectrogram `mel_db` (N_MELS, frames) for plots."""
    import librosa

    mono = to_mono(audio, sample_rate, FEATURE_RATE)
    rms = float(np.sqrt(np.mean(mono.astype(np.float64) ** 2)))
    # HPSS needs 31 frames (0.72 s): pad short sounds with silence, which changes the RMS, not the shares
    mono = np.pad(mono, (0, max(0, FEATURE_RATE - len(mono))))
    magnitude = np.abs(librosa.stft(mono, n_fft=N_FFT, hop_length=HOP))  # (bins, frames)
    power = magnitude.astype(np.float64) ** 2
    tiny = 1e-12
    harmonic, percussive = librosa.decompose.hpss(magnitude)  # soft masks: harmonic + percussive = magnitude
    low = librosa.fft_frequencies(sr=FEATURE_RATE, n_fft=N_FFT) < LOW_HZ  # (bins,)
    low_amplitude = np.sqrt(power[low].sum(axis=0))  # (frames,)
    amplitude = np.sqrt(power.sum(axis=0))  # (frames,)
    recent = np.stack([np.concatenate([low_amplitude[:lag], low_amplitude[:-lag]])
                       for lag in range(1, ONSET_MEMORY + 1)]).max(axis=0)  # (frames,)
    rises = np.maximum(low_amplitude - recent, 0.0).sum() / (len(mono) / FEATURE_RATE)  # per second
    loud = amplitude >= amplitude.max() * 1e-3  # frames within 60 dB of the loudest: silence has no flatness
    flatness = librosa.feature.spectral_flatness(S=magnitude + 1e-10)[0]  # (frames,)
    mel = librosa.feature.melspectrogram(S=power, sr=FEATURE_RATE, n_mels=N_MELS)  # (N_MELS, frames)
    harmonic_energy, percussive_energy = (np.sum(part.astype(np.float64) ** 2) for part in (harmonic, percussive))
    return {
        "percussive_share": float(percussive_energy / (harmonic_energy + percussive_energy + tiny)),
        "low_onset_strength": float(rises / (amplitude.mean() + tiny)),
        "low_energy_share": float(power[low].sum() / (power.sum() + tiny)),
        "flatness": float(flatness[loud].mean()) if loud.any() else 0.0,
        "rms_db": float(20.0 * np.log10(rms + 1e-10)),
        "inner_gap_s": inner_gap_seconds(amplitude),
        "spectrum_db": 10.0 * np.log10(mel.mean(axis=1) + tiny),  # long-term average spectrum
        "mel_db": librosa.power_to_db(mel, ref=np.max, top_db=80.0).astype(np.float32),
    }


def inner_gap_seconds(amplitude: np.ndarray) -> float:
    """The longest run of silent frames (GAP_DB below the loudest) with sound before and after it,
    in seconds: a clip that falls silent and starts again; 0 when there is none. Silence at the
    start or end (a one-shot followed by silence) does not count."""
    silent = amplitude < amplitude.max() * 10 ** (-GAP_DB / 20)
    sounding = np.flatnonzero(~silent)
    if sounding.size < 2:
        return 0.0
    inner = silent[sounding[0]:sounding[-1] + 1].astype(np.int8)
    longest = run = 0
    for value in inner:
        run = run + 1 if value else 0
        longest = max(longest, run)
    return float(longest * HOP / FEATURE_RATE)


#################################################################################
#                                  Statistics                                   #
#################################################################################

def auc(positives, negatives) -> float:
    """P(a positive scores above a negative), ties counting one half (the Mann-Whitney AUC)."""
    positives, negatives = np.asarray(positives, float)[:, None], np.asarray(negatives, float)[None, :]
    return float(np.mean((positives > negatives) + 0.5 * (positives == negatives)))


def permutation_p(values, labels, rounds: int = PERMUTATIONS, seed: int = 0) -> float:
    """One-sided p of mean(values[labels]) - mean(values[~labels]) under shuffled labels."""
    values, labels = np.asarray(values, float), np.asarray(labels, bool)
    observed = values[labels].mean() - values[~labels].mean()
    rng = np.random.default_rng(seed)
    as_large = 0
    for _ in range(rounds):
        shuffled = rng.permutation(labels)
        as_large += values[shuffled].mean() - values[~shuffled].mean() >= observed - 1e-12
    return float((as_large + 1) / (rounds + 1))


def spectral_distances(spectra: np.ndarray) -> np.ndarray:
    """(N, N) RMS dB difference between level-centred average spectra (N, bands)."""
    centred = spectra - spectra.mean(axis=1, keepdims=True)
    return np.sqrt(((centred[:, None, :] - centred[None, :, :]) ** 2).mean(axis=-1))


def separation(distances: np.ndarray, groups, pairs: np.ndarray) -> dict:
    """Mean distance over the allowed `pairs` (N, N bool) between rows of different `groups`,
    over that within one group; about 1 when the groups are alike, > 1 when they separate."""
    groups = np.asarray(groups)
    upper = np.triu(pairs, k=1)
    same = groups[:, None] == groups[None, :]
    between, within = distances[upper & ~same], distances[upper & same]
    mean_between = float(between.mean()) if between.size else float("nan")
    mean_within = float(within.mean()) if within.size else float("nan")
    ratio = mean_between / mean_within if within.size and between.size and mean_within > 0 else float("nan")
    return {"between": mean_between, "within": mean_within, "ratio": ratio}


def cosine_distances(embeddings: np.ndarray) -> np.ndarray:
    """(N, N) 1 - cosine similarity of embeddings (N, D)."""
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    return np.maximum(1.0 - unit @ unit.T, 0.0)


def mean_correlation(spectra: np.ndarray, pairs: np.ndarray) -> float:
    """Mean Pearson correlation of average spectra (N, bands) over the allowed pairs (i < j)."""
    upper = np.triu(pairs, k=1)
    return float(np.corrcoef(spectra)[upper].mean()) if upper.any() else float("nan")


#################################################################################
#                            What one model makes                               #
#################################################################################

def generate_clips(model_dir: Path, prompts: list[str], args) -> tuple[list[np.ndarray], dict]:
    """`args.seeds` clips (2, S) per prompt, prompt-major; clip k of every prompt uses seed
    `args.seed + k`. Also the settings to report."""
    from audiodit.cli import load_pipeline

    pipe = load_pipeline(model_dir, "cpu", torch.float32)
    pipe.set_progress_bar_config(disable=True)
    started = time.perf_counter()
    clips = []
    for index, prompt in enumerate(prompts, 1):
        generators = [torch.Generator("cpu").manual_seed(args.seed + k) for k in range(args.seeds)]
        audios = pipe([prompt] * args.seeds, audio_end_in_s=args.seconds, num_inference_steps=args.steps,
                      generator=generators).audios  # (seeds, 2, S)
        clips += list(audios.float().cpu().numpy())
        print(f"[prompt_breadth] {model_dir}: {index}/{len(prompts)} prompts, {time.perf_counter() - started:.0f} s",
              file=sys.stderr, flush=True)
    settings = {"steps": args.steps or pipe.default_num_inference_steps, "guidance_scale": pipe.default_guidance_scale,
                "key_classifier_scale": pipe.resolve_key_classifier_scale(None),
                "generation_s": round(time.perf_counter() - started, 1)}
    return clips, settings


def judge_clips(paths: list[Path], python: str | None) -> dict:
    """musicnn's view of the clips from the optional `audiodit.judge`: per clip the MTT "drums"
    probability, the top tags of both taggers and the MTT embedding; or {"skipped": why}. The
    judge is a tagger in an interpreter of its own: its absence or failure never stops the run."""
    try:
        judge = importlib.import_module("audiodit.judge")
    except ImportError as error:
        return {"skipped": f"audiodit.judge is not importable ({error})"}
    try:
        if not judge.judge_available(python):
            return {"skipped": "no judge interpreter (--judge-python, $AUDIODIT_JUDGE_PYTHON or .venv-judge)"}
        output = judge.judge_files(paths, python=python)
    except Exception as error:  # noqa: BLE001 - another module's optional tagger: report, do not fail
        return {"skipped": f"audiodit.judge failed: {error!r}"}
    return {"drums": output.tag("drums").tolist(),
            "top_tags": [{model: [name for name, _ in output.top_tags(i, model, 3)] for model in output.tags}
                         for i in range(len(paths))],
            "embedding": output.embeddings["MTT_musicnn"]}


def contrast(per_prompt: list[dict], measure: str, seed: int, domains=None) -> dict | None:
    """`measure` of drum prompts against drumless prompts (prompts are the unit; only those of
    `domains` if given), or None when one side is empty."""
    asked = [p for p in per_prompt if p["wants_drums"] is not None and (domains is None or p["domain"] in domains)]
    wants = np.array([p["wants_drums"] for p in asked], bool)
    if not wants.any() or wants.all():
        return None
    values = np.array([p[measure] for p in asked])
    return {"drums": float(values[wants].mean()), "drumless": float(values[~wants].mean()),
            "difference": float(values[wants].mean() - values[~wants].mean()),
            "p": permutation_p(values, wants, seed=seed), "auc": auc(values[wants], values[~wants]),
            "drum_prompts": int(wants.sum()), "drumless_prompts": int((~wants).sum())}


def separations(distances: np.ndarray, rows: list[dict], seed: int) -> dict:
    """Prompt separation (clips of one seed with other prompts / other seeds of one prompt) and
    domain separation (clips of one seed in other domains / other prompts of the same domain),
    with a permutation p and chance ratio of the domain labels shuffled over prompts."""
    prompt_ids = np.array([row["prompt_index"] for row in rows])
    seeds = np.array([row["seed"] for row in rows])
    same_seed, same_prompt = seeds[:, None] == seeds[None, :], prompt_ids[:, None] == prompt_ids[None, :]
    domain_pairs = same_seed & ~same_prompt
    prompt_domains = {row["prompt_index"]: row["domain"] for row in rows}
    prompt_separation = separation(distances, prompt_ids, domain_pairs | (same_prompt & ~same_seed))
    observed = separation(distances, [row["domain"] for row in rows], domain_pairs)
    if not np.isfinite(observed["ratio"]):  # e.g. one prompt per domain: nothing within a domain
        return {"prompt_separation": prompt_separation,
                "domain_separation": observed | {"p": float("nan"), "chance_ratio": float("nan")}}
    keys, rng, null = sorted(prompt_domains), np.random.default_rng(seed), []
    for _ in range(PERMUTATIONS):  # a prompt's seeds keep one label
        shuffled = dict(zip(keys, rng.permutation([prompt_domains[k] for k in keys])))
        null.append(separation(distances, [shuffled[i] for i in prompt_ids], domain_pairs)["ratio"])
    null = np.array(null)
    p = float((np.sum(null >= observed["ratio"] - 1e-12) + 1) / (len(null) + 1))
    return {"prompt_separation": prompt_separation,
            "domain_separation": observed | {"p": p, "chance_ratio": float(np.nanmean(null))}}


def summarise(rows: list[dict], spectra: np.ndarray, seed: int, embeddings: np.ndarray | None = None) -> dict:
    """The report of one model's clip rows (prompt, domain, wants_drums, seed, measures)."""
    measures = [m for m in MEASURES + ("judge_drums",) if m in rows[0]]
    per_prompt = []
    for index in sorted({row["prompt_index"] for row in rows}):
        mine = [row for row in rows if row["prompt_index"] == index]
        per_prompt.append({key: mine[0][key] for key in ("prompt_index", "prompt", "domain", "wants_drums")}
                          | {m: float(np.mean([row[m] for row in mine])) for m in measures})
    domains = np.array([row["domain"] for row in rows])
    seeds, prompt_ids = np.array([row["seed"] for row in rows]), np.array([row["prompt_index"] for row in rows])
    other_prompt = (seeds[:, None] == seeds[None, :]) & (prompt_ids[:, None] != prompt_ids[None, :])
    sound = domains == "sound"
    drum_measures = [m for m in DRUM_MEASURES + ("judge_drums",) if m in measures]
    # Score-like prompts are all drumless and in the bundled model's training domain, so the
    # contrast is also given without them: drums against drumless music the model was not trained on.
    unscored = {row["domain"] for row in rows} - {"score"}
    result = {
        "drums": {m: contrast(per_prompt, m, seed) for m in drum_measures},
        "drums_without_score": {m: contrast(per_prompt, m, seed, unscored) for m in drum_measures},
        **separations(spectral_distances(spectra), rows, seed),
        "sound_spectrum_correlation": mean_correlation(spectra, other_prompt & sound[:, None] & sound[None, :]),
        "all_spectrum_correlation": mean_correlation(spectra, other_prompt),
        "music_gap_share": float(np.mean([row["inner_gap_s"] >= GAP_SECONDS for row in rows
                                          if row["domain"] != "sound"])),
        "domains": {domain: {m: float(np.mean([r[m] for r in rows if r["domain"] == domain])) for m in measures}
                    | {"clips": int((domains == domain).sum()),
                       "spectrum_db": spectra[domains == domain].mean(axis=0).tolist()}
                    for domain in dict.fromkeys(domains)},
        "per_prompt": per_prompt,
    }
    if embeddings is not None:  # what musicnn hears, not the spectrum
        result["judge_separation"] = separations(cosine_distances(embeddings), rows, seed)
    return result


def measure_model(model_dir: Path, label: str, prompts: list[tuple], args) -> tuple[dict, list[np.ndarray]]:
    """Generate, measure and summarise one model; also the clips' mel spectrograms for the grid."""
    from audiodit.audio import save_audio

    clips, settings = generate_clips(model_dir, [p[0] for p in prompts], args)
    started = time.perf_counter()
    rows, spectra, images = [], [], []
    for index, clip in enumerate(clips):
        prompt_index, k = divmod(index, args.seeds)
        prompt, domain, wants_drums = prompts[prompt_index]
        measures = clip_measures(clip)
        spectra.append(measures.pop("spectrum_db"))
        images.append(measures.pop("mel_db"))
        rows.append({"prompt_index": prompt_index, "prompt": prompt, "domain": domain, "wants_drums": wants_drums,
                     "seed": args.seed + k, **measures})
    judged = {"skipped": "--no-judge"}
    if args.out or args.judge:
        with tempfile.TemporaryDirectory() as scratch:  # the judge reads files; without --out they are temporary
            folder = args.out / label if args.out else Path(scratch)
            paths = [save_audio(folder / f"{row['prompt_index']:02d}_{row['domain']}_seed{row['seed']}.flac", clip,
                                SAMPLE_RATE, "PCM_24", overwrite=True) for row, clip in zip(rows, clips)]
            if args.judge:
                judged = judge_clips(paths, args.judge_python)
    if "skipped" not in judged:
        for row, drums, tags in zip(rows, judged["drums"], judged["top_tags"]):
            row.update(judge_drums=drums, judge_top_tags=tags)
    result = {"model": str(model_dir), "label": label, **settings,
              **summarise(rows, np.array(spectra), args.seed, judged.get("embedding")),
              "judge": judged.get("skipped", "ran"), "clips": rows,
              "analysis_s": round(time.perf_counter() - started, 1)}
    return result, images


#################################################################################
#                               Real audio ceiling                              #
#################################################################################

def measure_reference(spec: str, args) -> dict:
    """The same measures (and the judge's drums, when it runs) on up to `args.reference_clips`
    audio files under DIR (`[DOMAIN=]DIR`), each cropped to `args.seconds`."""
    from audiodit.audio import AUDIO_EXTENSIONS, audio_info, load_audio, save_audio

    domain, _, folder = spec.rpartition("=")
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise SystemExit(f"prompt_breadth: error: no audio files under --reference-dir {folder}")
    chosen = np.random.default_rng(args.seed).permutation(len(files))[: args.reference_clips]
    rows, spectra, judged = [], [], {"skipped": "--no-judge"}
    with tempfile.TemporaryDirectory() as scratch:
        for index, path in enumerate(files[i] for i in sorted(chosen)):
            info = audio_info(path)
            seconds = min(args.seconds, info.frames / info.sample_rate)  # short sounds are not padded with silence
            clip = load_audio(path, SAMPLE_RATE, duration=seconds).numpy()
            measures = clip_measures(clip)
            spectra.append(measures.pop("spectrum_db"))
            measures.pop("mel_db")
            rows.append({"file": str(path.relative_to(folder)), **measures})
            if args.judge:
                save_audio(Path(scratch) / f"{index:04d}.flac", clip, SAMPLE_RATE, "PCM_24")
        if args.judge:
            judged = judge_clips(sorted(Path(scratch).glob("*.flac")), args.judge_python)
    for row, drums in zip(rows, judged.get("drums", [])):
        row["judge_drums"] = drums
    spectra = np.array(spectra)
    return {"domain": domain or folder.name, "dir": str(folder), "clips": len(rows),
            **{m: float(np.mean([row[m] for row in rows])) for m in MEASURES + ("judge_drums",) if m in rows[0]},
            "spectrum_correlation": mean_correlation(spectra, np.ones((len(rows),) * 2, bool)),
            "spectrum_db": spectra.mean(axis=0).tolist(), "spectra": spectra, "judge": judged.get("skipped", "ran"),
            "embeddings": judged.get("embedding"), "per_clip": rows}


def compare_references(references: list[dict], models: list[dict]) -> dict:
    """Separation between reference sets (the ceiling of domain separation), and each model's
    domain mean spectrum against the reference set of the same domain."""
    result = {}
    if len(references) >= 2:
        groups = np.concatenate([[i] * ref["clips"] for i, ref in enumerate(references)])
        every_pair = np.ones((len(groups),) * 2, bool)
        spectra = np.concatenate([ref["spectra"] for ref in references])
        result["separation"] = separation(spectral_distances(spectra), groups, every_pair)
        if all(ref["embeddings"] is not None for ref in references):
            embeddings = np.concatenate([ref["embeddings"] for ref in references])
            result["judge_separation"] = separation(cosine_distances(embeddings), groups, every_pair)
    for model in models:
        for ref in references:
            if ref["domain"] in model["domains"]:
                ours = np.array(model["domains"][ref["domain"]]["spectrum_db"])
                result.setdefault(model["label"], {})[ref["domain"]] = {
                    "spectrum_correlation": float(np.corrcoef(ours, ref["spectrum_db"])[0, 1]),
                    "spectral_distance_db": float(spectral_distances(np.stack([ours, ref["spectrum_db"]]))[0, 1])}
    return result


#################################################################################
#                                    Report                                     #
#################################################################################

def save_spectrogram_grid(path: Path, images: list[np.ndarray], titles: list[str], columns: int = 6) -> None:
    """All clips' mel spectrograms (dB re each clip's peak, 80 dB range), one titled panel each,
    as a 32-colour PNG (a quarter of the size of full colour, and as readable)."""
    import io

    import matplotlib
    from PIL import Image

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(images) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 1.75 * rows), squeeze=False)
    for axis in axes.flat:
        axis.set_axis_off()
    for axis, image, title in zip(axes.flat, images, titles):
        axis.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=-80.0, vmax=0.0)
        axis.set_title("\n".join(textwrap.wrap(title, 44)[:2]), fontsize=7.5)
    figure.suptitle(f"{path.stem}: mel spectrograms, {N_MELS} bands to {FEATURE_RATE // 2} Hz, 80 dB", fontsize=11)
    figure.tight_layout(rect=(0, 0, 1, 0.99))
    rendered = io.BytesIO()
    figure.savefig(rendered, dpi=72)
    plt.close(figure)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(rendered).convert("RGB").quantize(colors=32).save(path, optimize=True)


def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _contrast_cells(found: dict | None) -> str:
    if not found:
        return "n/a"
    return (f"{_fmt(found['drums'])} / {_fmt(found['drumless'])} (p {_fmt(found['p'], 4)}, "
            f"AUC {_fmt(found['auc'], 2)})")


def _separation_cells(found: dict | None, digits: int = 2) -> tuple[str, str]:
    if not found:
        return "n/a", "n/a"
    prompt, domain = found["prompt_separation"], found["domain_separation"]
    return (f"{_fmt(prompt['ratio'], 2)} ({_fmt(prompt['between'], digits)} / {_fmt(prompt['within'], digits)})",
            f"{_fmt(domain['ratio'], 2)} (p {_fmt(domain['p'], 4)}; chance {_fmt(domain['chance_ratio'], 2)})")


def _reference_cell(found: dict | None) -> str:
    return f"{_fmt(found['spectrum_correlation'])}, {_fmt(found['spectral_distance_db'], 2)}" if found else "n/a"


def format_report(report: dict) -> str:
    models, prompts = report["models"], report["prompts"]
    lines = [f"# Prompt breadth: {', '.join(m['label'] for m in models)}", "",
             f"- machine: {report['machine']}",
             f"- {len(prompts)} prompts in {len({p['domain'] for p in prompts})} domains x {report['seeds']} seeds "
             f"(clip k of every prompt uses seed {report['seed']} + k), {report['seconds']} s each"]
    lines += [f"- {m['label']} (`{m['model']}`): {m['steps']} steps, guidance {m['guidance_scale']}, key classifier "
              f"scale {m['key_classifier_scale']}; generation {m['generation_s']} s, analysis {m['analysis_s']} s; "
              f"judge: {m['judge']}" for m in models]
    rows = [[f"{measure}: drum / drumless prompts{label}"] + [_contrast_cells(m[key].get(measure)) for m in models]
            for measure in DRUM_MEASURES + ("judge_drums",) if any(measure in m["drums"] for m in models)
            for key, label in (("drums", ""), ("drums_without_score", ", without score prompts"))]
    spectral = [_separation_cells(m) for m in models]
    rows += [["prompt separation, spectra: other prompt / other seed (dB)"] + [s[0] for s in spectral],
             ["domain separation, spectra: other domain / same domain"] + [s[1] for s in spectral],
             ["sound prompts: correlation of average spectra"]
             + [_fmt(m["sound_spectrum_correlation"]) for m in models],
             ["all prompts: correlation of average spectra"] + [_fmt(m["all_spectrum_correlation"]) for m in models],
             [f"music prompts: share of clips silent (-{GAP_DB:g} dB) for >= {GAP_SECONDS:g} s inside"]
             + [_fmt(m.get("music_gap_share")) for m in models]]
    if any("judge_separation" in m for m in models):
        judged = [_separation_cells(m.get("judge_separation"), 4) for m in models]
        rows += [["prompt separation, judge embedding (cosine distance)"] + [s[0] for s in judged],
                 ["domain separation, judge embedding"] + [s[1] for s in judged]]
    lines += [""] + _table(["measure"] + [m["label"] for m in models], rows)
    comparison = report["reference_comparison"]
    if report["references"]:
        lines += ["", "Real audio (`--reference-dir`), the same measures:", ""]
        lines += _table(["reference", "domain", "clips", *MEASURES, "judge_drums", "correlation between clips"] +
                        [f"{m['label']}: correlation, distance (dB) to its domain" for m in models],
                        [[f"`{ref['dir']}`", ref["domain"], str(ref["clips"]),
                          *(_fmt(ref.get(x)) for x in MEASURES + ("judge_drums",)),
                          _fmt(ref["spectrum_correlation"])]
                         + [_reference_cell(comparison.get(m["label"], {}).get(ref["domain"])) for m in models]
                         for ref in report["references"]])
        if "separation" in comparison:
            judged = comparison.get("judge_separation", {}).get("ratio")
            lines.append(f"\nSeparation of the reference sets from each other (clips of other sets / of the same "
                         f"set), the real-audio value of domain separation: spectra "
                         f"{_fmt(comparison['separation']['ratio'], 2)}, judge embedding {_fmt(judged, 2)}")
    for m in models:
        measures = [x for x in MEASURES + ("judge_drums",) if x in m["per_prompt"][0]]
        names = list(m["domains"])
        correlations = np.corrcoef([m["domains"][d]["spectrum_db"] for d in names])
        lines += ["", f"## {m['label']}: domains", ""]
        lines += _table(["domain", "clips", *measures], [[d, str(v["clips"]), *(_fmt(v[x]) for x in measures)]
                                                          for d, v in m["domains"].items()])
        lines += ["", "Correlation of the domains' mean spectra:", ""]
        lines += _table(["", *names], [[a, *(f"{c:.2f}" for c in line)] for a, line in zip(names, correlations)])
        lines += ["", f"## {m['label']}: per prompt (means over seeds)", ""]
        top_tags = {}
        for clip in m["clips"]:
            if "judge_top_tags" in clip and clip["seed"] == report["seed"]:
                top_tags[clip["prompt_index"]] = ", ".join(clip["judge_top_tags"]["MTT_musicnn"])
        tag_header = ["judge's top MTT tags, first seed"] if top_tags else []
        lines += _table(["prompt", "domain", "drums", *measures] + tag_header,
                        [[p["prompt"], p["domain"], str(p["wants_drums"]), *(_fmt(p[x]) for x in measures)]
                         + ([top_tags.get(p["prompt_index"], "")] if top_tags else []) for p in m["per_prompt"]])
        if m["grid_png"]:
            lines += ["", f"Mel spectrograms of every clip: `{Path(m['grid_png']).name}`"]
    return "\n".join(lines)


def _plain(value):
    """JSON-safe: NaN -> None, numpy -> Python, floats to 4 decimals."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), 4)
    if isinstance(value, np.integer):
        return int(value)
    return value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", type=Path,
                        help="pipeline directory (repeatable, measured side by side; default models/audiodit-small)")
    parser.add_argument("--seeds", type=int, default=2, help="clips per prompt")
    parser.add_argument("--seed", type=int, default=0, help="clip k of every prompt uses seed + k")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    parser.add_argument("--per-domain", type=int, default=None, help="only the first N prompts of each domain")
    parser.add_argument("--reference-dir", action="append", default=[], metavar="[DOMAIN=]DIR",
                        help="real audio measured the same way (repeatable)")
    parser.add_argument("--reference-clips", type=int, default=32, help="files per reference dir")
    parser.add_argument("--no-judge", dest="judge", action="store_false", help="skip the audiodit.judge tagger")
    parser.add_argument("--judge-python", default=None, help="the judge's interpreter (default: audiodit.judge's)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--out", type=Path, default=None, help="write the generated clips under OUT/<model>/")
    parser.add_argument("--report", type=Path, default=None, help="write REPORT.md, REPORT.json and "
                        "REPORT_<model>.png (e.g. benchmarks/results/prompt_breadth_cpu)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.seconds <= 0 or (args.per_domain is not None and args.per_domain < 1):
        parser.error("--seeds and --per-domain must be >= 1 and --seconds > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dirs = args.model or [Path("models/audiodit-small")]
    names = [d.resolve().name for d in model_dirs]
    labels = [name if names.count(name) == 1 else f"{name}-{i}" for i, name in enumerate(names)]
    prompts = [p for p in PROMPTS if args.per_domain is None
               or [q for q in PROMPTS if q[1] == p[1]].index(p) < args.per_domain]
    load_before = os.getloadavg()[0]

    # Generate and measure each model on the same prompts and noises
    models = []
    for model_dir, label in zip(model_dirs, labels):
        result, images = measure_model(model_dir, label, prompts, args)
        result["grid_png"] = None
        if args.report:
            grid = args.report.with_name(f"{args.report.name}_{label}.png")
            save_spectrogram_grid(grid, images, [f"{row['prompt']} (seed {row['seed']})" for row in result["clips"]])
            result["grid_png"] = str(grid)
        models.append(result)

    # Real audio, and the report
    references = [measure_reference(spec, args) for spec in args.reference_dir]
    report = {"benchmark": "prompt_breadth",
              "machine": f"cpu: {cpu_model()}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}, "
                         f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
              "seconds": args.seconds, "seeds": args.seeds, "seed": args.seed,
              "prompts": [{"prompt": p, "domain": d, "wants_drums": w} for p, d, w in prompts],
              "models": models, "reference_comparison": compare_references(references, models),
              "references": [{k: v for k, v in ref.items() if k not in ("spectra", "embeddings")}
                             for ref in references]}
    emit_report(format_report(report), str(args.report.with_name(args.report.name + ".md")) if args.report else None)
    if args.report:
        atomic_write_text(args.report.with_name(args.report.name + ".json"),
                          json.dumps(_plain(report), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
