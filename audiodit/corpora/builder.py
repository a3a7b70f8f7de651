"""What every dataset builder does around its own work: claim an output folder for one set of
settings, run the per-item tasks (in worker processes or not), and index what is on disk.

Used by `music21_corpus`, `mma_grooves`, `recordings`, `sound_library`, `sound_scenes` and `speech`,
whose layout is `OUT/{train,valid,test}/<id>.*` with `<id>.json` written last (its presence marks a
finished sample), `OUT/render_config.json`, `OUT/failures.jsonl` and `OUT/metadata.jsonl`.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from audiodit.configuration import atomic_write_text


def claim_output(out_dir: str | Path, settings: dict) -> Path:
    """Create `out_dir` for `settings`, or check that it was built with the same ones (a re-run
    resumes); other settings raise ValueError naming both, so two datasets never mix in one folder."""
    out_dir = Path(out_dir)
    config_path = out_dir / "render_config.json"
    if config_path.exists() and json.loads(config_path.read_text()) != settings:
        raise ValueError(f"{out_dir} was built with {config_path.read_text().strip()}; "
                         f"use a new --out for {settings}")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_path, json.dumps(settings) + "\n")
    return out_dir


def exit_status(summary: dict) -> int:
    """A builder's exit code: 0 when it made clips or nothing failed, 1 when everything failed."""
    return 0 if summary["clips"] or not summary["failed"] else 1


def run_main(work: Callable[[], dict | None], errors: tuple[type[Exception], ...] = (ValueError,)) -> int:
    """A builder's command once its arguments are parsed: `work()` builds and returns its summary
    (exit 0, or 1 when everything failed: `exit_status`), or None after listing what it would make
    (`--list`, exit 0); a bad setting (one of `errors`) is one line, `error: ...`, and exit 2."""
    try:
        summary = work()
    except errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if summary is None else exit_status(summary)


def run_tasks(task: Callable, arguments: Iterable, workers: int, chunksize: int = 1,
              maxtasksperchild: int = 50) -> list:
    """`[task(a) for a in arguments]`, in `workers` processes when more than one (same order)."""
    arguments = list(arguments)
    if workers > 1:
        with multiprocessing.Pool(workers, maxtasksperchild=maxtasksperchild) as pool:
            return list(pool.imap(task, arguments, chunksize=chunksize))
    return [task(argument) for argument in arguments]


def write_index(out_dir: Path, failures: Iterable[dict]) -> list[dict]:
    """Write `failures.jsonl` and `metadata.jsonl` (every finished sample's record on disk, by id)
    and return that index."""
    atomic_write_text(out_dir / "failures.jsonl", "".join(json.dumps(failure) + "\n" for failure in failures))
    index = sorted((json.loads(path.read_text()) for path in out_dir.glob("*/*.json")), key=lambda r: r["id"])
    atomic_write_text(out_dir / "metadata.jsonl", "".join(json.dumps(record) + "\n" for record in index))
    return index


def write_attribution(out_dir: Path, intro: list[str], groups: dict[tuple[str, str, str], Iterable[str]]) -> None:
    """OUT/ATTRIBUTION.md: `intro` (what was done to the files), then per package every (licence,
    copyright holders) with the source files it covers. `groups` maps (package, licence, holders) to
    file paths."""
    lines = ["# Attribution", "", *intro, ""]
    for package in sorted({key[0] for key in groups}):
        lines += [f"## {package}", ""]
        for (_, licence, holders), paths in sorted((k, sorted(v)) for k, v in groups.items() if k[0] == package):
            lines.append(f"- {licence}, copyright {'; '.join((holders or '').splitlines())}: {len(paths)} files")
            lines += [f"  - {path}" for path in paths]
        lines.append("")
    atomic_write_text(out_dir / "ATTRIBUTION.md", "\n".join(lines))


def finish_build(out_dir: Path, results: list[tuple[dict | None, dict | None]], started: float, verbose: bool,
                 counts: Callable[[list[dict]], dict] = lambda records: {}) -> dict:
    """The end of a builder's run over `(record, failure)` results: failures printed (with
    `verbose`), the index written, and the summary (clips, failures, minutes, wall time since the
    `time.perf_counter()` value `started`, indexed samples, and `counts(records)`), printed too."""
    records = [record for record, _ in results if record]
    failures = [failure for _, failure in results if failure]
    if verbose:
        for failure in failures:
            print(f"FAILED {failure['id']}: {failure['error']}", file=sys.stderr)
    index = write_index(out_dir, failures)
    summary = {"clips": len(records), "failed": len(failures),
               "minutes": round(sum(record["duration_s"] for record in records) / 60, 1),
               "wall_s": round(time.perf_counter() - started, 1), "indexed": len(index), **counts(records)}
    if verbose:
        print(json.dumps(summary, indent=1))
    return summary
