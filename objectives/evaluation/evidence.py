"""Item-level evidence: what a trial needs to recompute each task's main score on resampled items.

A task's score is a sample statistic of its test items (50 STS pairs, 20 queries on the cpu presets),
so two arms can differ by test-set luck alone. To measure that, each COMPLETE trial keeps per task:

- STS: each pair's cosine (mteb's similarity score) and gold score; the score is their Spearman;
- Retrieval: each query's nDCG@10 (pytrec_eval on mteb's saved rankings, as mteb computes it);
- Classification: each test item's fraction of mteb's logistic-regression experiments that got it
  right (one fixed test set for every experiment, so its mean is mteb's accuracy);
- Clustering: each item's label, and for every one of mteb's bootstrapped k-means experiments the
  item indices it drew (recorded through ``RecordingRandom`` on the task) and the clusters it
  assigned; the score is the mean V-measure over experiments. A resample of the items re-weights
  every drawn position by how often its item was resampled; the k-means assignments stay fixed.

Everything here is pure numpy/scipy (no Optuna, no storage); ``storage.evidence`` encodes it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytrec_eval
from scipy.stats import rankdata

from objectives.categories import Category

NDCG = "ndcg_cut_10"
SPLIT, SUBSET = "test", "default"


@dataclass(frozen=True)
class TaskEvidence:
    """One task's per-item record: its category, a hash of its items' identities, named arrays."""

    kind: str
    items: str
    arrays: dict[str, np.ndarray]

    @property
    def n_items(self) -> int:
        """How many test items a resample draws from."""
        key = (
            "gold"
            if self.kind == Category.STS
            else "labels"
            if self.kind == Category.CLUSTERING
            else "values"
        )
        return len(self.arrays[key])

    def score(self) -> float:
        """The main score on the items as evaluated (equals mteb's score for the trial)."""
        return float(self.resampled(np.arange(self.n_items)[None, :])[0])

    def resampled(self, draws: np.ndarray) -> np.ndarray:
        """The main score on each row of ``draws`` (rows of item indices drawn with replacement).

        The matrices are small: callers resampling many trials run this under
        ``threadpoolctl.threadpool_limits(1)``, as BLAS threads only add contention here.
        """
        if self.kind == Category.STS:
            return _spearman_rows(self.arrays["similarity"][draws], self.arrays["gold"][draws])
        if self.kind == Category.CLUSTERING:
            return _v_measure_resampled(self.arrays, draws)
        return self.arrays["values"][draws].mean(axis=1)


class RecordingRandom(random.Random):
    """A ``random.Random`` that remembers every ``choices`` draw, so clustering draws are known."""

    def __init__(self, state: random.Random) -> None:
        super().__init__()
        self.setstate(state.getstate())
        self.draws: list[list[Any]] = []

    def choices(self, population: Any, weights: Any = None, *, cum_weights: Any = None, k: int = 1):
        drawn = super().choices(population, weights, cum_weights=cum_weights, k=k)
        self.draws.append(list(drawn))
        return drawn


def record_draws(tasks: Iterable[Any]) -> dict[str, RecordingRandom]:
    """Install a recorder on every local clustering task (same state, so the same draws)."""
    recorders = {}
    for task in tasks:
        if task.metadata.type == Category.CLUSTERING and _local_split(task) is not None:
            recorders[task.metadata.name] = task.rng_state = RecordingRandom(task.rng_state)
    return recorders


def collect(
    tasks: Sequence[Any], folder: Path, recorders: dict[str, RecordingRandom]
) -> dict[str, TaskEvidence]:
    """Per-task evidence from mteb's prediction files in ``folder`` (local tasks only).

    Online MTEB tasks (several subsets or splits, data not held here) get none, and the report
    falls back to seed-only intervals for them.
    """
    evidence = {}
    for task in tasks:
        name, split = task.metadata.name, _local_split(task)
        path = folder / f"{name}_predictions.json"
        if split is None or not path.is_file():
            continue
        predicted = json.loads(path.read_text(encoding="utf-8"))[SUBSET][SPLIT]
        kind = task.metadata.type
        if kind == Category.STS:
            evidence[name] = _sts(split, predicted)
        elif kind == Category.RETRIEVAL:
            evidence[name] = _retrieval(split, predicted)
        elif kind == Category.CLASSIFICATION:
            evidence[name] = _classification(split, predicted)
        elif kind == Category.CLUSTERING and name in recorders:
            evidence[name] = _clustering(split, predicted, recorders[name].draws)
    return evidence


def items_hash(identities: Iterable[str]) -> str:
    """A short digest of the test items, in order: equal digests mean the same items were scored."""
    digest = hashlib.sha256()
    for identity in identities:
        digest.update(identity.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def _local_split(task: Any) -> Any:
    splits = (task.dataset or {}).get(SUBSET) or {}
    return splits.get(SPLIT) if len(task.dataset or {}) == 1 else None


def _sts(split: Any, predicted: dict[str, Any]) -> TaskEvidence:
    # mteb scores the model's own similarity where it has one, else cosine (abstasks/sts.py).
    similarity = predicted.get("similarity_scores") or predicted["cosine_scores"]
    pairs = (f"{a}\t{b}" for a, b in zip(split["sentence1"], split["sentence2"], strict=True))
    return TaskEvidence(
        Category.STS,
        items_hash(pairs),
        {"similarity": np.asarray(similarity, np.float64), "gold": np.asarray(split["score"])},
    )


def _retrieval(split: Any, predicted: dict[str, dict[str, float]]) -> TaskEvidence:
    qrels = split["relevant_docs"]
    queries = [q for q in split["queries"]["id"] if qrels.get(q)]
    per_query = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(predicted)
    ndcg = [per_query.get(q, {}).get(NDCG, 0.0) for q in queries]
    identity = [*queries, "|", *sorted(split["corpus"]["id"])]
    return TaskEvidence(Category.RETRIEVAL, items_hash(identity), {"values": np.asarray(ndcg)})


def _classification(split: Any, predicted: list[list[Any]]) -> TaskEvidence:
    gold = np.asarray([str(label) for label in split["label"]])
    hits = np.asarray([[str(p) for p in experiment] for experiment in predicted]) == gold
    return TaskEvidence(
        Category.CLASSIFICATION,
        items_hash(split["text"]),
        {"values": hits.mean(axis=0).astype(np.float64)},
    )


def _clustering(split: Any, predicted: dict[str, Any], draws: list[list[int]]) -> TaskEvidence:
    assigned = np.asarray(predicted["Level 0"])
    if len(draws) != len(assigned):
        raise RuntimeError(
            f"recorded {len(draws)} clustering draws for {len(assigned)} mteb experiments"
        )
    _, labels = np.unique(np.asarray([str(x) for x in split["labels"]]), return_inverse=True)
    return TaskEvidence(
        Category.CLUSTERING,
        items_hash(split["text"]),
        {"labels": labels, "drawn": np.asarray(draws), "assigned": assigned},
    )


def _spearman_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho per row: Pearson of the (tie-averaged) ranks, as scipy.stats.spearmanr."""
    rx = rankdata(x, axis=1)
    ry = rankdata(y, axis=1)
    rx -= rx.mean(axis=1, keepdims=True)
    ry -= ry.mean(axis=1, keepdims=True)
    denom = np.sqrt((rx * rx).sum(axis=1) * (ry * ry).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (rx * ry).sum(axis=1) / denom, 0.0)


def _v_measure_resampled(arrays: dict[str, np.ndarray], draws: np.ndarray) -> np.ndarray:
    """Mean V-measure over mteb's experiments, each drawn position weighted by its item's count.

    Per experiment, the weighted (cluster, label) contingency table is a product with the one-hot
    matrix of the cells that occur; homogeneity and completeness follow from its entropies
    as in sklearn's v_measure_score (``_entropy``: scipy.stats.entropy's per-call checks cost more
    than the arithmetic on these small tables, which a report repeats thousands of times).
    """
    labels, drawn, assigned = arrays["labels"], arrays["drawn"], arrays["assigned"]
    counts = np.zeros((len(draws), len(labels)))
    np.add.at(counts, (np.arange(len(draws))[:, None], draws), 1.0)
    scores = np.zeros(len(draws))
    for positions, clusters in zip(drawn, assigned, strict=True):
        pairs, cell = np.unique(
            np.stack([clusters, labels[positions]], axis=1), axis=0, return_inverse=True
        )
        joint = counts[:, positions] @ _onehot(cell.reshape(-1), len(pairs))
        h_joint = _entropy(joint)
        h_cluster = _entropy(joint @ _onehot(np.unique(pairs[:, 0], return_inverse=True)[1]))
        h_label = _entropy(joint @ _onehot(np.unique(pairs[:, 1], return_inverse=True)[1]))
        with np.errstate(invalid="ignore", divide="ignore"):
            homogeneity = np.where(h_label > 0, 1 - (h_joint - h_cluster) / h_label, 1.0)
            completeness = np.where(h_cluster > 0, 1 - (h_joint - h_label) / h_cluster, 1.0)
            total = homogeneity + completeness
            scores += np.where(total > 0, 2 * homogeneity * completeness / total, 0.0)
    return scores / len(drawn)


def _entropy(counts: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of non-negative counts; an all-zero row has 0."""
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(totals > 0, counts / totals, 0.0)
        return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)


def _onehot(index: np.ndarray, width: int | None = None) -> np.ndarray:
    matrix = np.zeros((len(index), int(index.max()) + 1 if width is None else width))
    matrix[np.arange(len(index)), index] = 1.0
    return matrix
