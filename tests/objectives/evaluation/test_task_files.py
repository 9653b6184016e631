"""Task folders with a task.yaml: discovered at any depth, checked in one line, never a stand-in."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from objectives.config.trial_config import ConfigError, EvalConfig
from objectives.evaluation.mteb_tasks import load_tasks
from objectives.evaluation.task_files import TaskDataError, discover_tasks, read_jsonl, task_folder

MANIFEST = "name: {name}\ntype: {kind}\ndescription: a test task\nlicense: CC0\n"


def _sts_slice(tasks_dir: Path, folder: Path, rows: int = 40) -> Path:
    """A new STS task folder: the first ``rows`` pairs of STS-B test under another name."""
    folder.mkdir(parents=True)
    lines = (tasks_dir / "sts/STSBenchmark/test.jsonl").read_text(encoding="utf-8").splitlines()
    (folder / "test.jsonl").write_text("\n".join(lines[:rows]) + "\n", encoding="utf-8")
    return folder


def test_the_shared_data_manifests_name_the_seven_default_tasks(tasks_dir: Path) -> None:
    found = discover_tasks(str(tasks_dir))
    assert set(EvalConfig().tasks) <= set(found)
    assert task_folder("Banking77Classification", str(tasks_dir)) == (
        tasks_dir.resolve() / "classification" / "Banking77"
    )
    assert found["SICK-R"].mteb == "SICK-R"
    assert found["Banking77Intents"].mteb is None  # local only
    assert found["ArxivTitles"].instruction is None


def test_a_new_folder_deep_in_the_tree_is_a_task_with_its_own_name(
    tasks_dir: Path, tmp_path: Path
) -> None:
    folder = _sts_slice(tasks_dir, tmp_path / "mine" / "deeper" / "MySTS")
    (folder / "task.yaml").write_text(
        MANIFEST.format(name="MySTS", kind="STS") + "instruction: Retrieve similar text\n"
    )
    (task,) = load_tasks(EvalConfig(tasks=("MySTS",), tasks_dir=str(tmp_path)))
    assert task.metadata.name == "MySTS"
    assert task.metadata.main_score == "cosine_spearman"
    assert task.metadata.adapted_from is None  # no hub task claimed
    assert len(task.dataset["default"]["test"]) == 40
    assert discover_tasks(str(tmp_path))["MySTS"].instruction == "Retrieve similar text"


def test_a_local_only_task_keeps_its_name_and_is_no_hub_stand_in(tasks_dir: Path) -> None:
    (task,) = load_tasks(
        EvalConfig(tasks=("Banking77Intents",), tasks_dir=str(tasks_dir), max_texts=80)
    )
    assert task.metadata.name == "Banking77Intents"
    assert task.metadata.main_score == "v_measure"
    assert task.metadata.adapted_from is None


def test_a_local_only_task_without_a_tasks_dir_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ABLATION_TASKS_DIR", raising=False)
    with pytest.raises(ConfigError, match="HF_HUB_OFFLINE is set") as offline:
        load_tasks(EvalConfig(tasks=("Banking77Intents",)))
    monkeypatch.delenv("HF_HUB_OFFLINE")
    with pytest.raises(ConfigError, match="neither a local task") as online:
        load_tasks(EvalConfig(tasks=("Banking77Intents",)))
    assert "\n" not in str(offline.value) + str(online.value)
    (hub,) = load_tasks(EvalConfig(tasks=("SciFact",)))  # online: the MTEB task by name
    assert hub.metadata.name == "SciFact" and not hub.data_loaded


def test_labelled_rows_are_drawn_stratified_when_every_label_fits(tasks_dir: Path) -> None:
    (task,) = load_tasks(
        EvalConfig(tasks=("Banking77Classification",), tasks_dir=str(tasks_dir), max_texts=154)
    )
    for split in ("train", "test"):
        rows = read_jsonl(tasks_dir / f"classification/Banking77/{split}.jsonl", {"label": str})
        share = Counter(r["label"] for r in rows)
        drawn = Counter(task.dataset["default"][split]["label"])
        assert sum(drawn.values()) == 154
        for label, count in share.items():  # each label's share of the file, to within one row
            assert abs(drawn[label] - 154 * count / len(rows)) < 1


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ("name: X\ntype: Reranking\ndescription: d\nlicense: l\n", "field 'type' is 'Reranking'"),
        ("name: X\ntype: STS\nlicense: l\n", "missing field 'description'"),
        ("name: X\ntype: STS\ndescription: d\nlicense: l\nmteb_name: Y\n", "unknown field"),
        ("name: [X]\ntype: STS\ndescription: d\nlicense: l\n", "non-empty string: 'name'"),
        ("name: X\ntype: STS\ndescription: d\nlicense: l\nmteb: NoSuchTask\n", "field 'mteb'"),
        ("name: X\ntype: STS\ndescription: d\nlicense: l\nmteb: SciFact\n", "a Retrieval task"),
        ("name: X\ntype: Clustering\ndescription: d\nlicense: l\n", "test.jsonl: file not found"),
        ("- a list\n", "a manifest is a mapping"),
        ("name: [X\n", "not a readable YAML manifest"),
    ],
)
def test_a_malformed_manifest_is_one_line_naming_file_and_field(
    tasks_dir: Path, tmp_path: Path, manifest: str, fragment: str
) -> None:
    folder = _sts_slice(tasks_dir, tmp_path / "sts" / "X", rows=4)
    if "Clustering" in manifest:
        (folder / "test.jsonl").unlink()
    (folder / "task.yaml").write_text(manifest)
    with pytest.raises(TaskDataError) as error:
        load_tasks(EvalConfig(tasks=("X",), tasks_dir=str(tmp_path)))
    message = str(error.value)
    assert fragment in message and "\n" not in message
    assert str(folder) in message


def test_two_folders_with_one_name_and_a_missing_manifest_are_refused(
    tasks_dir: Path, tmp_path: Path
) -> None:
    for where in ("a/Twin", "b/Twin"):
        (_sts_slice(tasks_dir, tmp_path / where, rows=4) / "task.yaml").write_text(
            MANIFEST.format(name="Twin", kind="STS")
        )
    with pytest.raises(TaskDataError, match="task names must be unique"):
        discover_tasks(str(tmp_path))
    shutil.rmtree(tmp_path / "b")
    (tmp_path / "a/Twin/task.yaml").unlink()
    with pytest.raises(TaskDataError, match=r"no local task 'Twin'.*needs a task\.yaml"):
        task_folder("Twin", str(tmp_path))
    with pytest.raises(ConfigError, match="unknown local task 'Twin'"):
        load_tasks(EvalConfig(tasks=("Twin",), tasks_dir=str(tmp_path)))


@pytest.mark.integration
def test_a_launch_with_a_broken_manifest_exits_2_in_one_line_and_writes_nothing(
    tasks_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from search.launch import main

    monkeypatch.chdir(tmp_path)  # the default storage would be ./studies.db
    data = tmp_path / "tasks"
    folder = _sts_slice(tasks_dir, data / "sts" / "Broken", rows=4)
    (folder / "task.yaml").write_text("name: Broken\ntype: Sts\ndescription: d\nlicense: l\n")
    argv = ["--study", "layer-weights", "--preset", "smoke", "--tasks-dir", str(data)]
    assert main([*argv, "--tasks", "Broken"]) == 2
    err = capsys.readouterr().err.strip()
    assert f"{folder / 'task.yaml'}: field 'type' is 'Sts'" in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tasks"]
