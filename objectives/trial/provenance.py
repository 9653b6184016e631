"""What produced a number: the code's commit, the versions of every library that changes a score,
and a content hash of every data file a trial read.

Two trials are comparable only when these agree; the search service refuses to add trials to a
study whose data hashes differ from the ones it was started with, and the report prints them.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

from objectives.evaluation.task_files import resolve_tasks_dir, task_folder

# Libraries whose version can move a score (numerics, tokenisation, evaluators, sampling).
VERSIONED: tuple[str, ...] = (
    "torch",
    "transformers",
    "tokenizers",
    "peft",
    "mteb",
    "sentence-transformers",
    "optuna",
    "ray",
    "scikit-learn",
    "scipy",
    "datasets",
    "numpy",
)
_CHUNK = 1 << 20
_REPO = Path(__file__).resolve().parent.parent


def versions() -> dict[str, str]:
    """Python and the installed version of each library in ``VERSIONED`` (absent ones omitted)."""
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def git_commit(repo: Path = _REPO) -> str | None:
    """The checkout's commit, with ``+dirty`` when tracked files changed; ``None`` outside git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes (first 16 hex digits: enough to tell data versions apart)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def folder_hashes(folder: str | Path) -> dict[str, str]:
    """``file_hash`` of every file under ``folder``, keyed by its path relative to the folder."""
    root = Path(folder)
    return {
        str(path.relative_to(root)): file_hash(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def data_hashes(task_folders: dict[str, Path], training_data: str) -> dict[str, str]:
    """One hash per task (over its files, names included) and one for the training data.

    Keys are ``task.<name>`` and ``train``; local training data (a JSONL file, or a parquet or
    ``save_to_disk`` folder) is hashed by content; online sources (an HF dataset or MTEB task name)
    are recorded by name, since the hub pins their revision itself.
    """
    hashes = {f"task.{name}": _tree_hash(folder) for name, folder in sorted(task_folders.items())}
    train = Path(training_data).expanduser()
    if train.is_file():
        hashes["train"] = file_hash(train)
    elif train.is_dir():  # a save_to_disk or parquet folder: its contents, like a task folder
        hashes["train"] = _tree_hash(train)
    else:
        hashes["train"] = f"hub:{training_data}"
    return hashes


def hub_record(metadata: Any) -> str:
    """What stands for a hub task's hash (``metadata``: its mteb metadata): its pinned dataset
    revision, since the hub pins the data it serves."""
    return f"hub:{(metadata.dataset or {}).get('revision', 'unpinned')}"


def _tree_hash(folder: Path) -> str:
    """One hash over every file under ``folder``, relative names included."""
    joined = "\n".join(f"{rel} {digest}" for rel, digest in folder_hashes(folder).items())
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def trial_provenance(tasks: list[Any], tasks_dir: str | None, training_data: str) -> dict[str, Any]:
    """The commit, library versions and data hashes of one trial (``tasks``: mteb task objects).

    A local task is hashed over its folder; a hub task is named by its pinned dataset revision.
    """
    local = resolve_tasks_dir(tasks_dir) is not None
    names = [task.metadata.name for task in tasks]
    folders = {name: task_folder(name, tasks_dir) for name in names} if local else {}
    hashes = data_hashes(folders, training_data)
    if not local:
        for task in tasks:
            hashes[f"task.{task.metadata.name}"] = hub_record(task.metadata)
    return {"commit": git_commit(), "versions": versions(), "data": hashes}
