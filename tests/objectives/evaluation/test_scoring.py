"""mteb-run scores agree with independent computations; each text is encoded once per trial."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from objectives.config.trial_config import EvalConfig
from objectives.evaluation.mteb_tasks import load_tasks
from objectives.evaluation.scoring import CachedEncoder, evaluate
from objectives.model.embedding_model import EmbeddingModel
from tests.tiny_models import tiny_model_config

PROMPT = "query: "


class Recording:
    """Wraps a real encoder and records every (prompt, text) it is asked to embed."""

    def __init__(self, encoder) -> None:
        self.encoder, self.calls = encoder, Counter()

    def encode(self, texts, batch_size, prompt=None):
        self.calls.update((prompt, t) for t in texts)
        return self.encoder.encode(texts, batch_size, prompt)


@pytest.fixture(scope="module")
def tiny_model(tiny_encoder_dir: Path) -> EmbeddingModel:
    torch.set_num_threads(1)
    return EmbeddingModel.build(tiny_model_config(tiny_encoder_dir), seed=0)


@pytest.fixture(scope="module")
def scored(tiny_model: EmbeddingModel, tasks_dir: Path):
    tasks = load_tasks(
        EvalConfig(
            tasks=("SICK-R", "SciFactSubset", "Banking77Classification", "Banking77Intents"),
            tasks_dir=str(tasks_dir),
            max_texts=120,
        )
    )
    recording = Recording(tiny_model)
    encoder = CachedEncoder(
        recording, name="tiny", embed_dim=tiny_model.dim, batch_size=32, query_prompt=PROMPT
    )
    return {t.metadata.name: t for t in tasks}, encoder, recording, evaluate(encoder, tasks)


def test_sts_score_is_scipy_spearman_of_cosine(scored) -> None:
    tasks, encoder, _, result = scored
    data = tasks["SICK-R"].dataset["default"]["test"]
    left, right = encoder.embed(data["sentence1"]), encoder.embed(data["sentence2"])
    cosine = np.sum(left * right, axis=1) / (
        np.linalg.norm(left, axis=1) * np.linalg.norm(right, axis=1)
    )
    expected = spearmanr(cosine, data["score"]).statistic
    assert result.task_scores["SICK-R"] == pytest.approx(expected, abs=1e-6)


def test_retrieval_score_is_ndcg_at_10_of_cosine_ranking(scored) -> None:
    tasks, encoder, _, result = scored
    split = tasks["SciFactSubset"].dataset["default"]["test"]
    queries = encoder.embed(split["queries"]["text"], PROMPT)
    corpus = encoder.embed(split["corpus"]["text"])
    doc_ids = split["corpus"]["id"]
    ndcgs = []
    for query_id, vector in zip(split["queries"]["id"], queries, strict=True):
        relevant = split["relevant_docs"][query_id]
        top = np.argsort(-(corpus @ vector), kind="stable")[:10]
        dcg = sum(relevant.get(doc_ids[d], 0) / np.log2(r + 2) for r, d in enumerate(top))
        ideal = sorted(relevant.values(), reverse=True)[:10]
        ndcgs.append(dcg / sum(g / np.log2(r + 2) for r, g in enumerate(ideal)))
    assert result.task_scores["SciFactSubset"] == pytest.approx(np.mean(ndcgs), abs=1e-5)


def test_each_text_is_encoded_once_and_only_queries_get_the_prompt(scored) -> None:
    tasks, _, recording, result = scored
    assert max(recording.calls.values()) == 1
    assert result.texts_encoded == len(recording.calls)
    split = tasks["SciFactSubset"].dataset["default"]["test"]
    prompted = {t for p, t in recording.calls if p == PROMPT}
    assert prompted == set(split["queries"]["text"])
    # Banking77 classification and clustering share test texts: encoded once for both.
    banking_cls = set(tasks["Banking77Classification"].dataset["default"]["test"]["text"])
    banking_clu = set(tasks["Banking77Intents"].dataset["default"]["test"]["text"])
    assert banking_cls & banking_clu
    assert result.task_category == {
        "SICK-R": "STS",
        "SciFactSubset": "Retrieval",
        "Banking77Classification": "Classification",
        "Banking77Intents": "Clustering",
    }


def test_classification_score_is_logistic_regression_accuracy(scored) -> None:
    tasks, encoder, _, result = scored
    from sklearn.linear_model import LogisticRegression

    data = tasks["Banking77Classification"].dataset["default"]
    train, test = data["train"], data["test"]
    # No label has more than samples_per_label rows in the pool, so each of mteb's experiments
    # trains on the whole pool, and one fit reproduces them all.
    assert max(Counter(train["label"]).values()) <= 8
    probe = LogisticRegression(max_iter=100).fit(encoder.embed(train["text"]), train["label"])
    expected = probe.score(encoder.embed(test["text"]), test["label"])
    assert result.task_scores["Banking77Classification"] == pytest.approx(expected, abs=1e-6)


class LabelEncoder:
    """Embeds a text as the one-hot vector of its gold label: a perfect clustering input."""

    def __init__(self, labels: dict[str, str]) -> None:
        names = sorted(set(labels.values()))
        self.index = {text: names.index(label) for text, label in labels.items()}
        self.width = len(names)

    def encode(self, texts, batch_size, prompt=None):
        return np.eye(self.width, dtype=np.float32)[[self.index[t] for t in texts]]


def test_label_perfect_embeddings_cluster_almost_perfectly(tasks_dir: Path) -> None:
    config = EvalConfig(tasks=("Banking77Intents",), tasks_dir=str(tasks_dir), max_texts=300)
    task = load_tasks(config)[0]
    split = task.dataset["default"]["test"]
    encoder = CachedEncoder(
        LabelEncoder(dict(zip(split["text"], split["labels"], strict=True))),
        name="labels",
        embed_dim=None,
        batch_size=64,
    )
    # mteb's mini-batch k-means (one init, bootstrap resamples) may merge two of the 77 clusters.
    assert evaluate(encoder, [task], progress=False).task_scores["Banking77Intents"] > 0.97
