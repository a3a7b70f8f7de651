"""A folder of audio files with captions, as a map-style dataset of random crops.

Captions, in order of precedence:
1. `metadata.jsonl` at the folder root: one JSON object per line with the file's path relative to
   the root under `file_name` (or `path`/`file`) and its caption under `caption` (or `text`);
2. `metadata.csv` with the same column names;
3. a sidecar next to each audio file: `x.txt` (the caption) or `x.json` (`{"caption": ...}`).
A file without a caption gets the empty caption (trained as unconditional) and is counted in the
report's notes.

Bad metadata never stops a run either: a `metadata.jsonl` line that is not UTF-8 or not a JSON
object, a row without a path, a path that leaves the data root (absolute, or through `..`), a
caption sidecar that is not UTF-8 and a file name that is not UTF-8 are each skipped and counted
(`report`), and nothing outside the root is ever read through a metadata path.

Bad files never stop a run. At construction every file's header is read (cheap, no decoding):
unreadable, empty, zero-length and shorter-than-`min_seconds` files are skipped and counted. A file
whose header is fine but whose samples fail to decode (truncated, NaN/inf samples) is met when
loaded: the item is replaced by the next usable file (deterministically) and the skip travels with
the batch (`batch["skipped"]`) so the trainer can count it even from a DataLoader worker. Files at
another sample rate are resampled to `sample_rate` (soxr, see `audiodit.audio`); mono is duplicated
and multichannel is down-mixed, so neither is a reason to skip.

Items: a random crop of `clip_seconds` (or the whole file when shorter), zero-padded to its length
bucket (see `audiodit.data.sampler`), with `seconds_start` (crop offset) and `seconds_total` (file
duration) for the DiT's timing conditioning, as in Stable Audio (Evans et al. 2024, §3.2).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from audiodit.audio import AUDIO_EXTENSIONS, AudioLoadError, audio_info, load_audio
from audiodit.data.report import SkipReport

CAPTION_KEYS = ("caption", "text")
LOAD_NORMALIZE = ("none", "peak", "rms")  # the modes audiodit.audio.load_audio accepts
PATH_KEYS = ("file_name", "path", "file")


@dataclass(frozen=True)
class AudioRecord:
    path: Path  # the audio file
    id: str  # its path relative to the dataset root (stable across machines)
    caption: str  # "" when the file has none
    seconds: float  # duration of the file


# ---------------------------------------------------------------------------------------------
# Captions
# ---------------------------------------------------------------------------------------------


def _pick(row: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if row.get(key) not in (None, ""):
            return str(row[key])
    return None


def _inside(rel: str) -> bool:
    """True when the relative path `rel` stays under the root it is relative to."""
    path = Path(rel)
    return bool(rel) and not path.is_absolute() and ".." not in path.parts


def read_metadata(root: Path, report: SkipReport | None = None) -> dict[str, str] | None:
    """Captions from `metadata.jsonl` / `metadata.csv` (relative path -> caption), or None when
    there is neither. Bad rows are skipped and counted in `report` (see the module docstring)."""
    report = SkipReport() if report is None else report
    rows: list[tuple[str, object]] = []  # (where, row)
    jsonl, table = root / "metadata.jsonl", root / "metadata.csv"
    if jsonl.is_file():
        for number, raw in enumerate(jsonl.read_bytes().splitlines(), 1):
            where = f"metadata.jsonl:{number}"
            if not raw.strip():
                continue
            try:
                rows.append((where, json.loads(raw.decode("utf-8-sig" if number == 1 else "utf-8"))))
            except UnicodeDecodeError:
                report.skip(where, "metadata line is not UTF-8")
            except json.JSONDecodeError as err:
                report.skip(where, f"metadata line is not valid JSON ({err.msg})")
    elif table.is_file():
        try:
            with table.open(newline="", encoding="utf-8-sig") as handle:
                rows = [(f"metadata.csv:{number}", row) for number, row in enumerate(csv.DictReader(handle), 2)]
        except UnicodeDecodeError:
            raise ValueError(f"{table} is not UTF-8 text") from None
    else:
        return None
    captions = {}
    for where, row in rows:
        if not isinstance(row, dict):
            report.skip(where, "metadata row is not a JSON object")
            continue
        rel = _pick(row, PATH_KEYS)
        if rel is None:
            report.skip(where, f"metadata row has no {'/'.join(PATH_KEYS)}")
            continue
        if not _inside(rel):
            report.skip(where, f"metadata path leaves the data root: {rel!r}")
            continue
        captions[Path(rel).as_posix()] = _pick(row, CAPTION_KEYS) or ""
    if rows and not captions:
        raise ValueError(f"{root}: no usable row in its metadata file ({len(rows)} rows, all skipped)")
    return captions


class CaptionError(ValueError):
    """A caption sidecar that exists but cannot be read as text."""


def read_sidecar(audio_path: Path) -> str | None:
    text, meta = audio_path.with_suffix(".txt"), audio_path.with_suffix(".json")
    try:
        if text.is_file():
            return text.read_text(encoding="utf-8").strip()
        if meta.is_file():
            try:
                return _pick(json.loads(meta.read_text(encoding="utf-8")), CAPTION_KEYS)
            except (json.JSONDecodeError, AttributeError):
                return None
    except UnicodeDecodeError:
        raise CaptionError("caption sidecar is not UTF-8") from None
    return None


# ---------------------------------------------------------------------------------------------
# Scanning
# ---------------------------------------------------------------------------------------------


def scan_audio_folder(root: str | Path, min_seconds: float, report: SkipReport) -> list[AudioRecord]:
    """Every usable audio file under `root` (sorted by path), skipping and counting bad ones."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    metadata = read_metadata(root, report)
    if metadata is not None:
        candidates = [root / rel for rel in sorted(metadata)]
    else:
        candidates = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    records = []
    for path in candidates:
        rel = path.relative_to(root).as_posix()
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            report.skip(rel.encode("utf-8", "backslashreplace").decode("utf-8"), "file name is not UTF-8")
            continue
        try:
            seconds = audio_info(path).duration
        except AudioLoadError as err:
            report.skip(rel, err.reason)
            continue
        if seconds < min_seconds:
            report.skip(rel, f"too short: {seconds:.2f} s < data.min_seconds={min_seconds}")
            continue
        try:
            caption = metadata.get(rel) if metadata is not None else read_sidecar(path)
        except CaptionError as err:
            report.skip(rel, str(err))
            continue
        if not caption:
            report.note("no caption (trained as unconditional)")
        records.append(AudioRecord(path, rel, caption or "", seconds))
    return records


# ---------------------------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------------------------


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """The RNG of one item in one epoch: crops do not depend on worker count or resume point."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch) * 1_000_033 + index)


class AudioFolderDataset(Dataset):
    """Random crops of the audio files in a folder; keys are `(index, epoch)` or a plain index."""

    def __init__(
        self,
        root: str | Path,
        sample_rate: int = 48000,
        clip_seconds: float = 10.0,
        min_seconds: float = 1.0,
        num_buckets: int = 1,
        length_multiple: int = 1,
        seed: int = 0,
        random_crop: bool = True,
        normalize: str = "none",
        target_db: float = -1.0,
    ):
        if clip_seconds <= 0 or num_buckets < 1 or length_multiple < 1:
            raise ValueError("clip_seconds must be > 0, num_buckets and length_multiple >= 1")
        check_normalize(normalize)
        self.root = Path(root)
        self.sample_rate = sample_rate
        self.clip_seconds = clip_seconds
        self.seed = seed
        self.random_crop = random_crop
        self.normalize, self.target_db = normalize, target_db
        self.report = SkipReport()
        self.records = scan_audio_folder(self.root, min_seconds, self.report)
        if not self.records:
            raise ValueError(f"{self.root}: no usable audio files\n{self.report.summary()}")
        self.length_multiple = length_multiple
        self.clip_samples = _round_up(round(clip_seconds * sample_rate), length_multiple)
        self.bucket_width = _round_up(math.ceil(self.clip_samples / num_buckets), length_multiple)
        self.buckets = [self._bucket(record) for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def _crop_samples(self, record: AudioRecord) -> int:
        return min(round(record.seconds * self.sample_rate), round(self.clip_seconds * self.sample_rate))

    def _bucket(self, record: AudioRecord) -> int:
        return math.ceil(self._crop_samples(record) / self.bucket_width)

    def bucket_samples(self, bucket: int) -> int:
        """Padded length (samples) of the items in `bucket`."""
        return min(bucket * self.bucket_width, self.clip_samples)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        target = self.bucket_samples(self.buckets[index])
        skipped = []
        for attempt in range(len(self.records)):
            record = self.records[(index + attempt) % len(self.records)]
            try:
                item = self._load(record, target, item_generator(self.seed, epoch, index))
            except (AudioLoadError, ValueError) as err:
                skipped.append((record.id, getattr(err, "reason", str(err))))
                continue
            item["skipped"] = skipped
            return item
        raise RuntimeError(f"{self.root}: every file failed to load; last: {skipped[-1]}")

    def _load(self, record: AudioRecord, target: int, generator: torch.Generator) -> dict:
        crop = min(self._crop_samples(record), target)
        spare = max(0.0, record.seconds - crop / self.sample_rate)
        start = float(torch.rand((), generator=generator)) * spare if self.random_crop else 0.0
        audio = load_audio(
            record.path, self.sample_rate, 2, duration=crop / self.sample_rate, offset=start,
            normalize=self.normalize, target_db=self.target_db,
        )  # (2, crop)
        padded = torch.zeros(2, target)
        padded[:, :crop] = audio[:, :target]
        return {
            "audio": padded,  # (2, target) zero-padded
            "num_samples": crop,
            "seconds_start": start,
            "seconds_total": record.seconds,
            "caption": record.caption,
            "id": record.id,
        }


def check_normalize(normalize: str) -> None:
    """Fail at construction, not as a skip of every file, when load_audio cannot normalise so."""
    if normalize not in LOAD_NORMALIZE:
        raise ValueError(f"audio.normalize={normalize!r}: audiodit.audio.load_audio supports {LOAD_NORMALIZE}")


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def collate(items: list[dict]) -> dict:
    """Stack same-shaped tensors, keep strings and skip records as lists."""
    batch: dict = {"skipped": [entry for item in items for entry in item.get("skipped", [])]}
    for key, value in items[0].items():
        if key == "skipped":
            continue
        values = [item[key] for item in items]
        if isinstance(value, torch.Tensor):
            batch[key] = torch.stack(values)
        elif isinstance(value, (int, float)):
            batch[key] = torch.tensor(values, dtype=torch.long if isinstance(value, int) else torch.float32)
        else:
            batch[key] = values
    return batch
