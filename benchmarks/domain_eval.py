"""Held-out text-to-audio evaluation per domain, judged by musicnn: models side by side.

    .venv/bin/python -m benchmarks.domain_eval --model v1=models/audiodit-small --model v2=runs/v2 \\
        --data arrangement=data/grooves --data recording=data/recordings --data sound=data/sounds \\
        --data score=data/music21_v3 [--num-prompts 48] [--split test] [--seconds 10] [--steps K] \\
        [--judge-python PATH] [--audio-out DIR] [--out benchmarks/results/domain_eval_cpu.md]

For each `--data DOMAIN=DIR` (a `benchmarks.domain_facts.FACTS` key; `DIR` alone takes the records' `domain` field, or
"score" for a music21 corpus, whose records have none): `--num-prompts` captions drawn (seeded)
from the `--split` folder only, the `<id>.txt` caption the model was trained on when present. Every
`--model` generates one clip per caption with the same noise (`audiodit.evaluate.generate`: caption
i uses seed `--seed + i`). The judge (`audiodit.judge`, musicnn's MTT and MSD taggers in their own
interpreter) hears, per domain: the real clips of those captions (the first `--seconds`, zero-padded
when shorter, as the model was asked for), the same clips through each model's VAE (posterior mode;
what a perfect DiT could reach through that VAE), each model's generations, and as many real
train-split clips (how close real audio gets to the real held-out set at this N). The judge is fed
the clips' mono mix, which is what its loader makes of stereo anyway.

Per domain and model:

- Fréchet distance between judge embeddings (MTT penultimate layer, 200 dims; MSD in the JSON) of a
  set and the real held-out clips. With N < 200 the covariances are rank-deficient: compare numbers
  at equal N only. A Fréchet distance does not depend on which caption a clip was made for, so its
  floor is the model's generations for the other domains' captions (random subsets of the same N),
  and p is how often a random N of the model's generations from all domains lies as close to the
  real set as the generations for this domain's captions ((b + 1) / (m + 1), Phipson & Smyth 2010).
- Tag adherence: the judge's tag probabilities against the caption's facts (`domain_facts.FACTS`): for a
  yes/no fact, the AUC of each of its tags (drums for `has_drums`, percussive sound categories);
  for a fact with several values (genre family, mood, instrument family), the macro one-vs-rest AUC
  of each value's tags and the retrieval accuracy (the value whose tags, standardised over the set's
  clips, are highest is the caption's). Only values with a clear judge tag are scored (its tables);
  clips of other values take no part. Floor: the same clips scored against a derangement of
  their captions, averaged over `--shuffle-rounds`; p: how often a derangement scores as well.
- Domain separation, per set kind (real, each model's VAE copies and generations) over all
  domains: mean cosine distance between judge embeddings of clips of different domains over that
  of clips of one domain (about 1 when every domain collapses to one texture), with its permutation
  p (domain labels shuffled over clips) and chance ratio; the cosine distances between domain mean
  embeddings and each domain's spread (mean cosine distance of its clips to their mean).

Writes the markdown report to `--out` (`benchmarks.machine.emit_report`) and every number, per clip
too, to the JSON beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from audiodit import judge
from audiodit.analysis import SAMPLE_RATE
from audiodit.configuration import atomic_write_text
from audiodit.evaluate import generate, vae_reconstruction
from benchmarks.domain_facts import (FACTS, MSD, MTT, BinaryFact, ClassFact, domain_separation,
                                     fact_tags, fast_frechet, other_domain_floor, shuffled_floor, value_aucs)
from benchmarks.machine import cpu_model, emit_report

REPO = Path(__file__).resolve().parents[1]

EMBEDDING = MTT  # the embedding of the report's tables; the JSON has both

#################################################################################
#                              Captions and clips                               #
#################################################################################

def load_records(data_dir, split: str) -> list[dict]:
    """Every record (`<id>.json` fields, `caption` from `<id>.txt` when present, `audio_path`) of one
    split of a dataset, sorted by id."""
    folder = Path(data_dir) / split
    records = []
    for json_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        record = json.loads(json_path.read_text())
        audio_path = json_path.with_suffix(".flac")
        if not audio_path.is_file():
            raise FileNotFoundError(f"{json_path}: no audio file {audio_path.name} beside it")
        caption_path = json_path.with_suffix(".txt")
        if caption_path.is_file():
            record["caption"] = caption_path.read_text().strip()
        records.append({**record, "id": record.get("id", json_path.stem), "audio_path": str(audio_path)})
    return records


def select_captions(data_dir, split: str, num_prompts: int, seed: int) -> list[dict]:
    """A seeded sample of `num_prompts` records of one split (all of them when it has fewer)."""
    records = load_records(data_dir, split)
    if len(records) < 2:
        raise ValueError(f"{data_dir}/{split}: need at least 2 records (a derangement needs 2), found {len(records)}")
    return [records[i] for i in np.random.default_rng(seed).permutation(len(records))[:num_prompts]]


def parse_data_argument(text: str, split: str) -> tuple[str, Path]:
    """`DOMAIN=DIR`, or `DIR` whose records name their domain (a music21 corpus's: "score")."""
    domain, _, folder = text.rpartition("=")
    records = load_records(folder, split)[:1]
    stated = records[0].get("domain", "score") if records else None
    domain = domain or stated
    if domain not in FACTS:
        raise ValueError(f"--data {text}: unknown domain {domain!r}; choose from {sorted(FACTS)}")
    if stated is not None and stated != domain:
        raise ValueError(f"--data {text}: its records are of domain {stated!r}, not {domain!r}")
    return domain, Path(folder)


def parse_model_argument(text: str) -> tuple[str, Path]:
    label, _, path = text.rpartition("=")
    return label or Path(path).resolve().name, Path(path)


def load_clip(record: dict, seconds: float) -> np.ndarray:
    """The first `seconds` of a record's audio, (2, S) at 48 kHz, zero-padded when shorter."""
    from audiodit.audio import load_audio

    return load_audio(record["audio_path"], SAMPLE_RATE, duration=seconds).numpy()


def write_for_judge(clips, folder: Path) -> list[Path]:
    """Each (2, S) clip as a mono float WAV (the judge's loader averages the channels itself)."""
    from audiodit.audio import save_audio

    return [save_audio(folder / f"{i:03d}.wav", np.asarray(clip, np.float32).mean(axis=0, keepdims=True),
                       SAMPLE_RATE, "FLOAT") for i, clip in enumerate(clips)]


#################################################################################
#                                   One domain                                  #
#################################################################################

def log(message: str) -> None:
    print(f"[domain_eval] {message}", file=sys.stderr, flush=True)


def hear_domain(domain: str, data_dir: Path, pipes: dict, settings: dict, args) -> dict:
    """Generate, reconstruct and judge one domain. Returns its prompts and, per clip set ("real",
    "train", "<label>/vae", "<label>/generated"), the judge's tag probabilities and embeddings."""
    prompts = select_captions(data_dir, args.split, args.num_prompts, args.seed)
    train = select_captions(data_dir, "train", len(prompts), args.seed)
    timings, paths = {}, {}
    with tempfile.TemporaryDirectory(prefix=f"domain-eval-{domain}-") as scratch:
        scratch = Path(scratch)
        real = [load_clip(record, args.seconds) for record in prompts]
        paths["real"] = write_for_judge(real, scratch / "real")
        paths["train"] = write_for_judge((load_clip(record, args.seconds) for record in train), scratch / "train")
        for label, pipe in pipes.items():
            log(f"{domain}: {label} generates {len(prompts)} clips")
            clock = time.perf_counter()
            chosen = settings[label]
            clips = generate(pipe, prompts, args.seconds, chosen["steps"], chosen["guidance_scale"], args.seed,
                             args.batch_size, args.audio_out / domain / label if args.audio_out else None,
                             chosen["key_guidance_scale"], chosen["key_classifier_scale"])
            timings[f"{label}/generate_s"] = time.perf_counter() - clock
            paths[f"{label}/generated"] = write_for_judge(clips, scratch / label / "generated")
            clock = time.perf_counter()
            reconstruction, decoded = vae_reconstruction(pipe.vae, real)
            timings[f"{label}/vae_s"] = time.perf_counter() - clock
            paths[f"{label}/vae"] = write_for_judge(decoded, scratch / label / "vae")
            timings[f"{label}/reconstruction"] = reconstruction
        log(f"{domain}: judging {sum(map(len, paths.values()))} clips")
        clock = time.perf_counter()
        output = judge.judge_files([p for group in paths.values() for p in group], python=args.judge_python)
        timings["judge_s"] = time.perf_counter() - clock
    missing = sorted(f"{model}:{tag}" for model, tag in fact_tags(domain) if tag not in output.tag_names.get(model, []))
    if missing:
        raise judge.JudgeError(f"the judge has no tag(s) {missing}; the fact tables must use its tag names")
    sets, start = {}, 0
    for name, group in paths.items():
        rows = slice(start, start + len(group))
        start += len(group)
        sets[name] = {"probabilities": {(model, tag): output.tags[model][rows, j] for model in output.tags
                                        for j, tag in enumerate(output.tag_names[model])},
                      "embeddings": {model: output.embeddings[model][rows] for model in output.embeddings},
                      "top_tags": [{model: [t for t, _ in output.top_tags(i, model, 3)] for model in output.tags}
                                   for i in range(rows.start, rows.stop)]}
    return {"domain": domain, "data": str(data_dir), "prompts": prompts, "train_ids": [r["id"] for r in train],
            "sets": sets, "timings": timings}


def score_domain(heard: dict, everything: dict, labels: list[str], args) -> dict:
    """Fréchet distances, tag adherence with floors, per-clip rows of one heard domain."""
    domain, prompts, sets = heard["domain"], heard["prompts"], heard["sets"]
    facts = FACTS[domain]

    def to_real(name: str, model: str = EMBEDDING) -> float:
        return fast_frechet(sets[name]["embeddings"][model], sets["real"]["embeddings"][model])

    result = {"data": heard["data"], "split": args.split, "num_prompts": len(prompts),
              "frechet": {model: {"train_sample": to_real("train", model)} for model in (MTT, MSD)},
              "adherence": {"real": shuffled_floor(facts, prompts, sets["real"]["probabilities"],
                                                   args.shuffle_rounds, args.seed)},
              "timings_s": {k: round(v, 1) for k, v in heard["timings"].items() if k.endswith("_s")},
              "vae_reconstruction": {label: heard["timings"][f"{label}/reconstruction"] for label in labels}}
    others = [name for name in everything if name != domain]
    for label in labels:
        for model in (MTT, MSD):
            frechet = result["frechet"][model]
            frechet[f"{label}/vae"] = to_real(f"{label}/vae", model)
            frechet[f"{label}/generated"] = to_real(f"{label}/generated", model)
            if others:
                pooled = np.concatenate([everything[other]["sets"][f"{label}/generated"]["embeddings"][model]
                                         for other in others])
                frechet[f"{label}/other_domains"] = other_domain_floor(
                    sets["real"]["embeddings"][model], sets[f"{label}/generated"]["embeddings"][model], pooled,
                    args.frechet_rounds, args.seed)
        for kind in ("vae", "generated"):
            result["adherence"][f"{label}/{kind}"] = shuffled_floor(
                facts, prompts, sets[f"{label}/{kind}"]["probabilities"], args.shuffle_rounds, args.seed)
    result["value_auc"] = {name: {fact.name: value_aucs(fact, prompts, s["probabilities"]) for fact in facts
                                  if isinstance(fact, ClassFact)} for name, s in sets.items() if name != "train"}
    scored = sorted(fact_tags(domain))
    result["per_clip"] = [
        {"id": record["id"], "caption": record["caption"],
         **{fact.name: (fact.truth(record) if isinstance(fact, BinaryFact) else fact.values(record)) for fact in facts},
         **{name: {"tags": {f"{m}:{t}": round(float(s["probabilities"][(m, t)][i]), 4) for m, t in scored},
                   "top_tags": s["top_tags"][i]} for name, s in sets.items() if name != "train"}}
        for i, record in enumerate(prompts)]
    return result


#################################################################################
#                                     Report                                    #
#################################################################################

def _fmt(value, digits: int = 3) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _tag_list(tags) -> str:
    return ", ".join(f"{'MTT' if m == MTT else 'MSD'} {t}" for m, t in tags)


def format_report(report: dict) -> str:
    labels, domains, settings = [m["label"] for m in report["models"]], report["domains"], report["settings"]
    lines = [f"# Held-out evaluation per domain, judged by musicnn: {', '.join(labels)}", "",
             f"- Machine: {report['machine']}; wall time {report['wall_s']:.0f} s.",
             f"- {settings['num_prompts']} captions per domain (fewer where its `{settings['split']}` split is "
             "smaller), "
             f"seeded ({settings['seed']}), {settings['seconds']:g} s per clip; caption i of every model uses seed "
             f"{settings['seed']} + i. Floors: {settings['shuffle_rounds']} derangements of the captions; "
             f"other-domain Fréchet floor: {settings['frechet_rounds']} random subsets.",
             *(f"- {m['label']} (`{m['path']}`): {m['steps']} steps, guidance {m['guidance_scale']:g}, key guidance "
               f"{m['key_guidance_scale']:g}, key classifier {m['key_classifier_scale']:g}" for m in report["models"]),
             "- Produced by `benchmarks/domain_eval.py` (definitions in its docstring); every number and per-clip "
             "tags in the JSON beside this file.", "",
             f"## Fréchet distance to the real held-out clips ({EMBEDDING} embeddings, lower is better)", "",
             "Real train: as many real train-split clips (how close real audio gets at this N). Other domains: the "
             "model's generations for the other domains' captions (the floor), p: generations for this domain's "
             "captions against random subsets of all its generations.", ""]
    rows = []
    for domain, found in domains.items():
        frechet = found["frechet"][EMBEDDING]
        for label in labels:
            floor = frechet.get(f"{label}/other_domains")
            rows.append([domain, str(found["num_prompts"]), label, _fmt(frechet["train_sample"], 1),
                         _fmt(frechet[f"{label}/vae"], 1), _fmt(frechet[f"{label}/generated"], 1),
                         _fmt(floor["floor"], 1) if floor else "n/a", _fmt(floor["p"]) if floor else "n/a"])
    lines += _table(["domain", "N", "model", "real train", "real through VAE", "generated", "other domains (floor)",
                     "p"], rows)
    lines += ["", "## Tag adherence (higher is better; floor: captions deranged over the clips)", ""]
    header = ["domain", "measure", "real (floor, p)"]
    for label in labels:
        header += [f"{label} VAE", f"{label} generated", f"{label} floor", f"{label} p"]
    rows = []
    for domain, found in domains.items():
        adherence = found["adherence"]
        for metric, real in adherence["real"].items():
            row = [domain, metric, f"{_fmt(real['value'])} ({_fmt(real['floor'])}, {_fmt(real['p'])})"]
            for label in labels:
                generated = adherence[f"{label}/generated"][metric]
                row += [_fmt(adherence[f"{label}/vae"][metric]["value"]), _fmt(generated["value"]),
                        _fmt(generated["floor"]), _fmt(generated["p"])]
            rows.append(row)
    lines += _table(header, rows)
    lines += ["", "Each value's own AUC (e.g. per genre family), for every set: `value_auc` in the JSON."]
    lines += ["", f"## Domain separation ({EMBEDDING} embeddings, cosine distance)", "",
              "Ratio: clips of different domains over clips of one domain (about 1: the domains sound alike to the "
              "judge). Means/spread: mean distance between domain means over the mean spread of clips around them.", ""]
    lines += _table(["clips", "ratio", "p", "chance ratio", "means / spread"],
                    [[name, _fmt(s["ratio"]), _fmt(s["p"]), _fmt(s["chance_ratio"]), _fmt(s["means_over_spread"])]
                     for name, s in report["separation"].items()])
    lines += ["", "## Timings (s)", ""]
    steps = [(label, step) for step in ("generate", "vae") for label in labels]
    lines += _table(["domain", "judge", *(f"{label} {step}" for label, step in steps)],
                    [[domain, _fmt(found["timings_s"]["judge_s"], 0),
                      *(_fmt(found["timings_s"][f"{label}/{step}_s"], 0) for label, step in steps)]
                     for domain, found in domains.items()])
    lines += ["", "## What each fact is scored by", ""]
    for domain in domains:
        for fact in FACTS[domain]:
            if isinstance(fact, BinaryFact):
                lines.append(f"- {domain}, {fact.name}: AUC of each of {_tag_list(fact.tags)}, yes against no")
            else:
                lines.append(f"- {domain}, {fact.name}: "
                             + "; ".join(f"{value}: {_tag_list(tags)}" for value, tags in fact.tags.items()))
    return "\n".join(lines)


def _plain(value):
    """JSON-safe: NaN -> None, numpy -> Python, floats to 4 decimals."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), 4)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


#################################################################################
#                                     Main                                      #
#################################################################################

def main(argv: list[str] | None = None) -> int:
    from audiodit.cli import load_pipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="[LABEL=]DIR",
                        help="pipeline directory (repeatable: side by side, same captions and noise)")
    parser.add_argument("--data", action="append", required=True, metavar="[DOMAIN=]DIR",
                        help=f"dataset with {{train,<split>}}/<id>.{{flac,txt,json}}; DOMAIN one of {sorted(FACTS)}")
    parser.add_argument("--num-prompts", type=int, default=48, help="held-out captions per domain")
    parser.add_argument("--split", default="test", help="split the captions come from")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per clip, generated and real")
    parser.add_argument("--steps", type=int, default=None, help="inference steps (default: each model's)")
    parser.add_argument("--guidance", type=float, default=None, help="guidance scale (default: each model's)")
    parser.add_argument("--key-guidance", type=float, default=None, help="key guidance (default: each model's)")
    parser.add_argument("--key-classifier-scale", type=float, default=None, help="(default: each model's)")
    parser.add_argument("--seed", type=int, default=0, help="seed of caption choice, noise and floors")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--shuffle-rounds", type=int, default=1000, help="derangements for the adherence floors")
    parser.add_argument("--frechet-rounds", type=int, default=200, help="subsets for the other-domain Fréchet floor")
    parser.add_argument("--judge-python", default=None, help="the judge's interpreter (default: audiodit.judge's)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--audio-out", type=Path, default=None,
                        help="keep the generations as AUDIO_OUT/<domain>/<model>/*.flac")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "domain_eval_cpu.md"),
                        help="markdown report (JSON beside it)")
    args = parser.parse_args(argv)
    if args.num_prompts < 2 or args.seconds <= 0 or args.shuffle_rounds < 1 or args.frechet_rounds < 1:
        parser.error("--num-prompts must be >= 2, --seconds > 0 and the rounds >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    judge.judge_python(args.judge_python)  # no judge: stop before any generation
    started, load_before = time.perf_counter(), os.getloadavg()[0]

    # 1. Datasets and models
    datasets = dict(parse_data_argument(text, args.split) for text in args.data)
    if len(datasets) < len(args.data):
        parser.error("each domain takes one --data")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipes, models = {}, []
    for text in args.model:
        label, path = parse_model_argument(text)
        label = label if label not in pipes else f"{label}-{len(pipes)}"
        pipe = load_pipeline(path, device, torch.float32)
        pipe.set_progress_bar_config(disable=True)
        if args.seconds > pipe.max_audio_length_s + 1e-6:
            parser.error(f"--seconds {args.seconds:g} exceeds {path}'s maximum of {pipe.max_audio_length_s:g} s")
        guidance = float(pipe.default_guidance_scale if args.guidance is None else args.guidance)
        pipes[label] = pipe
        models.append({"label": label, "path": str(path), "steps": int(args.steps or pipe.default_num_inference_steps),
                       "guidance_scale": guidance,
                       "key_guidance_scale": pipe.resolve_key_guidance_scale(args.key_guidance, guidance),
                       "key_classifier_scale": pipe.resolve_key_classifier_scale(args.key_classifier_scale)})
    settings = {m["label"]: m for m in models}

    # 2. Generate, reconstruct and judge each domain
    heard = {domain: hear_domain(domain, folder, pipes, settings, args) for domain, folder in datasets.items()}

    # 3. Scores per domain, then how the domains separate
    labels = list(pipes)
    domains = {domain: score_domain(found, heard, labels, args) for domain, found in heard.items()}
    separation = {}
    if len(heard) >= 2:
        for name in ["real"] + [f"{label}/{kind}" for label in labels for kind in ("vae", "generated")]:
            embeddings = np.concatenate([found["sets"][name]["embeddings"][EMBEDDING] for found in heard.values()])
            names = [domain for domain, found in heard.items() for _ in found["prompts"]]
            separation[name] = domain_separation(embeddings, names, args.shuffle_rounds, args.seed)

    # 4. Report
    report = {"benchmark": "domain_eval",
              "machine": f"{device}: {torch.cuda.get_device_name() if device.startswith('cuda') else cpu_model()} "
                         f"({os.cpu_count()} cores, {torch.get_num_threads()} torch threads), "
                         f"torch {torch.__version__}, "
                         f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
              "settings": {"num_prompts": args.num_prompts, "split": args.split, "seconds": args.seconds,
                           "seed": args.seed,
                           "shuffle_rounds": args.shuffle_rounds, "frechet_rounds": args.frechet_rounds,
                           "embedding": EMBEDDING, "data": {d: str(f) for d, f in datasets.items()},
                           "facts": {d: {f.name: ([list(t) for t in f.tags] if isinstance(f, BinaryFact) else
                                                  {v: [list(t) for t in ts] for v, ts in f.tags.items()})
                                         for f in FACTS[d]} for d in datasets}},
              "models": models, "domains": domains, "separation": separation,
              "wall_s": time.perf_counter() - started}
    emit_report(format_report(report), args.out)
    if args.out:
        atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(_plain(report), indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
