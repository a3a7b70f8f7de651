"""Music shipped in installed Debian game packages, cut into captioned 48 kHz stereo clips.

    python -m audiodit.corpora.recordings --out data/recordings --packages warzone2100-music,naev-data
        [--max-seconds 30] [--min-seconds 4] [--workers 2] [--limit N] [--list]

Layout (as audiodit.corpora.music21_corpus): every clip is `<id>.flac` (48 kHz stereo PCM_16),
`<id>.txt` (caption) and `<id>.json` (`Clip`'s fields) under `OUT/{train,valid,test}/`;
`OUT/metadata.jsonl` indexes every clip in OUT, `OUT/failures.jsonl` lists the tracks this run
could not cut, `OUT/render_config.json` the settings (a re-run with the same settings resumes,
skipping finished tracks; other settings need a new OUT). Licensing: `OUT/licenses.jsonl` has one
row per audio file of each package (used or not, and why) and `OUT/ATTRIBUTION.md` credits every
track in OUT by package, licence and copyright holder.

Which files: the package's audio files (also those inside zip/pk3 archives, whose members are
placed at the archive's folder, as Quake-engine games mount them) that lie under a folder named
`music`; sound effects and speech of game data packages are another builder's. A file's licence is
the package's DEP-5 copyright file's verdict (`audiodit.corpora.debian_copyright`); a free-form file
counts only for the packages in FREEFORM_LICENSES, read by hand. Only redistributable licences are
used; RESERVED_PACKAGES (held out for evaluation) are refused outright.

Cutting: 50 ms frames whose peak stays below SILENCE_DB are silence; leading and trailing silence
is skipped, the rest cut into consecutive clips of `--max-seconds`; a last clip shorter than
`--min-seconds` and clips that are mostly silence are dropped; every clip fades in and out over
FADE_SECONDS. One gain per track puts the track's peak at TARGET_PEAK_DB, so a quiet intro stays
quieter than the climax. Only one clip of a track is decoded at a time.

Captions (`audiodit.corpora.recordings_captions`) state what the package says (the game, the
track's title from its tags, an album.json or its cleaned file name, a genre tag), mood words that
the track's own names imply, and, when essentia is installed, the key and tempo it estimates for
each clip (the tempo only when the beat tracker is confident). Every clip of a track shares the
track's facts; key and tempo are estimated per clip.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from audiodit.audio import AUDIO_EXTENSIONS, load_audio, save_audio
from audiodit.corpora import recordings_manifest
from audiodit.corpora.builder import claim_output, run_main, run_tasks, write_index
from audiodit.corpora.debian_copyright import (FREEFORM_LICENSES, RESERVED_PACKAGES, is_machine_readable, match_file,
                                            parse_copyright, usable_for_training)
from audiodit.corpora.music21_works import split_of
from audiodit.corpora.recordings_captions import analyse, describe_track, make_caption

SAMPLE_RATE = 48000
FRAME_SECONDS = 0.05  # silence is judged per frame of this length
SILENCE_DB = -50.0  # a frame whose peak (any channel) stays below this is silence
MIN_SOUND_FRACTION = 0.5  # a clip with fewer sounding frames than this is dropped
FADE_SECONDS = 0.01  # linear fade at both edges of every clip (cuts fall mid-note)
TARGET_PEAK_DB = -1.0  # the track's peak after its one gain

ARCHIVE_SUFFIXES = (".pk3", ".zip")

# Game names for captions; other packages use the copyright file's Upstream-Name.
GAME_NAMES = {
    "warzone2100-music": "Warzone 2100",
    "ufoai-music": "UFO: Alien Invasion",
    "wesnoth-1.16-music": "Battle for Wesnoth",
    "supertux-data": "SuperTux",
    "freedroidrpg-data": "FreedroidRPG",
    "naev-data": "Naev",
}


@dataclass
class Package:
    """One installed package as this builder sees it: tests pass fakes, `installed_package` real ones."""

    name: str
    files: list[str]  # absolute paths of the installed files (directories are ignored)
    copyright_text: str  # /usr/share/doc/<name>/copyright
    version: str | None = None


@dataclass
class Track:
    """One audio file of a package (used or not) with its licence verdict."""

    package: str
    path: str  # installed file (the archive, for archive members)
    member: str | None  # member of the zip/pk3 archive `path`, else None
    relative_path: str  # to the package's common audio folder: names the track
    game: str
    package_version: str | None
    license: str | None
    copyright: str | None
    license_match: dict  # {"pattern", "how", "stanza"}: how the licence was found
    usable: bool  # music under a redistributable licence
    reason: str
    sidecar: dict = field(default_factory=dict)  # title/artist/album from an album.json beside it

    @property
    def track_id(self) -> str:
        return f"recording/{self.package}/{self.relative_path}"


@dataclass
class Clip:
    """Everything a caption states, as fields (written to `<id>.json`)."""

    id: str
    track_id: str
    clip_index: int
    clips_in_track: int
    split: str
    caption: str
    domain: str  # "recording"
    game: str
    title: str | None
    title_source: str | None  # "tag" | "album.json" | "file name"
    artist: str | None
    album: str | None
    genre: str | None  # the genre tag as caption words (filler like "soundtrack" removed)
    moods: list[str]  # MOOD_WORDS values in the caption
    caption_keywords: list[str]  # the name words that gave `moods`
    tags: dict  # every non-empty tag of the file, raw
    bpm: int | None  # stated tempo: estimate rounded, only with enough beat confidence
    bpm_estimate: float | None  # essentia RhythmExtractor2013 (multifeature), None without essentia
    beat_confidence: float | None
    key: str | None  # essentia KeyExtractor, e.g. "D minor"; None for silence or without essentia
    key_strength: float | None
    source_package: str
    source_version: str | None
    source_path: str
    source_member: str | None
    license: str
    copyright: str
    license_match: dict
    start_s: float  # where the clip starts in the source file
    duration_s: float
    gain_db: float  # the track's gain
    sample_rate: int


# ---------------------------------------------------------------------------------------------
# Packages and their audio files
# ---------------------------------------------------------------------------------------------


def check_package_name(name: str) -> None:
    if name in RESERVED_PACKAGES:
        raise ValueError(f"{name} is reserved for evaluation and must never become training data")


def installed_package(name: str) -> Package:
    """Read an installed package from the dpkg database; ValueError when it is not installed."""
    check_package_name(name)
    if shutil.which("dpkg-query") is None:
        raise ValueError("dpkg-query not found: this builder reads installed Debian packages")
    status = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", name],
                            capture_output=True, text=True)
    state, _, version = status.stdout.partition("\t")
    if status.returncode != 0 or not state.endswith(" installed"):
        raise ValueError(f"package {name} is not installed (apt-get install {name})")
    listing = subprocess.run(["dpkg-query", "-L", name], capture_output=True, text=True, check=True)
    copyright_path = Path("/usr/share/doc") / name / "copyright"
    text = copyright_path.read_text(errors="replace") if copyright_path.is_file() else ""
    return Package(name, listing.stdout.split("\n"), text, version or None)


def _archive_members(path: str) -> list[str]:
    if not path.lower().endswith(ARCHIVE_SUFFIXES) or not zipfile.is_zipfile(path):
        return []
    with zipfile.ZipFile(path) as archive:
        return sorted(name for name in archive.namelist()
                      if not name.endswith("/") and Path(name).suffix.lower() in AUDIO_EXTENSIONS)


def _album_sidecar(directory: Path, cache: dict) -> dict:
    """album.json beside the audio (Warzone 2100's format): file name -> title/artist/album."""
    if directory not in cache:
        cache[directory] = {}
        try:
            album = json.loads((directory / "album.json").read_text())
            for entry in album.get("tracks", []):
                cache[directory][entry["filename"]] = {
                    "title": entry.get("title"), "artist": entry.get("author") or album.get("author"),
                    "album": album.get("title")}
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass  # no album.json, or not in that format: nothing to add
    return cache[directory]


def list_tracks(package: Package) -> list[Track]:
    """Every audio file of `package` (sorted), with its licence and whether this builder uses it."""
    check_package_name(package.name)
    found = []  # (installed path, member, where the file sits for licence matching)
    for path in sorted(p for p in package.files if p and os.path.isfile(p)):
        if Path(path).suffix.lower() in AUDIO_EXTENSIONS:
            found.append((path, None, path))
        for member in _archive_members(path):
            found.append((path, member, str(Path(path).parent / member)))
    if not found:
        return []
    root = os.path.commonpath([str(Path(logical).parent) for _, _, logical in found])
    machine_readable = is_machine_readable(package.copyright_text)
    parsed = parse_copyright(package.copyright_text) if machine_readable else None
    freeform = None if machine_readable else FREEFORM_LICENSES.get(package.name)
    game = GAME_NAMES.get(package.name) or (parsed and parsed.upstream_name) or package.name
    tracks, sidecars = [], {}
    for path, member, logical in found:
        if parsed is not None:
            match = match_file(parsed, logical)
            licence, holders = match.license, match.copyright
            how = {"pattern": match.pattern, "how": match.how, "stanza": match.stanza}
        elif freeform is not None:
            licence, holders = freeform
            how = {"pattern": None, "how": "free-form copyright file, read by hand (FREEFORM_LICENSES)",
                   "stanza": None}
        else:
            licence, holders, how = None, None, {"pattern": None, "how": "not matched", "stanza": None}
        is_music = "music" in (part.lower() for part in Path(logical).parent.parts)
        redistributable, verdict = usable_for_training(licence, holders)
        if not is_music:
            reason = "not under a 'music' folder (sound effect or speech; not this builder's)"
        elif parsed is None and freeform is None:
            reason = "copyright file is not machine-readable (DEP-5) and the package is not in FREEFORM_LICENSES"
        elif licence is None:
            reason = "no Files stanza of the copyright file matches it"
        else:
            reason = verdict
        sidecar = {} if member else _album_sidecar(Path(path).parent, sidecars).get(Path(path).name, {})
        tracks.append(Track(
            package=package.name, path=path, member=member, relative_path=os.path.relpath(logical, root),
            game=game, package_version=package.version, license=licence,
            copyright=holders, license_match=how, usable=is_music and redistributable, reason=reason,
            sidecar=sidecar))
    return tracks


# ---------------------------------------------------------------------------------------------
# One track -> its clips
# ---------------------------------------------------------------------------------------------


@contextmanager
def _local_file(track: Track):
    """The track as a file on disk: itself, or its archive member copied to a scratch folder."""
    if track.member is None:
        yield Path(track.path)
        return
    with zipfile.ZipFile(track.path) as archive, tempfile.TemporaryDirectory(prefix="recording-") as scratch:
        target = Path(scratch) / f"member{Path(track.member).suffix.lower()}"
        with archive.open(track.member) as source, open(target, "wb") as sink:
            shutil.copyfileobj(source, sink)
        yield target


def scan_levels(path: Path) -> tuple[float, np.ndarray, float, dict]:
    """(frame length in s, per-frame "sounding" flags, peak, tags) of a file, decoded block by block
    at its own rate (frames of about FRAME_SECONDS)."""
    with sf.SoundFile(str(path)) as handle:
        frame = max(1, round(FRAME_SECONDS * handle.samplerate))
        frame_seconds = frame / handle.samplerate
        tags = {k: v.strip() for k, v in handle.copy_metadata().items() if v and v.strip()}
        peaks = []
        for block in handle.blocks(blocksize=frame * 20, dtype="float32", always_2d=True):
            magnitude = np.abs(block).max(axis=1)  # (S_block,)
            padded = np.pad(magnitude, (0, -len(magnitude) % frame))
            peaks.append(padded.reshape(-1, frame).max(axis=1))
    peaks = np.concatenate(peaks) if peaks else np.zeros(0, dtype=np.float32)
    return frame_seconds, peaks >= 10.0 ** (SILENCE_DB / 20.0), float(peaks.max(initial=0.0)), tags


def plan_clips(sounding: np.ndarray, frame_seconds: float, max_seconds: float,
               min_seconds: float) -> list[tuple[float, float]]:
    """(start, duration) in seconds of the clips of a track from its per-frame sounding flags."""
    loud = np.flatnonzero(sounding)
    if loud.size == 0:
        return []
    first, end = int(loud[0]), int(loud[-1]) + 1  # frames [first, end) hold the sound
    per_clip = max(1, int(max_seconds / frame_seconds + 1e-9))
    clips = []
    for start in range(first, end, per_clip):
        stop = min(start + per_clip, end)
        if (stop - start) * frame_seconds + 1e-9 < min_seconds:
            continue
        if sounding[start:stop].mean() < MIN_SOUND_FRACTION:
            continue
        clips.append((round(start * frame_seconds, 4), round((stop - start) * frame_seconds, 4)))
    return clips


def clip_id(track: Track, index: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{track.package}__{track.relative_path.replace('/', '__')}")
    return f"{slug}-c{index:03d}"


def build_track(track: Track, out_dir: Path, max_seconds: float, min_seconds: float,
                use_analysis: bool) -> tuple[list[dict], dict | None]:
    """Cut `track` into clips under `out_dir`; returns (clip records, failure record or None)."""
    split = split_of(track.track_id)
    first = out_dir / split / f"{clip_id(track, 0)}.json"
    if first.exists():  # resumed run: done when every clip's json (written last) exists
        count = json.loads(first.read_text())["clips_in_track"]
        done = [out_dir / split / f"{clip_id(track, i)}.json" for i in range(count)]
        if all(path.exists() for path in done):
            return [json.loads(path.read_text()) for path in done], None
    stage = "read"
    try:
        with _local_file(track) as path:
            frame_seconds, sounding, peak, tags = scan_levels(path)
            spans = plan_clips(sounding, frame_seconds, max_seconds, min_seconds)
            if not spans:
                raise ValueError(f"no clip of at least {min_seconds} s with sound above {SILENCE_DB} dBFS")
            gain = 10.0 ** (TARGET_PEAK_DB / 20.0) / peak
            facts = describe_track(tags, track.sidecar, Path(track.member or track.path).stem,
                                   Path(track.relative_path).parent.name or None)
            records = []
            for index, (start_s, duration_s) in enumerate(spans):
                stage = f"clip {index}"
                audio = load_audio(path, SAMPLE_RATE, offset=start_s, duration=duration_s).numpy() * gain
                fade = min(round(FADE_SECONDS * SAMPLE_RATE), audio.shape[1] // 2)
                ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
                audio[:, :fade] *= ramp
                audio[:, audio.shape[1] - fade:] *= ramp[::-1]
                estimates = analyse(audio, SAMPLE_RATE) if use_analysis else {
                    "key": None, "key_strength": None, "bpm_estimate": None, "beat_confidence": None, "bpm": None}
                clip = Clip(
                    id=clip_id(track, index), track_id=track.track_id, clip_index=index,
                    clips_in_track=len(spans), split=split, caption="", domain="recording", game=track.game,
                    **facts, tags=tags, **estimates, source_package=track.package,
                    source_version=track.package_version, source_path=track.path, source_member=track.member,
                    license=track.license, copyright=track.copyright, license_match=track.license_match,
                    start_s=start_s, duration_s=round(audio.shape[1] / SAMPLE_RATE, 3),
                    gain_db=round(20.0 * np.log10(gain), 2), sample_rate=SAMPLE_RATE)
                clip.caption = make_caption(track.game, clip.title, clip.moods, clip.genre, clip.bpm, clip.key)
                target = out_dir / split
                save_audio(target / f"{clip.id}.flac", audio, SAMPLE_RATE, "PCM_16", overwrite=True)
                (target / f"{clip.id}.txt").write_text(clip.caption + "\n")
                # The JSON goes last: its presence marks the clip as complete for resumed runs.
                (target / f"{clip.id}.json").write_text(json.dumps(asdict(clip), indent=1) + "\n")
                records.append(asdict(clip))
        return records, None
    except Exception as error:  # one bad file must not stop the others
        return [], {"track_id": track.track_id, "package": track.package, "path": track.path,
                    "member": track.member, "stage": stage, "error": f"{type(error).__name__}: {error}"[:1000]}


def _build_task(arguments):
    return build_track(*arguments)


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def select_tracks(tracks: list[Track], limit: int | None) -> list[Track]:
    """The usable tracks, round-robin over packages (so a small --limit spans every package)."""
    queues: dict[str, list[Track]] = {}
    for track in tracks:
        if track.usable:
            queues.setdefault(track.package, []).append(track)
    ordered = []
    for index in range(max((len(queue) for queue in queues.values()), default=0)):
        ordered += [queue[index] for _, queue in sorted(queues.items()) if index < len(queue)]
    return ordered[:limit]


def build_recordings(out_dir, packages: list[Package], *, max_seconds: float = 30.0,
                     min_seconds: float = 4.0, workers: int = 1, limit: int | None = None,
                     use_analysis: bool | None = None, verbose: bool = True) -> dict:
    """Cut every usable track of `packages` into clips under `out_dir`; returns a summary dict.
    `use_analysis` None: estimate key and tempo when essentia is importable."""
    for package in packages:
        check_package_name(package.name)
    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"need 0 < min_seconds <= max_seconds, got {min_seconds} and {max_seconds}")
    if use_analysis is None:
        use_analysis = importlib.util.find_spec("essentia") is not None
    out_dir = claim_output(out_dir, {
        "max_seconds": max_seconds, "min_seconds": min_seconds, "sample_rate": SAMPLE_RATE,
        "silence_db": SILENCE_DB, "fade_seconds": FADE_SECONDS, "target_peak_db": TARGET_PEAK_DB,
        "analysis": "essentia" if use_analysis else None})

    tracks = [track for package in packages for track in list_tracks(package)]
    selected = select_tracks(tracks, limit)
    started = time.perf_counter()
    tasks = [(track, out_dir, max_seconds, min_seconds, use_analysis) for track in selected]
    results = run_tasks(_build_task, tasks, workers, maxtasksperchild=20)
    wall = time.perf_counter() - started
    failures = [failure for _, failure in results if failure]
    if verbose:
        for failure in failures:
            print(f"FAILED {failure['track_id']} ({failure['stage']}): {failure['error']}", file=sys.stderr)

    index = write_index(out_dir, failures)
    recordings_manifest.write_licenses(out_dir, tracks, index, failures, {t.track_id for t in selected})
    recordings_manifest.write_attribution(out_dir, index)
    built = sum(len(records) for records, _ in results)
    summary = {"tracks_considered": len(tracks), "tracks_selected": len(selected), "clips": built,
               "failed": len(failures), "wall_s": round(wall, 1), "indexed": len(index),
               "packages": recordings_manifest.package_counts(tracks, index)}
    if verbose:
        print(json.dumps(summary))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="output folder (not needed with --list)")
    parser.add_argument("--packages", required=True, help="comma-separated installed Debian packages")
    parser.add_argument("--max-seconds", type=float, default=30.0, help="longest clip")
    parser.add_argument("--min-seconds", type=float, default=4.0, help="shortest clip kept")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--limit", type=int, default=None, help="first N usable tracks (round-robin over packages)")
    parser.add_argument("--list", action="store_true", help="print every audio file, its licence and verdict; exit")
    args = parser.parse_args(argv)

    def work():
        names = [name.strip() for name in args.packages.split(",") if name.strip()]
        if not names:
            raise ValueError("--packages names no package")
        for name in names:
            check_package_name(name)  # refuse reserved names before touching dpkg
        packages = [installed_package(name) for name in names]
        if args.list:
            for track in (t for package in packages for t in list_tracks(package)):
                where = track.path + (f"!{track.member}" if track.member else "")
                verdict = "use" if track.usable else "skip"
                print(f"{track.package}\t{where}\t{track.license}\t{verdict}\t{track.reason}")
            return None
        if not args.out:
            raise ValueError("--out is required unless --list is given")
        return build_recordings(args.out, packages, max_seconds=args.max_seconds,
                                min_seconds=args.min_seconds, workers=args.workers, limit=args.limit)

    return run_main(work)


if __name__ == "__main__":
    sys.exit(main())
