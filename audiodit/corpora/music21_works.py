"""What the music21 corpus holds, as renderable works: the listing, the form each work's caption
names, and the train/valid/test split of each work.

What counts as a work: a corpus file (formats .mxl/.musicxml/.xml/.krn/.abc; one file per stem,
so the same chorale in two formats is one work), or one tune of a multi-tune ABC file (id
`path#X`). ABC files whose tunes all share one title are the voices of one piece (the Josquin
chansons) and are merged. Skipped: RomanText analyses (.rntxt, they duplicate scores as chord
reductions) and the `demos`/`theoryExercises` test fixtures.

Splits are by work: a hash of the work's group (the work id, or for Bach the BWV number so that
variants of one chorale stay together, or for multi-movement works the opus folder) picks
train/valid/test (90/5/5), independent of the seed, so every variant of a work lands in one split.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLITS = (("train", 0.90), ("valid", 0.95), ("test", 1.0))  # cumulative fractions
SCORE_SUFFIXES = (".mxl", ".musicxml", ".xml", ".krn", ".abc")  # preferred first
EXCLUDED_COLLECTIONS = {"demos", "theoryExercises"}

# ---------------------------------------------------------------------------------------------
# What the corpus holds: collection folder -> (composer for captions, form)
# ---------------------------------------------------------------------------------------------

COLLECTIONS = {
    "bach": ("Bach", "chorale"),
    "palestrina": ("Palestrina", "mass movement"),
    "monteverdi": ("Monteverdi", "madrigal"),
    "trecento": (None, "medieval Italian piece"),
    "josquin": ("Josquin", "Renaissance part-song"),
    "beethoven": ("Beethoven", "string quartet movement"),
    "mozart": ("Mozart", "string quartet movement"),
    "haydn": ("Haydn", "string quartet movement"),
    "schumann_robert": ("Schumann", "string quartet movement"),
    "schumann_clara": ("Clara Schumann", "polonaise"),
    "essenFolksong": ("traditional", "folk song"),
    "ryansMammoth": ("traditional", "fiddle tune"),
    "oneills1850": ("traditional", "Irish folk tune"),
    "airdsAirs": ("traditional", "folk air"),
    "nottingham-dataset": ("traditional", "folk dance tune"),
    "miscFolk": ("traditional", "folk tune"),
    "chopin": ("Chopin", "mazurka"),
    "joplin": ("Joplin", "ragtime piece"),
    "schubert": ("Schubert", "song"),
    "verdi": ("Verdi", "aria"),
    "handel": ("Handel", "aria"),
    "beach": ("Amy Beach", "song"),
    "ciconia": ("Ciconia", "medieval piece"),
    "corelli": ("Corelli", "trio sonata movement"),
    "cpebach": ("C. P. E. Bach", "keyboard piece"),
    "johnson_j_r": ("J. Rosamond Johnson", "hymn"),
    "liliuokalani": ("Liliuokalani", "song"),
    "luca": (None, "medieval mass movement"),
    "lusitano": ("Lusitano", "madrigal"),
    "schoenberg": ("Schoenberg", "piano piece"),
    "leadSheet": (None, "song"),
    "weber": ("Weber", "concertino"),
    "webern": ("Webern", "sacred song"),
}
FORM_OVERRIDES = {  # work id -> form, where the collection's form is wrong
    "bach/bwv846": "prelude",
    "mozart/k545/movement1": "piano sonata movement",
    "mozart/k545/movement2": "piano sonata movement",
    "mozart/k545/movement3": "piano sonata movement",
    "schumann_clara/opus17/movement3": "piano trio movement",
    "schumann_robert/dichterliebe_no2": "song",
    "schumann_robert/opus48no2": "song",
}
ABC_RHYTHMS = {  # ABC "R:" field -> form, for dance tunes
    "reel": "reel", "jig": "jig", "double jig": "jig", "hornpipe": "hornpipe", "strathspey": "strathspey",
    "slip jig": "slip jig", "slipjig": "slip jig", "clog": "clog dance", "highland fling": "highland fling",
    "fling": "highland fling", "air": "folk air", "polka": "polka", "waltz": "waltz", "march": "march",
}


@dataclass(frozen=True)
class Work:
    """One renderable piece of the corpus."""

    work_id: str  # corpus path without suffix, plus "#X" for one tune of a multi-tune ABC file
    path: str  # absolute corpus file
    number: int | None  # ABC tune number (X:) inside `path`; None = the whole file
    collection: str  # first folder of the corpus path
    rhythm: str | None = None  # ABC "R:" field (jig, reel, ...) when present
    merge_voices: bool = False  # ABC tunes that are the voices of one piece
    abc_voices: int = 0  # distinct ABC "V:" voices the tune declares (0: none declared)


# ---------------------------------------------------------------------------------------------
# Work listing and splits
# ---------------------------------------------------------------------------------------------


def _abc_tunes(path: Path) -> list[tuple[int, str, str | None, int]]:
    """(X number, title, rhythm, voices) of every tune in an ABC file, by scanning its fields."""
    tunes = []
    for block in re.split(r"^X:", path.read_text(encoding="utf-8", errors="replace"), flags=re.M)[1:]:
        number = re.match(r"\s*(\d+)", block)
        title = re.search(r"^T:\s*(.*)$", block, flags=re.M)
        rhythm = re.search(r"^R:\s*(.*)$", block, flags=re.M)
        voices = set(re.findall(r"^V:\s*(\S+)", block, flags=re.M))
        if number:
            tunes.append((int(number.group(1)), title.group(1).strip() if title else "",
                          rhythm.group(1).strip().lower() if rhythm else None, len(voices)))
    return tunes


def list_works(collections: list[str] | None = None) -> list[Work]:
    """All renderable works of the installed music21 corpus, sorted by work id."""
    from music21 import corpus

    by_stem: dict[str, Path] = {}
    for path in map(Path, corpus.getPaths()):
        parts = path.parts
        relative = Path(*parts[len(parts) - parts[::-1].index("corpus"):])
        collection = relative.parts[0]
        if path.suffix not in SCORE_SUFFIXES or collection in EXCLUDED_COLLECTIONS:
            continue
        if collections and collection not in collections:
            continue
        stem = str(relative.with_suffix(""))
        rank = SCORE_SUFFIXES.index(path.suffix)
        if stem not in by_stem or rank < SCORE_SUFFIXES.index(by_stem[stem].suffix):
            by_stem[stem] = path

    works = []
    for stem, path in by_stem.items():
        collection = stem.split("/")[0]
        tunes = _abc_tunes(path) if path.suffix == ".abc" else []
        if len(tunes) > 1 and len({title for _, title, _, _ in tunes}) > 1:
            works += [Work(f"{stem}#{number}", str(path), number, collection, rhythm, abc_voices=voices)
                      for number, _, rhythm, voices in tunes]
        else:
            rhythm, voices = (tunes[0][2], tunes[0][3]) if tunes else (None, 0)
            works.append(Work(stem, str(path), None, collection, rhythm, merge_voices=len(tunes) > 1,
                              abc_voices=voices))
    return sorted(works, key=lambda work: work.work_id)


def balanced_order(works: list[Work], seed: int) -> list[Work]:
    """Seeded shuffle within each collection, then round-robin over collections.

    `--limit N` takes a prefix of this order, so small N still spans many composers and forms
    instead of being mostly folk tunes (which are four in five works of the corpus).
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[Work]] = {}
    for work in works:
        groups.setdefault(work.collection, []).append(work)
    queues = [[group[i] for i in rng.permutation(len(group))] for _, group in sorted(groups.items())]
    ordered = []
    for round_index in range(max((len(queue) for queue in queues), default=0)):
        ordered += [queue[round_index] for queue in queues if round_index < len(queue)]
    return ordered


def split_group(work_id: str) -> str:
    """Works that must share a split: versions of one Bach chorale, movements of one opus."""
    bach = re.match(r"bach/(bwv\d+(?:\.\d+)?)", work_id)
    if bach:
        return "bach/" + bach.group(1)
    if re.search(r"/movement\d+\w*$", work_id):
        return work_id.rsplit("/", 1)[0]
    return work_id


def split_of(work_id: str) -> str:
    """train / valid / test from a hash of the work's group (seed-independent, stable)."""
    digest = hashlib.sha256(split_group(work_id).encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return next(name for name, upper in SPLITS if fraction < upper)


def sample_id(work_id: str, variant: int) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", work_id.replace("/", "__").replace("#", "__n"))
    return f"{slug}-v{variant}"


def describe_form(work: Work) -> str:
    if work.work_id in FORM_OVERRIDES:
        return FORM_OVERRIDES[work.work_id]
    if work.rhythm in ABC_RHYTHMS:
        return ABC_RHYTHMS[work.rhythm]
    return COLLECTIONS.get(work.collection, (None, "piece"))[1]
