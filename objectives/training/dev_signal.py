"""Cheap held-out proxies of every score category, reported during training for pruning.

A pruner that watches STS and retrieval alone would cut exactly the arms the paper finds winning on
classification and clustering, so each category a study scores gets its own proxy, computed in
seconds on a few hundred texts that no evaluated task scores:

- STS: Spearman of cosine vs gold on held-out STS Benchmark pairs (``objectives.training.pairs.dev_sts``);
- Retrieval: MRR@10 of held-out training queries, each ranking its own positive among every dev
  positive and hard negative;
- Classification: nearest-centroid accuracy on labelled rows of the classification task's train
  split that its evaluation did not sample (half of each label's rows fit the centroids, the other
  half are classified);
- Clustering: V-measure of k-means (k = labels drawn) on labelled rows of the clustering task's
  file that its evaluation did not sample.

Every slice is drawn with the fixed ``SUBSAMPLE_SEED``, so all arms and seeds are judged on the same
texts. Online tasks (no tasks directory) have no local rows, so they get no labelled proxies.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.cluster import KMeans
from sklearn.metrics import v_measure_score
from sklearn.neighbors import NearestCentroid

from objectives.categories import Category
from objectives.evaluation.mteb_tasks import task_category
from objectives.evaluation.scoring import TextEncoder
from objectives.evaluation.task_files import (
    SUBSAMPLE_SEED,
    read_jsonl,
    resolve_tasks_dir,
    task_folder,
)
from objectives.training.pairs import DevSlices, normalise

MRR_AT = 10
# Rows drawn per label: two fit a centroid and two are classified, so even a 32-text slice holds
# eight labels and its accuracy means more than chance.
PER_LABEL = 4
# The held-out labelled rows of each category's task folder: rows its evaluation did not sample.
LABELLED_FILE = {Category.CLASSIFICATION: "train.jsonl", Category.CLUSTERING: "test.jsonl"}


@dataclass(frozen=True)
class LabelledSlice:
    """Held-out labelled texts of one task, ``PER_LABEL`` per label, grouped by label."""

    task: str
    texts: list[str]
    labels: list[str]


@dataclass(frozen=True)
class DevSet:
    """Everything the proxies encode: STS pairs and retrieval pairs, plus labelled slices."""

    slices: DevSlices = field(default_factory=DevSlices)
    classification: list[LabelledSlice] = field(default_factory=list)
    clustering: list[LabelledSlice] = field(default_factory=list)


def labelled_slices(
    tasks: Sequence[Any], tasks_dir: str | None, count: int, exclude: set[str]
) -> dict[str, list[LabelledSlice]]:
    """Per category (Classification, Clustering), one slice per loaded local task of it.

    ``count`` texts at most per slice, none of them in ``exclude`` (normalised evaluated texts).
    """
    found: dict[str, list[LabelledSlice]] = {category: [] for category in LABELLED_FILE}
    if resolve_tasks_dir(tasks_dir) is None:
        return found
    for task in tasks:
        category = task_category(task)
        if category not in LABELLED_FILE:
            continue
        name = task.metadata.name
        path = task_folder(name, tasks_dir) / LABELLED_FILE[category]
        rows = read_jsonl(path, {"text": str, "label": (str, int)})
        picked = _by_label(
            ((r["text"], str(r["label"])) for r in rows if normalise(r["text"]) not in exclude),
            count,
            random.Random(f"{SUBSAMPLE_SEED}:dev:{name}"),
        )
        if picked:
            texts, labels = zip(*picked, strict=True)
            found[category].append(LabelledSlice(name, list(texts), list(labels)))
    return found


def _by_label(
    rows: Iterable[tuple[str, str]], count: int, rng: random.Random
) -> list[tuple[str, str]]:
    """``PER_LABEL`` distinct texts from each of up to ``count // PER_LABEL`` random labels."""
    groups: dict[str, dict[str, None]] = defaultdict(dict)
    for text, label in rows:
        groups[label].setdefault(text, None)
    labels = sorted(label for label, texts in groups.items() if len(texts) >= PER_LABEL)
    rng.shuffle(labels)
    labels = labels[: count // PER_LABEL]
    if len(labels) < 2:
        return []
    return [
        (text, label) for label in labels for text in rng.sample(sorted(groups[label]), PER_LABEL)
    ]


def dev_proxies(
    encoder: TextEncoder, dev: DevSet, *, batch_size: int, query_prompt: str | None = None
) -> dict[str, float]:
    """Each category's proxy score (category -> value); categories without dev texts are absent."""
    proxies: dict[str, float] = {}
    if dev.slices.sts:
        proxies[Category.STS] = _sts(encoder, dev.slices.sts, batch_size)
    if dev.slices.retrieval:
        proxies[Category.RETRIEVAL] = _mrr(encoder, dev.slices, batch_size, query_prompt)
    if dev.classification:
        proxies[Category.CLASSIFICATION] = float(
            np.mean([_centroid_accuracy(encoder, s, batch_size) for s in dev.classification])
        )
    if dev.clustering:
        proxies[Category.CLUSTERING] = float(
            np.mean([_v_measure(encoder, s, batch_size) for s in dev.clustering])
        )
    if not proxies:
        raise ValueError(
            "no dev texts for the intermediate signal; raise train.dev_pairs/dev_queries"
        )
    return proxies


def composite(proxies: dict[str, float], categories: Sequence[str]) -> float:
    """The mean of the proxies of ``categories`` (the objective's), as the objective averages
    category means; all proxies when none of them has one."""
    chosen = [proxies[c] for c in categories if c in proxies] or list(proxies.values())
    return float(np.mean(chosen))


def _sts(encoder: TextEncoder, pairs: list[tuple[str, str, float]], batch_size: int) -> float:
    left, right, gold = zip(*pairs, strict=True)
    vectors = encoder.encode(list(left) + list(right), batch_size, None)
    cosine = np.sum(vectors[: len(left)] * vectors[len(left) :], axis=1)
    return float(spearmanr(cosine, gold).statistic)


def _mrr(
    encoder: TextEncoder, slices: DevSlices, batch_size: int, query_prompt: str | None
) -> float:
    pairs = slices.retrieval
    queries = encoder.encode([p.query for p in pairs], batch_size, query_prompt)
    texts = [p.positive for p in pairs] + [p.negative for p in pairs if p.negative]
    scores = queries @ encoder.encode(texts, batch_size, None).T
    own = scores[np.arange(len(queries)), np.arange(len(queries))]
    rank = 1 + np.sum(scores > own[:, None], axis=1)
    return float(np.mean(np.where(rank <= MRR_AT, 1.0 / rank, 0.0)))


def _centroid_accuracy(encoder: TextEncoder, labelled: LabelledSlice, batch_size: int) -> float:
    vectors = encoder.encode(labelled.texts, batch_size, None)
    labels = np.asarray(labelled.labels)
    # Rows come PER_LABEL at a time per label: the first half of each group fits its centroid.
    fit = (np.arange(len(labels)) % PER_LABEL) < PER_LABEL // 2
    model = NearestCentroid().fit(vectors[fit], labels[fit])
    return float(np.mean(model.predict(vectors[~fit]) == labels[~fit]))


def _v_measure(encoder: TextEncoder, labelled: LabelledSlice, batch_size: int) -> float:
    vectors = encoder.encode(labelled.texts, batch_size, None)
    k = len(set(labelled.labels))
    clusters = KMeans(n_clusters=k, n_init=3, random_state=SUBSAMPLE_SEED).fit_predict(vectors)
    return float(v_measure_score(labelled.labels, clusters))
