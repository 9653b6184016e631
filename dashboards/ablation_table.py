"""The paper-style ablation table: arms x columns, each non-baseline cell with a verdict word.

Built from COMPLETE trials, one per arm x seed cell: the cell's trial with the best final dev
signal (a plan's ``search`` section runs several per cell; picking on the test scores would be a
winner's curse; every statistic uses that same trial). An arm's mean and
verdict rest only on the seeds complete for both it and the baseline. Columns are the plan's
``metrics`` and its objective when given, else every task, every category and the average. The
statistics, and why they hold with 2-3 seeds, are in ``dashboards.verdicts``; a cell's item-level
variation comes from the evidence each trial stored (``storage.evidence``), resampled with the same
draws for every trial, so both arms of a pair always see the same resampled test items.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np
from optuna.trial import FrozenTrial, TrialState
from threadpoolctl import threadpool_limits

from dashboards.provenance import study_provenance
from dashboards.records import ReportedStudy, ReportError, category_score, seed_of, task_scores
from dashboards.verdicts import (
    ALPHA,
    ARM_NOT_LEARNED,
    BASELINE_NOT_LEARNED,
    DID_NOT_LEARN,
    LOST_SEEDS,
    METHOD,
    POPULATION,
    PRUNED,
    THESE_ITEMS,
    Interval,
    Rope,
    TaskTest,
    detectable_effect,
    holm,
    learned,
    paired_interval,
    verdict,
    verdict_kind,
    wilcoxon_across_tasks,
)
from objectives.evaluation.evidence import TaskEvidence
from objectives.trial.results import CATEGORIES, OBJECTIVE, ReferenceResult
from storage.study_records import Pruned, read_evidence, read_pruned, read_result

BOOTSTRAP_DRAWS = 200


@dataclass(frozen=True)
class ColumnCell:
    """One arm's column: mean and std over the seeds it shares with the baseline, and the verdict."""

    mean: float | None
    std: float | None
    n: int
    interval: Interval | None = None
    tasks_test: TaskTest | None = None
    p_holm: float | None = None
    verdict: str | None = None
    best: bool = False

    @property
    def delta(self) -> float | None:
        """The paired mean difference arm - baseline (``None`` for the baseline itself)."""
        return None if self.interval is None else self.interval.mean


@dataclass(frozen=True)
class PrunedColumnCell:
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
    cells: dict[str, ColumnCell] = field(default_factory=dict)
    shared: int = 0
    pruned_cells: list[PrunedColumnCell] = field(default_factory=list)
    # Seeds launched for the arm that have no COMPLETE trial but a pruned or failed one.
    lost_seeds: tuple[object, ...] = ()
    # Did the dev signal rise from step 0 (``verdicts.learned``, on the seeds shared with the
    # baseline; the baseline on all its seeds)? ``None``: not testable (under 2 seeds, no curve).
    learned: bool | None = None
    # The mean over those seeds of (last dev signal - step-0 dev signal): how far training moved it.
    dev_gain: float | None = None
    # True when the last report was still above the one before it in most of those seeds.
    still_rising: bool | None = None
    detectable: float | None = None
    # Columns whose interval is wider than their ROPE: "equivalent" cannot be reached there.
    unreachable: tuple[str, ...] = ()
    # A run-until-decided study: seeds run, the look the arm stopped at and why.
    race: str | None = None
    # What the verdict rules read about the baseline on this arm's seeds (``verdicts.verdict``).
    baseline_learned: bool | None = None
    baseline_lost: bool = False

    def notes(self) -> list[str]:
        """Short facts a reader needs beside the numbers: lost seeds, learning, power."""
        notes = [
            f"seed {p.seed} pruned"
            + (f" at step {p.step}" if p.step is not None else "")
            + (f" (dev gap {p.gap:+.4f})" if p.gap is not None else "")
            for p in self.pruned_cells
        ]
        pruned = {p.seed for p in self.pruned_cells}
        failed = [s for s in self.lost_seeds if s not in pruned]
        if failed:
            notes.append("seed " + ", ".join(map(str, failed)) + " failed")
        if self.learned is False:
            gain = (
                f" (dev signal {self.dev_gain:+.4f} since step 0)"
                if self.dev_gain is not None
                else ""
            )
            notes.append(DID_NOT_LEARN + gain)
        if self.detectable is not None:
            notes.append(f"detects |effect| >= {self.detectable:.4f}")
        if self.unreachable:
            notes.append(
                "equivalence unreachable at this precision on " + ", ".join(self.unreachable)
            )
        if self.race:
            notes.append(self.race)
        return notes


@dataclass(frozen=True)
class ReferenceRow:
    """The untrained backbone with mean pooling, scored once on the arms' texts: one value per
    column (``None`` where it has none), shown beside the arms and never in a verdict."""

    label: str
    values: dict[str, float | None]


# The interval rule at the look's level, not at 95%.
_RACE_METHOD = METHOD.replace("95% interval: ", "interval: ")


@dataclass(frozen=True)
class AblationTable:
    study: str
    baseline: str | None
    rows: list[ArmRow]
    columns: tuple[str, ...]
    alpha: float = ALPHA
    rope: float = Rope().default
    tests: int = 0
    item_level: bool = True
    warnings: list[str] = field(default_factory=list)
    # (label, text) of what produced the trials behind the table (dashboards.provenance).
    provenance: list[tuple[str, str]] = field(default_factory=list)
    ropes: Rope = field(default_factory=Rope)
    reference: ReferenceRow | None = None
    # A run-until-decided study: how its words were reached (``dashboards.sequential``).
    sequential: str | None = None

    def legend(self) -> str:
        """How to read every cell; shown under every export of the table."""
        base = f"baseline '{self.baseline}'" if self.baseline else "no baseline"
        basis = "" if self.item_level else "; some trials stored no item evidence: seeds only there"
        if self.sequential:
            rule = (
                f"{self.sequential}; each arm's row is its last look: mean ± sample std over the "
                f"seeds that look used, shared with the {base} (one trial per arm x seed: the one "
                f"with the best final dev signal; pruned trials never count); Δ [interval]: the "
                f"paired interval at 1 - alpha_k of that look ({_RACE_METHOD}{basis}; a repeated "
                f"confidence interval, jointly valid over the looks by the same union bound, not "
                f"adjusted for the arms of a look); verdict: better/worse when the Holm-adjusted p "
                f"over that look's difference tests (arms closed earlier at p = 1) is below its "
                f"alpha_k, equivalent likewise for the two one-sided tests against the ROPE "
                f"{self.ropes.describe()}, else inconclusive; no Holm p-value over all seeds is "
                f"shown (after optional stopping it would not be one)"
            )
            return f"{rule}; {self._rules_of_words()}"
        return (
            f"mean ± sample std over the seeds complete for both the arm and the {base} (one trial "
            f"per arm x seed: the one with the best final dev signal; pruned trials never count); "
            f"Δ [95% interval]: {METHOD}{basis}; verdict: better/worse (Holm-adjusted p < {self.alpha} "
            f"over all {self.tests} difference tests of the study), equivalent (two one-sided "
            f"tests against the ROPE {self.ropes.describe()}, Holm-adjusted over the study), else "
            f"inconclusive; {self._rules_of_words()}"
        )

    def _rules_of_words(self) -> str:
        return (
            f"an arm with pruned or failed seeds is never better or equivalent on the "
            f"seeds left ('{PRUNED}', '{LOST_SEEDS}'); '{DID_NOT_LEARN}': the per-seed rise of "
            f"the dev signal since step 0 is not shown above 0 (one-sided t test, alpha "
            f"{self.alpha}); '{BASELINE_NOT_LEARNED}': no verdict against such a baseline; "
            f"'({ARM_NOT_LEARNED})' after a word: it stands, but training did not visibly improve "
            f"the arm; '({THESE_ITEMS})': a task of the column stored no item evidence, so the "
            f"claim does not extend to new test items; the paper's Wilcoxon signed-rank across a "
            f"column's tasks is descriptive only (the tasks share the same models) and decides "
            f"nothing; {POPULATION}"
        )


def build_table(
    records: ReportedStudy,
    alpha: float = ALPHA,
    rope: Rope | float | None = None,
    *,
    race: bool = True,
) -> AblationTable:
    """Aggregate the study into the ablation table; arms with no finished seed get empty cells.

    A study run until decided (``--until-decided``) gets the words of its race, look by look
    (``dashboards.sequential``; ``race=False``: the fixed-design words).
    """
    ropes = rope if isinstance(rope, Rope) else Rope() if rope is None else Rope(float(rope))
    # Resampling multiplies small matrices, where BLAS threads only contend with each other.
    with threadpool_limits(1):
        if race:
            from dashboards.sequential import race_design, race_table  # it builds tables too

            design = race_design(records)
            if design is not None:
                if alpha != design.alpha:
                    raise ReportError(
                        f"study '{records.study.study_name}' was run until decided at alpha "
                        f"{design.alpha}, spent over its looks; drop --alpha (or pass --alpha "
                        f"{design.alpha})"
                    )
                return race_table(records, design, ropes)
        return _build(records, alpha, ropes)


def _build(records: ReportedStudy, alpha: float, ropes: Rope) -> AblationTable:
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
        trials = [chosen[arm][s] for s in shared]
        rows.append(_row(records, arm, baseline, cells, trials, chosen[arm]))
    rows, tests = _holm_and_verdicts(rows, tested, chosen, alpha, ropes, resampler.categories)
    rows = _mark_best(rows, columns)
    shared = [r.shared for r in rows if not r.is_baseline and r.complete]
    origin = study_provenance(t for cells in chosen.values() for t in cells.values())
    warnings = origin.disagreements() + _learning_warnings(rows, chosen) + _search_warning(records)
    unscored = [m for m in records.plan.get("metrics") or [] if m not in columns]
    if unscored:
        warnings.append(
            f"no finished trial scored a task of {', '.join(unscored)} (the preset's task set "
            "leaves them out), so those columns are not shown"
        )
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
        rope=ropes.default,
        tests=tests,
        item_level=resampler.complete,
        warnings=warnings,
        provenance=origin.facts(),
        ropes=ropes,
        reference=_reference_row(records.reference, columns),
    )


def _search_warning(records: ReportedStudy) -> list[str]:
    """Cells that ran several trials came from a search the test objective steered (Optuna is told
    it): picking on dev removes the last winner's curse, not the steering."""
    most = max(
        (
            Counter(seed_of(t) for t in records.complete(arm)).most_common(1)[0][1]
            for arm in records.arms
            if records.complete(arm)
        ),
        default=1,
    )
    if most <= 1:
        return []
    return [
        f"cells ran up to {most} trials of a search (the plan's search section) that Optuna "
        "steered by the test objective; the trial per cell is picked on dev, but its test scores "
        "may still be optimistic: for a confirmatory table, rerun the chosen settings without "
        "search under a new --study-name"
    ]


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
    """Name the arms not shown to learn, with advice only as far as their dev curves support it."""
    stuck = [r for r in rows if r.learned is False]
    if not stuck:
        return []
    names = ", ".join(f"'{r.arm}'" for r in stuck)
    rising = [r for r in stuck if r.still_rising]
    text = (
        f"{names} not shown to learn (the dev signal's rise since step 0 is not shown above 0 "
        "over the seeds)"
    )
    if any(r.is_baseline for r in stuck):
        text += f", so no arm is compared with the baseline ('{BASELINE_NOT_LEARNED}')"
    if rising:
        results = [read_result(t) for r in rising for t in chosen[r.arm].values()]
        trains = [r.config.get("train", {}) for r in results if r is not None]
        steps = [int(train["steps"]) for train in trains if "steps" in train]
        more = f"--set train.steps={2 * max(steps)}" if steps else "more train.steps"
        rising_names = ", ".join(f"'{r.arm}'" for r in rising)
        text += (
            f"; the dev signal of {rising_names} was still rising at the last report, so more "
            f"steps may help (e.g. {more} under a new --study-name)"
        )
    if len(rising) < len(stuck):
        text += (
            "; where the dev signal had stopped rising, more steps are not known to help: this "
            "recipe and backbone may not learn here (the README's presets say which do)"
        )
    return [text]


def _columns(
    records: ReportedStudy, chosen: dict[str, dict[object, FrozenTrial]], categories: dict[str, str]
) -> tuple[str, ...]:
    tasks = sorted(
        {t for cells in chosen.values() for tr in cells.values() for t in task_scores(tr)}
    )
    metrics = records.plan.get("metrics")
    scored = {categories.get(t) for t in tasks}
    if metrics and tasks:
        # A category no finished trial scored (the preset's task set leaves it out) would be a
        # column of dashes; it is dropped, and a warning names it.
        metrics = [m for m in metrics if m not in CATEGORIES or m in scored]
    if metrics:
        # The stored metrics are categories; the objective the cells are ranked by gets its own
        # column when it is one the table computes (not a mean of a few metrics: that is the
        # mean of the columns shown, and the average column means every category).
        objective = records.plan.get("objective_name", OBJECTIVE)
        computed = objective in (OBJECTIVE, *CATEGORIES, *tasks)
        return (*metrics, objective) if computed and objective not in metrics else tuple(metrics)
    present = [c for c in CATEGORIES if c in scored]
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


def _summary(values: list[float]) -> ColumnCell:
    if not values:
        return ColumnCell(mean=None, std=None, n=0)
    std = statistics.stdev(values) if len(values) > 1 else None
    return ColumnCell(mean=statistics.fmean(values), std=std, n=len(values))


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

    def column(self, pair: tuple[FrozenTrial, FrozenTrial], column: str) -> _Replicates | None:
        """Resampled (arm - baseline) on ``column``; ``None`` when no task of it has evidence.

        A task without matching evidence in both trials (none stored, or other test items)
        contributes its fixed difference, so the column keeps only the item noise it can measure
        and is marked incomplete (its claim covers these test items only).
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
        items = min(ev_arm[task].n_items for task in resampled)
        if column != OBJECTIVE:
            draws = np.broadcast_to(_mean(diffs.values()), (BOOTSTRAP_DRAWS,))
            return _Replicates(draws, len(resampled) == len(diffs), items)
        by_category: dict[str, list[np.ndarray | float]] = {}
        for task, diff in diffs.items():
            by_category.setdefault(self.categories[task], []).append(diff)
        means = [_mean(parts) for parts in by_category.values()]
        draws = np.broadcast_to(_mean(means), (BOOTSTRAP_DRAWS,))
        return _Replicates(draws, len(resampled) == len(diffs), items)

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


class _Replicates(NamedTuple):
    """One pair's resampled column difference, whether every task of the column had evidence,
    and the fewest test items of a resampled task."""

    draws: np.ndarray
    complete: bool
    items: int


def _mean(parts: Iterable[np.ndarray | float]) -> np.ndarray | float:
    parts = list(parts)
    return sum(parts) / len(parts)


def _compare(
    cell: ColumnCell,
    pairs: list[tuple[FrozenTrial, FrozenTrial]],
    column: str,
    resampler: _Resampler,
    alpha: float,
) -> ColumnCell:
    pairs = [
        (a, b) for a, b in pairs if _value(a, column) is not None and _value(b, column) is not None
    ]
    diffs = [_value(a, column) - _value(b, column) for a, b in pairs]
    replicates = [resampler.column(pair, column) for pair in pairs]
    found = [r for r in replicates if r is not None]
    draws = np.stack([r.draws for r in found]) if len(found) == len(replicates) else None
    fewest = min((r.items for r in found), default=None)
    interval = paired_interval(diffs, draws, alpha, fewest)
    if draws is not None and not all(r.complete for r in found):
        interval = replace(interval, item_level=False)  # some tasks' item noise is unmeasured
    tasks_test = None
    if column == OBJECTIVE or column in CATEGORIES:
        diffs_per_task = _task_diffs(pairs, column, resampler.categories)
        tasks_test = wilcoxon_across_tasks(diffs_per_task, alpha)
    return ColumnCell(
        mean=cell.mean,
        std=cell.std,
        n=cell.n,
        interval=interval,
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
    records: ReportedStudy,
    arm: str,
    baseline: str | None,
    cells: dict[str, ColumnCell],
    shared: list[FrozenTrial],
    chosen: dict[object, FrozenTrial],
) -> ArmRow:
    pruned = records.by_state(TrialState.PRUNED, arm)
    failed = records.by_state(TrialState.FAIL, arm)
    lost = sorted({seed_of(t) for t in (*pruned, *failed)} - set(chosen), key=str)
    learning = _learning(shared if arm != baseline else list(chosen.values()))
    return ArmRow(
        arm=arm,
        is_baseline=arm == baseline,
        complete=len(chosen),
        pruned=len(pruned),
        failed=len(failed),
        cells=cells,
        shared=len(shared) if arm != baseline else len(chosen),
        pruned_cells=[_pruned_cell(t) for t in pruned if seed_of(t) not in chosen],
        lost_seeds=tuple(lost),
        **learning,
    )


def _learning(trials: list[FrozenTrial]) -> dict[str, object]:
    """``learned``, ``dev_gain`` and ``still_rising`` of these trials' dev curves (step 0 on)."""
    curves = [t.intermediate_values for t in trials if 0 in t.intermediate_values]
    if not curves:
        return {}
    start = [c[0] for c in curves]
    final = [c[max(c)] for c in curves]
    steps = [sorted(c) for c in curves]
    rising = [c[s[-1]] > c[s[-2]] for c, s in zip(curves, steps, strict=True) if len(s) > 1]
    return {
        "learned": learned(start, final),
        "dev_gain": statistics.fmean(f - s for f, s in zip(final, start, strict=True)),
        "still_rising": 2 * sum(rising) > len(rising) if rising else None,
    }


def _pruned_cell(trial: FrozenTrial) -> PrunedColumnCell:
    stop = read_pruned(trial) or Pruned(None, None)
    return PrunedColumnCell(seed_of(trial), stop.step, stop.gap)


def _holm_and_verdicts(
    rows: list[ArmRow],
    tested: list[tuple[str, str]],
    chosen: dict[str, dict[object, FrozenTrial]],
    alpha: float,
    ropes: Rope,
    categories: dict[str, str],
) -> tuple[list[ArmRow], int]:
    """Holm over every difference test of the study, and apart over every equivalence test (the
    descriptive Wilcoxon tests stay out of both families); then the verdict words."""
    keys, equivalence = [], []
    for arm, column in tested:
        interval = next(r for r in rows if r.arm == arm).cells[column].interval
        if interval is not None and interval.p is not None:
            keys.append(((arm, column), interval.p))
            rope = ropes.for_column(column, categories)
            equivalence.append(((arm, column), interval.equivalence_p(rope)))
    adjusted = dict(zip([k for k, _ in keys], holm([p for _, p in keys]), strict=True))
    equivalent = dict(
        zip([k for k, _ in equivalence], holm([p for _, p in equivalence]), strict=True)
    )
    base = next((r for r in rows if r.is_baseline), None)
    out = []
    for row in rows:
        if base is None or row.is_baseline:
            out.append(row)
            continue
        # The baseline on this arm's shared seeds: its learning, and its seeds lost where the arm
        # finished (pairs the survivors never saw).
        shared = [chosen[base.arm][s] for s in chosen[row.arm] if s in chosen[base.arm]]
        base_learned = _learning(shared).get("learned")
        base_lost = any(s in chosen[row.arm] for s in base.lost_seeds)
        cells, unreachable = {}, []
        for column, cell in row.cells.items():
            if (row.arm, column) not in tested:
                cells[column] = cell
                continue
            rope = ropes.for_column(column, categories)
            p_holm = adjusted.get((row.arm, column))
            word = verdict(
                cell.interval,
                p_holm,
                equivalent.get((row.arm, column)),
                alpha,
                baseline_learned=base_learned,
                arm_learned=row.learned,
                arm_lost=bool(row.lost_seeds),
                baseline_lost=base_lost,
                arm_pruned=bool(row.pruned_cells),
            )
            half = cell.interval.half_width if cell.interval is not None else None
            if half is not None and half > rope and verdict_kind(word) is None:
                unreachable.append(column)
            cells[column] = _with(cell, p_holm=p_holm, verdict=word)
        if row.pruned_cells and not row.shared:
            cells = {c: _with(cell, verdict=PRUNED) for c, cell in cells.items()}
        objective = cells.get(OBJECTIVE)
        detectable = (
            detectable_effect(objective.interval, len(keys), alpha)
            if objective is not None and objective.interval is not None
            else None
        )
        out.append(
            replace(
                row,
                cells=cells,
                detectable=detectable,
                unreachable=tuple(unreachable),
                baseline_learned=base_learned,
                baseline_lost=base_lost,
            )
        )
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


def _with(cell: ColumnCell, **changes: object) -> ColumnCell:
    return replace(cell, **changes)


def _with_row(row: ArmRow, cells: dict[str, ColumnCell], detectable: float | None) -> ArmRow:
    return replace(row, cells=cells, detectable=detectable)
