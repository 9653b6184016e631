"""Run until decided: a race of the arms over seed rounds, with error rates valid under the peeking.

``--until-decided`` starts every arm with the plan's seeds and adds one seed per round to the arms
whose verdicts are still open, up to ``max_seeds`` (``search.race`` runs the rounds). The table is
looked at after every round, so the fixed design's rule (Holm at alpha over the study,
``dashboards.verdicts``) would be applied up to ``max_seeds - plan_seeds + 1`` times to growing
data, and its study-wide error would grow with the looks. The race spends alpha instead:

- **Looks.** Look k uses the first ``n_k`` seeds (seeds ``0 .. n_k - 1``) that every open arm and
  the baseline completed: ``n_1`` is the plan's seeds, then one more per round, up to
  ``max_seeds``. Its information fraction is ``t_k = n_k / max_seeds``.
- **Alpha spending** (Lan-DeMets): O'Brien-Fleming type ``a(t) = 2 - 2 Phi(z_{1-alpha/2} /
  sqrt(t))`` (the default: almost nothing spent at the first looks, nearly all of alpha at the
  last) or Pocock type ``a(t) = alpha ln(1 + (e - 1) t)`` (front-loaded: with looks at 3 to 6 seeds, 0.031 of 0.05 goes to the first). Look k tests at
  ``alpha_k = a(t_k) - a(t_{k-1})`` (``a(t_0) = 0``).
- **Within a look**: Holm over every difference test of the open arms' columns, and apart over
  every equivalence test, at ``alpha_k``, with the existing paired interval and verdict rules
  (``dashboards.verdicts.paired_interval`` and ``verdict``: lost seeds, a baseline not shown to
  learn, pruned seeds, unchanged). The cells of an arm closed at an earlier look keep that look's
  word and enter later families with p = 1, so they spend nothing.
- **Stopping**, per arm after each look: every column decided (better, worse or equivalent) ->
  ``decided``; a pruned seed -> ``pruned``; ``max_seeds`` reached -> ``max seeds``; a budget in
  trials or hours that the next round would exceed -> ``budget`` (no new round starts).

Why it is valid: a false better/worse anywhere in the study needs some look k at which some test
of the difference family rejects a true null, which by Holm happens with probability at most
``alpha_k`` at that look, whatever the other tests; the union bound over the looks then gives a
study-wide error of at most ``sum_k alpha_k = a(t_K) <= a(1) = alpha``. The equivalence family is
bounded the same way on its own, so a false call of either kind is bounded by alpha per kind (2
alpha together, as in the fixed design, which also runs the two families apart). A cell's
``1 - alpha_k`` interval at its arm's last look is a repeated confidence interval by the same bound.
The bound is a Bonferroni split across looks: it holds under ANY dependence between the looks (they
share seeds, so they are strongly dependent), needs no joint distribution of the test statistics,
and is conservative: for one test with known variance it realises about 0.030 (O'Brien-Fleming) or
0.035 (Pocock) of a nominal 0.05, where an exact group-sequential boundary would use all of it.
Stopping
early, freezing arms, and budgets only ever remove later looks, which can only lower the sum.
``tests/dashboards/test_sequential_null.py`` checks it on an independent simulation, and
``benchmarks/sequential.py`` measures size, power and seeds saved against a fixed design of
``max_seeds``.

The looks are recomputed from the stored trials every time (``replay_race``): the study stores only
its race design (``storage.study_records.RaceDesign``), so a killed launcher or a relaunch
continues the same race, and the report shows the same words as the launcher did.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from optuna.trial import TrialState
from scipy import stats

from dashboards.records import ReportedStudy, arm_of, seed_of
from dashboards.verdicts import Interval, Rope, holm, verdict, verdict_kind
from storage.study_records import RaceDesign, read_race_design

if TYPE_CHECKING:
    from dashboards.ablation_table import AblationTable, ArmRow

__all__ = [
    "BUDGET",
    "DECIDED",
    "MAX_SEEDS",
    "MAX_SEEDS_CAP",
    "PRUNED",
    "SPENDINGS",
    "ArmRace",
    "Comparison",
    "Look",
    "RaceState",
    "look_levels",
    "look_words",
    "method",
    "race",
    "race_design",
    "race_table",
    "replay_race",
    "spent",
]

SPENDINGS = ("obrien-fleming", "pocock")
# More seeds than this per arm is a typo, not a design (a CPU box runs a few a day).
MAX_SEEDS_CAP = 50
DECIDED, PRUNED, MAX_SEEDS, BUDGET = "decided", "pruned", "max seeds", "budget"
NO_LOOK = "inconclusive (no look yet)"
_NAMES = {"obrien-fleming": "O'Brien-Fleming", "pocock": "Pocock"}


def spent(t: float, alpha: float, spending: str) -> float:
    """Alpha spent up to information fraction ``t`` (Lan-DeMets; 0 at t = 0, alpha at t = 1)."""
    if t <= 0:
        return 0.0
    t = min(t, 1.0)
    if spending == "obrien-fleming":
        return float(2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - alpha / 2) / math.sqrt(t)))
    if spending == "pocock":
        return float(alpha * math.log(1 + (math.e - 1) * t))
    raise ValueError(f"unknown spending {spending!r}; choose one of {', '.join(SPENDINGS)}")


def look_levels(plan_seeds: int, max_seeds: int, alpha: float, spending: str) -> list[float]:
    """``alpha_k`` of each possible look: seeds ``plan_seeds, plan_seeds + 1, .., max_seeds``."""
    counts = list(range(plan_seeds, max_seeds + 1))
    fractions = [0.0] + [n / max_seeds for n in counts]
    return [
        spent(fractions[i + 1], alpha, spending) - spent(fractions[i], alpha, spending)
        for i in range(len(counts))
    ]


def method(spending: str) -> str:
    """The legend's name of the sequential method."""
    return (
        f"group-sequential, Lan-DeMets {_NAMES.get(spending, spending)} spending over seed "
        "rounds, Holm within each look"
    )


@dataclass(frozen=True)
class Comparison:
    """One arm x column comparison at a look: its paired interval and what the verdict rules read
    (``dashboards.verdicts.verdict``)."""

    arm: str
    column: str
    interval: Interval | None
    rope: float
    baseline_learned: bool | None = True
    arm_learned: bool | None = True
    arm_lost: bool = False
    baseline_lost: bool = False
    arm_pruned: bool = False


def look_words(
    tests: Sequence[Comparison], alpha_k: float, closed: Collection[str] = ()
) -> dict[tuple[str, str], str]:
    """The words of one look: Holm at ``alpha_k`` over every difference test, and apart over every
    equivalence test; the tests of ``closed`` arms enter both families with p = 1 and get no word
    here (they keep their earlier one)."""
    keys, diff_p, equiv_p = [], [], []
    for test in tests:
        interval = test.interval
        if interval is None or interval.p is None:
            continue
        shut = test.arm in closed
        keys.append((test.arm, test.column))
        diff_p.append(1.0 if shut else interval.p)
        equiv = None if shut else interval.equivalence_p(test.rope)
        equiv_p.append(1.0 if equiv is None else equiv)
    diff_adj = dict(zip(keys, holm(diff_p), strict=True))
    equiv_adj = dict(zip(keys, holm(equiv_p), strict=True))
    words = {}
    for test in tests:
        if test.arm in closed:
            continue
        key = (test.arm, test.column)
        words[key] = verdict(
            test.interval,
            diff_adj.get(key),
            equiv_adj.get(key),
            alpha_k,
            baseline_learned=test.baseline_learned,
            arm_learned=test.arm_learned,
            arm_lost=test.arm_lost,
            baseline_lost=test.baseline_lost,
            arm_pruned=test.arm_pruned,
        )
    return words


@dataclass(frozen=True)
class Look:
    number: int
    seeds: int
    alpha: float


@dataclass(frozen=True)
class ArmRace:
    """One arm in the race: seeds run, its words at its last look, and where and why it stopped
    (``look``/``reason`` ``None`` while it races on)."""

    arm: str
    seeds: int
    words: dict[str, str] = field(default_factory=dict)
    alpha: float | None = None
    look: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        level = f", alpha {self.alpha:.3g}" if self.alpha is not None else ""
        if self.reason is None:
            return f"racing: {self.seeds} seeds{level}"
        return f"stopped at look {self.look} ({self.reason}) after {self.seeds} seeds{level}"


@dataclass(frozen=True)
class RaceState:
    """The race as the stored trials stand: the looks made, each arm, and the round to run next.

    ``seeds``: the seeds every arm in ``open`` and the baseline must complete for the next look
    (0 .. seeds - 1); ``finished``: no arm races on.
    """

    design: RaceDesign
    looks: list[Look]
    arms: dict[str, ArmRace]
    open: list[str]
    seeds: int
    baseline_seeds: int

    @property
    def finished(self) -> bool:
        return not self.open

    @property
    def trials_run(self) -> int:
        """Arm x seed cells of the race so far, the baseline's included."""
        return self.baseline_seeds + sum(a.seeds for a in self.arms.values())

    @property
    def fixed_trials(self) -> int:
        """Cells a fixed design of ``max_seeds`` for every arm and the baseline would run."""
        return (len(self.arms) + 1) * self.design.max_seeds

    @property
    def saved(self) -> int:
        return self.fixed_trials - self.trials_run

    def summary(self) -> str:
        looks = ", ".join(f"{x.number}: {x.seeds} seeds at alpha {x.alpha:.3g}" for x in self.looks)
        state = "finished" if self.finished else f"racing ({len(self.open)} arms open)"
        return (
            f"race {state}; looks {looks or 'none yet'}; {self.trials_run} arm x seed cells run "
            f"of the {self.fixed_trials} a fixed design of {self.design.max_seeds} seeds would "
            f"run ({self.saved} saved)"
        )


def race(
    design: RaceDesign,
    arms: Sequence[str],
    tests_at: Callable[[int, frozenset[str]], Sequence[Comparison]],
    ready: Callable[[int, Collection[str]], bool],
    hours_at: Callable[[int], float | None] = lambda _: None,
) -> RaceState:
    """Replay the race's decisions up to the last look whose seeds are all in.

    ``tests_at(n, closed)``: the comparisons on seeds 0 .. n - 1 (``closed``: arms stopped before);
    ``ready(n, arms)``: whether these arms and the baseline have all of seeds 0 .. n - 1 done;
    ``hours_at(n)``: the study's hours when seeds 0 .. n - 1 were done (for ``budget_hours``).
    """
    levels = look_levels(design.plan_seeds, design.max_seeds, design.alpha, design.spending)
    states = {arm: ArmRace(arm, 0) for arm in arms}
    open_arms = list(arms)
    looks: list[Look] = []
    n, baseline_seeds = design.plan_seeds, 0
    while open_arms and ready(n, open_arms):
        k = len(looks) + 1
        alpha_k = levels[k - 1]
        looks.append(Look(k, n, alpha_k))
        baseline_seeds = n
        closed = frozenset(a for a in arms if a not in open_arms)
        tests = tests_at(n, closed)
        all_words = look_words(tests, alpha_k, closed)
        for arm in open_arms:
            mine = [t for t in tests if t.arm == arm]
            words = {c: w for (a, c), w in all_words.items() if a == arm}
            reason = _stop(words, any(t.arm_pruned for t in mine), n, design.max_seeds)
            states[arm] = ArmRace(arm, n, words, alpha_k, k if reason else None, reason)
        open_arms = [a for a in open_arms if states[a].reason is None]
        if open_arms and not _fits(design, states, n, open_arms, hours_at(n)):
            for arm in open_arms:
                states[arm] = replace(states[arm], look=k, reason=BUDGET)
            open_arms = []
        if open_arms:
            n += 1
    return RaceState(design, looks, states, open_arms, n, baseline_seeds)


def _stop(words: Mapping[str, str], pruned: bool, seeds: int, max_seeds: int) -> str | None:
    if words and all(verdict_kind(w) is not None for w in words.values()):
        return DECIDED
    if pruned:
        return PRUNED
    if seeds >= max_seeds:
        return MAX_SEEDS
    return None


def _fits(
    design: RaceDesign,
    states: Mapping[str, ArmRace],
    n: int,
    open_arms: Sequence[str],
    hours: float | None,
) -> bool:
    """Whether the budget allows the next round (one seed for each open arm and the baseline)."""
    if design.budget_trials is not None:
        run = n + sum(s.seeds for s in states.values())
        if run + len(open_arms) + 1 > design.budget_trials:
            return False
    return not (
        design.budget_hours is not None and hours is not None and hours >= design.budget_hours
    )


# --- the race of a stored study --------------------------------------------------------------------


def race_design(records: ReportedStudy) -> RaceDesign | None:
    """The study's race design; ``None`` for a fixed-design study."""
    study = records.study
    return read_race_design(study) if hasattr(study, "user_attrs") else None


def replay_race(records: ReportedStudy, design: RaceDesign, ropes: Rope | None = None) -> RaceState:
    """The race of a stored study, recomputed from its trials (deterministic: same trials, same
    looks and words)."""
    from dashboards.ablation_table import build_table  # it calls back here for race studies

    ropes = ropes or Rope()
    baseline = records.baseline
    arms = [a for a in records.arms if a != baseline]
    # A cell is in when every trial it will ever have is finished: a look made on part of a cell
    # could change when its other trials land (the table keeps the best of them), and a replay
    # would then recompute a past look on other data.
    per_cell = int(records.plan.get("trials_per_cell", 1) or 1)
    finished_trials: Counter[tuple[str, int | None]] = Counter()
    pending: set[tuple[str, int | None]] = set()
    for trial in records.trials:
        cell = (arm_of(trial) or "", seed_of(trial))
        if trial.state in (TrialState.WAITING, TrialState.RUNNING):
            pending.add(cell)
        elif trial.state == TrialState.PRUNED or (
            trial.state == TrialState.COMPLETE and trial.value is not None
        ):
            finished_trials[cell] += 1
    done: dict[str, set[int]] = {}
    for (arm, seed), count in finished_trials.items():
        if count >= per_cell and (arm, seed) not in pending and seed is not None:
            done.setdefault(arm, set()).add(seed)

    def ready(n: int, open_arms: Collection[str]) -> bool:
        need = set(range(n))
        return all(need <= done.get(arm, set()) for arm in (*open_arms, baseline))

    def tests_at(n: int, closed: frozenset[str]) -> list[Comparison]:
        trials = [t for t in records.trials if (seed_of(t) or 0) < n and seed_of(t) is not None]
        table = build_table(replace(records, trials=trials), rope=ropes, race=False)
        categories = _categories(records)
        out = []
        for row in table.rows:
            if row.is_baseline:
                continue
            for column in table.columns:
                cell = row.cells[column]
                out.append(
                    Comparison(
                        arm=row.arm,
                        column=column,
                        interval=cell.interval,
                        rope=ropes.for_column(column, categories),
                        baseline_learned=row.baseline_learned,
                        arm_learned=row.learned,
                        arm_lost=bool(row.lost_seeds),
                        baseline_lost=row.baseline_lost,
                        arm_pruned=bool(row.pruned_cells),
                    )
                )
        return out

    def hours_at(n: int) -> float | None:
        trials = [t for t in records.trials if seed_of(t) is not None and seed_of(t) < n]
        starts = [t.datetime_start for t in records.trials if t.datetime_start is not None]
        ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
        if not starts or not ends:
            return None
        return (max(ends) - min(starts)) / dt.timedelta(hours=1)

    return race(design, arms, tests_at, ready, hours_at)


def _categories(records: ReportedStudy) -> dict[str, str]:
    from storage.study_records import read_result

    categories: dict[str, str] = {}
    for trial in records.complete():
        result = read_result(trial)
        if result is not None:
            categories.update(result.task_category)
    return categories


def race_table(records: ReportedStudy, design: RaceDesign, ropes: Rope) -> AblationTable:
    """The ablation table of a race study: each arm's row as it stood at its last look (the seeds
    that look used, the words it gave at that look's alpha_k, and the (1 - alpha_k) paired
    interval), its race in its notes, the race's rule in the legend.

    A fixed-design Holm p-value over all seeds would not be valid after optional stopping, so the
    row carries none; the interval at alpha_k is a repeated confidence interval (the union bound
    over the looks that bounds the words covers it too), not a 95% interval of the last look.
    """
    from dashboards.ablation_table import build_table

    state = replay_race(records, design, ropes)
    table = build_table(records, rope=ropes, race=False)
    rows = []
    for row in table.rows:
        arm = state.arms.get(row.arm)
        if row.is_baseline or arm is None or arm.alpha is None:
            note = f"race: {state.baseline_seeds} seeds" if row.is_baseline else None
            if not row.is_baseline and arm is not None:
                note = f"race: {arm.describe()}"
            cells = {  # no look has tested this arm yet: no word may stand
                column: replace(
                    cell,
                    p_holm=None,
                    verdict=None if cell.verdict is None or row.is_baseline else NO_LOOK,
                )
                for column, cell in row.cells.items()
            }
            rows.append(replace(row, race=note, detectable=None, cells=cells))
            continue
        at_look = _row_at(records, ropes, row.arm, arm.seeds)
        cells = {
            column: replace(
                cell,
                interval=_at_level(cell.interval, arm.alpha),
                p_holm=None,
                verdict=arm.words.get(column, cell.verdict),
            )
            for column, cell in at_look.cells.items()
        }
        rows.append(replace(at_look, cells=cells, detectable=None, race=f"race: {arm.describe()}"))
    sequential = (
        f"{method(design.spending)} (alpha {design.alpha} over the study); {state.summary()}"
    )
    return replace(table, rows=rows, sequential=sequential)


def _row_at(records: ReportedStudy, ropes: Rope, arm: str, seeds: int) -> ArmRow:
    """``arm``'s row of the table on seeds 0 .. seeds - 1 (its last look's data)."""
    from dashboards.ablation_table import build_table

    trials = [t for t in records.trials if seed_of(t) is not None and seed_of(t) < seeds]
    table = build_table(replace(records, trials=trials), rope=ropes, race=False)
    return next(r for r in table.rows if r.arm == arm)


def _at_level(interval: Interval | None, alpha: float) -> Interval | None:
    """The same paired interval at level ``1 - alpha`` (the look's alpha_k)."""
    if interval is None or interval.se is None:
        return interval
    half = interval.threshold(alpha)
    return replace(interval, low=interval.mean - half, high=interval.mean + half)
