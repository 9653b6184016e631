"""What a finished trial produces, and how it is flattened into Optuna user attributes.

This is the contract between the trial (``objectives.trial``), the search service that stores it and
the reports that read it back: reports only rely on the keys written by ``TrialResult.user_attrs``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from objectives.evidence import TaskEvidence

CATEGORIES: tuple[str, ...] = ("STS", "Retrieval", "Classification", "Clustering")
OBJECTIVE = "average"

SCORE_PREFIX = "score."
CATEGORY_PREFIX = "category."
COST_PREFIX = "cost."
PARAMS_PREFIX = "params."
DATA_PREFIX = "data."
PROVENANCE = "provenance"
TASK_CATEGORY = "task_category"


@dataclass
class TrialResult:
    """Scores and costs of one trained-and-evaluated model.

    ``average`` (the objective) is the mean of the category means present, so a task subset without
    a category still yields a comparable number across arms of the same study.
    """

    task_scores: dict[str, float]
    category_scores: dict[str, float]
    average: float
    costs: dict[str, float] = field(default_factory=dict)
    params: dict[str, int] = field(default_factory=dict)
    # (step, proxy per category) from step 0 on (objectives.dev_signal).
    intermediate: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # Task -> its category, so reports can group tasks without the tasks directory.
    task_category: dict[str, str] = field(default_factory=dict)
    # Per-task item-level records (objectives.evidence); stored as a trial system attr by the
    # worker (storage.evidence), never in user_attrs(), which optuna-dashboard ships to browsers.
    evidence: dict[str, TaskEvidence] = field(default_factory=dict)
    # Facts about the training data as used, e.g. dropped_overlap (pairs dropped for sharing a
    # text with an evaluated task); flattened to data.<key>.
    data: dict[str, Any] = field(default_factory=dict)
    # What produced the numbers: git commit and a content hash per task and of the training data
    # (objectives.provenance); stored as the user attr ``provenance``.
    provenance: dict[str, Any] = field(default_factory=dict)
    # mteb's TaskResult objects (not stored as attrs): the worker writes them in MTEB's format.
    task_results: list[Any] = field(default_factory=list)

    def user_attrs(self) -> dict[str, Any]:
        """Flat, JSON-ready attributes as stored on the Optuna trial."""
        attrs: dict[str, Any] = {OBJECTIVE: self.average}
        attrs.update({SCORE_PREFIX + k: v for k, v in self.task_scores.items()})
        attrs.update({CATEGORY_PREFIX + k: v for k, v in self.category_scores.items()})
        attrs.update({COST_PREFIX + k: v for k, v in self.costs.items()})
        attrs.update({PARAMS_PREFIX + k: v for k, v in self.params.items()})
        attrs.update({DATA_PREFIX + k: v for k, v in self.data.items()})
        attrs["config"] = self.config
        attrs["versions"] = self.versions
        attrs[PROVENANCE] = self.provenance
        attrs[TASK_CATEGORY] = self.task_category
        return attrs


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
