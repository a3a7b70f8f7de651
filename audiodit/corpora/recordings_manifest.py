"""The licence manifest of a recordings folder: OUT/licenses.jsonl and OUT/ATTRIBUTION.md.

`licenses.jsonl` has one row per audio file of every package a run looked at: its licence and
copyright as the package's copyright file states them, how the file was matched, whether clips of
it are in OUT (`used`) and why or why not. Rows of packages a later run did not look at are kept.

`ATTRIBUTION.md` credits every track with clips in OUT, per package: licences, copyright holders,
composers named in the files' tags or album.json, and the changes made. Creative Commons BY and
BY-SA ask for the title, author, source, licence and changes of each work; whoever publishes the
clips or a model trained on them should ship this file with it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path


def _clips_by_track(index: list[dict]) -> dict[str, list[dict]]:
    clips = defaultdict(list)
    for record in index:
        clips[record["track_id"]].append(record)
    return clips


def write_licenses(out_dir: Path, tracks: list, index: list[dict], failures: list[dict],
                   selected: set[str]) -> list[dict]:
    """Write OUT/licenses.jsonl for `tracks` (all audio files of this run's packages); returns the rows."""
    clips = _clips_by_track(index)
    failed = {failure["track_id"]: failure for failure in failures}
    rows = []
    for track in tracks:
        used = bool(clips.get(track.track_id))
        if used or not track.usable:
            reason = track.reason
        elif track.track_id in failed:
            reason = f"usable, but no clip: {failed[track.track_id]['error']}"
        else:
            reason = "usable, not built yet" + ("" if track.track_id in selected else " (--limit)")
        rows.append({
            "package": track.package, "path": track.path, "member": track.member, "track_id": track.track_id,
            "license": track.license, "copyright": track.copyright, "license_match": track.license_match,
            "used": used, "clips": len(clips.get(track.track_id, [])),
            "seconds": round(sum(r["duration_s"] for r in clips.get(track.track_id, [])), 1),
            "reason": reason})
    path = out_dir / "licenses.jsonl"
    packages = {track.package for track in tracks}
    if path.exists():  # keep what earlier runs wrote about other packages
        earlier = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        rows += [row for row in earlier if row["package"] not in packages]
    rows.sort(key=lambda row: (row["package"], row["path"], row["member"] or ""))
    with open(path, "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in rows)
    return rows


def package_counts(tracks: list, index: list[dict]) -> dict:
    """Per package: audio files, music files, usable and used tracks, clips, hours, exclusions."""
    clips = _clips_by_track(index)
    counts = {}
    for package in sorted({track.package for track in tracks}):
        own = [track for track in tracks if track.package == package]
        music = [track for track in own if "not under a 'music' folder" not in track.reason]
        used = [track for track in own if clips.get(track.track_id)]
        seconds = sum(r["duration_s"] for track in used for r in clips[track.track_id])
        counts[package] = {
            "audio_files": len(own), "music_files": len(music),
            "usable_tracks": sum(track.usable for track in own), "used_tracks": len(used),
            "clips": sum(len(clips[track.track_id]) for track in used), "hours": round(seconds / 3600, 3),
            "excluded": dict(Counter(track.reason for track in own if not track.usable))}
    return counts


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _duration(seconds: float) -> str:
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def write_attribution(out_dir: Path, index: list[dict]) -> None:
    """Write OUT/ATTRIBUTION.md for every track with clips in OUT (from the clip records)."""
    tracks_by_package = defaultdict(dict)
    for track_id, records in sorted(_clips_by_track(index).items()):
        tracks_by_package[records[0]["source_package"]][track_id] = records
    settings_path = out_dir / "render_config.json"
    settings = json.loads(settings_path.read_text()) if settings_path.exists() else {}
    lines = [
        "# Attribution", "",
        "The audio clips in this folder, and any model trained on them, derive from music shipped in the "
        "Debian packages below. Changes made to every track: cut into clips of at most "
        f"{settings.get('max_seconds', '?')} s, silence at its ends removed, resampled to 48 kHz stereo, "
        "one gain per track (peak at "
        f"{settings.get('target_peak_db', '?')} dBFS), "
        f"{round(1000 * settings.get('fade_seconds', 0))} ms fades at the cuts.", "",
        "Licence texts: `/usr/share/common-licenses/` on Debian systems and each package's "
        "`/usr/share/doc/<package>/copyright`; Creative Commons licences at "
        "https://creativecommons.org/licenses/ (CC-BY-SA: adaptations must carry the same licence).",
    ]
    for package, tracks in sorted(tracks_by_package.items()):
        first = next(iter(tracks.values()))[0]
        seconds = sum(r["duration_s"] for records in tracks.values() for r in records)
        version = f" {first['source_version']}" if first.get("source_version") else ""
        lines += ["", f"## {first['game']} (Debian package `{package}`{version})", "",
                  f"{_count(len(tracks), 'track')}, {_duration(seconds)} of clips.", "", "Licences and copyright holders "
                  f"(from `/usr/share/doc/{package}/copyright`):", ""]
        holders = defaultdict(set)
        for records in tracks.values():
            holders[records[0]["license"]].add(records[0]["copyright"] or "not stated")
        for licence, statements in sorted(holders.items()):
            count = sum(records[0]["license"] == licence for records in tracks.values())
            lines.append(f"- {licence} ({_count(count, 'track')}):")
            holder_lines = {line for text in statements for line in text.splitlines()}
            lines += [f"  - {line}" for line in sorted(holder_lines)]
        composers = sorted({records[0]["artist"] for records in tracks.values() if records[0].get("artist")})
        if composers:
            lines += ["", "Composers named in the files' tags or album.json: " + ", ".join(composers) + "."]
        lines += ["", "Tracks:", ""]
        for records in tracks.values():
            record = records[0]
            name = Path(record["source_member"] or record["source_path"]).name
            title = f"'{record['title']}' ({name})" if record.get("title") else name
            credit = f" by {record['artist']}" if record.get("artist") else ""
            notice = record["tags"].get("copyright")
            lines.append(f"- {title}{credit}: {record['license']}" + (f"; tag: {notice}" if notice else ""))
    (out_dir / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n")
