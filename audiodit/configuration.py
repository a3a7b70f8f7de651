"""Typed configuration machinery: dataclasses <-> dicts <-> YAML, and `key=value` overrides.

Every component has a dataclass with a comment on each field (see `audiodit/config.py` for the
training/data/diffusion ones and the model modules for VAE, DiT and text encoder). This module
knows nothing about those components; it only converts and validates, failing loudly:

* an unknown key is a `ConfigError` naming the full dotted key and the valid choices;
* a value of the wrong type is a `ConfigError` naming the key, the expected type and the value.

Overrides follow nanoGPT's configurator idea, typed: `dit.depth=12`, `training.lr=3e-4`,
`data.captions=[a, b]`; the right-hand side is parsed as YAML, then checked against the field.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is invalid. The message names the dotted key."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Return `value` checked (and minimally converted) against the annotation `tp`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(value, option, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping for {tp.__name__}, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
            return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected int, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected float, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected str, got {value!r}")
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}")
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    """Build dataclass `cls` from a (nested) dict, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(
                f"unknown config key '{prefix}{key}'; valid keys: {', '.join(sorted(fields))}"
            )
        kwargs[key] = _coerce(value, hints[key], prefix + key)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {err}") from err


def to_dict(obj: Any) -> Any:
    """Plain nested dict/list view of a dataclass (tuples become lists, for YAML)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split `a.b.c=value` into (['a', 'b', 'c'], parsed value). The value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip().lstrip("-")
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override '{text}': value is not valid YAML ({err})") from err
    return key.split("."), value


def apply_overrides(cfg: T, overrides: list[str]) -> T:
    """Return a new config with each `dotted.key=value` applied (validated like a file)."""
    data = to_dict(cfg)
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for depth, part in enumerate(path[:-1]):
            if not isinstance(node, dict) or part not in node:
                raise ConfigError(f"unknown config key '{'.'.join(path[: depth + 1])}'")
            node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(f"unknown config key '{'.'.join(path)}'")
        if path[-1] not in node:
            valid = ", ".join(sorted(node))
            raise ConfigError(f"unknown config key '{'.'.join(path)}'; valid keys: {valid}")
        node[path[-1]] = value
    return from_dict(type(cfg), data)


BASE_KEY = "base"  # a config file's `base: other.yaml` (relative to it): start from that file


def _merge(base: dict, child: dict) -> dict:
    """`child` over `base`: mappings merge key by key, anything else (lists too) replaces."""
    merged = dict(base)
    for key, value in child.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else value
    return merged


def read_yaml_with_base(path: str | os.PathLike, _chain: tuple[Path, ...] = ()) -> dict:
    """The mapping in a YAML file, over the file its `base:` key names (recursively), so a variant
    holds only its differences (audiocraft's `defaults:` idea). The key itself is removed."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" + (f" (the base of {_chain[-1]})" if _chain else ""))
    if path.resolve() in _chain:
        raise ConfigError(f"{path}: `{BASE_KEY}:` goes round in a circle ({' -> '.join(map(str, _chain))} -> {path})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file holds a mapping of keys, got {type(data).__name__}")
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{path}: `{BASE_KEY}:` must name a YAML file, got {base!r}")
    return _merge(read_yaml_with_base(path.parent / base, (*_chain, path.resolve())), data)


def load_yaml(cls: type[T], path: str | os.PathLike) -> T:
    """Load dataclass `cls` from a YAML file (and the `base:` file it names); errors name the file
    and the key."""
    path = Path(path)
    data = read_yaml_with_base(path)
    try:
        return from_dict(cls, data)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from err


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def save_yaml(cfg: Any, path: str | os.PathLike) -> None:
    """Write the config atomically (temp file + rename), so a crash never leaves half a file."""
    atomic_write_text(Path(path), to_yaml(cfg))


_UMASK: int | None = None


def new_file_mode() -> int:
    """The permission bits `open()` gives a new file under the umask (0o666 & ~umask). The umask is
    read once (reading it means setting it, which would race with other threads each time)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, new_file_mode())  # mkstemp makes 0600; the file honours the umask like open() would
    except OSError:
        pass  # a file system without modes (vfat, some network mounts): its default
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_directory(destination: Path, replace: bool = False):
    """Yield an empty directory beside `destination`; when the block ends without an error it is
    renamed to `destination` (an existing one is removed first only with `replace`, else
    FileExistsError), and on any error it is deleted. A failure never leaves half a directory."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=destination.parent, prefix=f".{destination.name}."))
    try:
        yield staging
        if destination.exists():
            if not replace:
                raise FileExistsError(f"{destination} exists")
            shutil.rmtree(destination)
        staging.rename(destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = [
    "ConfigError",
    "apply_overrides",
    "atomic_write_text",
    "from_dict",
    "load_yaml",
    "read_yaml_with_base",
    "parse_override",
    "save_yaml",
    "to_dict",
    "to_yaml",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (`error: ...`) and exit 2: the data tools' and
    corpus builders' command lines."""

    def error(self, message):
        sys.stderr.write(f"error: {message}\n")
        sys.exit(2)
