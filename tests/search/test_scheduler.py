"""The scheduler's rules without Ray: baselines first, a reference before pruning, stop and retry.

A real SQLite study holds the cells; ``InlineBackend`` plays Ray, and the "worker" tells each trial.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import optuna
import pytest
from optuna.trial import TrialState

from objectives.config.trial_config import ConfigError
from objectives.model.backbone import AttentionModeError
from search import scheduler
from search.arms import Choices, resolve_arms
from search.plans import get_plan
from search.study import enqueue_missing, prepare_study
from search.worker import Outcome, stops_study
from storage import open_storage
from storage.study_records import read_cell, read_error, suggest_cell
from tests.search_helpers import InlineBackend

SEEDS = 2
PLAN = replace(get_plan("layer-weights"), seeds=SEEDS)  # baseline "W on", other arm "W off"


def _study(url: str) -> tuple[optuna.storages.RDBStorage, optuna.Study]:
    settings = Choices(preset="smoke")
    arms = resolve_arms(PLAN, settings)
    storage = open_storage(url)
    study = prepare_study(storage, "s", PLAN, arms, settings)
    enqueue_missing(study, PLAN, arms)
    return storage, study


def _worker(study: optuna.Study, events: list, outcome: Callable | None = None) -> Callable:
    """Tells each trial COMPLETE (or what ``outcome`` says) and logs when it ran."""

    def cell(trial_id: int) -> Outcome:
        study.get_trials(deepcopy=False)  # sync the cache, as run_cell does
        trial = optuna.Trial(study, trial_id)
        arm, seed = suggest_cell(trial, [a.label for a in PLAN.arms], SEEDS)
        events.append(("ran", (arm, seed)))
        if outcome is not None:
            return outcome(study, trial, arm)
        study.tell(trial, 0.5)
        return Outcome(trial_id, TrialState.COMPLETE, 0.5)

    return cell


def _run(
    storage: optuna.storages.RDBStorage,
    study: optuna.Study,
    backend: InlineBackend,
    *,
    gated: bool,
    concurrency: int,
) -> scheduler.Tracker:
    return scheduler.Scheduler(
        storage,
        study,
        backend,
        baseline=PLAN.baseline,
        gated=gated,
        max_concurrent=concurrency,
        heartbeat_interval=1,
        poll_seconds=0.01,
    ).run()


class Logged(InlineBackend):
    """Also logs each submission, with its cell, in the same event list as the runs."""

    def __init__(self, cell: Callable, storage: optuna.storages.BaseStorage, events: list) -> None:
        super().__init__(cell)
        self.storage, self.events = storage, events

    def submit(self, trial_id: int) -> int:
        self.events.append(("submitted", read_cell(self.storage.get_trial(trial_id))))
        return super().submit(trial_id)


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_with_pruning_every_seeds_baseline_runs_before_any_cell_of_its_seed(
    sqlite_url: str, concurrency: int
) -> None:
    storage, study = _study(sqlite_url)
    events: list = []
    backend = Logged(_worker(study, events), storage, events)
    _run(storage, study, backend, gated=True, concurrency=concurrency)

    submitted = [cell for kind, cell in events if kind == "submitted"]
    assert [arm for arm, _ in submitted[:SEEDS]] == [PLAN.baseline] * SEEDS
    for seed in range(SEEDS):
        baseline_ran = events.index(("ran", (PLAN.baseline, seed)))
        assert events.index(("submitted", ("W off", seed))) > baseline_ran
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}
    assert len(study.trials) == 2 * SEEDS


def test_without_pruning_no_cell_waits_for_a_reference(sqlite_url: str) -> None:
    storage, study = _study(sqlite_url)
    events: list = []
    backend = Logged(_worker(study, events), storage, events)
    _run(storage, study, backend, gated=False, concurrency=4)
    assert [kind for kind, _ in events[:4]] == ["submitted"] * 4  # all four at once


def test_a_trial_error_every_cell_would_hit_stops_the_study(sqlite_url: str) -> None:
    storage, study = _study(sqlite_url)
    error = AttentionModeError("minilm does not hold causal attention")
    assert stops_study(error) and not stops_study(ConfigError("anything else"))

    def fail(study: optuna.Study, trial: optuna.Trial, arm: str) -> Outcome:
        study.tell(trial, state=TrialState.FAIL)
        return Outcome(
            trial._trial_id, TrialState.FAIL, error=f"AttentionModeError: {error}", stops_study=True
        )

    events: list = []
    tracker = _run(
        storage, study, InlineBackend(_worker(study, events, fail)), gated=True, concurrency=1
    )
    assert tracker.stopped == f"AttentionModeError: {error}"
    assert len(events) == 1  # no further cell ran, and none was retried
    states = [t.state for t in study.trials]
    assert states.count(TrialState.FAIL) == 1 and states.count(TrialState.WAITING) == 3


def test_a_dead_worker_fails_its_trial_and_the_cell_runs_again(sqlite_url: str) -> None:
    storage, study = _study(sqlite_url)
    events: list = []
    died: list[int] = []

    def once_dead(study: optuna.Study, trial: optuna.Trial, arm: str) -> Outcome:
        if not died:
            died.append(trial._trial_id)
            raise scheduler.WorkerDied("worker died: node lost")
        study.tell(trial, 0.5)
        return Outcome(trial._trial_id, TrialState.COMPLETE, 0.5)

    backend = InlineBackend(_worker(study, events, once_dead))
    tracker = _run(storage, study, backend, gated=True, concurrency=2)
    dead = storage.get_trial(died[0])
    assert dead.state == TrialState.FAIL and read_error(dead) == "worker died: node lost"
    complete = [read_cell(t) for t in study.trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted((arm, seed) for arm in ("W on", "W off") for seed in (0, 1))
    assert [o.state for o in tracker.outcomes].count(TrialState.FAIL) == 1


def test_a_slot_whose_worker_is_still_warming_up_takes_no_cell_until_it_is_done(
    sqlite_url: str,
) -> None:
    storage, study = _study(sqlite_url)
    backend = InlineBackend(_worker(study, []))
    run = scheduler.Scheduler(
        storage,
        study,
        backend,
        baseline=PLAN.baseline,
        gated=False,
        max_concurrent=2,
        heartbeat_interval=1,
        warming=["warm-up"],
    )
    run.fill()
    assert len(backend.submitted) == 1  # the other slot is importing the training stack
    assert storage.get_trial(backend.submitted[0]).state == TrialState.RUNNING
    assert [t.state for t in study.trials].count(TrialState.WAITING) == 3  # none claimed for it
    run.collect(["warm-up"])
    run.fill()
    assert len(backend.submitted) == 2 and run.warming == []


def test_a_study_with_warming_workers_runs_every_cell_once(sqlite_url: str) -> None:
    storage, study = _study(sqlite_url)
    events: list = []
    tracker = scheduler.Scheduler(
        storage,
        study,
        InlineBackend(_worker(study, events)),
        baseline=PLAN.baseline,
        gated=True,
        max_concurrent=2,
        heartbeat_interval=1,
        poll_seconds=0.01,
        warming=["first", "second"],
    ).run()
    assert sorted(cell for _, cell in events) == sorted(
        (arm, seed) for arm in ("W on", "W off") for seed in range(SEEDS)
    )
    assert [o.state for o in tracker.outcomes] == [TrialState.COMPLETE] * 4


def _side(log: list, error: str | None = None) -> scheduler.SideTask:
    """A side task that logs when it starts and when its result is read."""

    def submit() -> str:
        log.append("started")
        return "side"

    def read(handle: str) -> str | None:
        log.append("read")
        return error

    return scheduler.SideTask("reference row", submit, read)


def _with_side_task(
    study: optuna.Study,
    storage: object,
    events: list,
    side: scheduler.SideTask,
    gated: bool,
    max_concurrent: int,
) -> scheduler.Scheduler:
    """A fast-polling scheduler of ``study`` with one side task."""
    return scheduler.Scheduler(
        storage,
        study,
        InlineBackend(_worker(study, events)),
        baseline=PLAN.baseline,
        gated=gated,
        max_concurrent=max_concurrent,
        heartbeat_interval=1,
        poll_seconds=0.01,
        side_tasks=[side],
    )


def test_a_side_task_runs_once_in_a_slot_no_cell_can_use(sqlite_url: str) -> None:
    storage, study = _study(sqlite_url)
    log: list = []
    run = _with_side_task(study, storage, [], _side(log), gated=True, max_concurrent=3)
    run.fill()  # both baselines start; the other cells wait for them, so the third slot is idle
    assert len(run.backend.submitted) == 2 and log == ["started"] and run.busy() == 3
    tracker = run.run()
    assert log == ["started", "read"] and tracker.side_errors == []
    assert [o.state for o in tracker.outcomes] == [TrialState.COMPLETE] * 4


def test_a_side_task_waits_for_a_free_slot_and_its_error_is_kept(sqlite_url: str) -> None:
    storage, study = _study(sqlite_url)
    log: list = []
    events: list = []
    side = _side(log, "RuntimeError: no such backbone")
    tracker = _with_side_task(study, storage, events, side, gated=False, max_concurrent=1).run()
    assert len(events) == 4 and log == ["started", "read"]  # after the last cell: one slot
    assert tracker.side_errors == ["reference row: RuntimeError: no such backbone"]
    assert {t.state for t in study.trials} == {TrialState.COMPLETE}
