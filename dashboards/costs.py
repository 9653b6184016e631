"""What each arm cost (time, memory, parameters) and what pruning saved.

Costs come from the costs and parameter counts in finished trials' results
(``storage.study_records.read_result``). A pruned trial has no result (it never finished), so its
saving is measured against the finished trials: the training steps it did not run, and the
wall-clock seconds between its duration and a finished trial's mean duration (training it skipped
plus the evaluation it never started).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState

from dashboards.records import ReportedStudy
from objectives.trial.results import COST_FIELDS, Costs
from storage.study_records import read_result

PARAM_KEYS: tuple[str, ...] = ("total", "trainable", "head")


@dataclass(frozen=True)
class ArmCost:
    """Means over an arm's finished trials (``None`` where no finished trial recorded it)."""

    arm: str
    complete: int
    costs: Costs
    params: dict[str, int | None]


@dataclass(frozen=True)
class PruningSavings:
    pruned: int
    full_steps: int | None
    steps_run: int
    steps_saved: int
    seconds_spent: float
    seconds_saved: float
    seconds_total: float

    @property
    def fraction_saved(self) -> float:
        """Share of the compute the study would have used without pruning."""
        whole = self.seconds_total + self.seconds_saved
        return self.seconds_saved / whole if whole > 0 else 0.0


def arm_costs(records: ReportedStudy) -> list[ArmCost]:
    rows = []
    for arm in records.arms:
        done = records.complete(arm)
        results = [r for r in map(read_result, done) if r is not None]
        costs = Costs(**{k: _mean([getattr(r.costs, k) for r in results]) for k in COST_FIELDS})
        params = {k: _int(_mean([r.params.get(k) for r in results])) for k in PARAM_KEYS}
        rows.append(ArmCost(arm=arm, complete=len(done), costs=costs, params=params))
    return rows


def pruning_savings(records: ReportedStudy) -> PruningSavings:
    complete = records.complete()
    pruned = records.by_state(TrialState.PRUNED)
    full_steps = max((_last_step(t) or 0 for t in complete), default=0) or None
    mean_duration = statistics.fmean([_seconds(t) for t in complete]) if complete else 0.0
    steps_run = sum(_last_step(t) or 0 for t in pruned)
    steps_saved = sum(max(0, (full_steps or 0) - (_last_step(t) or 0)) for t in pruned)
    seconds_saved = sum(max(0.0, mean_duration - _seconds(t)) for t in pruned)
    finished = [t for t in records.trials if t.datetime_complete is not None]
    return PruningSavings(
        pruned=len(pruned),
        full_steps=full_steps,
        steps_run=steps_run,
        steps_saved=steps_saved,
        seconds_spent=sum(_seconds(t) for t in pruned),
        seconds_saved=seconds_saved,
        seconds_total=sum(_seconds(t) for t in finished),
    )


def _mean(values: list[float | None]) -> float | None:
    """The mean of the recorded values; ``None`` when no trial recorded one."""
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def _last_step(trial: FrozenTrial) -> int | None:
    return max(trial.intermediate_values, default=None)


def _seconds(trial: FrozenTrial) -> float:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()
