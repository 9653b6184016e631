"""The MTEB subset as mteb task objects, read from a local tasks directory or loaded online.

Offline (a tasks directory in the layout of ``shared/data``, from ``EvalConfig.tasks_dir`` or the
``ABLATION_TASKS_DIR`` environment variable) every task is an mteb task class whose data come from
local JSONL files, so mteb's own evaluators compute the scores exactly as on the leaderboard. With
no tasks directory the tasks are MTEB's published ones, loaded online by name.

``EvalConfig.max_texts`` caps the texts each local task encodes with a seeded subsample (the same
``SUBSAMPLE_SEED`` for every trial, so all arms and seeds of a study score the same texts):

- STS: ``max_texts // 2`` pairs drawn at random (two texts per pair);
- Retrieval: ``max_texts // 5`` queries drawn at random, all their relevant documents kept, and the
  corpus filled with randomly drawn other documents up to ``max_texts`` texts in all;
- Classification: ``max_texts`` rows drawn at random from the test split and ``max_texts`` from the
  train split; mteb then draws ``samples_per_label`` training rows per label from that pool in each
  of its experiments (logistic regression, MTEB protocol);
- Clustering: ``max_texts`` rows drawn at random; k-means with k = the labels present (mteb).

Online tasks run as MTEB publishes them (``max_texts`` is not applied there).
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from objectives.config import ConfigError, EvalConfig

TASKS_DIR_ENV = "ABLATION_TASKS_DIR"
SUBSAMPLE_SEED = 42
RETRIEVAL_TEXTS_PER_QUERY = 5


class TaskDataError(ConfigError):
    """A task or training file that is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class TaskSpec:
    """One task of the registry: where its files live and which MTEB task it stands for.

    ``metadata_from`` is the registered MTEB task whose metadata (main score, type) the local task
    reuses; ``online`` is the MTEB task run when no tasks directory is given.
    """

    name: str
    category: str
    folder: str
    online: str
    metadata_from: str
    description: str


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("SICK-R", "STS", "sts/SICK-R", "SICK-R", "SICK-R", "SICK-R test set"),
        TaskSpec("STS14", "STS", "sts/STS14", "STS14", "STS14", "STS14, all six test files"),
        TaskSpec(
            "STSBenchmark", "STS", "sts/STSBenchmark", "STSBenchmark", "STSBenchmark", "STS-B test"
        ),
        TaskSpec(
            "SciFactSubset",
            "Retrieval",
            "retrieval/SciFactSubset",
            "SciFact",
            "SciFact",
            "SciFact subset: 2,101 of 5,183 documents, the 265 queries whose relevant docs are in it",
        ),
        TaskSpec(
            "Banking77Classification",
            "Classification",
            "classification/Banking77",
            "Banking77Classification",
            "Banking77Classification",
            "Banking77 intents, logistic regression on embeddings",
        ),
        TaskSpec(
            "Banking77Intents",
            "Clustering",
            "clustering/Banking77Intents",
            "TwentyNewsgroupsClustering",
            "TwentyNewsgroupsClustering.v2",
            "Banking77 test texts clustered by their 77 intents",
        ),
        TaskSpec(
            "ArxivTitles",
            "Clustering",
            "clustering/ArxivTitles",
            "ArxivClusteringS2S",
            "TwentyNewsgroupsClustering.v2",
            "titles of 2,000 arXiv papers clustered by their first category",
        ),
    )
}

CATEGORY_OF_TYPE = {
    "STS": "STS",
    "Retrieval": "Retrieval",
    "Classification": "Classification",
    "Clustering": "Clustering",
}


def resolve_tasks_dir(tasks_dir: str | None) -> Path | None:
    """The tasks directory: the argument, else ``ABLATION_TASKS_DIR``, else ``None`` (online)."""
    value = tasks_dir or os.environ.get(TASKS_DIR_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise TaskDataError(
            f"tasks directory {path} does not exist; pass --tasks-dir or set {TASKS_DIR_ENV} "
            "to a folder in the layout of shared/data"
        )
    return path


def task_folder(name: str, tasks_dir: str | None) -> Path:
    """The folder of local task ``name`` under the tasks directory (the layout of shared/data)."""
    root = resolve_tasks_dir(tasks_dir)
    spec = TASKS.get(name)
    if root is None or spec is None:
        raise TaskDataError(
            f"no local task '{name}'; choose from {sorted(TASKS)} under --tasks-dir/{TASKS_DIR_ENV}"
        )
    return root / spec.folder


def read_jsonl(
    path: Path,
    fields: dict[str, type | tuple[type, ...]],
    check: Callable[[dict[str, Any]], str | None] | None = None,
) -> list[dict[str, Any]]:
    """Rows of a JSONL file, each checked to hold ``fields`` of the given types.

    ``check`` may return a problem with a row (e.g. an unknown id). Any problem raises
    ``TaskDataError`` naming the file and the 1-based line, so a broken file never becomes a score.
    """
    if not path.is_file():
        raise TaskDataError(
            f"{path}: file not found; point --tasks-dir / {TASKS_DIR_ENV} at a folder in the "
            "layout of shared/data"
        )
    rows = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise TaskDataError(f"{path}:{number}: invalid JSON ({error.msg})") from None
            if not isinstance(row, dict):
                raise TaskDataError(f"{path}:{number}: expected a JSON object")
            for name, kind in fields.items():
                value = row.get(name)
                if value is None:
                    raise TaskDataError(f"{path}:{number}: missing field '{name}'")
                if not isinstance(value, kind) or isinstance(value, bool):
                    raise TaskDataError(
                        f"{path}:{number}: field '{name}' has the wrong type "
                        f"({type(value).__name__})"
                    )
            problem = check(row) if check else None
            if problem:
                raise TaskDataError(f"{path}:{number}: {problem}")
            rows.append(row)
    if not rows:
        raise TaskDataError(f"{path}: file is empty")
    return rows


_TEXT = {"text": str}
_LABELLED = {"text": str, "label": (str, int)}
_STS = {"sentence1": str, "sentence2": str, "score": (int, float)}


def _sample(rows: list[Any], limit: int | None, rng: random.Random) -> list[Any]:
    """``limit`` rows drawn without replacement, in file order (all rows when no limit)."""
    if limit is None or limit >= len(rows):
        return list(rows)
    keep = sorted(rng.sample(range(len(rows)), limit))
    return [rows[i] for i in keep]


def _metadata(spec: TaskSpec) -> Any:
    import mteb

    base = mteb.get_task(spec.metadata_from).metadata
    return base.model_copy(
        update={
            "name": spec.name,
            "description": f"{spec.description} (local files {spec.folder})",
            "superseded_by": None,
            "adapted_from": [spec.online],
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


def _load_sts(spec: TaskSpec, folder: Path, config: EvalConfig, rng: random.Random) -> Any:
    from datasets import Dataset
    from mteb.abstasks.sts import AbsTaskSTS

    rows = read_jsonl(folder / "test.jsonl", _STS)
    limit = None if config.max_texts is None else max(2, config.max_texts // 2)
    rows = _sample(rows, limit, rng)
    data = Dataset.from_dict(
        {
            "sentence1": [r["sentence1"] for r in rows],
            "sentence2": [r["sentence2"] for r in rows],
            "score": [float(r["score"]) for r in rows],
        }
    )
    return _local_class(AbsTaskSTS)(_metadata(spec), {"default": {"test": data}})


def _load_retrieval(spec: TaskSpec, folder: Path, config: EvalConfig, rng: random.Random) -> Any:
    from datasets import Dataset
    from mteb.abstasks.retrieval import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

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
        queries = _sample(queries, max(1, config.max_texts // RETRIEVAL_TEXTS_PER_QUERY), rng)
        needed = {d for q in queries for d in relevant[str(q["id"])]}
        others = [d for d in corpus if str(d["id"]) not in needed]
        room = max(0, config.max_texts - len(queries) - len(needed))
        extra = {str(d["id"]) for d in _sample(others, room, rng)}
        corpus = [d for d in corpus if str(d["id"]) in needed | extra]
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
    return _local_class(AbsTaskRetrieval)(_metadata(spec), {"default": {"test": split}})


def _load_classification(
    spec: TaskSpec, folder: Path, config: EvalConfig, rng: random.Random
) -> Any:
    from datasets import Dataset, DatasetDict
    from mteb.abstasks.classification import AbsTaskClassification

    splits = {}
    for split in ("train", "test"):
        rows = _sample(read_jsonl(folder / f"{split}.jsonl", _LABELLED), config.max_texts, rng)
        splits[split] = Dataset.from_dict(
            {"text": [r["text"] for r in rows], "label": [str(r["label"]) for r in rows]}
        )
    return _local_class(AbsTaskClassification)(
        _metadata(spec),
        {"default": DatasetDict(splits)},
        samples_per_label=config.samples_per_label,
    )


def _load_clustering(spec: TaskSpec, folder: Path, config: EvalConfig, rng: random.Random) -> Any:
    from datasets import Dataset
    from mteb.abstasks.clustering import AbsTaskClustering

    rows = _sample(read_jsonl(folder / "test.jsonl", _LABELLED), config.max_texts, rng)
    data = Dataset.from_dict(
        {"text": [r["text"] for r in rows], "labels": [str(r["label"]) for r in rows]}
    )
    return _local_class(AbsTaskClustering)(
        _metadata(spec),
        {"default": {"test": data}},
        max_fraction_of_documents_to_embed=None,
        max_document_to_embed=None,
        max_documents_per_cluster=len(rows),
        input_column_name="text",
        label_column_name="labels",
    )


_LOADERS: dict[str, Callable[[TaskSpec, Path, EvalConfig, random.Random], Any]] = {
    "STS": _load_sts,
    "Retrieval": _load_retrieval,
    "Classification": _load_classification,
    "Clustering": _load_clustering,
}


def load_tasks(config: EvalConfig) -> list[Any]:
    """The configured tasks as mteb task objects, their data already read and subsampled.

    Reading everything up front means a missing or malformed file fails the trial before any
    training time is spent.
    """
    root = resolve_tasks_dir(config.tasks_dir)
    if root is None:
        return [_online_task(name) for name in config.tasks]
    tasks = []
    for name in config.tasks:
        spec = TASKS.get(name)
        if spec is None:
            raise ConfigError(
                f"unknown local task '{name}'; choose from {sorted(TASKS)} "
                f"(or unset --tasks-dir/{TASKS_DIR_ENV} to run MTEB tasks online)"
            )
        rng = random.Random(f"{SUBSAMPLE_SEED}:{name}")
        tasks.append(_LOADERS[spec.category](spec, root / spec.folder, config, rng))
    return tasks


def _online_task(name: str) -> Any:
    import mteb

    mteb_name = TASKS[name].online if name in TASKS else name
    try:
        task = mteb.get_task(mteb_name)
    except KeyError:
        raise ConfigError(f"'{name}' is neither a local task nor an MTEB task name") from None
    if task.metadata.type not in CATEGORY_OF_TYPE:
        raise ConfigError(
            f"MTEB task '{mteb_name}' is of type {task.metadata.type}; "
            f"supported: {sorted(CATEGORY_OF_TYPE)}"
        )
    return task


def task_category(task: Any) -> str:
    """The result category (STS, Retrieval, Classification, Clustering) of an mteb task."""
    return CATEGORY_OF_TYPE[task.metadata.type]


def task_texts(task: Any) -> set[str]:
    """Every text a local task scores (the subsample), to keep dev slices disjoint from them."""
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
