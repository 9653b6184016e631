"""Provenance: a data change shows in the hashes, and the commit and versions are the real ones."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch

from objectives.trial.provenance import data_hashes, git_commit, versions


def test_a_changed_task_file_or_training_file_changes_only_its_own_hash(
    tasks_dir: Path, tmp_path: Path
) -> None:
    sick = tmp_path / "sick"
    shutil.copytree(tasks_dir / "sts/SICK-R", sick)
    train = tmp_path / "pairs.jsonl"
    train.write_text('{"query": "a", "positive": "b"}\n')
    before = data_hashes({"SICK-R": sick, "STS14": tasks_dir / "sts/STS14"}, str(train))
    assert data_hashes({"SICK-R": sick, "STS14": tasks_dir / "sts/STS14"}, str(train)) == before

    with (sick / "test.jsonl").open("a") as handle:
        handle.write('{"sentence1": "x", "sentence2": "y", "score": 1.0}\n')
    after = data_hashes({"SICK-R": sick, "STS14": tasks_dir / "sts/STS14"}, str(train))
    assert after["task.SICK-R"] != before["task.SICK-R"]
    assert after["task.STS14"] == before["task.STS14"]
    assert after["train"] == before["train"]

    train.write_text('{"query": "a", "positive": "c"}\n')
    assert data_hashes({}, str(train))["train"] != before["train"]


def test_a_local_training_folder_is_hashed_by_its_contents(tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    folder.mkdir()
    (folder / "data-00000-of-00001.arrow").write_bytes(b"pairs v1")
    before = data_hashes({}, str(folder))["train"]
    assert not before.startswith("hub:")
    (folder / "data-00000-of-00001.arrow").write_bytes(b"pairs v2")
    assert data_hashes({}, str(folder))["train"] != before


def test_an_online_training_set_is_recorded_by_name() -> None:
    assert data_hashes({}, "sentence-transformers/all-nli")["train"] == (
        "hub:sentence-transformers/all-nli"
    )


def test_versions_name_the_installed_libraries_and_the_commit_is_this_checkout(
    tmp_path: Path,
) -> None:
    found = versions()
    assert found["torch"] == torch.__version__
    assert {"transformers", "mteb", "numpy", "scikit-learn"} <= set(found)
    commit = git_commit()
    assert commit is not None and re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", commit)
    assert git_commit(tmp_path) is None
