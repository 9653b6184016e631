"""What a finished trial produces: the contract between the trial (``objectives.trial.run``), the search
service that stores it and the reports that read it back.

How it is stored is ``storage.study_records``' alone (``write_result`` / ``read_result``), so this
module names no attribute key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from objectives.categories import CATEGORIES
from objectives.evaluation.evidence import TaskEvidence

__all__ = [
    "CATEGORIES",
    "COST_FIELDS",
    "OBJECTIVE",
    "Costs",
    "ReferenceResult",
    "TrialResult",
    "category_means",
]

OBJECTIVE = "average"


@dataclass(frozen=True)
class Costs:
    """What one trial cost; ``None`` where it was not recorded (a study from before the field)."""

    load_seconds: float | None = None  # task files, pairs, dev slices, model
    train_seconds: float | None = None  # optimizer steps only, not the dev signal
    eval_seconds: float | None = None  # the whole mteb run
    train_pairs_per_second: float | None = None
    eval_texts_per_second: float | None = None  # distinct texts per second of encoding
    peak_memory_mb: float | None = None  # CUDA peak allocation, else the trial's peak RSS


COST_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Costs))


@dataclass
class TrialResult:
    """Scores and costs of one trained-and-evaluated model.

    ``average`` (the objective) is the mean of the category means present, so a task subset without
    a category still yields a comparable number across arms of the same study.
    """

    task_scores: dict[str, float]
    category_scores: dict[str, float]
    average: float
    costs: Costs = field(default_factory=Costs)
    params: dict[str, int] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # Task -> its category, so reports can group tasks without the tasks directory.
    task_category: dict[str, str] = field(default_factory=dict)
    # Per-task item-level records (objectives.evaluation.evidence); stored as a trial system attr by the
    # worker (storage.evidence), never as a user attr, which optuna-dashboard ships to browsers.
    evidence: dict[str, TaskEvidence] = field(default_factory=dict)
    # Facts about the training data as used, e.g. dropped_overlap (pairs dropped for sharing a
    # text with an evaluated task).
    data: dict[str, Any] = field(default_factory=dict)
    # What produced the numbers: git commit and a content hash per task and of the training data
    # (objectives.trial.provenance).
    provenance: dict[str, Any] = field(default_factory=dict)
    # mteb's TaskResult objects (not stored as attrs): the worker writes them in MTEB's format.
    task_results: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class ReferenceResult:
    """The study's reference row: the untrained backbone with mean pooling, scored on the same
    texts as the arms (``objectives.evaluation.reference``), so a table shows whether fine-tuning helped.

    ``objective`` is the study's objective computed from these scores, for the objective column.
    It is never compared in verdicts: there is one reference, not one per seed.
    """

    label: str
    task_scores: dict[str, float]
    category_scores: dict[str, float]
    objective: float
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float | None = None


def category_means(
    task_scores: dict[str, float], task_category: dict[str, str]
) -> dict[str, float]:
    """Mean main score per category, in the fixed ``CATEGORIES`` order (absent ones omitted)."""
    means = {}
    for category in CATEGORIES:
        scores = [s for t, s in task_scores.items() if task_category[t] == category]
        if scores:
            means[category] = sum(scores) / len(scores)
    return means
