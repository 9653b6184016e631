"""The race's decision procedure (``dashboards.sequential``): spending, Holm per look, stopping,
budgets, and the replay of a study written through the service's own writers."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import optuna
import pytest

from dashboards.ablation_table import build_table
from dashboards.records import ReportedStudy, ReportError, reported_study
from dashboards.sequential import (
    BUDGET,
    DECIDED,
    MAX_SEEDS,
    NO_LOOK,
    PRUNED,
    Comparison,
    look_levels,
    look_words,
    race,
    replay_race,
    spent,
)
from dashboards.verdicts import paired_interval, verdict_kind
from search.race import run_race
from storage.study_records import (
    Cell,
    RaceDesign,
    enqueue_cell,
    read_cell,
    read_race_design,
    write_race_design,
)
from tests.study_fixtures import ArmSpec, add_seeds, write_study


def _phi(x: float) -> float:  # the normal CDF from math.erf, not scipy
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


# --- spending ---------------------------------------------------------------------------------


def test_obrien_fleming_spends_alpha_at_the_end_and_almost_nothing_early() -> None:
    assert spent(1.0, 0.05, "obrien-fleming") == pytest.approx(0.05, abs=1e-9)
    # Lan & DeMets (1983): 2 - 2 Phi(1.95996 / sqrt(t)); at t = 0.5 the well-known 0.0056.
    assert spent(0.5, 0.05, "obrien-fleming") == pytest.approx(0.00557, abs=5e-5)
    assert spent(0.5, 0.05, "obrien-fleming") == pytest.approx(
        2 - 2 * _phi(1.959964 / math.sqrt(0.5)), rel=1e-4
    )
    assert spent(0.2, 0.05, "obrien-fleming") < 2e-5
    assert spent(0.0, 0.05, "obrien-fleming") == 0.0


def test_pocock_spending_values() -> None:
    assert spent(1.0, 0.05, "pocock") == pytest.approx(0.05, abs=1e-12)
    assert spent(0.5, 0.05, "pocock") == pytest.approx(0.05 * math.log(1 + (math.e - 1) / 2))
    assert spent(0.5, 0.05, "pocock") == pytest.approx(0.0310, abs=1e-4)  # Lan-DeMets tables


@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
@pytest.mark.parametrize(("plan", "most"), [(2, 6), (3, 6), (3, 4), (2, 2)])
def test_look_levels_are_positive_and_sum_to_alpha(spending: str, plan: int, most: int) -> None:
    levels = look_levels(plan, most, 0.05, spending)
    assert len(levels) == most - plan + 1
    assert all(a > 0 for a in levels)
    assert sum(levels) == pytest.approx(0.05, abs=1e-12)
    cumulative = np.cumsum(levels)
    assert all(np.diff(cumulative) > 0)  # the spent alpha is monotone over the looks


def test_unknown_spending_is_refused() -> None:
    with pytest.raises(ValueError, match="pocock"):
        spent(0.5, 0.05, "haybittle")


# --- Holm within a look, frozen cells ---------------------------------------------------------


def _interval(mean: float, sd: float = 0.01, n: int = 4):
    diffs = mean + sd * np.array([-1.2, -0.4, 0.5, 1.1][:n])
    return paired_interval(diffs, None)


def test_a_closed_arm_enters_the_family_with_p_one_and_gets_no_new_word() -> None:
    strong = _interval(-0.5)  # p far below any level here
    # A p between alpha/2 and alpha: decided only when it is alone at the front of Holm's order.
    target = None
    for mean in np.linspace(0.001, 0.05, 400):
        candidate = _interval(float(mean))
        if 0.025 < candidate.p < 0.05:
            target = candidate
            break
    assert target is not None
    tests = [Comparison("closed", "STS", strong, 0.005), Comparison("open", "STS", target, 0.005)]
    # With the closed arm's real p in the family, Holm would test the open arm at alpha / 1.
    assert verdict_kind(look_words(tests, 0.05)[("open", "STS")]) == "better"
    frozen = look_words(tests, 0.05, closed={"closed"})
    assert ("closed", "STS") not in frozen  # it keeps its earlier word
    assert frozen[("open", "STS")] == "inconclusive"  # at alpha / 2: no new spending


def test_words_use_the_look_level_and_the_verdict_rules() -> None:
    clear = _interval(-0.05)
    word = look_words([Comparison("a", "STS", clear, 0.005)], 0.05)[("a", "STS")]
    assert verdict_kind(word) == "worse"
    tiny = clear.p / 2
    assert look_words([Comparison("a", "STS", clear, 0.005)], tiny)[("a", "STS")] == "inconclusive"
    blocked = Comparison("a", "STS", clear, 0.005, baseline_learned=False)
    assert "baseline not shown to learn" in look_words([blocked], 0.05)[("a", "STS")]
    pruned = Comparison("a", "STS", None, 0.005, arm_pruned=True)
    assert look_words([pruned], 0.05)[("a", "STS")].startswith("pruned")


# --- the race: stopping, budgets ----------------------------------------------------------------


def _fake_race(effects: dict[str, float], design: RaceDesign, **flags: dict[str, bool]):
    """A race whose look n sees, per arm, n seed differences around its effect (sd 0.01)."""
    rng = np.random.default_rng(7)
    seeds = {arm: rng.normal(0, 0.01, design.max_seeds) for arm in effects}
    seen: list[tuple[int, frozenset[str]]] = []

    def tests_at(n: int, closed: frozenset[str]) -> list[Comparison]:
        seen.append((n, closed))
        return [
            Comparison(
                arm,
                column,
                paired_interval(effect + seeds[arm][:n], None),
                0.005,
                **flags.get(arm, {}),
            )
            for arm, effect in effects.items()
            for column in ("STS", "average")
        ]

    state = race(design, list(effects), tests_at, lambda n, _: True)
    return state, seen


def test_a_clear_arm_stops_decided_and_a_null_arm_runs_to_max_seeds() -> None:
    design = RaceDesign(max_seeds=5, plan_seeds=3, spending="pocock")
    state, seen = _fake_race({"broken": -0.3, "copy": 0.0}, design)
    broken, copy = state.arms["broken"], state.arms["copy"]
    assert (broken.reason, broken.look, broken.seeds) == (DECIDED, 1, 3)
    assert {verdict_kind(w) for w in broken.words.values()} == {"worse"}
    assert (copy.reason, copy.look, copy.seeds) == (MAX_SEEDS, 3, 5)
    assert state.finished and [x.seeds for x in state.looks] == [3, 4, 5]
    assert seen[1] == (4, frozenset({"broken"}))  # closed after look 1
    assert state.looks[0].alpha == pytest.approx(look_levels(3, 5, 0.05, "pocock")[0])
    assert broken.alpha == state.looks[0].alpha and copy.alpha == state.looks[-1].alpha
    # Cells: baseline 5 + broken 3 + copy 5 of a fixed design's 3 x 5.
    assert (state.trials_run, state.fixed_trials, state.saved) == (13, 15, 2)


def test_a_pruned_seed_stops_its_arm() -> None:
    design = RaceDesign(max_seeds=5, plan_seeds=2)
    state, _ = _fake_race({"a": 0.0}, design, a={"arm_pruned": True})
    assert (state.arms["a"].reason, state.arms["a"].look) == (PRUNED, 1)


def test_a_trial_budget_starts_no_round_that_does_not_fit() -> None:
    # After look 1: 3 seeds x (2 arms + baseline) = 9 cells; 'broken' is decided, so the next
    # round costs 2 (copy + baseline): 11 > 10, so no round starts.
    design = RaceDesign(max_seeds=6, plan_seeds=3, spending="pocock", budget_trials=10)
    state, _ = _fake_race({"broken": -0.3, "copy": 0.0}, design)
    assert (state.arms["copy"].reason, state.arms["copy"].look) == (BUDGET, 1)
    assert (state.trials_run, state.fixed_trials, state.saved) == (9, 18, 9)
    # One more trial of budget buys exactly one more round.
    design = replace(design, budget_trials=11)
    state, _ = _fake_race({"broken": -0.3, "copy": 0.0}, design)
    assert (state.arms["copy"].reason, state.arms["copy"].seeds) == (BUDGET, 4)
    assert state.trials_run == 11


def test_an_hour_budget_stops_new_rounds() -> None:
    design = RaceDesign(max_seeds=6, plan_seeds=2, budget_hours=1.0)
    state = race(
        design,
        ["a"],
        lambda n, _: [
            Comparison("a", "STS", paired_interval([0.0, 0.01, -0.01][:n] + [0.0] * n, None), 0.005)
        ],
        lambda n, _: True,
        hours_at=lambda n: 0.5 * n,  # look at 2 seeds: 1 hour in
    )
    assert (state.arms["a"].reason, state.arms["a"].seeds) == (BUDGET, 2)


def test_a_look_waits_for_every_open_arm_and_the_baseline() -> None:
    design = RaceDesign(max_seeds=4, plan_seeds=2)
    state = race(design, ["a"], lambda n, _: [], lambda n, arms: n <= 2)
    # The look at 2 seeds decides nothing (no tests): 'a' needs seed 2 before the next look.
    assert not state.finished and state.open == ["a"] and state.seeds == 3
    assert len(state.looks) == 1 and state.arms["a"].reason is None


# --- the race of a stored study ---------------------------------------------------------------

ARMS = (
    ArmSpec("base", 0.0),
    ArmSpec("broken", -0.3),
    ArmSpec("copy", 0.0),
)


def _records(study: optuna.Study) -> ReportedStudy:
    return reported_study(study, "test")


def test_a_stored_race_replays_the_same_looks_and_continues_where_it_stopped(
    sqlite_url: str,
) -> None:
    study = write_study(sqlite_url, "race", ARMS, seeds=3, baseline="base")
    design = RaceDesign(max_seeds=5, plan_seeds=3, spending="pocock")
    write_race_design(study, design)
    assert read_race_design(study) == design
    first = replay_race(_records(study), design)
    again = replay_race(_records(optuna.load_study(study_name="race", storage=sqlite_url)), design)
    assert first == again  # recomputed from the trials: deterministic
    assert first.arms["broken"].reason == DECIDED and first.arms["broken"].look == 1
    assert first.open == ["copy"] and first.seeds == 4  # the next round: seed 3 of copy and base

    # The next round lands (only copy and the baseline); the race moves on, broken stays closed.
    add_seeds(study, ARMS, range(3, 4), 5, only=("base", "copy"))
    later = replay_race(_records(study), design)
    assert later.arms["broken"] == first.arms["broken"]
    assert [x.seeds for x in later.looks] == [3, 4]
    assert later.arms["copy"].seeds == 4

    table = build_table(_records(study))
    assert "group-sequential, Lan-DeMets Pocock spending" in table.legend()
    assert "Holm within each look" in table.legend()
    rows = {r.arm: r for r in table.rows}
    assert "stopped at look 1 (decided) after 3 seeds" in rows["broken"].race
    assert rows["copy"].race.startswith("race: racing: 4 seeds")
    assert all(verdict_kind(c.verdict) == "worse" for c in rows["broken"].cells.values())
    # The fixed-design table of the same trials is still there for comparison.
    fixed = {r.arm: r for r in build_table(_records(study), race=False).rows}
    assert fixed["broken"].race is None
    # Each row is its last look at that look's alpha_k: an interval wider than the fixed 95% one,
    # and no Holm p-value over all seeds (after optional stopping it would not be one).
    assert all(c.p_holm is None for r in rows.values() for c in r.cells.values())
    for column, cell in rows["copy"].cells.items():
        assert cell.interval.n_seeds == 4
        at_95 = fixed["copy"].cells[column].interval  # the same 4 seeds, at the fixed 0.05
        assert cell.interval.high - cell.interval.low > at_95.high - at_95.low
    assert (
        "1 - alpha_k" in table.legend() and "difference tests of the study)" not in table.legend()
    )
    with pytest.raises(ReportError, match="drop --alpha"):
        build_table(_records(study), alpha=0.01)


def test_an_arm_before_its_first_look_has_no_word(sqlite_url: str) -> None:
    study = write_study(sqlite_url, "early", ARMS, seeds=2, baseline="base")
    write_race_design(study, RaceDesign(max_seeds=5, plan_seeds=3, spending="pocock"))
    table = build_table(_records(study))
    assert build_table(_records(study), race=False).rows[1].cells  # the fixed table has words
    for row in table.rows:
        if not row.is_baseline:
            assert {c.verdict for c in row.cells.values()} <= {NO_LOOK, None}
            assert any(c.verdict == NO_LOOK for c in row.cells.values())


def test_a_study_without_a_race_design_keeps_its_fixed_table(sqlite_url: str) -> None:
    study = write_study(sqlite_url, "fixed", ARMS, seeds=3, baseline="base")
    assert read_race_design(study) is None
    table = build_table(_records(study))
    assert table.sequential is None and "group-sequential" not in table.legend()


# --- the launcher's rounds (search.race) on a stored study, the trials written as the service does -


def test_rounds_go_only_to_undecided_arms_and_a_relaunch_adds_nothing(sqlite_url: str) -> None:
    study = write_study(sqlite_url, "race", ARMS, seeds=3, baseline="base")
    design = RaceDesign(max_seeds=4, plan_seeds=3, spending="pocock")
    write_race_design(study, design)
    plan = SimpleNamespace(baseline="base", trials_per_cell=1)
    arms = SimpleNamespace(labels=[a.label for a in ARMS])
    queued: list[set[tuple[str, int]]] = []

    def execute(state: object) -> int:
        """The scheduler's part: every queued cell runs (its fixture trial lands) once."""
        storage = study._storage
        waiting = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        cells = {(read_cell(t).arm, read_cell(t).seed) for t in waiting}
        queued.append(cells)
        for trial in waiting:  # claimed and replaced by the finished trial of the same cell
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.RUNNING)
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        for seed in sorted({s for _, s in cells}):
            add_seeds(
                study, ARMS, range(seed, seed + 1), 4, only=tuple(a for a, s in cells if s == seed)
            )
        return 0

    said: list[str] = []
    assert run_race(study, plan, arms, design, execute, say=said.append) == 0
    assert queued and all(arm != "broken" for cells in queued for arm, _ in cells)
    for cells in queued:  # the baseline runs every seed an arm runs
        assert {s for a, s in cells if a == "copy"} <= {s for a, s in cells if a == "base"}
    final = replay_race(_records(study), design)
    assert final.finished and final.arms["broken"].reason == DECIDED
    assert final.arms["copy"].reason in (DECIDED, MAX_SEEDS)
    assert any("stopped at look 1 (decided)" in line for line in said)

    # A relaunch replays the finished race: no round, nothing queued.
    again: list[object] = []
    assert run_race(study, plan, arms, design, lambda s: again.append(s) or 0, say=said.append) == 0
    assert again == [] and not study.get_trials(states=(optuna.trial.TrialState.WAITING,))


def test_a_cell_with_a_trial_still_queued_is_not_in_a_look(sqlite_url: str) -> None:
    study = write_study(sqlite_url, "queued", ARMS, seeds=3, baseline="base")
    design = RaceDesign(max_seeds=5, plan_seeds=3, spending="pocock")
    write_race_design(study, design)
    assert len(replay_race(_records(study), design).looks) == 1
    # Another trial of a finished cell is queued (a relaunch, a second launcher): until it
    # lands, the look that would use that cell waits, so a replay never recomputes it.
    enqueue_cell(study, Cell("broken", 2))
    assert replay_race(_records(study), design).looks == []
