"""Shared pieces of the search-service tests: a lean smoke launch and reading a study back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.arms import Arms, Choices, resolve_arms
from search.plans import Plan, get_plan
from search.study import enqueue_missing, prepare_study
from search.worker import Outcome
from storage import open_storage
from storage.study_records import Cell, read_cell

# Smoke preset, one seed, a 4-task eval covering every category on 32 texts per task.
LEAN = [
    "--preset",
    "smoke",
    "--seeds",
    "1",
    "--set",
    "eval.max_texts=32",
    "--set",
    "eval.tasks=SICK-R,SciFactSubset,Banking77Classification,Banking77Intents",
]


def lean_args(tasks_dir: Path, storage: str, *extra: str) -> list[str]:
    return [*LEAN, "--tasks-dir", str(tasks_dir), "--storage", storage, *extra]


def trials(url: str, name: str) -> list[FrozenTrial]:
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=True)


def by_cell(found: list[FrozenTrial], state: TrialState) -> dict[Cell | None, list[FrozenTrial]]:
    """The trials in ``state`` by cell (``Cell`` equals its ``(arm, seed)`` tuple)."""
    cells: dict[Cell | None, list[FrozenTrial]] = defaultdict(list)
    for trial in found:
        if trial.state == state:
            cells[read_cell(trial)].append(trial)
    return dict(cells)


class InlineBackend:
    """A ``search.scheduler.Backend`` without Ray: a submitted cell runs when its result is read.

    ``cell(trial_id)`` plays the worker; it may raise ``TaskRaised``/``WorkerDied`` as Ray would.
    ``submitted`` records the order the scheduler dispatched trials in.
    """

    def __init__(self, cell: Callable[[int], Outcome]) -> None:
        self.cell = cell
        self.submitted: list[int] = []

    def submit(self, trial_id: int) -> int:
        self.submitted.append(trial_id)
        return trial_id

    def wait(self, handles: list[int], timeout: float) -> list[int]:
        return handles[:1]

    def result(self, handle: int) -> Outcome:
        return self.cell(handle)

    def cancel(self, handle: int) -> None:
        """Nothing runs in the background here."""


def queued_smoke_study(
    url: str, name: str = "s"
) -> tuple[optuna.storages.RDBStorage, optuna.Study, Plan, Arms]:
    """The layer-weights study on the smoke preset, prepared and queued as the launcher does."""
    plan = get_plan("layer-weights")
    settings = Choices(preset="smoke")
    arms = resolve_arms(plan, settings)
    storage = open_storage(url)
    study = prepare_study(storage, name, plan, arms, settings)
    enqueue_missing(study, plan, arms)
    return storage, study, plan, arms
