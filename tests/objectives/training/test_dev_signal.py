"""The held-out proxies behind pruning: one per scored category, never on an evaluated text."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from objectives.config.trial_config import EvalConfig
from objectives.evaluation.mteb_tasks import load_tasks, task_texts
from objectives.training.dev_signal import (
    PER_LABEL,
    DevSet,
    LabelledSlice,
    composite,
    dev_proxies,
    labelled_slices,
)
from objectives.training.pairs import DevSlices, Pair, normalise

VECTORS = {"a": [1, 0], "b": [0.9, 0.1], "c": [0, 1], "d": [0.5, 0.5], "q1": [1, 0], "q2": [0, 1]}


class Table:
    """Fixed 2-d embeddings of a handful of texts."""

    def encode(self, items, batch_size, prompt=None):
        vectors = np.array([VECTORS[t] for t in items], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class ByLabel:
    """One-hot embeddings of each text's label: a perfect classifier and clusterer."""

    def __init__(self, labelled: LabelledSlice) -> None:
        names = sorted(set(labelled.labels))
        pairs = zip(labelled.texts, labelled.labels, strict=True)
        self.index = {text: names.index(label) for text, label in pairs}
        self.width = len(names)

    def encode(self, items, batch_size, prompt=None):
        return np.eye(self.width, dtype=np.float32)[[self.index[t] for t in items]]


def _labelled(labels: int) -> LabelledSlice:
    texts = [f"text {i}" for i in range(labels * PER_LABEL)]
    return LabelledSlice("T", texts, [f"label {i // PER_LABEL}" for i in range(len(texts))])


def test_sts_spearman_and_retrieval_mrr_at_10_are_reported_apart() -> None:
    sts = [("a", "b", 5.0), ("a", "c", 0.0), ("a", "d", 2.0)]
    perfect = DevSet(DevSlices(sts=sts, retrieval=[Pair("q1", "a"), Pair("q2", "c")]))
    assert dev_proxies(Table(), perfect, batch_size=4) == pytest.approx(
        {"STS": 1.0, "Retrieval": 1.0}
    )
    swapped = DevSet(DevSlices(retrieval=[Pair("q1", "c"), Pair("q2", "a")]))
    assert dev_proxies(Table(), swapped, batch_size=4) == {"Retrieval": 0.5}  # both rank 2


def test_label_perfect_embeddings_score_one_on_the_labelled_proxies() -> None:
    labelled = _labelled(5)
    dev = DevSet(classification=[labelled], clustering=[labelled])
    assert dev_proxies(ByLabel(labelled), dev, batch_size=8) == pytest.approx(
        {"Classification": 1.0, "Clustering": 1.0}
    )


def test_label_blind_embeddings_score_low_on_the_labelled_proxies() -> None:
    labelled = _labelled(5)

    class Shuffled(ByLabel):  # each text embedded as the label of another row's group
        def encode(self, items, batch_size, prompt=None):
            order = [(self.index[t] + i) % self.width for i, t in enumerate(items)]
            return np.eye(self.width, dtype=np.float32)[order]

    dev = DevSet(classification=[labelled], clustering=[labelled])
    proxies = dev_proxies(Shuffled(labelled), dev, batch_size=8)
    assert proxies["Classification"] < 0.5 and proxies["Clustering"] < 0.5


def test_no_dev_texts_at_all_is_one_line_naming_the_fix() -> None:
    with pytest.raises(ValueError, match=r"raise train\.dev_pairs/dev_queries"):
        dev_proxies(Table(), DevSet(), batch_size=4)


def test_the_composite_averages_the_objectives_categories_only() -> None:
    proxies = {"STS": 0.8, "Retrieval": 0.4, "Classification": 0.2}
    assert composite(proxies, ("STS", "Classification")) == pytest.approx(0.5)
    assert composite(proxies, ("Clustering",)) == pytest.approx(
        np.mean(list(proxies.values()))
    )  # no proxy for the objective's category: all of them


def test_labelled_slices_avoid_every_evaluated_text_and_repeat_per_seed(tasks_dir: Path) -> None:
    config = EvalConfig(
        tasks=("Banking77Classification", "Banking77Intents", "ArxivTitles", "SICK-R"),
        tasks_dir=str(tasks_dir),
        max_texts=64,
    )
    tasks = load_tasks(config)
    evaluated = {normalise(t) for task in tasks for t in task_texts(task)}
    found = labelled_slices(tasks, str(tasks_dir), 32, evaluated)
    assert [s.task for s in found["Classification"]] == ["Banking77Classification"]
    assert [s.task for s in found["Clustering"]] == ["Banking77Intents", "ArxivTitles"]
    for labelled in found["Classification"] + found["Clustering"]:
        assert len(labelled.texts) == 32 and len(set(labelled.texts)) == 32
        assert set(Counter(labelled.labels).values()) == {PER_LABEL}
        assert not {normalise(t) for t in labelled.texts} & evaluated
    assert labelled_slices(tasks, str(tasks_dir), 32, evaluated) == found
