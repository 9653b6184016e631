"""The paper-style ablation table: arms x (categories, average), mean +- std over seeds.

Built from COMPLETE trials only. Each arm is compared with the baseline: the paper's Wilcoxon
signed-rank across tasks on the average column (per-task scores averaged over seeds), and a paired
t-test across seeds on every column (see ``dashboards.significance`` for why both).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace

from optuna.trial import TrialState

from dashboards.records import StudyRecords, category_score, seed_of, task_scores
from dashboards.significance import (
    PAIRED_T_SEEDS,
    WILCOXON_TASKS,
    Comparison,
    paired_t_across_seeds,
    wilcoxon_across_tasks,
)
from objectives.results import CATEGORIES, OBJECTIVE

COLUMNS: tuple[str, ...] = (*CATEGORIES, OBJECTIVE)
TASK_MARK = "*"
SEED_MARK = "†"


@dataclass(frozen=True)
class Cell:
    """One arm's column: mean and sample std over its finished seeds, and how it compares."""

    mean: float | None
    std: float | None
    n: int
    delta: float | None = None
    seeds_test: Comparison | None = None
    tasks_test: Comparison | None = None
    best: bool = False

    def markers(self, alpha: float) -> str:
        marks = ""
        if self.tasks_test is not None and self.tasks_test.significant(alpha):
            marks += TASK_MARK
        if self.seeds_test is not None and self.seeds_test.significant(alpha):
            marks += SEED_MARK
        return marks


@dataclass(frozen=True)
class ArmRow:
    arm: str
    is_baseline: bool
    complete: int
    pruned: int
    failed: int
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass(frozen=True)
class AblationTable:
    study: str
    baseline: str | None
    rows: list[ArmRow]
    columns: tuple[str, ...] = COLUMNS
    alpha: float = 0.05

    def legend(self) -> str:
        """What the markers mean, named tests included; shown under every export of the table."""
        base = f"baseline '{self.baseline}'" if self.baseline else "no baseline"
        return (
            f"mean ± sample std over the seeds of COMPLETE trials (pruned trials never count); "
            f"best per column in bold; vs {base} at alpha {self.alpha}: "
            f"{TASK_MARK} {WILCOXON_TASKS} (per-task means, average column), "
            f"{SEED_MARK} {PAIRED_T_SEEDS} (same seeds, every column)"
        )


def build_table(records: StudyRecords, alpha: float = 0.05) -> AblationTable:
    """Aggregate the study into the ablation table; arms with no finished seed get empty cells."""
    values = {arm: _column_values(records, arm) for arm in records.arms}
    per_task = {arm: _task_means(records, arm) for arm in records.arms}
    baseline = records.baseline if records.baseline in values else None
    best = _best_per_column(values)
    rows = []
    for arm in records.arms:
        cells = {}
        for column in COLUMNS:
            seeds = values[arm][column]
            cell = _summary(seeds, best=arm in best.get(column, ()))
            if baseline is not None and arm != baseline and seeds:
                base = values[baseline][column]
                cell = replace(
                    cell,
                    delta=cell.mean - statistics.fmean(base.values()) if base else None,
                    seeds_test=paired_t_across_seeds(seeds, base),
                    tasks_test=wilcoxon_across_tasks(per_task[arm], per_task[baseline])
                    if column == OBJECTIVE
                    else None,
                )
            cells[column] = cell
        rows.append(
            ArmRow(
                arm=arm,
                is_baseline=arm == baseline,
                complete=len(records.complete(arm)),
                pruned=len(records.by_state(TrialState.PRUNED, arm)),
                failed=len(records.by_state(TrialState.FAIL, arm)),
                cells=cells,
            )
        )
    return AblationTable(study=records.name, baseline=baseline, rows=rows, alpha=alpha)


def _column_values(records: StudyRecords, arm: str) -> dict[str, dict[object, float]]:
    """Per column, seed -> value over the arm's finished trials (a retried cell keeps its last)."""
    columns: dict[str, dict[object, float]] = {c: {} for c in COLUMNS}
    for trial in records.complete(arm):
        seed = seed_of(trial)
        columns[OBJECTIVE][seed] = float(trial.value)
        for category in CATEGORIES:
            score = category_score(trial, category)
            if score is not None:
                columns[category][seed] = score
    return columns


def _task_means(records: StudyRecords, arm: str) -> dict[str, float]:
    per_task: dict[str, list[float]] = {}
    for trial in records.complete(arm):
        for task, score in task_scores(trial).items():
            per_task.setdefault(task, []).append(score)
    return {task: statistics.fmean(scores) for task, scores in per_task.items()}


def _summary(seeds: dict[object, float], best: bool) -> Cell:
    if not seeds:
        return Cell(mean=None, std=None, n=0)
    scores = list(seeds.values())
    std = statistics.stdev(scores) if len(scores) > 1 else None
    return Cell(mean=statistics.fmean(scores), std=std, n=len(scores), best=best)


def _best_per_column(values: dict[str, dict[str, dict[object, float]]]) -> dict[str, set[str]]:
    """The arms with the highest mean per column (all of them when tied)."""
    best: dict[str, set[str]] = {}
    for column in COLUMNS:
        means = {
            arm: statistics.fmean(v[column].values()) for arm, v in values.items() if v[column]
        }
        if means:
            top = max(means.values())
            best[column] = {arm for arm, mean in means.items() if mean == top}
    return best
