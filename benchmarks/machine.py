"""What the benchmarks record about the machine they ran on, and how they write their reports."""

import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def emit_report(text: str, out: str | None) -> None:
    """Print a markdown report and, given a path, write it there too (whole or not at all)."""
    from audiodit.configuration import atomic_write_text

    print(text)
    if out:
        atomic_write_text(Path(out), text + "\n")
