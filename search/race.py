"""``--until-decided``: run seed rounds until every arm's verdicts are decided (``dashboards.sequential``).

Each pass replays the race from the stored trials (``dashboards.sequential.replay_race``), queues
what the next look needs (the seeds ``0 .. n - 1`` of every open arm and of the baseline, per
seed the baseline first, so the pruner keeps its same-seed reference), runs them with the study's
scheduler, and looks again. Nothing about the race lives in the launcher's memory: a killed
launcher, a relaunch or a second launcher on a cluster replays the same looks and queues the same
cells (``enqueue_cell`` adds only what a cell lacks beyond its finished and pending trials).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import optuna

from dashboards.records import reported_study
from dashboards.sequential import SPENDINGS, RaceState, look_levels, method, replay_race
from dashboards.verdicts import Rope
from objectives.errors import AblationError
from search.arms import Arms
from search.plans import Plan
from search.study import FINISHED, PENDING
from storage.study_records import (
    Cell,
    RaceDesign,
    enqueue_cell,
    read_cell,
    read_race_design,
)

EXIT_FAILED = 1


class RaceError(AblationError, ValueError):
    """A race that cannot start or continue as asked; one line naming the fix."""


def check_design(
    storage: optuna.storages.BaseStorage, name: str, design: RaceDesign | None
) -> None:
    """Refuse (before anything is written) a launch whose race design differs from the stored
    study's: the looks already made spent alpha by that design."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return
    stored = read_race_design(study)
    if stored == design or (stored is None and not study.get_trials(deepcopy=False)):
        return
    if stored is None:
        raise RaceError(
            f"study '{name}' was run with a fixed number of seeds, and its table was looked at; "
            "pass --study-name to run a new study until decided"
        )
    raise RaceError(
        f"study '{name}' races with {flags(stored)}; relaunch with those flags to continue it, "
        "or pass --study-name to start a new race"
    )


def flags(design: RaceDesign) -> str:
    """The launcher flags that make ``design``."""
    text = f"--until-decided --max-seeds {design.max_seeds} --seeds {design.plan_seeds}"
    if design.spending != SPENDINGS[0]:
        text += f" --spending {design.spending}"
    if design.budget_trials is not None:
        text += f" --budget-trials {design.budget_trials}"
    if design.budget_hours is not None:
        text += f" --budget-hours {design.budget_hours:g}"
    return text


def describe(design: RaceDesign) -> str:
    """The race's plan: looks, their seeds and alpha_k."""
    levels = look_levels(design.plan_seeds, design.max_seeds, design.alpha, design.spending)
    looks = ", ".join(f"{design.plan_seeds + i} seeds at {a:.3g}" for i, a in enumerate(levels))
    budget = []
    if design.budget_trials is not None:
        budget.append(f"{design.budget_trials} trials")
    if design.budget_hours is not None:
        budget.append(f"{design.budget_hours:g} hours")
    return f"  until decided: {method(design.spending)}; looks {looks}" + (
        f"; budget {' or '.join(budget)}" if budget else ""
    )


def round_cells(state: RaceState, plan: Plan, arms: Arms) -> list[tuple[str, int]]:
    """The cells the next look needs: seeds 0 .. n - 1 of the open arms and the baseline, per
    seed the baseline first."""
    racing = [a for a in arms.labels if a in state.open]
    order = [plan.baseline, *racing]
    return [(arm, seed) for seed in range(state.seeds) for arm in order]


def race_cells(study: optuna.Study) -> set[tuple[str, int]]:
    """Every arm x seed cell the study holds a trial of."""
    found = (read_cell(t) for t in study.get_trials(deepcopy=False))
    return {(cell.arm, cell.seed) for cell in found if cell is not None and cell.seed is not None}


def enqueue_round(
    study: optuna.Study, state: RaceState, plan: Plan, arms: Arms
) -> list[tuple[str, int]]:
    """Queue what the next look's cells lack beyond their finished and pending trials."""
    have = Counter(
        read_cell(t) for t in study.get_trials(deepcopy=False, states=FINISHED + PENDING)
    )
    added = []
    for arm, seed in round_cells(state, plan, arms):
        for _ in range(plan.trials_per_cell - have[Cell(arm, seed)]):
            enqueue_cell(study, Cell(arm, seed))
            added.append((arm, seed))
    return added


def status_line(state: RaceState) -> str:
    """Per arm, one short phrase: what the live progress line shows."""
    look = state.looks[-1].number if state.looks else 0
    parts = []
    for arm in state.arms.values():
        if arm.reason is None:
            parts.append(f"{arm.arm} racing ({arm.seeds} seeds)")
        else:
            parts.append(f"{arm.arm} {arm.reason} at look {arm.look} ({arm.seeds} seeds)")
    return (
        f"race look {look}, next {state.seeds} seeds: "
        + ", ".join(parts)
        + f"; {state.trials_run} of a fixed design's {state.fixed_trials} cells run"
    )


def run_race(
    study: optuna.Study,
    plan: Plan,
    arms: Arms,
    design: RaceDesign,
    execute: Callable[[RaceState], int],
    rope: Rope | None = None,
    say: Callable[[str], None] = print,
) -> int:
    """Rounds until the race is finished: replay, queue the next look's cells, ``execute`` them
    (the launcher's scheduler run; its exit code), again. 0 when finished; ``execute``'s code
    when it is not 0; 1 when a round cannot complete (cells with only failed trials: relaunch)."""
    before: tuple[int, int] | None = None
    while True:
        state = replay_race(reported_study(study), design, rope)
        for arm in state.arms.values():
            if arm.reason is not None and arm.look == (
                state.looks[-1].number if state.looks else 0
            ):
                say(f"race: '{arm.arm}' {arm.describe()}")
        if state.finished:
            say(state.summary())
            return 0
        added = enqueue_round(study, state, plan, arms)
        progress = (len(state.looks), len(study.get_trials(deepcopy=False, states=FINISHED)))
        if progress == before:  # the last round finished no cell: its trials all failed
            say("race: a round's cells have only failed trials; relaunch the same command to retry")
            return EXIT_FAILED
        before = progress
        if added:
            say(
                f"race: look {len(state.looks) + 1} needs {state.seeds} seeds of "
                f"{', '.join(state.open)} and the baseline: {len(added)} trials queued"
            )
        code = execute(state)
        if code != 0:
            return code
