"""Who owns an installed file of a Debian package, and may we redistribute it: `debian/copyright`.

Debian's machine-readable copyright format (DEP-5,
https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/) lists `Files` stanzas, each
with glob patterns over paths of the upstream *source* tree, a `Copyright` and a `License`; the
last stanza whose pattern matches a file wins.

Installed paths are not source paths (`data/music/a.ogg` is installed as
`/usr/share/games/x/music/a.ogg`), so a pattern matches an installed path when it matches a
suffix of it that starts at a "/" (`how="suffix"`), or, failing that, when it does after dropping
leading source folders that the package does not install (`how="suffix without 'data/'"`). A
shortened pattern must still name a folder and must not start with a wildcard, so `data/a.ogg`
never matches every `a.ogg` and `data/*/a.ogg` never becomes `*/a.ogg`.

Licence policy (`licence_verdict`): usable when anyone may copy and modify the audio, commercially
too: the GPL family, CC-BY and CC-BY-SA of any version, CC0, public domain, and permissive
licences (MIT/Expat, BSD, ISC, Zlib, Apache, Artistic). NonCommercial and NoDerivatives licences
are non-free; anything unknown is refused.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

FREE_LICENCE = re.compile(
    r"(a?gpl|lgpl|cc-by|cc-by-sa|cc0|public-?domain|pd|mit|expat|x11|bsd|isc|zlib|apache|artistic)"
    r"([-_.+]\S*|\d\S*)?",
    re.IGNORECASE,
)
NON_FREE_LICENCE = re.compile(r"cc-by(-sa)?-(nc|nd)\b|cc-by-nc|cc-by-nd|non-?free|proprietary", re.IGNORECASE)


@dataclass(frozen=True)
class Stanza:
    """One `Files` paragraph."""

    patterns: tuple[str, ...]  # source-tree globs as written ("./" removed)
    copyright: str  # the Copyright field, one holder per line
    license: str  # the License field's first line: the licence expression


@dataclass(frozen=True)
class CopyrightFile:
    upstream_name: str | None
    stanzas: list[Stanza]


@dataclass(frozen=True)
class Match:
    """What governs one installed file; all None when no stanza matches."""

    license: str | None
    copyright: str | None
    pattern: str | None  # the pattern that matched
    how: str | None  # "suffix" or "suffix without '<dropped folders>/'"
    stanza: int | None  # index of the Files stanza in the file


# Debian packages whose music is held out for evaluation: no builder reads them. Files whose
# copyright stanza credits one of their projects may be the same audio (UFO:AI credits some tracks
# to "Nexuiz GPLed Data"), so `usable_for_training` keeps those out of training too.
RESERVED_PACKAGES = frozenset({"singularity-music", "nexuiz-music", "fretsonfire-songs-muldjord"})
RESERVED_CREDITS = re.compile(r"nexuiz|singularity|frets\s*on\s*fire|fretsonfire", re.IGNORECASE)

# Packages whose copyright file is free-form, read by hand: package -> (licence, copyright), for
# every builder (recordings, sound library). Both Wesnoth files' only statement covering the game's
# data is the project-wide "GNU General Public License version 2 or at your option any later
# version"; wesnoth-1.16-music's own Vorbis tags agree (license=GPL, copyright=<composer> (C) <year>),
# and the composers are credited per track.
_WESNOTH = ("GPL-2+", "2003-2009 David White and the Battle for Wesnoth contributors")
FREEFORM_LICENSES = {"wesnoth-1.16-music": _WESNOTH, "wesnoth-1.16-data": _WESNOTH}


def _paragraphs(text: str) -> list[dict[str, str]]:
    """Paragraphs as field name (lower case) -> value; continuation lines joined with newlines."""
    paragraphs, fields, name = [], {}, None
    for line in text.splitlines() + [""]:
        if not line.strip():
            if fields:
                paragraphs.append(fields)
            fields, name = {}, None
        elif line[0] in " \t" and name is not None:
            stripped = line.strip()
            fields[name] += "\n" + ("" if stripped == "." else stripped)
        elif ":" in line:
            name, value = line.split(":", 1)
            name = name.strip().lower()
            fields[name] = value.strip()
    return paragraphs


def is_machine_readable(text: str | None) -> bool:
    """Whether `text` is a DEP-5 file: its first paragraph declares the format."""
    paragraphs = _paragraphs(text or "")
    if not paragraphs:
        return False
    header = paragraphs[0]
    declared = header.get("format") or header.get("format-specification") or ""
    return bool(re.search(r"copyright-format|dep-?5", declared, re.IGNORECASE))


def parse_copyright(text: str) -> CopyrightFile:
    """The header's Upstream-Name and every Files stanza, in file order.

    Raises:
        ValueError: `text` is not a machine-readable (DEP-5) copyright file.
    """
    if not is_machine_readable(text):
        raise ValueError("not a machine-readable (DEP-5) copyright file: no Format header")
    paragraphs = _paragraphs(text)
    stanzas = []
    for fields in paragraphs:
        if "files" not in fields:
            continue
        patterns = tuple(p[2:] if p.startswith("./") else p for p in fields["files"].split())
        holders = "\n".join(line for line in fields.get("copyright", "").splitlines() if line.strip())
        licence = (fields.get("license") or "").split("\n")[0].strip()
        stanzas.append(Stanza(patterns, holders, licence))
    return CopyrightFile(paragraphs[0].get("upstream-name") or None, stanzas)


def _glob_regex(pattern: str) -> str:
    """DEP-5 globs: `*` any characters ("/" too), `?` one character, `\\` escapes the next one."""
    parts, index = [], 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            index += 1
            parts.append(re.escape(pattern[index]))
        elif char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(char))
        index += 1
    return "".join(parts)


@functools.lru_cache(maxsize=None)  # some copyright files list ~900 patterns, more than re's own cache
def _suffix_regex(pattern: str) -> re.Pattern:
    return re.compile(r"(?:^|/)" + _glob_regex(pattern) + r"\Z", re.DOTALL)


def _matches_suffix(pattern: str, path: str) -> bool:
    return _suffix_regex(pattern).search(path) is not None


def pattern_matches(pattern: str, path: str) -> str | None:
    """How `pattern` matches the installed `path` ("suffix", "suffix without 'x/'"), or None."""
    pattern = pattern[2:] if pattern.startswith("./") else pattern
    if _matches_suffix(pattern, path):
        return "suffix"
    folders = pattern.split("/")
    installed = set(path.split("/"))
    for dropped in range(1, len(folders) - 1):  # keep at least one folder and the file name
        if folders[dropped - 1] in installed:
            # Only a source-tree prefix the package does not install may go: "mtg/mods/tnt/sounds/*"
            # may lose "mtg/" but not "mods/tnt/", or it would claim every installed "sounds/" file.
            return None
        rest = "/".join(folders[dropped:])
        if rest.startswith(("*", "?")):
            return None
        if _matches_suffix(rest, path):
            return f"suffix without '{'/'.join(folders[:dropped])}/'"
    return None


def match_file(parsed: CopyrightFile, path: str) -> Match:
    """The stanza governing the installed `path`: the last one with a matching pattern."""
    found = Match(None, None, None, None, None)
    for index, stanza in enumerate(parsed.stanzas):
        for pattern in stanza.patterns:
            how = pattern_matches(pattern, path)
            if how is not None:
                found = Match(stanza.license, stanza.copyright, pattern, how, index)
                break
    return found


def _atom_problem(atom: str) -> str | None:
    atom = re.sub(r"\s+with\s+.*$", "", atom.strip(), flags=re.IGNORECASE)
    if NON_FREE_LICENCE.search(atom):
        return f"{atom} is non-free (NonCommercial, NoDerivatives or proprietary)"
    if not FREE_LICENCE.fullmatch(atom):
        return f"{atom} is not a known redistributable licence"
    return None


def licence_verdict(expression: str | None) -> tuple[bool, str]:
    """(usable, reason) for a DEP-5 licence expression.

    Grammar (DEP-5 "License" field): ", and" binds loosest, then "or", then "and"; "X with Y
    exception" is judged as X (an exception only adds permissions). "A or B" needs one usable
    alternative, "A and B" needs both.
    """
    if not expression or not expression.strip():
        return False, "no licence stated"
    problems = []
    for conjunct in re.split(r",\s*and\s+", expression.strip(), flags=re.IGNORECASE):
        alternative_problems = []
        for alternative in re.split(r"\s+or\s+", conjunct, flags=re.IGNORECASE):
            atoms = re.split(r"\s+and\s+", alternative, flags=re.IGNORECASE)
            found = [problem for problem in map(_atom_problem, atoms) if problem]
            if not found:
                alternative_problems = []
                break
            alternative_problems += found
        problems += alternative_problems
    if problems:
        return False, f"licence {expression!r} not usable: " + "; ".join(problems)
    return True, f"redistributable licence ({expression})"


def usable_for_training(expression: str | None, holders: str | None) -> tuple[bool, str]:
    """`licence_verdict`, and False for files credited to a project reserved for evaluation."""
    if RESERVED_CREDITS.search(holders or ""):
        return False, "credited to a project whose music is reserved for evaluation"
    return licence_verdict(expression)
