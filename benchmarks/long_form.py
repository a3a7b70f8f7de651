"""Long-form generation against the naive way, side by side, and its cost against length.

    python -m benchmarks.long_form [--model DIR] [--minutes 3] [--steps N] [--prompts 10]
                                   [--cost-minutes 1 3 10] [--out FILE.json]

For each prompt (typed as a user would, not taken from training captions), one piece of `--minutes`
made two ways with the same seed and steps (default: the model's):
  - long-form: `audiodit.longform.generate_long` (each window goes on from the end of the one before);
  - naive: independent windows of the same length, each its own text-to-audio call, concatenated
    with a 1 s linear cross-fade.
Measured on every piece, per 30 s segment: the tempo (essentia) against the stated one (share of
segments within 4 %) and the key against the first segment's (share the same). At every join (where
a window's new material starts) the largest spectral flux and RMS change (dB) within +-2 frames
(40 ms frames), over the median of the same statistic at control places: 1 to 8 beats either side
of the join for a prompt with a tempo (the same phase on the beat: windows advance by a fixed time,
so all joins of a piece share one phase), else every other place of the piece. The summary is the
median over all joins of all pieces (1: joins cannot be told from their controls). Cost
(`--cost-minutes`): wall time and peak resident memory of generating and writing one piece per
length, each in a fresh process.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_model

REPO = Path(__file__).resolve().parents[1]

PROMPTS = [  # typed as a user would; tempo and key where a musician would state them
    "Upbeat funk with slap bass and drums in E minor, 110 BPM",
    "Calm solo piano ballad in C major, 70 BPM",
    "Baroque harpsichord invention in D minor, 96 BPM",
    "Driving EDM track with a four on the floor kick, 128 BPM",
    "Slow string quartet in G major, 60 BPM",
    "Celtic folk dance on fiddle and flute in A major, 120 BPM",
    "Lo-fi hip hop beat with jazzy chords, 85 BPM",
    "Church organ chorale in F major, 80 BPM",
    "Brass band march in B-flat major, 112 BPM",
    "Ambient synth pad drone, slowly evolving",
]
SEGMENT_SECONDS = 30.0
FRAME_SECONDS = 0.04
JOIN_REACH = 2  # frames either side of a join
NAIVE_CROSSFADE_SECONDS = 1.0
WAYS = ("long_form", "naive")
TEMPO_TOLERANCE = 0.04
CONTROL_BEATS = 8  # a join's controls: the places 1..8 beats before and after it
CONTINUITY_SECONDS = 2.0  # the sound on either side of a place, compared
CONTINUITY_BANDS = 48


def mono_frames(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames (F, hop), their Hann-windowed magnitude spectra (F, hop // 2 + 1)): the mono mix of
    `audio` (channels, samples) cut into FRAME_SECONDS frames."""
    mono = audio.mean(axis=0)
    hop = int(FRAME_SECONDS * sample_rate)
    frames = mono[: len(mono) // hop * hop].reshape(-1, hop)
    return frames, np.abs(np.fft.rfft(frames * np.hanning(hop), axis=1))


def frame_stats(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(spectral flux, |RMS change| in dB) between consecutive FRAME_SECONDS frames of mono audio;
    entry i is the change from frame i to frame i + 1."""
    frames, magnitude = mono_frames(audio, sample_rate)
    spectrum = np.log1p(magnitude)
    flux = np.maximum(np.diff(spectrum, axis=0), 0).sum(axis=1)
    rms_db = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-6)
    return flux, np.abs(np.diff(rms_db))


def seam_ratios(audio: np.ndarray, sample_rate: int, joins_s: list[float],
                beat_s: float | None = None) -> dict[str, list[float]]:
    """For each statistic, one value per join: its max within JOIN_REACH frames of the join over
    the median of that max at control places, at least 2 * JOIN_REACH + 1 frames from any join.

    With a stated tempo the controls are the places 1 to CONTROL_BEATS whole beats before and
    after the join: at the same phase on the beat, because windows advance by a fixed time and so
    every join of a piece falls at the same phase (on a beat, every join meets an onset; between
    beats, none does). Without one, every other place of the piece. Over many joins the median is
    1 when joins cannot be told from their controls."""
    result = {}
    for name, values in zip(("flux", "rms_change"), frame_stats(audio, sample_rate)):
        windowed = np.array([values[max(i - JOIN_REACH, 0):i + JOIN_REACH + 1].max() for i in range(len(values))])
        join_frames = [int(round(s / FRAME_SECONDS)) - 1 for s in joins_s]
        far = np.ones(len(values), dtype=bool)
        for frame in join_frames:
            far[max(frame - 2 * JOIN_REACH - 1, 0):frame + 2 * JOIN_REACH + 2] = False
        ratios = []
        for frame in join_frames:
            if not 0 <= frame < len(values):
                continue
            if beat_s:
                places = [int(round(frame + n * beat_s / FRAME_SECONDS))
                          for n in range(-CONTROL_BEATS, CONTROL_BEATS + 1) if n]
                controls = [windowed[p] for p in places if 0 <= p < len(values) and far[p]]
            else:
                controls = list(windowed[far])
            baseline = float(np.median(controls)) if controls else 0.0
            if baseline > 0:
                ratios.append(float(windowed[frame]) / baseline)
        result[name] = ratios
    return result


def band_frames(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(frames, CONTINUITY_BANDS) log energies of mono FRAME_SECONDS frames in log-spaced bands
    from 40 Hz to 16 kHz, each band centred on its mean over the piece."""
    frames, magnitude = mono_frames(audio, sample_rate)
    power = magnitude ** 2
    freqs = np.fft.rfftfreq(frames.shape[1], 1 / sample_rate)
    edges = np.geomspace(40.0, 16000.0, CONTINUITY_BANDS + 1)
    bands = np.stack([power[:, (freqs >= lo) & (freqs < hi)].sum(axis=1) for lo, hi in zip(edges, edges[1:])], 1)
    bands = np.log(bands + 1e-10)
    return bands - bands.mean(axis=0)


def continuity_ratios(audio: np.ndarray, sample_rate: int, joins_s: list[float],
                      beat_s: float | None = None) -> list[float]:
    """Per join: how far the sound moves across it, against how far it moves across control places.
    The move at a place is 1 - the cosine similarity of the mean band energies (`band_frames`) of
    the CONTINUITY_SECONDS before and after it. Controls: places a whole number of beats away (for
    a prompt with a tempo; else every second), CONTINUITY_SECONDS to 4 x that from the join and
    no nearer than CONTINUITY_SECONDS to any join. 1: the music moves across the join as much as
    anywhere; above 1, it changes there (two unrelated clips cross-faded)."""
    bands = band_frames(audio, sample_rate)
    span = int(round(CONTINUITY_SECONDS / FRAME_SECONDS))
    join_frames = [int(round(s / FRAME_SECONDS)) for s in joins_s]

    def move(frame: int) -> float:
        before, after = bands[frame - span:frame].mean(axis=0), bands[frame:frame + span].mean(axis=0)
        return 1.0 - float(before @ after / (np.linalg.norm(before) * np.linalg.norm(after) + 1e-12))

    def usable(frame: int) -> bool:
        return span <= frame <= len(bands) - span and all(abs(frame - j) >= span for j in join_frames)

    step = beat_s if beat_s else 1.0
    ratios = []
    for frame in join_frames:
        if not span <= frame <= len(bands) - span:
            continue
        offsets = np.arange(step, 4 * CONTINUITY_SECONDS + 1e-9, step)
        places = [int(round(frame + sign * o / FRAME_SECONDS)) for o in offsets if o >= CONTINUITY_SECONDS
                  for sign in (-1, 1)]
        controls = [move(p) for p in places if usable(p)]
        if controls and np.median(controls) > 0:
            ratios.append(move(frame) / float(np.median(controls)))
    return ratios


def consistency(audio: np.ndarray, sample_rate: int, stated_bpm: float) -> dict:
    from audiodit.analysis import estimate_key, estimate_tempo

    step = int(SEGMENT_SECONDS * sample_rate)
    segments = [audio[:, i:i + step] for i in range(0, audio.shape[1] - step // 2, step)] or [audio]
    tempi = [estimate_tempo(segment, sample_rate)[0] for segment in segments]
    keys = [estimate_key(segment, sample_rate)["key"] for segment in segments]
    same = [k == keys[0] for k in keys[1:]]
    out = {"tempi": tempi, "keys": keys, "key_same_as_first": float(np.mean(same)) if same else float("nan")}
    if math.isfinite(stated_bpm):
        out["tempo_within_4pct"] = float(np.mean([abs(t / stated_bpm - 1) <= TEMPO_TOLERANCE for t in tempi]))
        # a tracker often reports half or double time: folded into one octave of the stated tempo
        folded = [t * 2.0 ** round(math.log2(stated_bpm / t)) if t > 0 else 0.0 for t in tempi]
        out["tempo_within_4pct_octave_folded"] = float(
            np.mean([abs(t / stated_bpm - 1) <= TEMPO_TOLERANCE for t in folded]))
    return out


def single_clip_baseline(pipe, seeds: int, steps: int) -> dict:
    """The model's own tempo fidelity, with no windows: one clip of its full length (30 s, one
    segment) per prompt that states a tempo and seed, measured as a long-form segment is."""
    import torch

    from audiodit.prompt_attributes import parse_bpm

    rows = []
    for prompt in PROMPTS:
        bpm = parse_bpm(prompt)
        if not math.isfinite(bpm):
            continue
        for seed in range(seeds):
            audio = pipe(prompt, audio_end_in_s=pipe.max_audio_length_s, num_inference_steps=steps,
                         generator=torch.Generator("cpu").manual_seed(seed)).audios[0].float().numpy()
            measured = consistency(audio, pipe.sampling_rate, bpm)
            rows.append({"prompt": prompt, "seed": seed, "tempo": measured["tempi"][0],
                         "within_4pct": measured["tempo_within_4pct"],
                         "within_4pct_octave_folded": measured["tempo_within_4pct_octave_folded"]})
    return {"clips": len(rows), "seconds": pipe.max_audio_length_s, "steps": steps,
            "tempo_within_4pct_share": float(np.mean([r["within_4pct"] for r in rows])),
            "tempo_within_4pct_octave_folded_share": float(np.mean([r["within_4pct_octave_folded"] for r in rows])),
            "rows": rows}


def piece_window(pipe, prompt: str) -> float:
    """The window generate_long uses for `prompt` (shorter for a slow stated tempo); the naive way
    uses the same."""
    from audiodit.longform import long_window_seconds
    from audiodit.prompt_attributes import parse_bpm

    return long_window_seconds(pipe, None, parse_bpm(prompt))


def long_form_piece(pipe, prompt: str, seconds: float, steps: int, seed: int):
    import torch

    from audiodit.longform import default_context, default_drop, generate_long, plan_windows

    audio = torch.cat(list(generate_long(pipe, prompt, seconds, num_inference_steps=steps, progress=False,
                                         generator=torch.Generator("cpu").manual_seed(seed))), dim=-1)[0].numpy()
    rate = pipe.vae.latent_rate
    window = piece_window(pipe, prompt)
    windows = plan_windows(pipe.vae.latent_frames(int(round(seconds * pipe.sampling_rate))),
                           int(round(window * rate)), int(round(default_context(window) * rate)),
                           int(round(default_drop(window) * rate)))
    return audio, [(w.start + w.context) / rate for w in windows[1:]]


def naive_piece(pipe, prompt: str, seconds: float, steps: int, seed: int):
    """Independent windows of the long-form window's length, cross-faded over NAIVE_CROSSFADE_SECONDS."""
    import torch

    sr = pipe.sampling_rate
    window = piece_window(pipe, prompt)
    fade = int(NAIVE_CROSSFADE_SECONDS * sr)
    generator = torch.Generator("cpu").manual_seed(seed)
    total = int(round(seconds * sr))
    audio, joins = np.zeros((2, 0), dtype=np.float32), []
    while audio.shape[1] < total:
        clip = pipe(prompt, audio_end_in_s=window, num_inference_steps=steps, generator=generator).audios[0].numpy()
        if audio.shape[1] == 0:
            audio = clip
            continue
        weight = (np.arange(fade) + 0.5) / fade
        mixed = (1 - weight) * audio[:, -fade:] + weight * clip[:, :fade]
        joins.append((audio.shape[1] - fade / 2) / sr)
        audio = np.concatenate([audio[:, :-fade], mixed, clip[:, fade:]], axis=1)
    return audio[:, :total], [j for j in joins if j < total / sr]


def cost_run(model: str | None, minutes: float, steps: int) -> dict:
    """One piece through the CLI in a fresh process: wall time and peak RSS (GNU time)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "piece.wav"
        command = [sys.executable, "sample.py", "--prompt", PROMPTS[0], "--duration", str(minutes * 60),
                   "--steps", str(steps), "--out", str(out), "--quiet", *(["--model", model] if model else [])]
        script = ("import resource, subprocess, sys, time; s = time.perf_counter(); "
                  "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
                  "print(time.perf_counter() - s, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
        result = subprocess.run([sys.executable, "-c", script, *command], check=True, capture_output=True,
                                text=True, cwd=REPO)
        wall, rss_kib = result.stdout.split()
        return {"minutes": minutes, "wall_s": float(wall), "peak_rss_mib": int(rss_kib) / 1024}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="pipeline directory (default: the bundled model)")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: the model's)")
    parser.add_argument("--prompts", type=int, default=len(PROMPTS))
    parser.add_argument("--cost-minutes", type=float, nargs="*", default=[1.0, 3.0, 10.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON (refuses to overwrite)")
    parser.add_argument("--save-audio", type=Path, default=None, help="also write every piece here (flac)")
    parser.add_argument("--remeasure", type=Path, nargs=2, metavar=("RESULT.json", "AUDIO_DIR"), default=None,
                        help="measure the pieces a run saved with --save-audio again, without generating")
    parser.add_argument("--single-clip-baseline", type=int, default=0, metavar="SEEDS",
                        help="instead: the model's own 30 s clips of the prompts with a tempo (SEEDS each), "
                             "tempo measured as a segment is: what long-form cannot beat")
    args = parser.parse_args(argv)
    if args.out is not None and args.out.exists():
        raise SystemExit(f"{args.out} exists; choose another --out")
    if args.remeasure is not None:
        return remeasure(*args.remeasure, args.out)
    from audiodit.cli import default_model_dir
    from audiodit.pipeline import AudioDiTPipeline
    from audiodit.prompt_attributes import parse_bpm

    pipe = AudioDiTPipeline.from_pretrained(args.model or default_model_dir())
    pipe.set_progress_bar_config(disable=True)
    args.steps = args.steps or pipe.default_num_inference_steps
    if args.single_clip_baseline:
        result = {"cpu": cpu_model(), **single_clip_baseline(pipe, args.single_clip_baseline, args.steps)}
        text = json.dumps(result, indent=2) + "\n"
        print(text)
        if args.out is not None:
            from audiodit.configuration import atomic_write_text

            atomic_write_text(args.out, text)
        return 0
    seconds = args.minutes * 60
    pieces = []
    for prompt in PROMPTS[:args.prompts]:
        row = {"prompt": prompt}
        bpm = parse_bpm(prompt)
        for way, make in (("long_form", long_form_piece), ("naive", naive_piece)):
            started = time.perf_counter()
            audio, joins = make(pipe, prompt, seconds, args.steps, args.seed)
            generation_s = time.perf_counter() - started
            if args.save_audio is not None:
                from audiodit.audio import save_audio

                save_audio(args.save_audio / f"{len(pieces):02d}_{way}.flac", audio, pipe.sampling_rate,
                           overwrite=True)
            row[way] = {"seconds": audio.shape[1] / pipe.sampling_rate, "joins_s": joins,
                        "generation_s": generation_s,
                        "seam": seam_ratios(audio, pipe.sampling_rate, joins,
                                            60.0 / bpm if math.isfinite(bpm) else None),
                        "continuity": continuity_ratios(audio, pipe.sampling_rate, joins,
                                                        60.0 / bpm if math.isfinite(bpm) else None),
                        **consistency(audio, pipe.sampling_rate, bpm)}
        pieces.append(row)
        print(json.dumps({way: {"seam_median": {k: statistics.median(v) if v else None
                                                for k, v in row[way]["seam"].items()},
                                "tempi": [round(t, 1) for t in row[way]["tempi"]], "keys": row[way]["keys"]}
                          for way in WAYS} | {"prompt": prompt}), flush=True)

    result = {"cpu": cpu_model(), "minutes": args.minutes, "steps": args.steps, "seed": args.seed,
              "summary": {way: summary(pieces, way) for way in WAYS},
              "cost": [cost_run(args.model, minutes, args.steps) for minutes in args.cost_minutes],
              "pieces": pieces}
    return report(result, args.out)


def summary(pieces: list[dict], way: str) -> dict:
    rows = [piece[way] for piece in pieces]
    with_tempo = [r for r in rows if "tempo_within_4pct" in r]
    return {
        "joins": sum(len(r["seam"]["flux"]) for r in rows),
        # the median over every join of every piece, each against its own controls
        "seam_flux_ratio_median": _median([v for r in rows for v in r["seam"]["flux"]]),
        "seam_rms_change_ratio_median": _median([v for r in rows for v in r["seam"]["rms_change"]]),
        "continuity_ratio_median": _median([v for r in rows for v in r["continuity"]]),
        "key_same_as_first_share": float(np.mean([r["key_same_as_first"] for r in rows])),
        "tempo_within_4pct_share": float(np.mean([r["tempo_within_4pct"] for r in with_tempo])),
        "tempo_within_4pct_octave_folded_share": float(
            np.mean([r["tempo_within_4pct_octave_folded"] for r in with_tempo])),
        "generation_s_median": statistics.median(r["generation_s"] for r in rows),
    }


def _median(values: list[float]) -> float:
    """NaN for no values (a piece too short for any join to have controls)."""
    return statistics.median(values) if values else float("nan")


def report(result: dict, out: Path | None) -> int:
    print(json.dumps({"summary": result["summary"], "cost": result["cost"]}, indent=2))
    if out is not None:
        from audiodit.configuration import atomic_write_text

        atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return 0


def remeasure(result_path: Path, audio_dir: Path, out: Path | None) -> int:
    """Measure again the pieces a run saved (`--save-audio`) with its joins, keeping its generation
    times and cost: for a measure added after the pieces were made."""
    import soundfile as sf

    from audiodit.prompt_attributes import parse_bpm

    result = json.loads(result_path.read_text())
    for index, piece in enumerate(result["pieces"]):
        bpm = parse_bpm(piece["prompt"])
        beat_s = 60.0 / bpm if math.isfinite(bpm) else None
        for way in WAYS:
            audio, sample_rate = sf.read(str(audio_dir / f"{index:02d}_{way}.flac"), dtype="float32", always_2d=True)
            joins = piece[way]["joins_s"]
            piece[way]["seam"] = seam_ratios(audio.T, sample_rate, joins, beat_s)
            piece[way]["continuity"] = continuity_ratios(audio.T, sample_rate, joins, beat_s)
    result["summary"] = {way: summary(result["pieces"], way) for way in WAYS}
    result["remeasured_from"] = str(result_path.name)
    return report(result, out)


if __name__ == "__main__":
    raise SystemExit(main())
