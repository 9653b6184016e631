"""Local MTEB tasks: read from the tasks directory, subsampled as documented, bad files refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from objectives.config.trial_config import ConfigError, EvalConfig
from objectives.evaluation.mteb_tasks import load_tasks, task_category
from objectives.evaluation.task_files import TaskDataError, discover_tasks, resolve_tasks_dir


def _split(task, name="test"):
    return task.dataset["default"][name]


def test_every_default_task_loads_from_its_manifest_with_the_documented_caps(
    tasks_dir: Path,
) -> None:
    config = EvalConfig(tasks_dir=str(tasks_dir), max_texts=60)
    manifests = discover_tasks(str(tasks_dir))
    tasks = {t.metadata.name: t for t in load_tasks(config)}
    assert list(tasks) == list(config.tasks)
    assert {n: task_category(t) for n, t in tasks.items()} == {
        n: manifests[n].type for n in config.tasks
    }

    for name in ("SICK-R", "STS14", "STSBenchmark"):
        assert len(_split(tasks[name])) == 30  # max_texts // 2 pairs
    retrieval = _split(tasks["SciFactSubset"])
    assert len(retrieval["queries"]) == 12  # max_texts // 5
    corpus_ids = set(retrieval["corpus"]["id"])
    assert len(retrieval["queries"]) + len(corpus_ids) == 60
    assert set(retrieval["relevant_docs"]) == set(retrieval["queries"]["id"])
    for docs in retrieval["relevant_docs"].values():
        assert set(docs) <= corpus_ids  # every query keeps its relevant documents
    banking = tasks["Banking77Classification"]
    assert len(_split(banking, "train")) == len(_split(banking, "test")) == 60
    assert banking.samples_per_label == config.samples_per_label
    assert len(_split(tasks["Banking77Intents"])) == len(_split(tasks["ArxivTitles"])) == 60
    assert tasks["SciFactSubset"].metadata.main_score == "ndcg_at_10"
    assert tasks["SICK-R"].metadata.main_score == "cosine_spearman"


def test_subsample_is_the_same_for_every_trial_and_uncapped_reads_all(tasks_dir: Path) -> None:
    capped = EvalConfig(tasks=("SICK-R",), tasks_dir=str(tasks_dir), max_texts=40)
    first, second = (_split(load_tasks(capped)[0])["sentence1"] for _ in range(2))
    assert first == second
    full = load_tasks(EvalConfig(tasks=("SICK-R",), tasks_dir=str(tasks_dir)))[0]
    rows = (tasks_dir / "sts/SICK-R/test.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(_split(full)) == sum(1 for row in rows if row.strip())


def test_tasks_dir_comes_from_the_environment(
    tasks_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ABLATION_TASKS_DIR", str(tasks_dir))
    assert resolve_tasks_dir(None) == tasks_dir.resolve()
    monkeypatch.delenv("ABLATION_TASKS_DIR")
    assert resolve_tasks_dir(None) is None  # online: MTEB task names
    with pytest.raises(TaskDataError, match="does not exist"):
        resolve_tasks_dir(str(tasks_dir / "nowhere"))


def test_unknown_local_task_is_a_config_error(tasks_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown local task 'NoSuchTask'"):
        load_tasks(EvalConfig(tasks=("NoSuchTask",), tasks_dir=str(tasks_dir)))


def _write(path: Path, rows: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _manifest(folder: Path, name: str, kind: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.yaml").write_text(
        f"name: {name}\ntype: {kind}\ndescription: test data\nlicense: CC0\n", encoding="utf-8"
    )


def _sts_row(score: object = 3.0) -> str:
    return json.dumps({"sentence1": "a cat", "sentence2": "a dog", "score": score})


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"sentence1": "a", "sentence2": "b", "score": 1', "invalid JSON"),
        (json.dumps({"sentence1": "a", "score": 1.0}), "missing field 'sentence2'"),
        (_sts_row("high"), "field 'score' has the wrong type"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_malformed_task_file_names_file_and_line(
    tmp_path: Path, bad_line: str, message: str
) -> None:
    path = tmp_path / "sts" / "SICK-R" / "test.jsonl"
    _write(path, [_sts_row(), _sts_row(), bad_line])
    _manifest(path.parent, "SICK-R", "STS")
    with pytest.raises(TaskDataError) as error:
        load_tasks(EvalConfig(tasks=("SICK-R",), tasks_dir=str(tmp_path)))
    assert f"{path}:3: {message}" in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_task_file_and_dangling_qrels_are_named(tmp_path: Path) -> None:
    _manifest(tmp_path / "sts" / "STS14", "STS14", "STS")
    with pytest.raises(TaskDataError, match=r"sts/STS14/test.jsonl: file not found"):
        load_tasks(EvalConfig(tasks=("STS14",), tasks_dir=str(tmp_path)))
    folder = tmp_path / "retrieval" / "SciFactSubset"
    _manifest(folder, "SciFactSubset", "Retrieval")
    _write(folder / "corpus.jsonl", [json.dumps({"id": "d1", "text": "doc"})])
    _write(folder / "queries.jsonl", [json.dumps({"id": "q1", "text": "query"})])
    _write(
        folder / "qrels.jsonl",
        [
            json.dumps({"query_id": "q1", "doc_id": "d1", "score": 1}),
            json.dumps({"query_id": "q1", "doc_id": "d9", "score": 1}),
        ],
    )
    with pytest.raises(TaskDataError, match=r"qrels.jsonl:2: doc_id 'd9' is not in corpus.jsonl"):
        load_tasks(EvalConfig(tasks=("SciFactSubset",), tasks_dir=str(tmp_path)))


def _texts(task) -> set[str]:
    """Every text a task would encode, whatever its type."""
    data = task.dataset["default"]
    kind = task_category(task)
    if kind == "STS":
        return set(data["test"]["sentence1"]) | set(data["test"]["sentence2"])
    if kind == "Retrieval":
        return set(data["test"]["queries"]["text"]) | set(data["test"]["corpus"]["text"])
    return {text for split in data.values() for text in split["text"]}


def test_holdout_scores_as_many_texts_none_of_them_in_the_studys_subset(tasks_dir: Path) -> None:
    study = EvalConfig(tasks_dir=str(tasks_dir), max_texts=60)
    holdout = EvalConfig(tasks_dir=str(tasks_dir), max_texts=60, holdout=True)
    seen = {t.metadata.name: t for t in load_tasks(study)}
    held = {t.metadata.name: t for t in load_tasks(holdout)}
    assert list(held) == list(seen)
    for name, task in held.items():
        assert _texts(task), name
        assert not _texts(task) & _texts(seen[name]), name
    for name in ("SICK-R", "STS14", "STSBenchmark"):
        assert len(_split(held[name])) == 30
    retrieval = _split(held["SciFactSubset"])
    assert len(retrieval["queries"]) == 12
    assert len(retrieval["queries"]) + len(set(retrieval["corpus"]["id"])) <= 60
    for docs in retrieval["relevant_docs"].values():  # still scoreable: relevant docs kept
        assert set(docs) <= set(retrieval["corpus"]["id"])
    again = {t.metadata.name: _texts(t) for t in load_tasks(holdout)}
    assert again == {n: _texts(t) for n, t in held.items()}  # the same for every trial


def test_holdout_needs_a_cap_and_a_task_larger_than_it(tasks_dir: Path) -> None:
    with pytest.raises(ConfigError, match=r"set eval\.max_texts"):
        EvalConfig(tasks_dir=str(tasks_dir), holdout=True)
    rows = (tasks_dir / "sts/SICK-R/test.jsonl").read_text(encoding="utf-8").splitlines()
    whole = 2 * sum(1 for row in rows if row.strip())
    config = EvalConfig(tasks=("SICK-R",), tasks_dir=str(tasks_dir), max_texts=whole, holdout=True)
    with pytest.raises(ConfigError, match=r"lower eval\.max_texts"):
        load_tasks(config)
