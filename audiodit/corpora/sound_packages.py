"""What each Debian sound package holds: its folders, the clips to make and every file's licence.

`PACKAGES` names, per package, the installed folder and how each sub-folder is read: a
`sound_names` context (drums, effects, loops...) or a reason to skip it (music, single-cycle
waveforms, spoken lines). `list_package` returns the clips to make (`Job`) and one licence row
per audio file, used or not and why: the licence and copyright are what the package's DEP-5
copyright file says for that file (`debian_copyright`), and only redistributable ones are used.

Hydrogen kits (`hydrogen_kits`): every instrument whose name says what drum it is gives one-shots
of up to HYDROGEN_LAYERS velocity layers (softest, middle, loudest); every kit with a kick, a snare
and a hi-hat also gives drum patterns, whose style, tempo, instruments and hi-hat placement are
drawn here (seeded per pattern) so the job lists the exact samples it plays. debian/copyright
names kits by their `.h2drumkit` archive, so a kit's files take that archive's licence.

Splits (90/5/5, `music21_works.split_of`, seed-independent): by source file, and by kit for
everything made from a Hydrogen kit, so a held-out kit's hits and patterns are all unseen.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audiodit.audio import AUDIO_EXTENSIONS
from audiodit.corpora import hydrogen_kits
from audiodit.corpora.debian_copyright import (FREEFORM_LICENSES, RESERVED_PACKAGES, Match, is_machine_readable,
                                            match_file, parse_copyright, usable_for_training)
from audiodit.corpora.music21_works import split_of
from audiodit.corpora.sound_names import CONTEXTS, Description, describe, words_of

PATTERN_TARGET_SECONDS = 8.0  # drum patterns last whole bars, at least this
HYDROGEN_LAYERS = 3  # velocity layers per instrument made into one-shots: softest, middle, loudest
SKIP = "skip: "


@dataclass(frozen=True)
class Package:
    """A Debian package of sounds: where they are installed and how each folder is read."""

    name: str
    root: str  # installed folder searched for audio files
    folders: tuple[tuple[str, str], ...]  # (glob over the path under root, sound_names context or SKIP + why)
    copyright_file: str | None = None  # default /usr/share/doc/<name>/copyright
    # (licence, copyright) of a package whose copyright file is free-form, read by hand
    # (debian_copyright.FREEFORM_LICENSES): it then governs every file
    freeform: tuple[str, str] | None = None

    @property
    def copyright_path(self) -> Path:
        return Path(self.copyright_file or f"/usr/share/doc/{self.name}/copyright")


_MUSIC = SKIP + "music folder: songs, not sounds"
_SPEECH = SKIP + "spoken lines of a game character: the name does not say the words"
PACKAGES = {package.name: package for package in [
    Package("hydrogen-drumkits", "/usr/share/hydrogen/data/drumkits", (("*", "hydrogen"),)),
    Package("sonic-pi-samples", "/usr/share/sonic-pi/samples", (
        ("ambi_*", "ambience"), ("bass_*", "instruments"), ("guit_*", "instruments"), ("loop_*", "loops"),
        ("bd_*", "drums"), ("drum_*", "drums"), ("sn_*", "drums"), ("perc_*", "drums"), ("tabla_*", "drums"),
        ("elec_*", "electronic"), ("glitch_*", "electronic"), ("mehackit_*", "effects"), ("misc_*", "effects"),
        ("vinyl_*", "effects"))),
    Package("lmms-common", "/usr/share/lmms/samples", (
        ("drums/*", "drums"), ("beats/*", "drum loops"), ("bassloops/*", "bass loops"),
        ("basses/*", "instruments"), ("instruments/*", "instruments"), ("stringsnpads/*", "instruments"),
        ("latin/*", "instruments"), ("effects/*", "effects"), ("misc/*", "effects"),
        ("shapes/*", SKIP + "single-cycle waveforms for synthesis, not sounds"),
        ("waveforms/*", SKIP + "single-cycle waveforms for synthesis, not sounds"))),
    Package("scratch", "/usr/share/scratch/Media/Sounds", (
        ("Animal/*", "animals"), ("Effects/*", "effects"), ("Electronic/*", "electronic"), ("Human/*", "human"),
        ("Instruments/*", "instruments"), ("Music Loops/*", "loops"), ("Percussion/*", "drums"),
        ("Vocals/*", "vocals"))),
    Package("freedroidrpg-data", "/usr/share/freedroidrpg/data", (
        ("sound/effects/bot_sounds/voice_samples/*", SKIP + "numbered voice samples: the name says nothing"),
        ("sound/effects/tux_ingame_comments/*", _SPEECH), ("sound/effects/bullets/*", "game weapons"),
        ("sound/effects/bot_sounds/*", "game robots"), ("sound/effects/*", "game effects"),
        ("sound/music/*", _MUSIC))),
    Package("supertux-data", "/usr/share/games/supertux2", (
        ("sounds/*", "game effects"), ("speech/*", _SPEECH), ("music/*", _MUSIC))),
    Package("naev-data", "/usr/share/naev/dat/snd", (("sounds/*", "game effects"), ("music/*", _MUSIC))),
    Package("minetest-data", "/usr/share/games/minetest/games/minetest_game/mods", (("*/sounds/*", "game effects"),)),
    Package("hedgewars-data", "/usr/share/games/hedgewars/Data/Sounds", (
        ("voices/*", _SPEECH), ("[0-9][A-G].ogg", SKIP + "piano notes named only by their pitch"),
        ("*", "game effects"))),
    Package("widelands-data", "/usr/share/games/widelands/data", (
        ("sound/animals/*", "animals"), ("world/critters/*", "animals"), ("sound/*", "game effects"),
        ("music/*", _MUSIC))),
    Package("wesnoth-1.16-data", "/usr/share/games/wesnoth/1.16", (
        ("data/core/sounds/ambient/*", "ambience"), ("data/core/sounds/*", "game effects"),
        ("sounds/*", "game effects"), ("data/campaigns/*", "game effects")),
        freeform=FREEFORM_LICENSES["wesnoth-1.16-data"]),
]}
# Hydrogen kit folder -> the .h2drumkit archive debian/copyright names, where they differ.
KIT_ARCHIVES = {"circAfrique v4": "circAfrique"}
# What each kit is, from its drumkit.xml <info> (instrument makers, "synthesised", ...).
KIT_KINDS = {
    "BJA_Pacific": "an acoustic drum kit", "ColomboAcousticDrumkit": "an acoustic drum kit",
    "ForzeeStereo": "an acoustic drum kit", "Millo-Drums_v.1": "an acoustic drum kit",
    "Millo_MultiLayered2": "an acoustic drum kit", "Millo_MultiLayered3": "an acoustic drum kit",
    "The Black Pearl 1.0": "an acoustic drum kit", "ElectricEmpireKit": "an electronic drum kit",
    "HardElectro1": "an electronic drum kit", "VariBreaks": "an electronic drum kit",
    "Gimme A Hand 1.0": "a hand percussion kit", "circAfrique v4": "a West African percussion ensemble",
}


@dataclass(frozen=True)
class Job:
    """One clip to make."""

    id: str
    split: str
    package: str
    sources: tuple[str, ...]  # the installed files it is made from
    description: Description
    qualifier: str  # after the phrase: "from an acoustic drum kit (Hydrogen kit 'X')"
    loop: bool
    license: str
    copyright: str
    pattern: dict | None = field(default=None, hash=False)  # style, bpm, bars, players: role -> (Instrument, pan)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_.")


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    digest = int.from_bytes(hashlib.sha256(clip_id.encode()).digest()[:8], "big")
    return np.random.default_rng([seed, digest])


def check_packages(names: list[str]) -> list[Package]:
    """PACKAGES entries for `names`. Raises ValueError for reserved, unknown or missing packages."""
    reserved = [name for name in names if name in RESERVED_PACKAGES]
    if reserved:
        raise ValueError(f"{', '.join(reserved)} is reserved for evaluation and must never be trained on")
    unknown = [name for name in names if name not in PACKAGES]
    if unknown:
        raise ValueError(f"unknown package(s) {', '.join(unknown)}; known: {', '.join(sorted(PACKAGES))}")
    missing = [name for name in names if not Path(PACKAGES[name].root).is_dir()]
    if missing:
        raise ValueError(f"not installed: {', '.join(missing)} (apt-get install {' '.join(missing)})")
    return [PACKAGES[name] for name in names]


# ---------------------------------------------------------------------------------------------
# Listing: every audio file of a package, its licence, and the clips made from it
# ---------------------------------------------------------------------------------------------


def _row(package: Package, path: Path, match, reason: str) -> dict:
    return {"package": package.name, "path": str(path), "license": match.license if match else None,
            "copyright": match.copyright if match else None, "used": False, "reason": reason, "clips": []}


def list_package(package: Package, seed: int = 0, patterns_per_kit: int = 6) -> tuple[list[Job], list[dict]]:
    """The clips to make from `package` and one licence row per audio file under its root."""
    if package.name in RESERVED_PACKAGES:
        raise ValueError(f"{package.name} is reserved for evaluation and must never be trained on")
    root = Path(package.root)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    text = package.copyright_path.read_text(errors="replace") if package.copyright_path.is_file() else ""
    if package.freeform is None and not is_machine_readable(text):
        why = f"{package.copyright_path} is missing or not machine-readable (DEP-5)"
        return [], [_row(package, path, None, why) for path in files]
    parsed = None if package.freeform else parse_copyright(text)
    freeform = (Match(*package.freeform, None, "free-form copyright file, read by hand", None)
                if package.freeform else None)
    if package.folders == (("*", "hydrogen"),):
        return _list_hydrogen(package, files, parsed, seed, patterns_per_kit)
    jobs, rows, ids = [], [], set()
    for path in files:
        relative = path.relative_to(root).as_posix()
        match = freeform or match_file(parsed, str(path))
        usable, verdict = usable_for_training(match.license, match.copyright)
        context = next((c for glob, c in package.folders if fnmatch.fnmatch(relative, glob)), None)
        description = describe(path.name, context) if context in CONTEXTS else None
        if context is None:
            reason = "not in a folder this builder reads"
        elif context.startswith(SKIP):
            reason = context[len(SKIP):]
        elif not usable:
            reason = verdict
        elif description is None:
            reason = "the name says nothing about the sound"
        else:
            clip_id = f"{package.name}__{_slug(str(Path(relative).with_suffix('')).replace('/', '__'))}"
            if clip_id in ids:  # same name, another format (supertux grow.ogg, grow.wav)
                clip_id += f"-{path.suffix.lstrip('.').lower()}"
            ids.add(clip_id)
            loop = CONTEXTS[context].loops or "loop" in words_of(path.name)
            jobs.append(Job(clip_id, split_of(f"{package.name}/{relative}"), package.name, (str(path),),
                            description, "", loop, match.license, match.copyright))
            reason = "used"
        rows.append(_row(package, path, match, reason))
        if reason == "used":
            rows[-1]["clips"].append(jobs[-1].id)
    return jobs, rows


def _spread(count: int, keep: int) -> list[int]:
    """`keep` indices spread over range(count), ends included (softest and loudest layer)."""
    if count <= keep:
        return list(range(count))
    return sorted({round(i * (count - 1) / (keep - 1)) for i in range(keep)})


def _list_hydrogen(package: Package, files: list[Path], parsed, seed: int,
                   patterns_per_kit: int) -> tuple[list[Job], list[dict]]:
    root = Path(package.root)
    jobs, rows = [], []
    kit_folders = {path.relative_to(root).parts[0] for path in files if len(path.relative_to(root).parts) > 1}
    for kit_folder in sorted(kit_folders):
        kit_files = [path for path in files if path.relative_to(root).parts[0] == kit_folder]
        archive = root / f"{KIT_ARCHIVES.get(kit_folder, kit_folder)}.h2drumkit"  # what debian/copyright names
        match = match_file(parsed, str(archive))
        usable, verdict = usable_for_training(match.license, match.copyright)
        reasons = {str(path): "not a sample of any drumkit.xml instrument" for path in kit_files}
        clips = defaultdict(list)
        try:
            kit = hydrogen_kits.read_kit(root / kit_folder)
        except ValueError as error:
            kit, reasons = None, {str(path): str(error) for path in kit_files}
        if kit is not None and not usable:
            reasons = {path: verdict for path in reasons}
        elif kit is not None:
            kit_phrase = f"{KIT_KINDS.get(kit_folder, 'a drum kit')} (Hydrogen kit '{kit.name}')"
            split = split_of(f"{package.name}/{kit_folder}")
            described = {}
            for instrument in kit.instruments:
                description = describe(instrument.name, "drums", allow_fallback=False)
                for index, layer in enumerate(instrument.layers):
                    if reasons.get(layer.path) == "used":  # a sample shared by two instruments is made once
                        continue
                    if description is None:
                        reasons[layer.path] = f"instrument {instrument.name!r}: its name does not say what it is"
                    elif index not in _spread(len(instrument.layers), HYDROGEN_LAYERS):
                        reasons[layer.path] = f"velocity layer not used (at most {HYDROGEN_LAYERS} per instrument)"
                    else:
                        clip_id = f"{package.name}__{_slug(kit_folder)}__{_slug(Path(layer.path).stem)}"
                        jobs.append(Job(clip_id, split, package.name, (layer.path,), description,
                                        f"from {kit_phrase}", False, match.license, match.copyright))
                        reasons[layer.path] = "used"
                        clips[layer.path].append(clip_id)
                if description is not None:
                    described[instrument] = description
            for job in _pattern_jobs(package, kit_folder, described, split, seed, patterns_per_kit, kit_phrase,
                                     match):
                jobs.append(job)
                for source in job.sources:
                    reasons[source] = "used"
                    clips[source].append(job.id)
        for path in kit_files:
            rows.append(_row(package, path, match, reasons[str(path)]))
            rows[-1]["clips"] = clips[str(path)]
    return jobs, rows


def _pattern_jobs(package, kit_folder, described, split, seed, count, kit_phrase, match) -> list[Job]:
    """Up to `count` drum patterns on `kit`; none when it lacks a kick, a snare or a hi-hat."""
    players = {}
    for role, phrases in hydrogen_kits.ROLE_PHRASES.items():
        for phrase in phrases:
            candidates = [instrument for instrument, d in described.items() if d.base == phrase]
            if candidates:
                players[role] = (phrase, candidates)
                break
    styles = [style for style, parts in hydrogen_kits.PATTERNS.items() if set(parts) <= set(players)]
    if not styles:
        return []
    order = [styles[i] for i in clip_rng(seed, f"{package.name}/{kit_folder}/styles").permutation(len(styles))]
    jobs = []
    for number in range(count):
        clip_id = f"{package.name}__{_slug(kit_folder)}__pattern{number}"
        rng = clip_rng(seed, clip_id)
        style = order[number % len(order)]
        bpm = int(rng.integers(hydrogen_kits.TEMPO_RANGES[style][0], hydrogen_kits.TEMPO_RANGES[style][1] + 1))
        bars = hydrogen_kits.bars_for(bpm, PATTERN_TARGET_SECONDS)
        chosen = {}
        for role in hydrogen_kits.PATTERNS[style]:
            phrase, candidates = players[role]
            pan = float(rng.choice([-0.3, 0.0, 0.3])) if "hat" in role else 0.0  # kick and snare centred
            chosen[role] = (phrase, candidates[int(rng.integers(len(candidates)))], pan)
        hits = hydrogen_kits.pattern_hits(style, bpm, bars)
        sources = sorted({hydrogen_kits.layer_for(chosen[hit.role][1], hit.velocity).path for hit in hits})
        words = [hydrogen_kits.ROLE_WORDS[phrase] for phrase, _, _ in chosen.values()]
        listed = ", ".join(words[:-1]) + " and " + words[-1]
        article = "an" if style[0] in "aeiou" else "a"
        phrase = f"{article} {style} drum beat at {bpm} BPM on {kit_phrase}, {listed}"
        description = Description(phrase, phrase, "drum pattern", True)
        pattern = {"style": style, "bpm": bpm, "bars": bars, "instruments": words,
                   "players": {role: (instrument, pan) for role, (_, instrument, pan) in chosen.items()}}
        jobs.append(Job(clip_id, split, package.name, tuple(sources), description, "", False,
                        match.license, match.copyright, pattern))
    return jobs
