"""What held-out captions state that musicnn can hear, and the scores of `benchmarks/domain_eval.py`.

FACTS maps each domain to the facts its captions state and the judge tags (`audiodit.judge`,
musicnn's MTT and MSD taggers) that hear them: a yes/no fact (`BinaryFact`: drums, a percussive
sound) is scored per tag by the AUC of yes over no; a fact with several values (`ClassFact`: genre
family, mood, instrument family) by the macro one-vs-rest AUC of each value's tags and by retrieval
accuracy. Only values with a clear judge tag are in the tables; the others take no part. Floors
derange the captions over the clips; Fréchet distances of judge embeddings and the separation of
domains complete the scores. Pure numpy: every function here is tested on made-up judge outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from audiodit.evaluate import derangement

MTT, MSD = "MTT_musicnn", "MSD_musicnn"

#################################################################################
#                      Caption facts and the judge tags that hear them          #
#################################################################################

Tag = tuple[str, str]  # (judge model, tag name)

DRUM_TAGS: tuple[Tag, ...] = ((MTT, "drums"), (MTT, "beat"))
# Genre family (audiodit.corpora.mma_styles) -> judge tags that name it. Left out for want of a tag:
# latin, reggae, ballad, waltz, march, show, sacred ("classical" or "oldies" would be guesses).
GENRE_TAGS: dict[str, tuple[Tag, ...]] = {
    "rock": ((MSD, "rock"), (MTT, "rock")),
    "metal": ((MSD, "metal"), (MSD, "heavy metal"), (MTT, "metal")),
    "pop": ((MSD, "pop"), (MTT, "pop")),
    "electronic": ((MSD, "electronic"), (MSD, "electronica"), (MSD, "electro"), (MTT, "electronic"),
                   (MTT, "techno")),
    "jazz": ((MSD, "jazz"),),
    "blues": ((MSD, "blues"),),
    "country": ((MSD, "country"), (MTT, "country")),
    "folk": ((MSD, "folk"),),
    "funk": ((MSD, "funk"),),
    "soul": ((MSD, "soul"), (MSD, "rnb")),
    "hip hop": ((MSD, "Hip-Hop"),),
}
# Mood word of a recording's caption (audiodit.corpora.recordings_captions.MOOD_WORDS, taken from the
# track's names, not heard) -> tags of how such music sounds. Left out: epic, tense, triumphant,
# mysterious (no tag says them).
MOOD_TAGS: dict[str, tuple[Tag, ...]] = {
    "intense": ((MTT, "loud"), (MTT, "fast")),
    "calm": ((MTT, "quiet"), (MTT, "soft")),
    "ambient": ((MTT, "ambient"), (MSD, "ambient")),
    "sad": ((MSD, "sad"),),
}
# Instrument family of a score caption (audiodit.corpora.music21_corpus) -> the MTT instrument tags.
# Left out: organ, brass, accordion, woodwinds, clarinet (MTT has no tag for them).
INSTRUMENT_TAGS: dict[str, tuple[Tag, ...]] = {
    "piano": ((MTT, "piano"),), "harpsichord": ((MTT, "harpsichord"),), "harp": ((MTT, "harp"),),
    "flute": ((MTT, "flute"),), "violin": ((MTT, "violin"),), "strings": ((MTT, "strings"),),
    "guitar": ((MTT, "guitar"),), "choir": ((MTT, "choir"), (MTT, "choral")),
}
# Sound categories (audiodit.corpora.sound_names, and sound_library's Hydrogen "drum pattern"). Left out:
# instrument one-shots and music loops, which may be either.
PERCUSSIVE_CATEGORIES = {"drum hit", "drum roll", "drum loop", "drum pattern"}
NON_PERCUSSIVE_CATEGORIES = {"effect", "ambience", "animal", "human", "vocals"}


@dataclass(frozen=True)
class BinaryFact:
    """A yes/no fact of a caption, heard through each of `tags` separately (AUC of yes over no)."""

    name: str
    truth: Callable[[dict], bool | None]  # None: the caption does not say
    tags: tuple[Tag, ...]


@dataclass(frozen=True)
class ClassFact:
    """A fact with several values (a genre family), each value heard through the mean of its tags."""

    name: str
    values: Callable[[dict], list[str]]  # the record's values (a recording may have several moods)
    tags: dict[str, tuple[Tag, ...]]


def _percussive(record: dict) -> bool | None:
    category = record.get("category")
    return True if category in PERCUSSIVE_CATEGORIES else False if category in NON_PERCUSSIVE_CATEGORIES else None


FACTS: dict[str, tuple[BinaryFact | ClassFact, ...]] = {  # domain -> what its captions state that the judge hears
    "arrangement": (BinaryFact("drums", lambda record: bool(record["has_drums"]), DRUM_TAGS),
                    ClassFact("genre", lambda record: [record["genre_family"]], GENRE_TAGS)),
    "recording": (ClassFact("mood", lambda record: list(record.get("moods") or []), MOOD_TAGS),),
    "sound": (BinaryFact("percussive", _percussive, DRUM_TAGS),),
    "score": (ClassFact("instrument", lambda record: [record["instrument_family"]], INSTRUMENT_TAGS),),
}


def fact_tags(domain: str) -> set[Tag]:
    """Every judge tag a domain's facts use."""
    return {tag for fact in FACTS[domain]
            for tag in (fact.tags if isinstance(fact, BinaryFact) else sum(fact.tags.values(), ()))}


#################################################################################
#                                     Scores                                    #
#################################################################################

Probabilities = dict  # (judge model, tag) -> (N,) probability, one per clip


def auc(positives, negatives) -> float:
    """P(a positive scores above a negative), ties counting one half (Mann-Whitney); NaN if a side is empty."""
    positives, negatives = np.asarray(positives, float)[:, None], np.asarray(negatives, float)[None, :]
    if positives.size == 0 or negatives.size == 0:
        return float("nan")
    return float(np.mean((positives > negatives) + 0.5 * (positives == negatives)))


def value_scores(fact: ClassFact, probabilities: Probabilities) -> dict[str, np.ndarray]:
    """Per value of `fact`, (N,) the mean probability of its tags."""
    return {value: np.mean([probabilities[tag] for tag in tags], axis=0) for value, tags in fact.tags.items()}


def value_aucs(fact: ClassFact, records: list[dict], probabilities: Probabilities) -> dict[str, dict]:
    """Per value of `fact` the records have: the AUC of its tags for clips with that value against
    clips with other scored values only (clips with no scored value take no part), and its clip count."""
    labels = [set(fact.values(record)) & set(fact.tags) for record in records]
    by_value = value_scores(fact, probabilities)
    return {value: {"auc": auc(by_value[value][[value in s for s in labels]],
                               by_value[value][[bool(s) and value not in s for s in labels]]),
                    "clips": sum(value in s for s in labels)} for value in sorted(set().union(*labels))}


def adherence(facts, records: list[dict], probabilities: Probabilities) -> dict[str, float]:
    """Tag adherence of N clips (`probabilities`) to the N caption `records` they are scored against."""
    scores = {}
    for fact in facts:
        if isinstance(fact, BinaryFact):
            truth = [fact.truth(record) for record in records]
            yes = np.array([t is True for t in truth])
            no = np.array([t is False for t in truth])
            for model, tag in fact.tags:
                values = probabilities[(model, tag)]
                scores[f"{fact.name}_auc_{tag}"] = auc(values[yes], values[no])
            continue
        labels = [set(fact.values(record)) & set(fact.tags) for record in records]
        present = sorted(set().union(*labels))
        by_value = value_scores(fact, probabilities)
        aucs = [found["auc"] for found in value_aucs(fact, records, probabilities).values()]
        scores[f"{fact.name}_macro_auc"] = float(np.nanmean(aucs)) if np.isfinite(aucs).any() else float("nan")
        single = [i for i, s in enumerate(labels) if len(s) == 1]
        if len(present) >= 2 and single:
            matrix = np.stack([by_value[v] for v in present], axis=1)  # (N, values)
            spread = matrix.std(axis=0)
            # standardised over the clips, so that a value whose tags are common everywhere does not win them all
            standardised = (matrix - matrix.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
            chosen = np.array(present)[standardised.argmax(axis=1)]
            scores[f"{fact.name}_retrieval"] = float(np.mean([chosen[i] in labels[i] for i in single]))
        else:
            scores[f"{fact.name}_retrieval"] = float("nan")
    return scores


def shuffled_floor(facts, records: list[dict], probabilities: Probabilities, rounds: int, seed: int) -> dict:
    """{"value", "floor", "floor_std", "p"} per metric: the true pairing against `rounds` derangements
    of the captions over the clips (p: (b + 1) / (m + 1), b the derangements scoring at least as well)."""
    observed = adherence(facts, records, probabilities)
    rng = np.random.default_rng(seed)
    draws = [adherence(facts, [records[j] for j in derangement(len(records), rng)], probabilities)
             for _ in range(rounds)]
    result = {}
    for metric, value in observed.items():
        values = np.array([draw[metric] for draw in draws])
        values = values[np.isfinite(values)]
        if not np.isfinite(value) or not values.size:
            result[metric] = {"value": value, "floor": float("nan"), "floor_std": float("nan"), "p": float("nan")}
            continue
        result[metric] = {"value": value, "floor": float(values.mean()), "floor_std": float(values.std()),
                          "p": float((np.sum(values >= value - 1e-12) + 1) / (values.size + 1))}
    return result


def fast_frechet(a: np.ndarray, b: np.ndarray) -> float:
    """`audiodit.evaluate.frechet_distance` of (N, D) and (M, D) through the small cross-Gram matrix:
    the non-zero eigenvalues of C_a C_b are the squared singular values of A B^T (A, B the centred
    sets over sqrt(N - 1), sqrt(M - 1)), so tr (C_a C_b)^(1/2) is the nuclear norm of an (N, M)
    matrix. The same number (tests/test_domain_eval.py) without a (D, D) matrix square root, which
    takes 0.6 s for D = 200 on a busy 2-core CPU and is needed hundreds of times for the floors."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    centred_a = (a - a.mean(axis=0)) / np.sqrt(len(a) - 1)
    centred_b = (b - b.mean(axis=0)) / np.sqrt(len(b) - 1)
    cross_root = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()
    distance = (np.sum((a.mean(axis=0) - b.mean(axis=0)) ** 2) + np.sum(centred_a**2) + np.sum(centred_b**2)
                - 2.0 * cross_root)
    return float(max(distance, 0.0))


def other_domain_floor(real: np.ndarray, own: np.ndarray, others: np.ndarray, rounds: int, seed: int) -> dict:
    """Fréchet distance of a model's generations for other domains' captions to this domain's real
    set (mean over random subsets of len(own)), and the permutation p of `own`'s distance among random
    len(own)-subsets of own + others."""
    rng, size = np.random.default_rng(seed), len(own)
    observed = fast_frechet(own, real)
    floor = [fast_frechet(others[rng.permutation(len(others))[:size]], real) for _ in range(rounds)]
    pool = np.concatenate([own, others])
    null = np.array([fast_frechet(pool[rng.permutation(len(pool))[:size]], real) for _ in range(rounds)])
    return {"floor": float(np.mean(floor)), "floor_std": float(np.std(floor)),
            "p": float((np.sum(null <= observed + 1e-9) + 1) / (rounds + 1)),
            "floor_clips": min(size, len(others))}


def domain_separation(embeddings: np.ndarray, domains, rounds: int, seed: int) -> dict:
    """How far apart the domains' clips lie in judge embeddings (N, D): cosine distance of clips of
    different domains over that of clips of one domain, with permutation p and chance ratio; the
    cosine distances between domain means and each domain's spread around its mean."""
    domains = np.asarray(domains)
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    distances = np.maximum(1.0 - unit @ unit.T, 0.0)
    upper = np.triu(np.ones_like(distances, bool), k=1)

    def ratio(labels) -> float:
        same = labels[:, None] == labels[None, :]
        return float(distances[upper & ~same].mean() / max(distances[upper & same].mean(), 1e-12))

    rng = np.random.default_rng(seed)
    observed = ratio(domains)
    null = np.array([ratio(rng.permutation(domains)) for _ in range(rounds)])
    names = list(dict.fromkeys(domains))
    means = {d: embeddings[domains == d].mean(axis=0) for d in names}
    spread = {d: float(np.mean(1.0 - unit[domains == d] @ (means[d] / np.linalg.norm(means[d])))) for d in names}
    between = {a: {b: float(1.0 - means[a] @ means[b] / (np.linalg.norm(means[a]) * np.linalg.norm(means[b])))
                   for b in names} for a in names}
    pairs = [between[a][b] for i, a in enumerate(names) for b in names[i + 1:]]
    return {"ratio": observed, "p": float((np.sum(null >= observed - 1e-12) + 1) / (rounds + 1)),
            "chance_ratio": float(null.mean()), "mean_distances": between, "spread": spread,
            "means_over_spread": float(np.mean(pairs) / np.mean(list(spread.values())))}
