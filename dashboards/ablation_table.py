"""The paper-style ablation table: arms x columns, each non-baseline cell with a verdict word.

Built from COMPLETE trials, one per arm x seed cell: the cell's best trial by objective (a plan's
``search`` section runs several per cell; every statistic uses that same trial). An arm's mean and
verdict rest only on the seeds complete for both it and the baseline. Columns are the plan's
``metrics`` and its objective when given, else every task, every category and the average. The
statistics, and why they hold with 2-3 seeds, are in ``dashboards.verdicts``; a cell's item-level
variation comes from the evidence each trial stored (``storage.evidence``), resampled with the same
draws for every trial, so both arms of a pair always see the same resampled test items.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits

from dashboards.provenance import study_provenance
from dashboards.records import StudyRecords, category_score, seed_of, task_scores
from dashboards.verdicts import (
    ALPHA,
    BETTER,
    DID_NOT_LEARN,
    METHOD,
    NOT_LEARNED,
    PRUNED,
    ROPE,
    WORSE,
    Interval,
    TaskTest,
    detectable_effect,
    holm,
    learned,
    paired_interval,
    verdict,
    wilcoxon_across_tasks,
)
from objectives.evidence import TaskEvidence
from objectives.results import CATEGORIES, OBJECTIVE, ReferenceResult
from storage.study_records import Pruned, read_evidence, read_pruned, read_result

BOOTSTRAP_DRAWS = 200


@dataclass(frozen=True)
class Cell:
    """One arm's column: mean and std over the seeds it shares with the baseline, and the verdict."""

    mean: float | None
    std: float | None
    n: int
    interval: Interval | None = None
    tasks_test: TaskTest | None = None
    p_holm: float | None = None
    tasks_p_holm: float | None = None
    verdict: str | None = None
    best: bool = False

    @property
    def delta(self) -> float | None:
        """The paired mean difference arm - baseline (``None`` for the baseline itself)."""
        return None if self.interval is None else self.interval.mean


@dataclass(frozen=True)
class PrunedCell:
    """A seed of the arm stopped early: the step and the dev-proxy gap to its reference, if stored."""

    seed: object
    step: int | None
    gap: float | None


@dataclass(frozen=True)
class ArmRow:
    arm: str
    is_baseline: bool
    complete: int
    pruned: int
    failed: int
    cells: dict[str, Cell] = field(default_factory=dict)
    shared: int = 0
    pruned_cells: list[PrunedCell] = field(default_factory=list)
    learned: bool | None = None
    # The mean over seeds of (last dev signal - step-0 dev signal): how far training moved it.
    dev_gain: float | None = None
    detectable: float | None = None

    def notes(self) -> list[str]:
        """Short facts a reader needs beside the numbers: pruned seeds, learning, power."""
        notes = [
            f"seed {p.seed} pruned"
            + (f" at step {p.step}" if p.step is not None else "")
            + (f" (dev gap {p.gap:+.4f})" if p.gap is not None else "")
            for p in self.pruned_cells
        ]
        if self.learned is False:
            gain = (
                f" (dev signal {self.dev_gain:+.4f} since step 0)"
                if self.dev_gain is not None
                else ""
            )
            notes.append(DID_NOT_LEARN + gain)
        if self.detectable is not None:
            notes.append(f"detects |effect| >= {self.detectable:.4f}")
        return notes


@dataclass(frozen=True)
class ReferenceRow:
    """The untrained backbone with mean pooling, scored once on the arms' texts: one value per
    column (``None`` where it has none), shown beside the arms and never in a verdict."""

    label: str
    values: dict[str, float | None]


@dataclass(frozen=True)
class AblationTable:
    study: str
    baseline: str | None
    rows: list[ArmRow]
    columns: tuple[str, ...]
    alpha: float = ALPHA
    rope: float = ROPE
    tests: int = 0
    item_level: bool = True
    warnings: list[str] = field(default_factory=list)
    # (label, text) of what produced the trials behind the table (dashboards.provenance).
    provenance: list[tuple[str, str]] = field(default_factory=list)
    reference: ReferenceRow | None = None

    def legend(self) -> str:
        """How to read every cell; shown under every export of the table."""
        base = f"baseline '{self.baseline}'" if self.baseline else "no baseline"
        basis = "" if self.item_level else "; some trials stored no item evidence: seeds only there"
        return (
            f"mean ± sample std over the seeds complete for both the arm and the {base} (one trial "
            f"per arm x seed: the cell's best by objective; pruned trials never count); "
            f"Δ [95% interval]: {METHOD}{basis}; verdict: equivalent (interval inside "
            f"±{self.rope}), better/worse (interval excludes 0, Holm-adjusted p < {self.alpha} over "
            f"all {self.tests} tests of the study), else inconclusive; '{PRUNED}' when a pruned "
            f"seed leaves it undecided; the paper's Wilcoxon signed-rank across a column's tasks is "
            f"listed apart; '{DID_NOT_LEARN}': the dev signal rose from step 0 by less than "
            f"max(ROPE, 2 x its step-0 spread across seeds); '{NOT_LEARNED}': the arm or the "
            f"baseline did not learn, so no other verdict is given"
        )


def build_table(records: StudyRecords, alpha: float = ALPHA, rope: float = ROPE) -> AblationTable:
    """Aggregate the study into the ablation table; arms with no finished seed get empty cells."""
    # Resampling multiplies small matrices, where BLAS threads only contend (25x slower on 2 cores).
    with threadpool_limits(1):
        return _build(records, alpha, rope)


def _build(records: StudyRecords, alpha: float, rope: float) -> AblationTable:
    chosen = {arm: records.cells(arm) for arm in records.arms}
    resampler = _Resampler([t for cells in chosen.values() for t in cells.values()])
    columns = _columns(records, chosen, resampler.categories)
    baseline = records.baseline if chosen.get(records.baseline) else None
    rows, tested = [], []
    for arm in records.arms:
        cells, shared = {}, sorted(chosen[arm], key=str)
        if baseline is not None and arm != baseline:
            shared = [s for s in shared if s in chosen[baseline]]
        for column in columns:
            values = [v for s in shared if (v := _value(chosen[arm][s], column)) is not None]
            cells[column] = _summary(values)
            if baseline is not None and arm != baseline and values:
                pairs = [(chosen[arm][s], chosen[baseline][s]) for s in shared]
                cells[column] = _compare(cells[column], pairs, column, resampler, alpha)
                tested.append((arm, column))
        rows.append(_row(records, arm, baseline, cells, len(shared), chosen[arm]))
    rows, tests = _holm_and_verdicts(rows, tested, alpha, rope)
    rows = _mark_best(rows, columns)
    shared = [r.shared for r in rows if not r.is_baseline and r.complete]
    origin = study_provenance(t for cells in chosen.values() for t in cells.values())
    warnings = origin.disagreements() + _learning_warnings(rows, chosen)
    if shared and min(shared) <= 2:
        # Pruned or failed seeds count against the 3: more seeds than launched, not 3 again.
        launched = len(records.plan.get("seeds", []))
        enough = max(3, launched + 3 - min(shared))
        warnings.append(
            f"only {min(shared)} seed(s) shared with the baseline: a t interval over so few seeds "
            f"is wide and detects only large effects; relaunch with --seeds {enough} or more "
            "(only the missing cells run)"
        )
    return AblationTable(
        study=records.name,
        baseline=baseline,
        rows=rows,
        columns=columns,
        alpha=alpha,
        rope=rope,
        tests=tests,
        item_level=resampler.complete,
        warnings=warnings,
        provenance=origin.facts(),
        reference=_reference_row(records.reference, columns),
    )


def _reference_row(
    reference: ReferenceResult | None, columns: tuple[str, ...]
) -> ReferenceRow | None:
    """The reference's value in each column, looked up as ``_value`` looks up a trial's."""
    if reference is None:
        return None
    values: dict[str, float | None] = {}
    for column in columns:
        if column == OBJECTIVE:
            values[column] = reference.objective
        elif column in CATEGORIES:
            values[column] = reference.category_scores.get(column)
        else:
            values[column] = reference.task_scores.get(column)
    return ReferenceRow(f"{reference.label} (reference)", values)


def _learning_warnings(
    rows: list[ArmRow], chosen: dict[str, dict[object, FrozenTrial]]
) -> list[str]:
    """Name the arms that did not learn and the fix: more optimizer steps than the trials ran."""
    stuck = [r.arm for r in rows if r.learned is False]
    if not stuck:
        return []
    results = [read_result(t) for arm in stuck for t in chosen[arm].values()]
    trains = [r.config.get("train", {}) for r in results if r is not None]
    steps = [int(train["steps"]) for train in trains if "steps" in train]
    more = f"--set train.steps={4 * max(steps)}" if steps else "--set train.steps=N"
    names = ", ".join(f"'{arm}'" for arm in stuck)
    return [
        f"{names} did not learn (the dev signal rose from step 0 by no more than noise), so "
        f"no verdict compares them ('{NOT_LEARNED}'); train longer, e.g. {more} (a new "
        "--study-name: other settings make other cells)"
    ]


def _columns(
    records: StudyRecords, chosen: dict[str, dict[object, FrozenTrial]], categories: dict[str, str]
) -> tuple[str, ...]:
    tasks = sorted(
        {t for cells in chosen.values() for tr in cells.values() for t in task_scores(tr)}
    )
    metrics = records.plan.get("metrics")
    if metrics:
        # The stored metrics are categories; the objective the cells are ranked by gets its own
        # column when it is one the table computes (not a mean of a few metrics: that is the
        # mean of the columns shown, and the average column means every category).
        objective = records.plan.get("objective_name", OBJECTIVE)
        computed = objective in (OBJECTIVE, *CATEGORIES, *tasks)
        return (*metrics, objective) if computed and objective not in metrics else tuple(metrics)
    present = [c for c in CATEGORIES if c in {categories.get(t) for t in tasks}]
    return (*tasks, *present, OBJECTIVE)


def _value(trial: FrozenTrial, column: str) -> float | None:
    if column == OBJECTIVE:
        return float(trial.value)
    if column in CATEGORIES:
        return category_score(trial, column)
    return task_scores(trial).get(column)


def _in_column(task: str, column: str, categories: dict[str, str]) -> bool:
    if column == OBJECTIVE:
        return task in categories
    if column in CATEGORIES:
        return categories.get(task) == column
    return task == column


def _summary(values: list[float]) -> Cell:
    if not values:
        return Cell(mean=None, std=None, n=0)
    std = statistics.stdev(values) if len(values) > 1 else None
    return Cell(mean=statistics.fmean(values), std=std, n=len(values))


class _Resampler:
    """Each trial's task scores on the same bootstrap draws of every task's items."""

    def __init__(self, trials: list[FrozenTrial]) -> None:
        self._evidence: dict[int, dict[str, TaskEvidence]] = {}
        self._scores: dict[tuple[int, str], np.ndarray] = {}
        self._draws: dict[tuple[str, str], np.ndarray] = {}
        self.complete = True
        # Task -> category as the trials recorded it; older trials only through their evidence.
        self.categories: dict[str, str] = {}
        for trial in trials:
            result = read_result(trial)
            if result is not None:
                self.categories.update(result.task_category)
            for task, evidence in self.evidence(trial).items():
                self.categories.setdefault(task, evidence.kind)

    def evidence(self, trial: FrozenTrial) -> dict[str, TaskEvidence]:
        if trial.number not in self._evidence:
            self._evidence[trial.number] = read_evidence(trial)
        return self._evidence[trial.number]

    def column(self, pair: tuple[FrozenTrial, FrozenTrial], column: str) -> np.ndarray | None:
        """Resampled (arm - baseline) on ``column``; ``None`` when no task of it has evidence.

        A task without matching evidence in both trials (none stored, or other test items)
        contributes its fixed difference, so the column keeps only the item noise it can measure.
        """
        arm, base = pair
        ev_arm, ev_base = self.evidence(arm), self.evidence(base)
        scores_arm, scores_base = task_scores(arm), task_scores(base)
        diffs: dict[str, np.ndarray | float] = {}
        resampled = set()
        for task in sorted(scores_arm.keys() & scores_base.keys()):
            if not _in_column(task, column, self.categories):
                continue
            a, b = ev_arm.get(task), ev_base.get(task)
            if a is not None and b is not None and a.items == b.items:
                diffs[task] = self._task(arm, task, a) - self._task(base, task, b)
                resampled.add(task)
            else:
                self.complete = False
                diffs[task] = scores_arm[task] - scores_base[task]
        if not resampled:
            return None
        if column != OBJECTIVE:
            return np.broadcast_to(_mean(diffs.values()), (BOOTSTRAP_DRAWS,))
        by_category: dict[str, list[np.ndarray | float]] = {}
        for task, diff in diffs.items():
            by_category.setdefault(self.categories[task], []).append(diff)
        means = [_mean(parts) for parts in by_category.values()]
        return np.broadcast_to(_mean(means), (BOOTSTRAP_DRAWS,))

    def _task(self, trial: FrozenTrial, task: str, evidence: TaskEvidence) -> np.ndarray:
        key = (trial.number, task)
        if key not in self._scores:
            self._scores[key] = evidence.resampled(self._draw(task, evidence))
        return self._scores[key]

    def _draw(self, task: str, evidence: TaskEvidence) -> np.ndarray:
        key = (task, evidence.items)
        if key not in self._draws:
            rng = np.random.default_rng(int(evidence.items, 16) % 2**32)
            n = evidence.n_items
            self._draws[key] = rng.integers(0, n, (BOOTSTRAP_DRAWS, n))
        return self._draws[key]


def _mean(parts: Iterable[np.ndarray | float]) -> np.ndarray | float:
    parts = list(parts)
    return sum(parts) / len(parts)


def _compare(
    cell: Cell,
    pairs: list[tuple[FrozenTrial, FrozenTrial]],
    column: str,
    resampler: _Resampler,
    alpha: float,
) -> Cell:
    pairs = [
        (a, b) for a, b in pairs if _value(a, column) is not None and _value(b, column) is not None
    ]
    diffs = [_value(a, column) - _value(b, column) for a, b in pairs]
    replicates = [resampler.column(pair, column) for pair in pairs]
    items = None if any(r is None for r in replicates) else np.stack(replicates)
    tasks_test = None
    if column == OBJECTIVE or column in CATEGORIES:
        diffs_per_task = _task_diffs(pairs, column, resampler.categories)
        tasks_test = wilcoxon_across_tasks(diffs_per_task, alpha)
    return Cell(
        mean=cell.mean,
        std=cell.std,
        n=cell.n,
        interval=paired_interval(diffs, items, alpha),
        tasks_test=tasks_test,
    )


def _task_diffs(
    pairs: list[tuple[FrozenTrial, FrozenTrial]], column: str, categories: dict[str, str]
) -> list[float]:
    """Per task of the column, the arm - baseline difference averaged over the shared seeds."""
    per_task: dict[str, list[float]] = {}
    for arm, base in pairs:
        scores_arm, scores_base = task_scores(arm), task_scores(base)
        for task in scores_arm.keys() & scores_base.keys():
            if _in_column(task, column, categories):
                per_task.setdefault(task, []).append(scores_arm[task] - scores_base[task])
    return [statistics.fmean(d) for _, d in sorted(per_task.items())]


def _row(
    records: StudyRecords,
    arm: str,
    baseline: str | None,
    cells: dict[str, Cell],
    shared: int,
    chosen: dict[object, FrozenTrial],
) -> ArmRow:
    pruned = records.by_state(TrialState.PRUNED, arm)
    pruned_cells = [_pruned_cell(t) for t in pruned if seed_of(t) not in chosen]
    with_start = [t for t in chosen.values() if 0 in t.intermediate_values]
    learn = gain = None
    if with_start:
        start = [t.intermediate_values[0] for t in with_start]
        final = [t.intermediate_values[max(t.intermediate_values)] for t in with_start]
        learn = learned(start, final)
        gain = statistics.fmean(f - s for f, s in zip(final, start, strict=True))
    return ArmRow(
        arm=arm,
        is_baseline=arm == baseline,
        complete=len(chosen),
        pruned=len(pruned),
        failed=len(records.by_state(TrialState.FAIL, arm)),
        cells=cells,
        shared=shared,
        pruned_cells=pruned_cells,
        learned=learn,
        dev_gain=gain,
    )


def _pruned_cell(trial: FrozenTrial) -> PrunedCell:
    stop = read_pruned(trial) or Pruned(None, None)
    return PrunedCell(seed_of(trial), stop.step, stop.gap)


def _holm_and_verdicts(
    rows: list[ArmRow], tested: list[tuple[str, str]], alpha: float, rope: float
) -> tuple[list[ArmRow], int]:
    """Holm over every interval test and every runnable Wilcoxon test; then the verdict words."""
    keys = []
    for arm, column in tested:
        cell = next(r for r in rows if r.arm == arm).cells[column]
        if cell.interval is not None and cell.interval.p is not None:
            keys.append((arm, column, "interval", cell.interval.p))
        if cell.tasks_test is not None and cell.tasks_test.p is not None:
            keys.append((arm, column, "tasks", cell.tasks_test.p))
    adjusted = dict(zip([k[:3] for k in keys], holm([k[3] for k in keys]), strict=True))
    baseline_learned = next((r.learned for r in rows if r.is_baseline), None)
    out = []
    for row in rows:
        both_learned = row.learned is not False and baseline_learned is not False
        cells = {}
        for column, cell in row.cells.items():
            if (row.arm, column) not in tested:
                cells[column] = cell
                continue
            p_holm = adjusted.get((row.arm, column, "interval"))
            word = verdict(cell.interval, p_holm, rope, alpha, both_learned)
            if row.pruned_cells and word not in (BETTER, WORSE, NOT_LEARNED):
                word = PRUNED
            cells[column] = _with(
                cell,
                p_holm=p_holm,
                tasks_p_holm=adjusted.get((row.arm, column, "tasks")),
                verdict=word,
            )
        objective = cells.get(OBJECTIVE)
        detectable = (
            detectable_effect(objective.interval, len(keys), alpha)
            if objective is not None and objective.interval is not None
            else None
        )
        if row.pruned_cells and not row.shared and not row.is_baseline:
            cells = {c: _with(cell, verdict=PRUNED) for c, cell in cells.items()}
        out.append(_with_row(row, cells, detectable))
    return out, len(keys)


def _mark_best(rows: list[ArmRow], columns: tuple[str, ...]) -> list[ArmRow]:
    """Bold the arms with the highest mean per column (all of them when tied)."""
    best: dict[str, set[str]] = {}
    for column in columns:
        means = {r.arm: r.cells[column].mean for r in rows if r.cells[column].mean is not None}
        if means:
            top = max(means.values())
            best[column] = {arm for arm, mean in means.items() if mean == top}
    return [
        _with_row(
            row,
            {c: _with(cell, best=row.arm in best.get(c, ())) for c, cell in row.cells.items()},
            row.detectable,
        )
        for row in rows
    ]


def _with(cell: Cell, **changes: object) -> Cell:
    return replace(cell, **changes)


def _with_row(row: ArmRow, cells: dict[str, Cell], detectable: float | None) -> ArmRow:
    return replace(row, cells=cells, detectable=detectable)
