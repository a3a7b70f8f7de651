"""Our VAE's reconstructions side by side with Opus and MP3, and its 40 ms frame-rate artefact.

    .venv/bin/python -m benchmarks.vae_codecs --vae models/audiodit-small --data DIR [DIR ...] \\
        [--vae v2=runs/vae_v2] [--num-clips 12] [--seconds 10] [--judge-python PATH | --no-judge] \\
        [--spectrograms DIR] [--out benchmarks/results/vae_codecs_cpu.md]

Clips: `--num-clips` clips of `--seconds`, taken from the middle of the audio files under the
`--data` folders (recursively, round-robin over the folders, files shorter than a clip or near
silence skipped), loaded as 48 kHz stereo. Each clip goes through every system:

- Opus 12/24/48 kbps and MP3 64/128 kbps, stereo, by ffmpeg (libopus, VBR, its defaults; libmp3lame,
  CBR, at 48 kHz), decoded back to 48 kHz stereo float (ffmpeg removes both codecs' delay; a
  cross-correlation check re-aligns anything left and the lag is recorded);
- each `--vae` (a VAE directory or a pipeline with a `vae/` subfolder, `audiodit.metrics.load_vae`;
  `LABEL=PATH` names it): encode, posterior mode, decode with the config's `output_phase`
  (`--output-phase both`: once with the decoder's phase and once with the rebuilt bass phase).

Per clip and system: mel L1 in dB, multi-resolution STFT distance and SI-SDR
(`audiodit.metrics`); with the judge (`audiodit.judge`, musicnn in its own interpreter) the cosine
distance between the clip's and the copy's MTT embeddings, the mean absolute difference of their
50 tag probabilities, and over all clips the Fréchet distance between the two embedding sets (200
dimensions from a dozen clips: rank-deficient, compare it only within one run). The report says
where each VAE falls among the codecs on each metric. Then the frame-rate artefact
(`audiodit.periodicity`): onset-envelope autocorrelation at 40/80/120 ms and the 25/50 Hz
modulation lines, whole band and below 400 Hz, for the originals and every system, with each
system's paired difference from the originals. `--spectrograms DIR` saves PNGs of the clips
whose VAE reconstruction pulses most (original, each VAE, Opus 24 kbps).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audiodit import judge
from audiodit.audio import AUDIO_EXTENSIONS, audio_info, load_audio
from audiodit.configuration import atomic_write_text
from audiodit.metrics import load_vae, reconstruction_metrics
from audiodit.periodicity import frame_periodicity
from benchmarks.machine import cpu_model, emit_report

REPO = Path(__file__).resolve().parents[1]

SAMPLE_RATE = 48000
CODECS = {  # name -> (ffmpeg encoder, kbps, container)
    "Opus 12 kbps": ("libopus", 12, "opus"),
    "Opus 24 kbps": ("libopus", 24, "opus"),
    "Opus 48 kbps": ("libopus", 48, "opus"),
    "MP3 64 kbps": ("libmp3lame", 64, "mp3"),
    "MP3 128 kbps": ("libmp3lame", 128, "mp3"),
}
METRICS = {  # key -> (column title, lower is better)
    "mel_l1_db": ("mel L1 dB", True),
    "mrstft": ("MR-STFT", True),
    "si_sdr_db": ("SI-SDR dB", False),
    "judge_cosine": ("judge cosine", True),
    "judge_tag_l1": ("judge tag L1", True),
    "judge_frechet": ("judge Fréchet", True),
}
PERIODICITY_COLUMNS = ("acf_40ms", "acf_80ms", "acf_120ms", "acf_mean", "line_25hz_db", "line_50hz_db",
                       "low_acf_mean", "low_line_25hz_db", "low_line_50hz_db")
MAX_ALIGN_LAG = 4096  # samples searched when re-aligning a decoded codec stream
SILENCE_DBFS = -45.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


#################################################################################
#                                    Clips                                      #
#################################################################################

def select_clips(folders: list[Path], num_clips: int, seconds: float) -> list[tuple[str, np.ndarray]]:
    """(name, (2, S) float32) clips from the middle of each file, round-robin over `folders`."""
    queues = []
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"no audio files under {folder}")
        prefix = f"{folder.resolve().parent.name}/{folder.resolve().name}"
        queues.append([(f"{prefix}/{p.relative_to(folder)}", p) for p in files])
    clips = []
    while len(clips) < num_clips and any(queues):
        for queue in queues:
            while queue and len(clips) < num_clips:
                name, path = queue.pop(0)
                duration = audio_info(path).duration
                if duration < seconds:
                    continue
                audio = load_audio(path, SAMPLE_RATE, duration=seconds, offset=(duration - seconds) / 2).numpy()
                if 10 * np.log10(np.mean(audio**2) + 1e-12) < SILENCE_DBFS:
                    continue
                clips.append((name, audio))
                break
    if len(clips) < num_clips:
        log(f"only {len(clips)} usable clips of {seconds} s (asked for {num_clips})")
    return clips


#################################################################################
#                                   Systems                                     #
#################################################################################

def align(reference: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, int]:
    """Shift `estimate` (2, S) by the lag (within MAX_ALIGN_LAG) that best matches `reference`."""
    length = reference.shape[-1]
    size = 2 * length
    spectrum = np.fft.rfft(estimate.mean(0), size) * np.conj(np.fft.rfft(reference.mean(0), size))
    correlation = np.fft.irfft(spectrum, size)
    lags = np.r_[np.arange(MAX_ALIGN_LAG + 1), np.arange(-MAX_ALIGN_LAG, 0)]
    lag = int(lags[np.argmax(correlation[lags])])
    if lag > 0:
        estimate = np.pad(estimate[:, lag:], ((0, 0), (0, lag)))
    elif lag < 0:
        estimate = np.pad(estimate, ((0, 0), (-lag, 0)))[:, :length]
    return estimate, lag


def codec_round_trip(audio: np.ndarray, encoder: str, kbps: int, container: str, scratch: Path) -> dict:
    """Encode (2, S) 48 kHz audio with ffmpeg and decode it back: {"audio", "kbps" (actual), "lag"}."""
    source, coded, decoded = scratch / "source.wav", scratch / f"coded.{container}", scratch / "decoded.wav"
    sf.write(source, audio.T, SAMPLE_RATE, subtype="FLOAT")
    quiet = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    subprocess.run(quiet + ["-i", str(source), "-c:a", encoder, "-b:a", f"{kbps}k", str(coded)], check=True)
    subprocess.run(quiet + ["-i", str(coded), "-ar", str(SAMPLE_RATE), "-ac", "2", "-c:a", "pcm_f32le",
                            str(decoded)], check=True)
    output, _ = sf.read(decoded, dtype="float32", always_2d=True)
    output = output.T[:, : audio.shape[-1]]
    output = np.pad(output, ((0, 0), (0, audio.shape[-1] - output.shape[-1])))
    output, lag = align(audio, output)
    kbps_actual = coded.stat().st_size * 8 / 1000 / (audio.shape[-1] / SAMPLE_RATE)
    return {"audio": output, "kbps": kbps_actual, "lag": lag}


@torch.no_grad()
def vae_round_trip(vae, audio: np.ndarray, output_phase: str | None = None) -> dict:
    start = time.perf_counter()
    clip = torch.from_numpy(audio)[None]  # (1, 2, S)
    latents = vae.encode(clip).latent_dist.mode()  # (1, C, ceil(S / hop))
    output = vae.decode(latents, length=audio.shape[-1], output_phase=output_phase).sample[0].numpy()  # (2, S)
    return {"audio": output, "seconds": time.perf_counter() - start}


def parse_vae_argument(text: str) -> tuple[str, Path]:
    """`LABEL=PATH` or `PATH` (labelled by the pipeline's folder name when PATH is its vae/)."""
    label, _, path = text.rpartition("=")
    path = Path(path)
    if not label:
        label = path.resolve().parent.name if path.name == "vae" else path.resolve().name
    return f"VAE {label}", path


#################################################################################
#                                   Summaries                                   #
#################################################################################

def placement(values: dict[str, float], system: str, lower_is_better: bool) -> str:
    """Where `system` falls among the codecs on one metric, in words."""
    codecs = sorted(((v, name) for name, v in values.items() if name in CODECS and np.isfinite(v)),
                    reverse=not lower_is_better)  # best first
    if not codecs:
        return "no codec to compare"
    ours = values[system]
    better = [(v, name) for v, name in codecs if (v < ours if lower_is_better else v > ours)]
    if not better:
        return f"better than every codec (best: {codecs[0][1]}, {codecs[0][0]:.3g})"
    if len(better) == len(codecs):
        return f"worse than every codec (worst: {codecs[-1][1]}, {codecs[-1][0]:.3g})"
    above, below = better[-1], codecs[len(better)]
    return f"between {above[1]} ({above[0]:.3g}) and {below[1]} ({below[0]:.3g})"


def judge_distances(output, systems: list[str], num_clips: int) -> dict[str, dict]:
    """Per system: per-clip cosine and tag-L1 distances to the originals and the set's Fréchet."""
    model = "MTT_musicnn"
    embeddings, tags = output.embeddings[model], output.tags[model]
    reference = slice(0, num_clips)
    result = {}
    for index, system in enumerate(systems, start=1):
        copy = slice(index * num_clips, (index + 1) * num_clips)
        distances = judge.embedding_distances(embeddings[reference], embeddings[copy])
        result[system] = {"judge_cosine": judge.cosine_distances(embeddings[reference], embeddings[copy]).tolist(),
                          "judge_tag_l1": np.abs(tags[reference] - tags[copy]).mean(axis=1).tolist(),
                          "judge_frechet": distances.get("frechet", float("nan"))}
    return result


def format_report(result: dict) -> str:
    systems, means = result["systems"], result["means"]
    settings = result["settings"]
    metrics = [m for m in METRICS if all(m in means[s] for s in systems)]
    lines = [
        "# VAE reconstruction against Opus and MP3",
        "",
        f"- Machine: {result['cpu']} ({os.cpu_count()} cores, shared), torch {result['torch']}; "
        f"{settings['num_clips']} clips of {settings['seconds']:g} s, 48 kHz stereo, from the middle of the files "
        f"under {', '.join(f'`{d}`' for d in settings['data'])}.",
        "- Codecs by ffmpeg (libopus VBR, libmp3lame CBR; 'kbps' is the measured size of the coded stream). VAEs: "
        "encode, posterior mode, decode " + {"config": "with the config's output phase.",
                                             "both": "once with the decoder's phase and once with the phase "
                                                     "rebuilt below 500 Hz ('magnitude')."}.get(
            settings["output_phase"], f"with the {settings['output_phase']} output phase.")
        + " A VAE's kbps: its latent stored as fp16, before any entropy coding.",
        "- mel L1 (dB, floored at -100 dB) counts a codec's low-pass (Opus 12 kbps, MP3 64 kbps) as a large "
        "error in the top mel bands; MR-STFT and the judge weigh it less.",
        f"- Judge: {result['judge_note']}",
        "- Produced by `benchmarks/vae_codecs.py`; every per-clip number in the JSON beside this file.",
        "",
        "| system | kbps | " + " | ".join(METRICS[m][0] + (" ↓" if METRICS[m][1] else " ↑") for m in metrics)
        + " |",
        "|---|---|" + "---|" * len(metrics),
    ]
    for system in systems:
        kbps = f"{means[system]['kbps']:.1f}" if "kbps" in means[system] else \
            f"{settings['latent_kbps_fp16'][system]:.1f} (latent)"
        lines.append(f"| {system} | {kbps} | " + " | ".join(f"{means[system][m]:.3f}" for m in metrics) + " |")
    lines.append("")
    for system, places in result["placement"].items():
        lines.append(f"**{system}** " + "; ".join(f"{METRICS[m][0]}: {text}" for m, text in places.items()) + ".")
        lines.append("")
    lines += [
        "## The 25 Hz frame-rate artefact",
        "",
        "Onset-strength envelope (5 ms hop): autocorrelation at 40/80/120 ms (one, two, three 25 Hz latent "
        "frames) and the modulation spectrum's line at 25 and 50 Hz over its neighbours (dB); `low_`: STFT bins "
        "below 400 Hz. Mean over clips; Δ: the system minus the same clips' originals (paired).",
        "",
        "| audio | " + " | ".join(PERIODICITY_COLUMNS) + " | Δ acf_mean | Δ low_acf_mean | Δ line_25hz_db |",
        "|---|" + "---|" * (len(PERIODICITY_COLUMNS) + 3),
    ]
    periodicity = result["periodicity_means"]
    for name in ["original"] + systems:
        row = periodicity[name]
        deltas = [row.get(f"delta_{key}", 0.0) for key in ("acf_mean", "low_acf_mean", "line_25hz_db")]
        lines.append(f"| {name} | " + " | ".join(f"{row[c]:.2f}" for c in PERIODICITY_COLUMNS) + " | "
                     + " | ".join(f"{d:+.2f}" for d in deltas) + " |")
    vaes = [s for s in systems if s not in CODECS]
    if vaes:
        lines += ["", "Per clip (acf_mean and low-band line at 25 Hz, dB; original → " + ", ".join(vaes) + "):", "",
                  "| clip | acf_mean | low_line_25hz_db | mel L1 dB |", "|---|---|---|---|"]
        for clip in result["clips"]:
            acf = " → ".join(f"{clip['periodicity'][s]['acf_mean']:.2f}" for s in ["original"] + vaes)
            line = " → ".join(f"{clip['periodicity'][s]['low_line_25hz_db']:.1f}" for s in ["original"] + vaes)
            mel = ", ".join(f"{clip['metrics'][s]['mel_l1_db']:.2f}" for s in vaes)
            lines.append(f"| {clip['name']} | {acf} | {line} | {mel} |")
    lines += ["", f"Wall time {result['wall_s']:.0f} s."]
    return "\n".join(lines)


#################################################################################
#                                 Spectrograms                                  #
#################################################################################

def save_spectrograms(name: str, signals: dict[str, np.ndarray], path: Path, start_seconds: float = 2.0) -> None:
    """One row per signal, four panels: 0-8 kHz over 2 s; 0-8 kHz over 0.4 s with a 10.7 ms window
    (a click is a vertical line); 0-500 Hz over 0.4 s (43 ms window, 1 ms hop); the onset envelope
    below 400 Hz over 1 s. Red lines: latent frame boundaries (every 40 ms from the clip's start)."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from audiodit.periodicity import HOP_SECONDS, onset_envelopes

    views = [(2048, 240, 2.0, 8000, "0-8 kHz"), (512, 48, 0.4, 8000, "0-8 kHz, 10.7 ms window"),
             (2048, 48, 0.4, 500, "0-500 Hz, 43 ms window")]  # (n_fft, hop, seconds, top Hz, title)
    figure, axes = plt.subplots(len(signals), 4, figsize=(24, 3.0 * len(signals)), squeeze=False)
    for row, (label, audio) in enumerate(signals.items()):
        mono = audio.mean(0)
        for column, (n_fft, hop, seconds, top_hz, title) in enumerate(views):
            first = int(start_seconds * SAMPLE_RATE)
            excerpt = mono[first : first + int(seconds * SAMPLE_RATE)]
            db = librosa.amplitude_to_db(np.abs(librosa.stft(excerpt, n_fft=n_fft, hop_length=hop)), ref=np.max)
            frequencies = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=n_fft)
            keep = frequencies <= top_hz
            times = start_seconds + np.arange(db.shape[1]) * hop / SAMPLE_RATE
            axes[row, column].pcolormesh(times, frequencies[keep], db[keep], vmin=-80, vmax=0, shading="auto")
            axes[row, column].set_title(f"{label}: {title}" if column == 0 else title, fontsize=9)
            if seconds < 1.0:
                for grid in np.arange(start_seconds, start_seconds + seconds, 0.04):
                    axes[row, column].axvline(grid, color="r", lw=0.6, alpha=0.7)
        envelope = onset_envelopes(audio, SAMPLE_RATE)["low"]
        frames = slice(int(start_seconds / HOP_SECONDS), int((start_seconds + 1.0) / HOP_SECONDS))
        axes[row, 3].plot(np.arange(frames.start, frames.stop) * HOP_SECONDS, envelope[frames], lw=0.8)
        for grid in np.arange(start_seconds, start_seconds + 1.0, 0.04):
            axes[row, 3].axvline(grid, color="r", lw=0.4, alpha=0.4)
        axes[row, 3].set_title("onset strength below 400 Hz", fontsize=9)
    figure.suptitle(name)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=72)
    plt.close(figure)


#################################################################################
#                                     Main                                      #
#################################################################################

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--vae", action="append", required=True, help="[LABEL=]VAE or pipeline directory (repeatable)")
    parser.add_argument("--data", nargs="+", required=True, type=Path, help="folders of held-out audio")
    parser.add_argument("--output-phase", choices=("config", "decoder", "magnitude", "rebuilt", "both"), default="config",
                        help="VAE decode phase; 'both': each VAE twice, with the decoder's and the rebuilt bass phase")
    parser.add_argument("--num-clips", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--judge-python", help="the judge's interpreter (default: $AUDIODIT_JUDGE_PYTHON, .venv-judge)")
    parser.add_argument("--no-judge", action="store_true", help="skip the musicnn embedding distances")
    parser.add_argument("--spectrograms", type=Path, help="folder for spectrogram PNGs of the most periodic clips")
    parser.add_argument("--spectrogram-clips", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "vae_codecs_cpu.md"),
                        help="markdown report (JSON beside it)")
    args = parser.parse_args(argv)
    if shutil.which("ffmpeg") is None:
        parser.error("ffmpeg not found (apt-get install ffmpeg)")
    started = time.perf_counter()

    # 1. Clips and models
    clips = select_clips(args.data, args.num_clips, args.seconds)
    phases = {"config": [None], "both": ["decoder", "magnitude"]}.get(args.output_phase, [args.output_phase])
    vaes, vae_paths = {}, {}
    for text in args.vae:
        label, path = parse_vae_argument(text)
        model = load_vae(path).float().eval()
        for phase in phases:
            default = ", its default" if phase == model.config.output_phase else ""
            name = label if phase is None else f"{label} ({phase} phase{default})"
            vaes[name], vae_paths[name] = (model, phase), str(path)
    systems = list(CODECS) + list(vaes)

    # 2. Every clip through every system: reconstruction metrics and periodicity
    rows, copies = [], {system: [] for system in systems}
    with tempfile.TemporaryDirectory(prefix="vae-codecs-") as scratch:
        for index, (name, audio) in enumerate(clips):
            log(f"[{index + 1}/{len(clips)}] {name}")
            outputs = {system: codec_round_trip(audio, *CODECS[system], Path(scratch)) for system in CODECS}
            outputs.update({label: vae_round_trip(vae, audio, phase) for label, (vae, phase) in vaes.items()})
            row = {"name": name, "metrics": {}, "periodicity": {"original": frame_periodicity(audio, SAMPLE_RATE)}}
            for system, output in outputs.items():
                copies[system].append(output["audio"])
                row["metrics"][system] = reconstruction_metrics(torch.from_numpy(audio),
                                                                torch.from_numpy(output["audio"]), SAMPLE_RATE)
                row["metrics"][system].update({k: v for k, v in output.items() if k != "audio"})
                row["periodicity"][system] = frame_periodicity(output["audio"], SAMPLE_RATE)
            rows.append(row)

    # 3. The judge: originals and every system's copies in one worker run
    judge_note, judge_timings = "not run (--no-judge).", None
    if not args.no_judge:
        try:
            judged = judge.judge_audio([audio for _, audio in clips] + [c for s in systems for c in copies[s]],
                                       SAMPLE_RATE, python=args.judge_python, models=("MTT_musicnn",))
        except judge.JudgeUnavailableError as error:
            judge_note = f"not run ({error})."
            log(judge_note)
        else:
            judge_timings = judged.timings
            for system, distances in judge_distances(judged, systems, len(clips)).items():
                for index, row in enumerate(rows):
                    row["metrics"][system]["judge_cosine"] = distances["judge_cosine"][index]
                    row["metrics"][system]["judge_tag_l1"] = distances["judge_tag_l1"][index]
                    row["metrics"][system]["judge_frechet"] = distances["judge_frechet"]
            judge_note = ("musicnn MTT_musicnn (16 kHz mono, 3 s patches): cosine distance between each clip's and "
                          "its copy's 200-dim penultimate embedding, mean |difference| of the 50 tag probabilities, "
                          "and the Fréchet distance between the originals' and the copies' embedding sets.")

    # 4. Means, placements, periodicity differences
    means = {s: {k: float(np.mean([r["metrics"][s][k] for r in rows])) for k in rows[0]["metrics"][s]}
             for s in systems}
    place = {vae: {m: placement({s: means[s][m] for s in systems}, vae, METRICS[m][1])
                   for m in METRICS if m in means[vae]} for vae in vaes}
    periodicity_means = {}
    for name in ["original"] + systems:
        column = {k: float(np.mean([r["periodicity"][name][k] for r in rows])) for k in rows[0]["periodicity"][name]}
        if name != "original":
            column.update({f"delta_{k}": column[k] - periodicity_means["original"][k] for k in list(column)})
        periodicity_means[name] = column
    result = {
        "cpu": cpu_model(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "settings": {"num_clips": len(clips), "seconds": args.seconds, "data": [str(d) for d in args.data],
                     "vaes": vae_paths, "output_phase": args.output_phase,
                     "latent_kbps_fp16": {name: 16 * vae.config.latent_channels * vae.sampling_rate
                                          / vae.hop_length / 1000 for name, (vae, _) in vaes.items()},
                     "codecs": {name: {"encoder": e, "kbps": k} for name, (e, k, _) in CODECS.items()}},
        "judge_note": judge_note, "judge_timings": judge_timings, "systems": systems, "means": means,
        "placement": place, "periodicity_means": periodicity_means, "clips": rows,
        "wall_s": time.perf_counter() - started,
    }

    # 5. Report, JSON, spectrograms
    emit_report(format_report(result), args.out)
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(result, indent=1) + "\n")
    if args.spectrograms and vaes:
        first_vae = next(iter(vaes))
        order = sorted(range(len(rows)), key=lambda i: -(rows[i]["periodicity"][first_vae]["low_acf_mean"]
                                                         - rows[i]["periodicity"]["original"]["low_acf_mean"]))
        for index in order[: args.spectrogram_clips]:
            signals = {"original": clips[index][1], **{v: copies[v][index] for v in vaes},
                       "Opus 24 kbps": copies["Opus 24 kbps"][index]}
            stem = clips[index][0].replace("/", "__").rsplit(".", 1)[0]
            save_spectrograms(clips[index][0], signals, args.spectrograms / f"{stem}.png")
            log(f"saved {args.spectrograms / f'{stem}.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
