"""Item-level evidence in the study storage: one trial system attribute, compactly encoded.

A trial's evidence (``objectives.evaluation.evidence``) is a few arrays per task. It is written as the trial
system attr ``evidence`` rather than a user attr because optuna-dashboard sends every user attr of
every trial to the browser on each poll, and system attrs stay on the server. The value is one JSON
string: per task its kind, item hash and arrays, each array zlib-compressed and base64-encoded
(integers in the smallest dtype that holds them). Plain text, so SQLite and PostgreSQL store it
alike.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from objectives.evaluation.evidence import TaskEvidence

KEY = "evidence"
FORMAT = 1


def encode(evidence: dict[str, TaskEvidence]) -> str:
    """The evidence of one trial as one JSON string."""
    tasks = {
        name: {
            "kind": task.kind,
            "items": task.items,
            "arrays": {key: _pack(array) for key, array in task.arrays.items()},
        }
        for name, task in evidence.items()
    }
    return json.dumps({"format": FORMAT, "tasks": tasks}, separators=(",", ":"))


def decode(text: str) -> dict[str, TaskEvidence]:
    """The inverse of ``encode``."""
    record = json.loads(text)
    if record.get("format") != FORMAT:
        raise ValueError(f"evidence format {record.get('format')!r}, this version reads {FORMAT}")
    return {
        name: TaskEvidence(
            task["kind"],
            task["items"],
            {key: _unpack(packed) for key, packed in task["arrays"].items()},
        )
        for name, task in record["tasks"].items()
    }


def system_attrs(evidence: dict[str, TaskEvidence]) -> dict[str, str]:
    """The trial system attrs that hold ``evidence``: none when the trial has none (e.g. online
    tasks only)."""
    return {KEY: encode(evidence)} if evidence else {}


def write_evidence(
    storage: optuna.storages.BaseStorage, trial_id: int, evidence: dict[str, TaskEvidence]
) -> None:
    """Store a trial's evidence (nothing when the trial has none)."""
    for key, value in system_attrs(evidence).items():
        storage.set_trial_system_attr(trial_id, key, value)


def read_evidence(trial: FrozenTrial) -> dict[str, TaskEvidence]:
    """A stored trial's evidence; ``{}`` for trials written before evidence was kept."""
    text = trial.system_attrs.get(KEY)
    return decode(text) if text else {}


def _pack(array: np.ndarray) -> dict[str, Any]:
    if np.issubdtype(array.dtype, np.integer):
        low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
        array = array.astype(np.result_type(np.min_scalar_type(low), np.min_scalar_type(high)))
    else:
        array = array.astype(np.float64)
    data = base64.b64encode(zlib.compress(np.ascontiguousarray(array).tobytes(), 9))
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": data.decode("ascii")}


def _unpack(packed: dict[str, Any]) -> np.ndarray:
    raw = zlib.decompress(base64.b64decode(packed["data"]))
    array = np.frombuffer(raw, dtype=np.dtype(packed["dtype"])).reshape(packed["shape"])
    # Indices and labels come back as int64 so arithmetic on them never overflows a small dtype.
    return array.astype(np.int64) if np.issubdtype(array.dtype, np.integer) else array.copy()
