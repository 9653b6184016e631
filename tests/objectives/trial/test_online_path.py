"""The online path, offline: hub-style training tables and hub tasks whose data are local.

Nothing here reaches the hub. Training data in every table form (``save_to_disk`` folders, parquet)
go through the code a hub set takes after download, and MTEB hub task objects given local data go
through the capping that ``load_tasks`` applies to downloaded ones.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mteb
import pytest
import torch
from datasets import Dataset, DatasetDict
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

from objectives.config.presets import preset_config
from objectives.config.trial_config import (
    DEFAULT_TASKS,
    ONLINE_TASKS,
    ConfigError,
    EvalConfig,
    TrainConfig,
)
from objectives.evaluation.mteb_tasks import (
    cap_hub_task,
    load_tasks,
    task_category,
    task_names,
    task_texts,
)
from objectives.evaluation.scoring import CachedEncoder, evaluate
from objectives.evaluation.task_files import TASKS_DIR_ENV, TaskDataError, read_jsonl
from objectives.model.embedding_model import EmbeddingModel
from objectives.training.pairs import ONLINE_PAIRS, PAIRS_FILE, cap_pairs, load_pairs, pairs_source
from objectives.trial.run import run_trial
from tests.tiny_models import tiny_model_config

PAIRS = 300  # training rows written in each table form


@pytest.fixture(scope="module")
def rows(tasks_dir: Path) -> list[dict[str, Any]]:
    """The first training pairs of the offline data, as JSONL rows (an extra 'source' column)."""
    return read_jsonl(tasks_dir / PAIRS_FILE, {"query": str, "positive": str})[:PAIRS]


def _columns(rows: list[dict[str, Any]], query: str = "anchor") -> dict[str, list[Any]]:
    return {
        query: [r["query"] for r in rows],
        "positive": [r["positive"] for r in rows],
        "negative": [r.get("negative") for r in rows],
        "source": [r["source"] for r in rows],
    }


@pytest.fixture(scope="module")
def sources(rows: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The same pairs as a JSONL file, a saved Dataset, a saved DatasetDict, a parquet file and a
    folder of parquet files."""
    root = tmp_path_factory.mktemp("train-data")
    jsonl = root / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    table = Dataset.from_dict(_columns(rows))
    table.save_to_disk(str(root / "saved"))
    DatasetDict({"train": table, "test": table.select(range(5))}).save_to_disk(str(root / "dict"))
    Dataset.from_dict(_columns(rows, query="query")).to_parquet(str(root / "pairs.parquet"))
    (root / "shards").mkdir()
    table.select(range(PAIRS // 2)).to_parquet(str(root / "shards" / "a.parquet"))
    table.select(range(PAIRS // 2, PAIRS)).to_parquet(str(root / "shards" / "b.parquet"))
    names = ("jsonl", "saved", "dict", "parquet", "shards")
    paths = (jsonl, root / "saved", root / "dict", root / "pairs.parquet", root / "shards")
    return {name: str(path) for name, path in zip(names, paths, strict=True)}


def test_training_data_default_to_the_tasks_dirs_pairs_and_online_to_allnli_triplets(
    tasks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TASKS_DIR_ENV, raising=False)
    assert (
        pairs_source(TrainConfig(), None) == ONLINE_PAIRS == "sentence-transformers/all-nli:triplet"
    )
    assert pairs_source(TrainConfig(), str(tasks_dir)) == str(tasks_dir.resolve() / PAIRS_FILE)
    assert pairs_source(TrainConfig(data="my/set@dev"), None) == "my/set@dev"
    for preset in ("gpu", "paper"):
        config = preset_config(preset)
        assert pairs_source(config.train, config.eval.tasks_dir) == ONLINE_PAIRS


def test_every_table_form_gives_the_pairs_of_the_jsonl_file(sources: dict) -> None:
    expected = load_pairs(sources["jsonl"])
    assert len(expected) == PAIRS and any(p.negative for p in expected)
    assert any(p.negative is None for p in expected)
    for name in ("saved", "dict", "parquet", "shards"):
        assert load_pairs(sources[name]) == expected, name


def test_a_limit_draws_the_seeded_sample_that_cap_pairs_would_keep(sources: dict) -> None:
    everything = load_pairs(sources["jsonl"])
    for name in ("saved", "parquet", "shards"):
        assert load_pairs(sources[name], limit=40) == cap_pairs(everything, 40), name
    assert load_pairs(sources["saved"], limit=PAIRS + 1) == everything


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"premise": ["a"], "hypothesis": ["b"], "label": [0]},
            "found columns ['premise', 'hypothesis', 'label']",
        ),
        ({"query": ["a"], "anchor": ["a"], "positive": ["b"]}, "a query (or anchor) column"),
        ({"anchor": ["a"], "positive": [["b", "c"]]}, "column 'positive' holds"),
        ({"anchor": ["a", "b"], "positive": ["c", None]}, "1 rows have no anchor or no positive"),
    ],
)
def test_training_tables_without_text_columns_fail_in_one_line_naming_them(
    columns: dict, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "bad.parquet"
    Dataset.from_dict(columns).to_parquet(str(path))
    with pytest.raises(TaskDataError, match="^" + str(path)) as error:
        load_pairs(str(path))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unusable_training_sources_fail_in_one_line_naming_the_fix(
    sources: dict, tmp_path: Path
) -> None:
    table = Dataset.from_dict({"anchor": ["a"], "positive": ["b"]})
    DatasetDict({"dev": table, "test": table}).save_to_disk(str(tmp_path / "no-train"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not data\n")
    cases = {
        str(tmp_path / "no-train"): "splits ['dev', 'test'] and none named train",
        str(tmp_path / "empty"): "neither a parquet file nor a folder",
        str(tmp_path / "missing.parquet"): "neither a parquet file nor a folder",
        str(tmp_path / "notes.txt"): "must be a .jsonl or .parquet file",
        "./missing-folder": "must be a .jsonl or .parquet file",
    }
    for source, message in cases.items():
        with pytest.raises(TaskDataError) as error:
            load_pairs(source)
        assert message in str(error.value) and "\n" not in str(error.value), source
    with pytest.raises(ConfigError, match="cannot load training data 'no-such/set:triplet@train'"):
        load_pairs("no-such/set:triplet@train")  # HF_HUB_OFFLINE: the hub is out of reach


def test_a_smoke_trial_trains_the_same_on_a_saved_dataset_a_parquet_file_and_jsonl(
    sources: dict, tiny_encoder_dir: Path, tasks_dir: Path
) -> None:
    torch.set_num_threads(1)
    scores = {}
    for name in ("jsonl", "saved", "parquet"):
        config = preset_config(
            "smoke",
            {
                "model.backbone": str(tiny_encoder_dir),
                "eval.tasks_dir": str(tasks_dir),
                "eval.tasks": "SICK-R",
                "train.data": sources[name],
            },
        )
        reports: list[tuple[int, dict[str, float]]] = []
        result = run_trial(
            config, lambda step, proxies, out=reports: out.append((step, proxies)), progress=False
        )
        assert result.config["train"]["data"] == sources[name]
        scores[name] = (result.task_scores, reports)
    assert scores["saved"] == scores["jsonl"] == scores["parquet"]


def test_the_default_tasks_online_are_hub_tasks_of_the_four_categories(
    tasks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mteb.abstasks.clustering_legacy import AbsTaskClusteringLegacy

    monkeypatch.delenv(TASKS_DIR_ENV, raising=False)
    assert task_names(EvalConfig()) == ONLINE_TASKS
    assert task_names(EvalConfig(tasks_dir=str(tasks_dir))) == DEFAULT_TASKS
    assert task_names(EvalConfig(tasks=("STS12",))) == ("STS12",)
    hub = [mteb.get_task(name) for name in ONLINE_TASKS]
    assert sorted({task_category(t) for t in hub}) == [
        "Classification",
        "Clustering",
        "Retrieval",
        "STS",
    ]
    assert not any(isinstance(t, AbsTaskClusteringLegacy) for t in hub)  # all can be capped
    local = {t.metadata.name for t in load_tasks(EvalConfig(tasks_dir=str(tasks_dir)))}
    assert set(ONLINE_TASKS) - local == {
        "SciFact",
        "TwentyNewsgroupsClustering.v2",
        "ArXivHierarchicalClusteringS2S",
    }


def _hub_task(name: str, dataset: Any) -> Any:
    """MTEB's own task object, its data set as its ``load_data`` would leave them (not fetched)."""
    task = mteb.get_task(name)
    task.dataset, task.data_loaded = dataset, True
    return task


def _labelled(path: Path, text: str = "text", label: str = "label") -> Dataset:
    rows = read_jsonl(path, {"text": str, "label": (str, int)})
    return Dataset.from_dict(
        {text: [r["text"] for r in rows], label: [str(r["label"]) for r in rows]}
    )


@pytest.fixture(scope="module")
def tiny_model(tiny_encoder_dir: Path) -> EmbeddingModel:
    torch.set_num_threads(1)
    return EmbeddingModel.build(tiny_model_config(tiny_encoder_dir), seed=0)


def _encoder(model: EmbeddingModel) -> CachedEncoder:
    """A fresh encoder (its cache and text count start empty)."""
    return CachedEncoder(model, name="tiny", embed_dim=model.dim, batch_size=32)


def test_a_capped_hub_task_scores_the_texts_and_score_of_the_capped_local_task(
    tasks_dir: Path, tiny_model: EmbeddingModel
) -> None:
    config = EvalConfig(
        tasks=("STS14", "Banking77Classification"), tasks_dir=str(tasks_dir), max_texts=64
    )
    local = load_tasks(config)
    sts = read_jsonl(
        tasks_dir / "sts/STS14/test.jsonl",
        {"sentence1": str, "sentence2": str, "score": (int, float)},
    )
    folder = tasks_dir / "classification/Banking77"
    hub = [
        _hub_task("STS14", DatasetDict({"test": Dataset.from_list(sts)})),
        _hub_task(
            "Banking77Classification",
            DatasetDict({s: _labelled(folder / f"{s}.jsonl") for s in ("train", "test")}),
        ),
    ]
    for task in hub:
        cap_hub_task(task, config)
    for mine, theirs in zip(hub, local, strict=True):
        assert task_texts(mine) == task_texts(theirs) and task_texts(mine)
        assert len(mine.dataset["default"]["test"]) == len(theirs.dataset["default"]["test"])
    assert len(hub[0].dataset["default"]["test"]) == 32  # max_texts // 2 pairs
    assert hub[1].samples_per_label == config.samples_per_label
    assert evaluate(_encoder(tiny_model), hub, progress=False).task_scores == pytest.approx(
        evaluate(_encoder(tiny_model), local, progress=False).task_scores, abs=1e-9
    )


def test_capped_hub_retrieval_and_clustering_keep_max_texts_and_every_relevant_document(
    tasks_dir: Path, tiny_model: EmbeddingModel
) -> None:
    folder = tasks_dir / "retrieval/SciFactSubset"
    corpus = read_jsonl(folder / "corpus.jsonl", {"id": (str, int), "text": str})
    queries = read_jsonl(folder / "queries.jsonl", {"id": (str, int), "text": str})
    qrels = read_jsonl(
        folder / "qrels.jsonl", {"query_id": (str, int), "doc_id": (str, int), "score": int}
    )
    relevant: dict[str, dict[str, int]] = {}
    for row in qrels:
        relevant.setdefault(str(row["query_id"]), {})[str(row["doc_id"])] = row["score"]

    def table(rows: list[dict[str, Any]]) -> Dataset:
        return Dataset.from_dict(
            {"id": [str(r["id"]) for r in rows], "text": [r["text"] for r in rows]}
        )

    split = RetrievalSplitData(
        corpus=table(corpus), queries=table(queries), relevant_docs=relevant, top_ranked=None
    )
    retrieval = _hub_task("SciFact", {"default": {"test": split}})
    news = _labelled(tasks_dir / "clustering/Banking77Intents/test.jsonl", "sentences", "labels")
    clustering = _hub_task("TwentyNewsgroupsClustering.v2", DatasetDict({"test": news}))
    config = EvalConfig(max_texts=100)
    for task in (retrieval, clustering):
        cap_hub_task(task, config)
    kept = retrieval.dataset["default"]["test"]
    docs = set(kept["corpus"]["id"])
    assert len(kept["queries"]) == 100 // 5
    assert len(docs) + len(kept["queries"]) == 100 < len(corpus)
    assert set(kept["relevant_docs"]) == set(kept["queries"]["id"])
    assert all(set(relevant[q]) <= docs for q in kept["queries"]["id"])
    assert len(clustering.dataset["default"]["test"]) == 100 < len(news)
    assert clustering.max_documents_per_cluster == 100
    result = evaluate(_encoder(tiny_model), [retrieval, clustering], progress=False)
    assert set(result.task_scores) == {"SciFact", "TwentyNewsgroupsClustering.v2"}
    assert result.texts_encoded <= 200  # mteb scored the capped data, nothing more


def test_a_legacy_clustering_hub_task_cannot_be_capped_and_the_error_names_its_successor() -> None:
    task = mteb.get_task("ArxivClusteringS2S")
    with pytest.raises(ConfigError, match=r"use ArXivHierarchicalClusteringS2S or eval\.max_texts"):
        cap_hub_task(task, EvalConfig(max_texts=64))
    assert not task.data_loaded
