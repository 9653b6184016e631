"""Task folders as data: manifests, checked JSONL files and seeded subsamples, no mteb classes.

The tasks directory (``--tasks-dir`` or ``ABLATION_TASKS_DIR``) holds one folder per task with a
``task.yaml`` manifest, at any depth, and the training pairs. Reading and checking those files,
finding the folder of a task and drawing the same seeded subsample for every trial is all that
training data, dev signals and provenance need; the mteb task classes built on top live in
``objectives.evaluation.mteb_tasks``, so loading training pairs never imports the evaluation stack.
"""

from __future__ import annotations

import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from objectives.categories import Category
from objectives.config.trial_config import ConfigError
from objectives.errors import one_line

__all__ = [
    "FILES_OF_TYPE",
    "MANIFEST",
    "SUBSAMPLE_SEED",
    "TASKS_DIR_ENV",
    "Manifest",
    "TaskDataError",
    "Texts",
    "check_files",
    "discover_tasks",
    "find_manifest",
    "held_out",
    "pick_labelled",
    "pick_rows",
    "read_jsonl",
    "read_manifest",
    "resolve_tasks_dir",
    "row_texts",
    "sample_labelled",
    "sample_rows",
    "task_folder",
]

TASKS_DIR_ENV = "ABLATION_TASKS_DIR"
MANIFEST = "task.yaml"
SUBSAMPLE_SEED = 42

Texts = list[tuple[str, ...]]
"""Each row's texts, in row order: what a held-out draw must not share (``held_out``)."""

# The data files each task type needs in its folder (formats: shared/data/README.md).
FILES_OF_TYPE: dict[str, tuple[str, ...]] = {
    Category.STS: ("test.jsonl",),
    Category.RETRIEVAL: ("corpus.jsonl", "queries.jsonl", "qrels.jsonl"),
    Category.CLASSIFICATION: ("train.jsonl", "test.jsonl"),
    Category.CLUSTERING: ("test.jsonl",),
}


class TaskDataError(ConfigError):
    """A task or training file that is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class Manifest:
    """One task folder as its ``task.yaml`` describes it."""

    name: str  # what --tasks selects and what the reports show
    type: str  # STS | Retrieval | Classification | Clustering: decides files and main score
    folder: Path  # the folder holding task.yaml and the data files
    description: str  # one line
    license: str  # the data's license
    mteb: str | None = None  # the MTEB task with the same data (online counterpart, metadata)
    instruction: str | None = None  # the query instruction of instruction-following encoders

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST


_REQUIRED = ("name", "type", "description", "license")
_OPTIONAL = ("mteb", "instruction")


def read_manifest(path: Path) -> Manifest:
    """The manifest at ``path``, its fields and type checked (its files are checked on loading)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        first = one_line(exc, first_line=True)
        raise TaskDataError(f"{path}: not a readable YAML manifest ({first})") from None
    if not isinstance(data, dict):
        raise TaskDataError(f"{path}: a manifest is a mapping with fields {list(_REQUIRED)}")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise TaskDataError(
            f"{path}: unknown field '{unknown[0]}'; known: {list(_REQUIRED + _OPTIONAL)}"
        )
    for field_name in _REQUIRED + _OPTIONAL:
        value = data.get(field_name)
        if value is None and field_name in _OPTIONAL:
            continue
        if not isinstance(value, str) or not value.strip():
            problem = "missing field" if value is None else "field must be a non-empty string:"
            raise TaskDataError(f"{path}: {problem} '{field_name}'")
    if data["type"] not in FILES_OF_TYPE:
        raise TaskDataError(
            f"{path}: field 'type' is '{data['type']}'; use one of {' | '.join(FILES_OF_TYPE)}"
        )
    return Manifest(folder=path.parent, **{k: data.get(k) for k in _REQUIRED + _OPTIONAL})


def check_files(manifest: Manifest) -> None:
    """Every data file the manifest's type needs exists in its folder."""
    for name in FILES_OF_TYPE[manifest.type]:
        if not (manifest.folder / name).is_file():
            raise TaskDataError(
                f"{manifest.folder / name}: file not found; a {manifest.type} task folder holds "
                f"{', '.join(FILES_OF_TYPE[manifest.type])} (shared/data/README.md)"
            )


def discover_tasks(tasks_dir: str | None) -> dict[str, Manifest]:
    """Every task under the tasks directory (any depth) by name; ``{}`` when there is none."""
    root = resolve_tasks_dir(tasks_dir)
    if root is None:
        return {}
    found: dict[str, Manifest] = {}
    for path in sorted(root.rglob(MANIFEST)):
        manifest = read_manifest(path)
        if manifest.name in found:
            raise TaskDataError(
                f"{path}: field 'name' '{manifest.name}' is also the name in "
                f"{found[manifest.name].path}; task names must be unique"
            )
        found[manifest.name] = manifest
    return found


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


def find_manifest(name: str, tasks_dir: str | None) -> Manifest:
    """The manifest of local task ``name``; ``TaskDataError`` lists the tasks that exist."""
    found = discover_tasks(tasks_dir)
    if name not in found:
        where = resolve_tasks_dir(tasks_dir)
        raise TaskDataError(
            f"no local task '{name}' under {where or f'--tasks-dir/{TASKS_DIR_ENV} (unset)'}; "
            f"found {sorted(found)} (a task folder needs a {MANIFEST})"
        )
    return found[name]


def task_folder(name: str, tasks_dir: str | None) -> Path:
    """The folder of local task ``name`` under the tasks directory."""
    return find_manifest(name, tasks_dir).folder


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


def pick_rows(size: int, limit: int | None, rng: random.Random) -> list[int]:
    """``limit`` of ``range(size)`` drawn without replacement, in order (all when no limit)."""
    if limit is None or limit >= size:
        return list(range(size))
    return sorted(rng.sample(range(size), limit))


def held_out(texts: Texts, picked: list[int], shown: Iterable[str] = ()) -> list[int]:
    """The rows none of whose texts is a text of a ``picked`` row or in ``shown`` (other texts the
    draw encodes, e.g. a retrieval corpus's fill); benchmarks reuse a sentence across pairs, so
    rows are not enough. None left is a ``ConfigError``."""
    seen = {text for i in picked for text in texts[i]} | set(shown)
    rest = [i for i, row in enumerate(texts) if seen.isdisjoint(row)]
    if not rest:
        raise ConfigError(
            "eval.holdout: a task has no texts outside the study's subset; lower eval.max_texts"
        )
    return rest


def row_texts(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> Texts:
    """Each row's texts, from the named fields."""
    return [tuple(str(row[f]) for f in fields) for row in rows]


def sample_rows(rows: list[Any], limit: int | None, rng: random.Random) -> list[Any]:
    """``limit`` rows drawn without replacement, in file order (all rows when no limit)."""
    return [rows[i] for i in pick_rows(len(rows), limit, rng)]


def sample_labelled(
    rows: list[dict[str, Any]], limit: int | None, rng: random.Random
) -> list[dict[str, Any]]:
    """``limit`` labelled rows keeping the label shares, in file order (``pick_labelled``)."""
    return [rows[i] for i in pick_labelled([str(r["label"]) for r in rows], limit, rng)]


def pick_labelled(labels: list[str], limit: int | None, rng: random.Random) -> list[int]:
    """``limit`` row numbers keeping the label shares (mteb's stratified subsampling), in order;
    at random where stratifying cannot work (a label seen once, or more labels than rows on
    either side of the split)."""
    if limit is None or limit >= len(labels):
        return list(range(len(labels)))
    counts = Counter(labels)
    if min(counts.values()) < 2 or min(limit, len(labels) - limit) < len(counts):
        return pick_rows(len(labels), limit, rng)
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Value
    from mteb.abstasks.abstask import AbsTask

    index = Dataset.from_dict(  # labels already a ClassLabel: mteb need not cast the column
        {"row": list(range(len(labels))), "label": labels},
        features=Features({"row": Value("int64"), "label": ClassLabel(names=sorted(counts))}),
    )
    picked = AbsTask.stratified_subsampling(
        DatasetDict({"test": index}), seed=rng.randrange(2**31), n_samples=limit
    )["test"]["row"]
    return sorted(picked)
