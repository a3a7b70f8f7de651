"""Digests of weights files, and what a pipeline directory may name for loading.

A flipped or zeroed byte inside a safetensors file still loads and silently changes the audio. So
every directory we write weights into (pipeline exports, VAE exports, training checkpoints) gets a
`DIGESTS` file: the SHA-256 of each `.safetensors` file under it, by relative path. Loading checks
it and names the file that differs. A directory without one (written before digests existed, or
by hand) loads with a warning; a digests file that lists a missing file, or a file that does not
match, is an error.

`model_index.json` names a Python module and class for every component, and diffusers' loader
imports whatever module it names. `check_model_index` allows only the modules and classes an
audiodit pipeline is made of, before anything is imported.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from audiodit.configuration import atomic_write_text

logger = logging.getLogger(__name__)

DIGESTS = "weights_digests.json"
CHUNK_BYTES = 1 << 20

# The (module, class) pairs a model_index.json of ours may name; diffusers schedulers by any class
# name that diffusers itself exports (checked against the installed diffusers, not imported blindly).
ALLOWED_COMPONENTS = {
    ("audiodit.models.vae", "AudioVAE"),
    ("audiodit.models.dit", "AudioDiTModel"),
    ("audiodit.models.key_classifier", "LatentKeyClassifier"),
    ("audiodit.conditioners", "CLIPTextConditioner"),
    ("audiodit.conditioners", "CLAPTextConditioner"),
}


class IntegrityError(ValueError):
    """A weights file differs from its recorded digest, or a directory names code we do not load."""


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def state_digest(state: dict) -> str:
    """SHA-256 of a state dict's tensors (name, then float32 bytes, in name order): equal weights,
    equal digest, whatever device or dtype they were held in."""
    digest = hashlib.sha256()
    for name, value in sorted(state.items()):
        digest.update(name.encode())
        digest.update(value.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def write_digests(directory: str | Path) -> dict[str, str]:
    """Record the SHA-256 of every .safetensors file under `directory` in `directory/DIGESTS`."""
    directory = Path(directory)
    digests = {path.relative_to(directory).as_posix(): file_digest(path)
               for path in sorted(directory.rglob("*.safetensors")) if path.is_file()}
    atomic_write_text(directory / DIGESTS, json.dumps({"sha256": digests}, indent=2) + "\n")
    return digests


def verify_digests(directory: str | Path, what: str = "", only: str = "") -> bool:
    """Check every file `directory/DIGESTS` lists (with `only`, those under that sub-folder, e.g.
    "vae/"). Returns False (and warns) when there is no digests file; raises IntegrityError naming
    the file when one is missing or differs."""
    directory = Path(directory)
    label = what or str(directory)
    record = directory / DIGESTS
    if not record.is_file():
        logger.warning("%s has no %s: its weights files cannot be checked for damage", label, DIGESTS)
        return False
    try:
        digests = json.loads(record.read_text(encoding="utf-8"))["sha256"]
        if not isinstance(digests, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise IntegrityError(f"{record} is not a valid digests file") from None
    digests = {name: expected for name, expected in digests.items() if name.startswith(only)}
    for name, expected in digests.items():
        path = directory / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise IntegrityError(f"{record} names a file outside {directory}: {name!r}")
        if not path.is_file():
            raise IntegrityError(f"{label}: {name} is missing (listed in {DIGESTS})")
        if file_digest(path) != expected:
            raise IntegrityError(f"{label}: {name} is damaged (its SHA-256 differs from the one recorded "
                                 f"in {DIGESTS}); restore it from a good copy")
    unlisted = sorted(path.relative_to(directory).as_posix() for path in (directory / only).rglob("*.safetensors")
                      if path.relative_to(directory).as_posix() not in digests)
    if unlisted:
        logger.warning("%s: %s not listed in %s, not checked", label, ", ".join(unlisted), DIGESTS)
    return True


def check_model_index(directory: str | Path) -> None:
    """IntegrityError unless every component `directory/model_index.json` names is one of ours
    (ALLOWED_COMPONENTS) or a diffusers scheduler, so loading imports no other code."""
    import diffusers

    index_path = Path(directory) / "model_index.json"
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise IntegrityError(f"{index_path}: not readable JSON ({err})") from None
    for name, entry in index.items():
        if name.startswith("_") or not isinstance(entry, list):
            continue  # config values, not components
        if len(entry) != 2:
            raise IntegrityError(f"{index_path}: component {name!r} must be [module, class], got {entry!r}")
        module, class_name = entry
        if module is None and class_name is None:
            continue  # an optional component left out
        if not isinstance(module, str) or not isinstance(class_name, str):
            raise IntegrityError(f"{index_path}: component {name!r} must name a module and a class, got {entry!r}")
        if (module, class_name) in ALLOWED_COMPONENTS:
            continue
        if module == "diffusers" and class_name.endswith("Scheduler") and hasattr(diffusers, class_name):
            continue
        raise IntegrityError(f"{index_path}: component {name!r} names {module}.{class_name}, which an audiodit "
                             "pipeline does not load (only audiodit's own components and diffusers schedulers)")
