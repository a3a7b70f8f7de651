"""Counting what a dataset had to skip, so a run can say it at the end instead of crashing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path


class SkipReport:
    """Skipped files by reason. Each file is counted once, however often it was met."""

    def __init__(self):
        self.skipped: dict[str, str] = {}  # path -> reason
        self.notes: Counter[str] = Counter()  # non-fatal oddities, e.g. "no caption"

    def skip(self, path: str, reason: str) -> None:
        self.skipped.setdefault(str(path), reason)

    def note(self, what: str, count: int = 1) -> None:
        self.notes[what] += count

    def merge(self, other: SkipReport | dict) -> None:
        data = other.to_dict() if isinstance(other, SkipReport) else other
        for path, reason in data.get("skipped", {}).items():
            self.skip(path, reason)
        for what, count in data.get("notes", {}).items():
            self.notes[what] = max(self.notes[what], count)  # every rank scans the same folder

    def __len__(self) -> int:
        return len(self.skipped)

    def by_reason(self) -> Counter[str]:
        return Counter(_reason_kind(reason) for reason in self.skipped.values())

    def to_dict(self) -> dict:
        return {"skipped": dict(self.skipped), "notes": dict(self.notes)}

    def summary(self, max_examples: int = 5) -> str:
        if not self.skipped and not self.notes:
            return "data: no files skipped"
        lines = [f"data: skipped {len(self.skipped)} file(s)"]
        for kind, count in self.by_reason().most_common():
            lines.append(f"  {count} x {kind}")
        for path, reason in list(self.skipped.items())[:max_examples]:
            lines.append(f"    e.g. {path}: {reason}")
        for what, count in self.notes.most_common():
            lines.append(f"  note: {count} x {what}")
        return "\n".join(lines)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


def _reason_kind(reason: str) -> str:
    """The stable part of a reason, for grouping ("corrupt or unreadable (...)" -> "corrupt or unreadable")."""
    return reason.split(" (", 1)[0].split(":", 1)[0]
