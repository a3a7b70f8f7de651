"""A pretrained audio judge: musicnn's music taggers, run in an interpreter of their own.

musicnn (Pons & Serra 2019, pip package `musicnn` 0.1.0) ships two small CNNs with their weights
inside the package: `MTT_musicnn` (50 MagnaTagATune tags: "drums", "beat", "piano", "quiet", ...) and
`MSD_musicnn` (50 Million Song Dataset tags: "rock", "electronic", "ambient", ...). Both read 16 kHz
mono log-mel patches of 3 s. For each file the judge returns tag probabilities and the 200-dim
penultimate layer, each averaged over the file's patches; the embeddings give cosine and Fréchet
distances between sets of audio (`embedding_distances`).

musicnn needs TensorFlow (1.x-style graphs, through tf-keras), which must not enter the project's
runtime, so it lives in a separate virtual environment and this module (numpy only) runs
`audiodit/judge_worker.py` there in a subprocess. Install the judge once, from the repository root:

    python3 -m venv .venv-judge
    .venv-judge/bin/pip install "tensorflow-cpu==2.21.*" "tf-keras==2.21.*" librosa
    .venv-judge/bin/pip install --no-deps musicnn==0.1.0   # its pinned requirements predate Python 3.11

The interpreter is, in order: the `python` argument (`--judge-python` on command lines), the
environment variable AUDIODIT_JUDGE_PYTHON, then `.venv-judge/bin/python` in the repository or the
current directory if it exists.

    python -m audiodit.judge FILE...           # prints each file's top tags
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODELS = ("MTT_musicnn", "MSD_musicnn")
WORKER = Path(__file__).resolve().with_name("judge_worker.py")
ENV_VARIABLE = "AUDIODIT_JUDGE_PYTHON"
JUDGE_VENV = ".venv-judge"
INSTALL_COMMANDS = (f"python3 -m venv {JUDGE_VENV} && {JUDGE_VENV}/bin/pip install 'tensorflow-cpu==2.21.*' "
                    f"'tf-keras==2.21.*' librosa && {JUDGE_VENV}/bin/pip install --no-deps musicnn==0.1.0")


class JudgeUnavailableError(RuntimeError):
    """No interpreter with musicnn and TensorFlow was found. The message says how to install one."""


class JudgeError(RuntimeError):
    """The judge's worker ran and failed; the message carries the end of its error output."""


@dataclass
class JudgeOutput:
    """The judge's view of N files, in the order they were given."""

    files: list[str]
    tag_names: dict[str, list[str]]  # model -> its 50 tag names
    tags: dict[str, np.ndarray]  # model -> (N, 50) sigmoid probabilities, mean over 3 s patches
    embeddings: dict[str, np.ndarray]  # model -> (N, 200) penultimate layer, mean over 3 s patches
    timings: dict  # the worker's seconds: import_s, features_s, <model>.build_s, <model>.inference_s, ...

    def tag(self, name: str, model: str = "MTT_musicnn") -> np.ndarray:
        """(N,) probability of one tag, e.g. `tag("drums")`."""
        return self.tags[model][:, self.tag_names[model].index(name)]

    def top_tags(self, index: int, model: str = "MTT_musicnn", k: int = 5) -> list[tuple[str, float]]:
        """The k most probable tags of file `index`, highest first."""
        order = np.argsort(-self.tags[model][index])[:k]
        return [(self.tag_names[model][i], float(self.tags[model][index, i])) for i in order]


def judge_python(python: str | os.PathLike | None = None) -> Path:
    """The judge's interpreter (see the module docstring for the order), or JudgeUnavailableError."""
    explicit = python or os.environ.get(ENV_VARIABLE)
    if explicit:
        if not Path(explicit).is_file():
            raise JudgeUnavailableError(f"judge interpreter {explicit} does not exist; install the judge with: "
                                        f"{INSTALL_COMMANDS}")
        return Path(explicit)
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        candidate = root / JUDGE_VENV / "bin" / "python"
        if candidate.is_file():
            return candidate
    raise JudgeUnavailableError(f"no judge interpreter (--judge-python, ${ENV_VARIABLE} or ./{JUDGE_VENV}); "
                                f"install it from the repository root with: {INSTALL_COMMANDS}")


def judge_available(python: str | os.PathLike | None = None) -> bool:
    """Whether an interpreter for the judge can be found (not whether musicnn imports in it)."""
    try:
        judge_python(python)
    except JudgeUnavailableError:
        return False
    return True


def read_judge_output(path: str | os.PathLike) -> JudgeOutput:
    """Parse the worker's .npz (format in `audiodit/judge_worker.py`)."""
    with np.load(path, allow_pickle=False) as data:
        models = sorted(key.split(".")[0] for key in data.files if key.endswith(".tags"))
        files = [str(f) for f in data["files"]]
        output = JudgeOutput(
            files=files,
            tag_names={m: [str(t) for t in data[f"{m}.tag_names"]] for m in models},
            tags={m: data[f"{m}.tags"].astype(np.float64) for m in models},
            embeddings={m: data[f"{m}.embedding"].astype(np.float64) for m in models},
            timings=json.loads(str(data["timings"])) if "timings" in data.files else {})
    for model in models:
        if output.tags[model].shape != (len(files), len(output.tag_names[model])) or \
                len(output.embeddings[model]) != len(files):
            raise JudgeError(f"{path}: {model} arrays do not match {len(files)} files")
    return output


def judge_files(files, models=MODELS, python: str | os.PathLike | None = None, worker: str | os.PathLike = WORKER,
                timeout: float | None = None) -> JudgeOutput:
    """Run the judge over audio files (any format librosa reads); one subprocess for all of them.

    Raises JudgeUnavailableError (no interpreter, or musicnn/TensorFlow missing in it), JudgeError
    (the worker failed, e.g. an unreadable file) or FileNotFoundError (a file does not exist)."""
    interpreter = judge_python(python)
    files = [str(Path(f).resolve()) for f in files]
    missing = [f for f in files if not Path(f).is_file()]
    if missing:
        raise FileNotFoundError(f"judge: {len(missing)} file(s) do not exist, first {missing[0]}")
    unknown = set(models) - set(MODELS)
    if unknown:
        raise ValueError(f"unknown judge model(s) {sorted(unknown)}; choose from {MODELS}")
    with tempfile.TemporaryDirectory(prefix="audiodit-judge-") as scratch:
        listing, out = Path(scratch) / "files.json", Path(scratch) / "judge.npz"
        listing.write_text(json.dumps(files))
        # -I: isolated mode, so the worker's folder (audiodit/, whose module names could shadow
        # others) and any PYTHON* variables stay out of the judge's imports
        command = [str(interpreter), "-I", str(worker), "--files", str(listing), "--out", str(out),
                   "--models", *models]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if completed.returncode == 3:
            raise JudgeUnavailableError(f"{interpreter} lacks the judge's packages "
                                        f"({_last_line(completed.stderr)}); install them with: {INSTALL_COMMANDS}")
        if completed.returncode != 0 or not out.is_file():
            raise JudgeError(f"judge worker failed (exit {completed.returncode}): {_last_line(completed.stderr)}")
        output = read_judge_output(out)
    if output.files != files:
        raise JudgeError("judge worker returned results for other files than it was given")
    return output


def judge_audio(clips, sample_rate: int, **kwargs) -> JudgeOutput:
    """Run the judge over in-memory clips, each (channels, samples) at `sample_rate` Hz (written to
    temporary float WAV files first). Keyword arguments go to `judge_files`."""
    from audiodit.audio import save_audio

    with tempfile.TemporaryDirectory(prefix="audiodit-judge-audio-") as scratch:
        paths = [save_audio(Path(scratch) / f"clip{i:05d}.wav", np.asarray(clip, dtype=np.float32),
                            sample_rate, subtype="FLOAT") for i, clip in enumerate(clips)]
        return judge_files(paths, **kwargs)


def cosine_distances(reference: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """(N,) 1 - cosine similarity of paired embeddings (N, D): 0 when a clip and its copy point the same way."""
    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    dot = (reference * estimate).sum(-1)
    norms = np.linalg.norm(reference, axis=-1) * np.linalg.norm(estimate, axis=-1)
    return 1.0 - dot / np.maximum(norms, 1e-12)


def embedding_distances(reference: np.ndarray, estimate: np.ndarray) -> dict[str, float]:
    """Paired judge embeddings (N, D) of originals and their copies: mean cosine distance, mean
    Euclidean distance, and the Fréchet distance between the two sets (N >= 2; with N < D the
    covariances are rank-deficient, so compare Fréchet numbers only at equal N)."""
    from audiodit.evaluate import frechet_distance

    reference, estimate = np.asarray(reference, np.float64), np.asarray(estimate, np.float64)
    result = {"cosine": float(cosine_distances(reference, estimate).mean()),
              "euclidean": float(np.linalg.norm(reference - estimate, axis=-1).mean())}
    if len(reference) >= 2:
        result["frechet"] = frechet_distance(reference, estimate)
    return result


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no error output"


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m audiodit.judge", description="musicnn's top tags per file")
    parser.add_argument("files", nargs="+")
    parser.add_argument("--judge-python", help=f"the judge's interpreter (default ${ENV_VARIABLE} or {JUDGE_VENV})")
    parser.add_argument("--top", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        output = judge_files(args.files, python=args.judge_python)
    except (JudgeUnavailableError, JudgeError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for index, path in enumerate(output.files):
        for model in output.tags:
            tags = ", ".join(f"{name} {p:.2f}" for name, p in output.top_tags(index, model, args.top))
            print(f"{path}  {model}: {tags}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
