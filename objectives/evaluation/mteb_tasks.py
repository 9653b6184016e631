"""MTEB tasks from task folders: each folder's ``task.yaml`` says what it holds, mteb scores it.

Offline (a tasks directory, from ``EvalConfig.tasks_dir`` or the ``ABLATION_TASKS_DIR`` environment
variable) the tasks are the folders under it, at any depth, that hold a ``task.yaml`` manifest
(``name``, ``type``, optional ``mteb``, ``description``, ``license``, optional ``instruction``); the
files follow the per-type layout of ``shared/data/README.md``. Adding a benchmark is adding a folder,
not code. Each task becomes an mteb task class whose data come from the local JSONL files, so mteb's
own evaluators compute the scores exactly as on the leaderboard. Its metadata (main score) is that of
the MTEB task named by ``mteb``, else that of a registered task of the same type
(``METADATA_OF_TYPE``), renamed: a local-only task is never run as a different hub task. With no
tasks directory, task names are MTEB's and load online; the default list, which names local-only
tasks, then becomes ``ONLINE_TASKS`` (``task_names``).

``EvalConfig.max_texts`` caps the texts each local task encodes with a seeded subsample (the same
``SUBSAMPLE_SEED`` for every trial, so all arms and seeds of a study score the same texts):

- STS: ``max_texts // 2`` pairs drawn at random (two texts per pair);
- Retrieval: ``max_texts // 5`` queries drawn at random, all their relevant documents kept, and the
  corpus filled with randomly drawn other documents up to ``max_texts`` texts in all;
- Classification: ``max_texts`` rows of the test split and ``max_texts`` of the train split; mteb
  then draws ``samples_per_label`` training rows per label from that pool in each of its experiments
  (logistic regression, MTEB protocol);
- Clustering: ``max_texts`` rows; k-means with k = the labels present (mteb).

Labelled rows are drawn with mteb's stratified subsampling (label shares kept) where it can work:
every label at least twice and the cap no smaller than the number of labels; otherwise (e.g. the
smoke preset's 64 texts over Banking77's 77 intents) at random. An MTEB hub task is capped the
same way (``cap_hub_task``: its data are loaded up front, then subsampled); without ``max_texts``
it runs as MTEB publishes it.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from typing import Any

from objectives.categories import CATEGORIES, Category
from objectives.config.trial_config import DEFAULT_TASKS, ONLINE_TASKS, ConfigError, EvalConfig
from objectives.evaluation.task_files import (
    SUBSAMPLE_SEED,
    TASKS_DIR_ENV,
    Manifest,
    TaskDataError,
    check_files,
    discover_tasks,
    held_out,
    pick_labelled,
    pick_rows,
    read_jsonl,
    resolve_tasks_dir,
    row_texts,
    sample_labelled,
    sample_rows,
)

RETRIEVAL_TEXTS_PER_QUERY = 5

# Where a local-only task (no ``mteb`` field) takes its metadata from: a registered MTEB task of the
# same type whose main score is the type's usual one.
METADATA_OF_TYPE: dict[str, str] = {
    Category.STS: "STSBenchmark",
    Category.RETRIEVAL: "SciFact",
    Category.CLASSIFICATION: "Banking77Classification",
    Category.CLUSTERING: "TwentyNewsgroupsClustering.v2",
}
# (text, label) columns of a local labelled task's data; a capped hub task's are renamed to them.
LOCAL_COLUMNS = {
    Category.CLASSIFICATION: ("text", "label"),
    Category.CLUSTERING: ("text", "labels"),
}

_LABELLED = {"text": str, "label": (str, int)}
_STS = {"sentence1": str, "sentence2": str, "score": (int, float)}


def _metadata(manifest: Manifest) -> Any:
    """The mteb metadata of a local task: its MTEB counterpart's, or its type's, renamed."""
    import mteb

    source = manifest.mteb or METADATA_OF_TYPE[manifest.type]
    try:
        base = mteb.get_task(source).metadata
    except KeyError:
        raise TaskDataError(
            f"{manifest.path}: field 'mteb' is '{source}', which is not an MTEB task name"
        ) from None
    if base.type != manifest.type:
        raise TaskDataError(
            f"{manifest.path}: field 'mteb' names {source}, a {base.type} task, "
            f"but field 'type' is {manifest.type}"
        )
    return base.model_copy(
        update={
            "name": manifest.name,
            "description": f"{manifest.description} (local files {manifest.folder})",
            "superseded_by": None,
            "adapted_from": [manifest.mteb] if manifest.mteb else None,
        }
    )


def _local_class(base: type) -> type:
    """An mteb task class of type ``base`` whose data are given, not downloaded."""

    class LocalTask(base):  # type: ignore[misc, valid-type]
        def __init__(self, metadata: Any, dataset: Any, **attributes: Any) -> None:
            self.metadata = metadata
            super().__init__(seed=SUBSAMPLE_SEED)
            for name, value in attributes.items():
                setattr(self, name, value)
            self.dataset = dataset
            self.data_loaded = True

        def load_data(self, num_proc: int | None = None, **kwargs: Any) -> None:
            """Data were read from the tasks directory when the task was built."""

    LocalTask.__name__ = LocalTask.__qualname__ = f"Local{base.__name__.removeprefix('AbsTask')}"
    return LocalTask


def _load_sts(manifest: Manifest, config: EvalConfig, rng: random.Random) -> Any:
    from datasets import Dataset
    from mteb.abstasks.sts import AbsTaskSTS

    rows = read_jsonl(manifest.folder / "test.jsonl", _STS)
    limit = None if config.max_texts is None else max(2, config.max_texts // 2)

    def draw(rows: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
        return sample_rows(rows, limit, rng)

    rows = _sample_splits({"test": rows}, draw, ("sentence1", "sentence2"), config, rng)["test"]
    data = Dataset.from_dict(
        {
            "sentence1": [r["sentence1"] for r in rows],
            "sentence2": [r["sentence2"] for r in rows],
            "score": [float(r["score"]) for r in rows],
        }
    )
    return _local_class(AbsTaskSTS)(_metadata(manifest), {"default": {"test": data}})


def _pick_retrieval(
    query_ids: list[str],
    doc_ids: list[str],
    relevant: dict[str, dict[str, int]],
    max_texts: int,
    rng: random.Random,
    holdout: bool = False,
) -> tuple[list[int], list[int]]:
    """(query rows, corpus rows) within ``max_texts``: random queries with all their relevant
    documents, the corpus filled with random other documents (module docstring). ``holdout``: the
    same draw first, then queries it left out, their corpus filled only with documents the first
    corpus did not hold (``EvalConfig.holdout``)."""
    draw = (query_ids, doc_ids, relevant, max_texts, rng)
    queries, docs = _draw_retrieval(list(range(len(query_ids))), set(), *draw)
    if not holdout:
        return queries, docs
    # Ids stand for texts within a task; a held-out query shares none with the first draw:
    # neither it nor a document relevant to it was encoded there.
    texts = [(f"q:{q}", *(f"d:{d}" for d in relevant[q])) for q in query_ids]
    seen = {doc_ids[i] for i in docs}
    pool = held_out(texts, queries, (f"d:{d}" for d in seen))
    return _draw_retrieval(pool, seen, *draw)


def _draw_retrieval(
    pool: list[int],
    seen: set[str],
    query_ids: list[str],
    doc_ids: list[str],
    relevant: dict[str, dict[str, int]],
    max_texts: int,
    rng: random.Random,
) -> tuple[list[int], list[int]]:
    """Queries drawn from ``pool``; the corpus filled with documents not in ``seen``."""
    count = max(1, max_texts // RETRIEVAL_TEXTS_PER_QUERY)
    queries = [pool[i] for i in pick_rows(len(pool), count, rng)]
    needed = {d for i in queries for d in relevant[query_ids[i]]}
    others = [i for i, d in enumerate(doc_ids) if d not in needed and d not in seen]
    room = max(0, max_texts - len(queries) - len(needed))
    extra = {others[i] for i in pick_rows(len(others), room, rng)}
    return queries, [i for i, d in enumerate(doc_ids) if d in needed or i in extra]


def _load_retrieval(manifest: Manifest, config: EvalConfig, rng: random.Random) -> Any:
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

    folder = manifest.folder
    corpus = read_jsonl(folder / "corpus.jsonl", {"id": (str, int), "text": str})
    queries = read_jsonl(folder / "queries.jsonl", {"id": (str, int), "text": str})
    doc_ids = {str(d["id"]) for d in corpus}
    query_ids = {str(q["id"]) for q in queries}

    def known_ids(row: dict[str, Any]) -> str | None:
        if str(row["query_id"]) not in query_ids:
            return f"query_id {row['query_id']!r} is not in queries.jsonl"
        if str(row["doc_id"]) not in doc_ids:
            return f"doc_id {row['doc_id']!r} is not in corpus.jsonl"
        return None

    qrels = read_jsonl(
        folder / "qrels.jsonl",
        {"query_id": (str, int), "doc_id": (str, int), "score": (int, float)},
        known_ids,
    )
    relevant: dict[str, dict[str, int]] = {}
    for row in qrels:
        relevant.setdefault(str(row["query_id"]), {})[str(row["doc_id"])] = int(row["score"])
    queries = [q for q in queries if str(q["id"]) in relevant]
    if config.max_texts is not None:
        kept_queries, kept_docs = _pick_retrieval(
            [str(q["id"]) for q in queries],
            [str(d["id"]) for d in corpus],
            relevant,
            config.max_texts,
            rng,
            config.holdout,
        )
        queries = [queries[i] for i in kept_queries]
        corpus = [corpus[i] for i in kept_docs]
    relevant = {str(q["id"]): relevant[str(q["id"])] for q in queries}
    split = RetrievalSplitData(
        corpus=Dataset.from_dict(
            {"id": [str(d["id"]) for d in corpus], "text": [d["text"] for d in corpus]}
        ),
        queries=Dataset.from_dict(
            {"id": [str(q["id"]) for q in queries], "text": [q["text"] for q in queries]}
        ),
        relevant_docs=relevant,
        top_ranked=None,
    )
    return _local_class(AbsTaskRetrieval)(_metadata(manifest), {"default": {"test": split}})


def _load_classification(manifest: Manifest, config: EvalConfig, rng: random.Random) -> Any:
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification

    splits = {
        split: read_jsonl(manifest.folder / f"{split}.jsonl", _LABELLED)
        for split in ("train", "test")
    }
    splits = _sample_labelled(splits, config, rng)
    data = {
        split: Dataset.from_dict(
            {"text": [r["text"] for r in rows], "label": [str(r["label"]) for r in rows]}
        )
        for split, rows in splits.items()
    }
    return _local_class(AbsTaskClassification)(
        _metadata(manifest),
        {"default": DatasetDict(data)},
        samples_per_label=config.samples_per_label,
    )


def _sample_labelled(
    splits: dict[str, list[dict[str, Any]]], config: EvalConfig, rng: random.Random
) -> dict[str, list[dict[str, Any]]]:
    """Labelled splits sampled keeping label shares (``sample_labelled``), as ``_sample_splits``."""

    def draw(rows: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
        return sample_labelled(rows, config.max_texts, rng)

    return _sample_splits(splits, draw, ("text",), config, rng)


Draw = Callable[[list[dict[str, Any]], random.Random], list[dict[str, Any]]]


def _sample_splits(
    splits: dict[str, list[dict[str, Any]]],
    draw: Draw,
    fields: tuple[str, ...],
    config: EvalConfig,
    rng: random.Random,
) -> dict[str, list[dict[str, Any]]]:
    """Each split's seeded subset (``draw``); with ``config.holdout``, a second draw from each
    split's rows sharing no text (``fields``) with any split's subset: a classifier fitted on the
    study's training texts would otherwise have seen a held-out test text, and STS benchmarks
    reuse a sentence across pairs."""
    sampled = {split: draw(rows, rng) for split, rows in splits.items()}
    if not config.holdout:
        return sampled
    shown = {t for rows in sampled.values() for row in row_texts(rows, fields) for t in row}
    return {
        split: draw([rows[i] for i in held_out(row_texts(rows, fields), [], shown)], rng)
        for split, rows in splits.items()
    }


def _load_clustering(manifest: Manifest, config: EvalConfig, rng: random.Random) -> Any:
    from datasets import Dataset
    from mteb.abstasks.clustering import AbsTaskClustering

    rows = read_jsonl(manifest.folder / "test.jsonl", _LABELLED)
    rows = _sample_labelled({"test": rows}, config, rng)["test"]
    data = Dataset.from_dict(
        {"text": [r["text"] for r in rows], "labels": [str(r["label"]) for r in rows]}
    )
    return _local_class(AbsTaskClustering)(
        _metadata(manifest),
        {"default": {"test": data}},
        max_fraction_of_documents_to_embed=None,
        max_document_to_embed=None,
        max_documents_per_cluster=len(rows),
        input_column_name="text",
        label_column_name="labels",
    )


_LOADERS: dict[str, Callable[[Manifest, EvalConfig, random.Random], Any]] = {
    Category.STS: _load_sts,
    Category.RETRIEVAL: _load_retrieval,
    Category.CLASSIFICATION: _load_classification,
    Category.CLUSTERING: _load_clustering,
}


def hub_offline() -> bool:
    """Whether the Hugging Face hub is off limits (``HF_HUB_OFFLINE``), so tasks must be local."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def task_names(config: EvalConfig) -> tuple[str, ...]:
    """The tasks to score: ``config.tasks``, except that the default list, which names local-only
    tasks, becomes ``ONLINE_TASKS`` when there is no tasks directory (the hub's four categories)."""
    if config.tasks == DEFAULT_TASKS and resolve_tasks_dir(config.tasks_dir) is None:
        return ONLINE_TASKS
    return config.tasks


def load_tasks(config: EvalConfig) -> list[Any]:
    """The configured tasks as mteb task objects, local data already read and subsampled.

    A name is a local task (a manifest under the tasks directory) or else an MTEB hub task, which
    needs the hub: offline it is an error. Reading everything up front means a missing or
    malformed file fails before any training time is spent (the launcher calls this to check).
    With ``max_texts`` a hub task's data are downloaded here too, to be capped (``cap_hub_task``).
    """
    local = discover_tasks(config.tasks_dir)
    tasks = []
    for name in task_names(config):
        if name in local:
            check_files(local[name])
            rng = random.Random(f"{SUBSAMPLE_SEED}:{name}")
            tasks.append(_LOADERS[local[name].type](local[name], config, rng))
        else:
            task = _hub_task(name, local)
            if config.max_texts is not None:
                cap_hub_task(task, config)
            tasks.append(task)
    return tasks


def cap_hub_task(task: Any, config: EvalConfig) -> None:
    """Load an MTEB hub task's data (unless loaded) and cap them as a local task of its type is
    capped (module docstring: same sampling, same seed), so ``max_texts`` means the same online.

    The data end up as ``{subset: {split: data}}`` like a local task's, marked loaded, so
    ``mteb.evaluate`` scores them as they are; ``samples_per_label`` applies as offline.
    """
    from datasets import DatasetDict
    from mteb.abstasks.clustering_legacy import AbsTaskClusteringLegacy

    name = task.metadata.name
    if config.holdout:
        raise ConfigError(
            f"eval.holdout draws from local task folders; MTEB task '{name}' is not one "
            "(give --tasks-dir, or leave eval.holdout off)"
        )
    if isinstance(task, AbsTaskClusteringLegacy):
        successor = task.metadata.superseded_by or "a .v2 clustering task"
        raise ConfigError(
            f"MTEB task '{name}' is a legacy clustering task (one row per set of clusters) that "
            f"eval.max_texts cannot cap; use {successor} or eval.max_texts=None"
        )
    if not task.data_loaded:
        task.load_data()
    kind, limit = task.metadata.type, config.max_texts
    by_subset = task.dataset
    if kind != Category.RETRIEVAL and not task.metadata.is_multilingual:
        by_subset = {"default": task.dataset}  # mteb keeps a monolingual task's splits bare
    rng = random.Random(f"{SUBSAMPLE_SEED}:{name}")
    capped = {}
    for subset, splits in by_subset.items():
        kept = {
            split: _cap_hub_split(kind, task, data, limit, rng) for split, data in splits.items()
        }
        capped[subset] = kept if kind == Category.RETRIEVAL else DatasetDict(kept)
    task.dataset = capped
    if kind in LOCAL_COLUMNS:
        task.input_column_name, task.label_column_name = LOCAL_COLUMNS[kind]
    if kind == Category.CLASSIFICATION:
        task.samples_per_label = config.samples_per_label
    if kind == Category.CLUSTERING:  # score exactly the capped texts, as a local clustering task
        task.max_fraction_of_documents_to_embed = None
        task.max_document_to_embed = None
        task.max_documents_per_cluster = max(len(s) for d in capped.values() for s in d.values())


def _cap_hub_split(kind: str, task: Any, data: Any, limit: int, rng: random.Random) -> Any:
    """One split of a hub task, capped as ``_LOADERS[kind]`` caps a local one."""
    if kind == Category.STS:
        return data.select(pick_rows(len(data), max(2, limit // 2), rng))
    if kind in LOCAL_COLUMNS:  # renamed to a local task's columns, which the evidence reads
        labels = [str(label) for label in data[task.label_column_name]]
        kept = data.select(pick_labelled(labels, limit, rng))
        text, label = LOCAL_COLUMNS[kind]
        names = {task.input_column_name: text, task.label_column_name: label}
        return kept.rename_columns({old: new for old, new in names.items() if old != new})
    relevant = data["relevant_docs"]
    query_ids = [str(q) for q in data["queries"]["id"]]
    usable = [i for i, q in enumerate(query_ids) if relevant.get(q)]
    picked, docs = _pick_retrieval(
        [query_ids[i] for i in usable],
        [str(d) for d in data["corpus"]["id"]],
        relevant,
        limit,
        rng,
    )
    queries = data["queries"].select([usable[i] for i in picked])
    corpus = data["corpus"].select(docs)
    kept_docs = {str(d) for d in corpus["id"]}
    top_ranked = data.get("top_ranked")
    return {
        "corpus": corpus,
        "queries": queries,
        "relevant_docs": {str(q): relevant[str(q)] for q in queries["id"]},
        "top_ranked": None
        if top_ranked is None
        else {str(q): [d for d in top_ranked[str(q)] if d in kept_docs] for q in queries["id"]},
    }


def _hub_task(name: str, local: dict[str, Manifest]) -> Any:
    import mteb

    where = f"local tasks: {sorted(local)}" if local else f"no --tasks-dir/{TASKS_DIR_ENV}"
    if hub_offline():
        raise TaskDataError(
            f"unknown local task '{name}' ({where}) and HF_HUB_OFFLINE is set, so it cannot be "
            "an MTEB hub task; add its folder with a task.yaml or fix the name"
        )
    try:
        task = mteb.get_task(name)
    except KeyError:
        raise ConfigError(
            f"'{name}' is neither a local task ({where}) nor an MTEB task name"
        ) from None
    if task.metadata.type not in CATEGORIES:
        raise ConfigError(
            f"MTEB task '{name}' is of type {task.metadata.type}; supported: {sorted(CATEGORIES)}"
        )
    return task


def task_category(task: Any) -> Category:
    """The result category (STS, Retrieval, Classification, Clustering) of an mteb task: its type."""
    return Category(task.metadata.type)


def task_texts(task: Any) -> set[str]:
    """Every text a loaded task scores (local or capped hub: the subsample), to keep training
    pairs and dev slices disjoint from them; an unloaded hub task has none yet."""
    texts: set[str] = set()
    for splits in (task.dataset or {}).values():
        for split in splits.values():
            if isinstance(split, dict):  # retrieval
                texts.update(split["corpus"]["text"], split["queries"]["text"])
            else:
                for column in ("sentence1", "sentence2", "text"):
                    if column in split.column_names:
                        texts.update(split[column])
    return texts
