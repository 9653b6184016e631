"""Read one study back from storage as the report sees it: arms, their trials by state, the plan.

This is the only module that knows how the search service lays a study out (docs/DESIGN.md, "Study
records"); everything downstream works on ``StudyRecords``. Only COMPLETE trials count as finished
arm x seed cells: a PRUNED trial stopped early and its partial curve must never enter the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from objectives.results import CATEGORY_PREFIX, SCORE_PREFIX
from storage import StorageError, open_storage, redact, resolve_url


class ReportError(RuntimeError):
    """A study that cannot be reported; the message is one line that names the fix."""


@dataclass(frozen=True)
class StudyRecords:
    """A study's plan and trials, grouped the way the report needs them."""

    study: optuna.Study
    storage_label: str
    plan: dict[str, Any]
    skipped_arms: list[dict[str, str]]
    preset: str | None
    backbone: str | None
    trials: list[FrozenTrial]

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def baseline(self) -> str | None:
        return self.plan.get("baseline")

    @property
    def arms(self) -> list[str]:
        """Arm labels in plan order, then any label seen only in trials (e.g. a user's extra arm)."""
        labels = [arm["label"] for arm in self.plan.get("arms", [])]
        skipped = {s.get("arm") for s in self.skipped_arms}
        labels = [label for label in labels if label not in skipped]
        for trial in self.trials:
            label = arm_of(trial)
            if label is not None and label not in labels:
                labels.append(label)
        return labels

    def by_state(self, state: TrialState, arm: str | None = None) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == state and (arm is None or arm_of(t) == arm)]

    def complete(self, arm: str | None = None) -> list[FrozenTrial]:
        """Finished trials with scores: the only ones that count as an arm x seed result."""
        return [t for t in self.by_state(TrialState.COMPLETE, arm) if t.value is not None]

    def cells(self, arm: str) -> dict[Any, FrozenTrial]:
        """Seed -> the arm's result for that seed: its best COMPLETE trial by objective.

        A plan's ``search`` section (TPE) runs several trials per arm x seed; the table, the tests
        and the exports all use this one rule (a retried cell has one COMPLETE trial anyway).
        """
        best: dict[Any, FrozenTrial] = {}
        for trial in self.complete(arm):
            seed = seed_of(trial)
            if seed not in best or trial.value > best[seed].value:
                best[seed] = trial
        return best


def arm_of(trial: FrozenTrial) -> str | None:
    arm = trial.params.get("arm")
    return None if arm is None else str(arm)


def seed_of(trial: FrozenTrial) -> Any:
    return trial.params.get("seed", trial.user_attrs.get("config", {}).get("seed"))


def task_scores(trial: FrozenTrial) -> dict[str, float]:
    return {
        key.removeprefix(SCORE_PREFIX): float(value)
        for key, value in trial.user_attrs.items()
        if key.startswith(SCORE_PREFIX)
    }


def category_score(trial: FrozenTrial, category: str) -> float | None:
    value = trial.user_attrs.get(CATEGORY_PREFIX + category)
    return None if value is None else float(value)


def fail_reason(trial: FrozenTrial) -> str:
    """Why a trial failed: the service's ``error`` attr, else Optuna's own record, else a hint."""
    reason = trial.user_attrs.get("error") or trial.system_attrs.get("fail_reason")
    if reason:
        return str(reason).strip().splitlines()[0]
    return "no reason recorded (worker killed or heartbeat lost?)"


def load_records(study_name: str, url: str | None = None) -> StudyRecords:
    """Open the storage and load ``study_name``; every failure is one ``ReportError`` line."""
    url = resolve_url(url)
    try:
        storage = open_storage(url)
    except StorageError as exc:
        raise ReportError(str(exc)) from None
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, False))
        known = ", ".join(names) if names else "none"
        raise ReportError(
            f"study '{study_name}' is not in {redact(url)} (studies there: {known}); "
            "check --study and --storage"
        ) from None
    attrs = study.user_attrs
    return StudyRecords(
        study=study,
        storage_label=redact(url),
        plan=dict(attrs.get("plan") or {}),
        skipped_arms=list(attrs.get("skipped_arms") or []),
        preset=attrs.get("preset"),
        backbone=attrs.get("backbone"),
        trials=study.get_trials(deepcopy=False),
    )
