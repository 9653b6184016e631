"""Read one study back from storage as the report sees it: arms, their trials by state, the plan.

The study's layout (docs/DESIGN.md, "Study records") is read through ``storage.study_records``, the
module the search service writes it with; everything downstream works on ``ReportedStudy``. Only
COMPLETE trials count as finished arm x seed cells: a PRUNED trial stopped early and its partial
curve must never enter the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from objectives.errors import AblationError
from objectives.trial.results import ReferenceResult
from storage import StorageError, open_storage, redact, resolve_url
from storage.study_records import (
    PlanRecord,
    SkippedArm,
    read_cell,
    read_error,
    read_reference,
    read_result,
    read_study_record,
)


class ReportError(AblationError, RuntimeError):
    """A study that cannot be reported; the message is one line that names the fix."""


@dataclass(frozen=True)
class ReportedStudy:
    """A study's plan and trials, grouped the way the report needs them."""

    study: optuna.Study
    storage_label: str
    plan: PlanRecord
    skipped_arms: list[SkippedArm]
    preset: str | None
    backbone: str | None
    trials: list[FrozenTrial]
    # The untrained backbone's scores on the same texts (objectives.evaluation.reference); None if not scored.
    reference: ReferenceResult | None = None

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
        skipped = {s["arm"] for s in self.skipped_arms}
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

    def cells(self, arm: str) -> dict[int | None, FrozenTrial]:
        """Seed -> the arm's result for that seed: its COMPLETE trial with the best final dev signal.

        A plan's ``search`` section (TPE) runs several trials per arm x seed. Picking the one with
        the best test objective would report the luckiest draw on the test set (a winner's curse),
        so the pick uses the last intermediate (dev) value, and the first trial when none has one;
        the table, the tests and the exports all use this one rule.
        """
        best: dict[int | None, FrozenTrial] = {}
        for trial in sorted(self.complete(arm), key=lambda t: t.number):
            seed = seed_of(trial)
            if seed not in best or _dev(trial) > _dev(best[seed]):
                best[seed] = trial
        return best


def _dev(trial: FrozenTrial) -> float:
    """The trial's last reported dev signal (-inf without one, so it never wins a tie)."""
    values = trial.intermediate_values
    return values[max(values)] if values else float("-inf")


def arm_of(trial: FrozenTrial) -> str | None:
    cell = read_cell(trial)
    return None if cell is None else cell.arm


def seed_of(trial: FrozenTrial) -> int | None:
    cell = read_cell(trial)
    return None if cell is None else cell.seed


def task_scores(trial: FrozenTrial) -> dict[str, float]:
    result = read_result(trial)
    return {} if result is None else result.task_scores


def category_score(trial: FrozenTrial, category: str) -> float | None:
    result = read_result(trial)
    return None if result is None else result.category_scores.get(category)


def fail_reason(trial: FrozenTrial) -> str:
    """Why a trial failed, else a hint at why nothing was recorded."""
    return read_error(trial) or "no reason recorded (worker killed or heartbeat lost?)"


def load_records(study_name: str, url: str | None = None) -> ReportedStudy:
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
    return reported_study(study, redact(url))


def reported_study(study: optuna.Study, storage_label: str = "") -> ReportedStudy:
    """An open study as the report reads it (its records and trials, read now)."""
    record = read_study_record(study)
    return ReportedStudy(
        study=study,
        storage_label=storage_label,
        plan=record.plan,
        skipped_arms=record.skipped_arms,
        preset=record.preset,
        backbone=record.backbone,
        trials=study.get_trials(deepcopy=False),
        reference=read_reference(study),
    )
