"""The scheduler: which queued cell runs next, on Ray, and what happens when one ends or dies.

The driver allocates cells: it claims a queued (WAITING) trial itself (the compare-and-set Optuna's
``ask`` uses) and hands its id to a worker (``search.worker.run_cell``), so two workers can never
take the same cell, on PostgreSQL or SQLite alike. The order gives the pruner its reference early,
whatever the concurrency and however many launchers share the study: every seed's baseline is
dispatched before any other cell, and a non-baseline cell only once its seed's baseline is no
longer queued or running (while pruning is on; a slot with no such cell waits, because a trial
started without a reference could never be pruned). A worker that dies is noticed by Ray; its
trial is failed and re-queued with the same params through the storage's retry callback. Trials of
a launcher that died are failed by the heartbeat once their grace period passes and re-queued the
same way. A trial error that every cell would hit (``search.worker.stops_study``) stops the study.

A worker's first trial would pay for importing the training stack (seconds on a CPU box;
``benchmarks/orchestration.py`` prints the service's overhead). ``warm_workers`` starts,
as soon as Ray is up, one warm-up task per slot shaped like a cell (``search.worker.warm_up``); Ray
hands a task an idle worker process of the same job when it has one, so the cells then run in those
warmed processes. A warm-up holds its slot as a cell would: no trial is claimed for that slot until
it is done, so the imports land in no trial's time (they overlap the other slots' warm-ups instead).

Each pass of the loop is a named step of ``Scheduler`` (``fill``, ``beat``, ``collect``,
``wait_for_others``) over a ``Backend``, so the rules are tested without Ray.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
import ray
from optuna.trial import FrozenTrial, TrialState

from objectives.errors import one_line
from search.study import PENDING
from search.worker import Job, Outcome, run_cell, run_reference, warm_up
from storage import fail_stale_trials
from storage.study_records import Cell, StoredTrial, read_cell, without_error, write_error

_NO_CELL = Cell("", None)  # a trial without an arm (never queued by the service): not a baseline


@dataclass(frozen=True)
class Resources:
    """Per-trial Ray resources and how many trials may run at once."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C reached the driver; running trials were failed and will re-run on relaunch."""


class TaskRaised(Exception):
    """The worker task itself raised (not the trial): the trial fails, no retry."""


class WorkerDied(Exception):
    """The worker process or its node died: the trial fails and its cell is re-queued."""


class Backend(Protocol):
    """Where cells run: ``submit`` a claimed trial, ``wait`` for some, read a ``result``."""

    def submit(self, trial_id: int) -> Any: ...

    def wait(self, handles: list[Any], timeout: float) -> list[Any]: ...

    def result(self, handle: Any) -> Outcome: ...

    def cancel(self, handle: Any) -> None: ...


class RayBackend:
    """Each cell is one Ray task (``num_cpus``/``num_gpus`` from ``Resources``), never retried by
    Ray: the scheduler decides about retries."""

    def __init__(self, job: Job, resources: Resources) -> None:
        self._job = job
        self._remote = ray.remote(max_retries=0)(run_cell).options(
            num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial
        )

    def submit(self, trial_id: int) -> Any:
        return self._remote.remote(self._job, trial_id)

    def wait(self, handles: list[Any], timeout: float) -> list[Any]:
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        return ready

    def result(self, handle: Any) -> Outcome:
        try:
            return ray.get(handle)
        except ray.exceptions.RayTaskError as exc:
            raise TaskRaised(one_line(exc.cause or exc, typed=True)) from None
        except ray.exceptions.RayError as exc:
            raise WorkerDied(f"worker died: {one_line(exc, typed=True)}") from None

    def cancel(self, handle: Any) -> None:
        ray.cancel(handle, force=True)


def warm_workers(job: Job, resources: Resources) -> list[Any]:
    """Start one warm-up task per slot, with the cells' CPUs and GPUs (so Ray's worker pool has
    that many warmed processes to hand the cells); pass the handles to ``run_study``."""
    remote = ray.remote(max_retries=0)(warm_up).options(
        num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial
    )
    return [remote.remote(job) for _ in range(resources.max_concurrent)]


@dataclass(frozen=True)
class SideTask:
    """Work of the study that is not a cell (its reference row), run once in a slot that no cell
    can use at that moment: one a seed's baseline keeps its other cells out of, or the first
    slot free after the last cell has started."""

    name: str
    submit: Callable[[], Any]  # starts the task, returns its handle
    read: Callable[[Any], str | None]  # the finished handle's error line, None on success


def reference_task(job: Job, resources: Resources) -> SideTask:
    """The study's reference row (``search.worker.run_reference``) as a Ray task shaped like a cell."""
    remote = ray.remote(max_retries=0)(run_reference).options(
        num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial
    )

    def read(handle: Any) -> str | None:
        try:
            return ray.get(handle)
        except ray.exceptions.RayError as exc:
            return one_line(exc, typed=True)

    return SideTask("reference row", lambda: remote.remote(job), read)


@dataclass
class Tracker:
    """The driver's view of the trials it launched; ``stopped`` is why the study was stopped;
    ``side_errors`` why a side task (``SideTask``) failed."""

    in_flight: dict[Any, int] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    stopped: str | None = None
    side_errors: list[str] = field(default_factory=list)


def dispatchable(trials: Sequence[FrozenTrial], baseline: str, gated: bool) -> list[int]:
    """Ids of the queued trials that may start now, in order: baselines first (oldest first), then
    other cells, each only when ``gated`` is off or its seed's baseline is not queued or running."""
    waiting = sorted((t for t in trials if t.state == TrialState.WAITING), key=lambda t: t.number)
    cells = {t.number: read_cell(t) or _NO_CELL for t in trials}
    pending = {
        cells[t.number].seed
        for t in trials
        if t.state in PENDING and cells[t.number].arm == baseline
    }
    first = [t for t in waiting if cells[t.number].arm == baseline]
    rest = [
        t
        for t in waiting
        if cells[t.number].arm != baseline and not (gated and cells[t.number].seed in pending)
    ]
    return [t._trial_id for t in first + rest]


def claim(storage: optuna.storages.BaseStorage, trial_ids: Sequence[int]) -> int | None:
    """Take the first of ``trial_ids`` still queued (WAITING -> RUNNING); ``None`` when none is."""
    for trial_id in trial_ids:
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def fail_trial(storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> bool:
    """Mark a RUNNING trial FAIL with an ``error``; False if it had finished meanwhile."""
    try:
        write_error(StoredTrial(storage, trial_id), reason)
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return True


def fail_and_retry(
    storage: optuna.storages.RDBStorage, study: optuna.Study, trial_id: int, reason: str
) -> None:
    """Fail a dead worker's trial and re-queue its cell with the storage's retry callback."""
    if not fail_trial(storage, trial_id, reason):
        return
    retry = storage.get_heartbeat_stale_trial_callback()
    if retry is not None:
        retry(study, without_error(storage.get_trial(trial_id)))  # the retry starts clean


class Scheduler:
    """Runs every queued trial of one study on a ``Backend`` until none is queued or running.

    Trials RUNNING elsewhere (another launcher, or one that died) are waited for; a dead one is
    failed by the heartbeat after the grace period, re-queued, and run here.
    """

    def __init__(
        self,
        storage: optuna.storages.RDBStorage,
        study: optuna.Study,
        backend: Backend,
        *,
        baseline: str,
        gated: bool,
        max_concurrent: int,
        heartbeat_interval: float,
        poll_seconds: float = 1.0,
        on_change: Callable[[Tracker], None] = lambda _: None,
        warming: Sequence[Any] = (),
        side_tasks: Sequence[SideTask] = (),
    ) -> None:
        self.storage, self.study, self.backend = storage, study, backend
        self.warming = list(warming)  # warm-up handles (``warm_workers``): each holds a slot
        self.side_tasks = list(side_tasks)  # not started yet
        self.sides: dict[Any, SideTask] = {}  # started, by handle: each holds a slot
        self.study_id = storage.get_study_id_from_name(study.study_name)
        self.baseline, self.gated, self.max_concurrent = baseline, gated, max_concurrent
        self.heartbeat_interval, self.poll_seconds = heartbeat_interval, poll_seconds
        self.on_change = on_change
        self.tracker = Tracker()
        self._last_beat = 0.0

    def run(self) -> Tracker:
        """Loop over ``step`` until the study has nothing left for this driver."""
        try:
            fail_stale_trials(self.study)
            while self.step():
                pass
            fail_stale_trials(self.study)
        except KeyboardInterrupt:
            self.interrupt()
            raise Interrupted() from None
        return self.tracker

    def step(self) -> bool:
        """One pass: start what may start, then collect one finished cell or warm-up; False when
        done."""
        self.fill()
        if not self.tracker.in_flight and not self.warming and not self.sides:
            return self.wait_for_others()
        self.beat()
        running = [*self.warming, *self.tracker.in_flight, *self.sides]
        self.collect(self.backend.wait(running, self.poll_seconds))
        self.on_change(self.tracker)
        return True

    def fill(self) -> None:
        """Claim and submit dispatchable cells while slots are free of cells, warm-ups and side
        tasks; a free slot that no cell can take starts a side task (none once stopped)."""
        while self.busy() < self.max_concurrent and not self.tracker.stopped:
            trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
            trial_id = claim(self.storage, dispatchable(trials, self.baseline, self.gated))
            if trial_id is None:
                if not self.side_tasks:
                    return
                task = self.side_tasks.pop(0)
                self.sides[task.submit()] = task
                continue
            self.storage.record_heartbeat(trial_id)
            self.tracker.in_flight[self.backend.submit(trial_id)] = trial_id
            self.on_change(self.tracker)

    def busy(self) -> int:
        """Slots taken: cells in flight, warm-ups still importing and side tasks."""
        return len(self.tracker.in_flight) + len(self.warming) + len(self.sides)

    def beat(self) -> None:
        """Heartbeats for submitted trials: a task queued behind others has not started beating."""
        if time.monotonic() - self._last_beat > self.heartbeat_interval:
            for trial_id in self.tracker.in_flight.values():
                self.storage.record_heartbeat(trial_id)
            self._last_beat = time.monotonic()

    def collect(self, ready: list[Any]) -> None:
        """Record finished cells; fail a task that raised, fail and re-queue a dead worker's. A
        finished warm-up frees its slot; its result is not read: a worker that cannot import the
        stack fails its first cell, which says why."""
        for handle in ready:
            if handle in self.warming:
                self.warming.remove(handle)
                continue
            if handle in self.sides:
                task = self.sides.pop(handle)
                error = task.read(handle)
                if error:
                    self.tracker.side_errors.append(f"{task.name}: {error}")
                continue
            trial_id = self.tracker.in_flight.pop(handle)
            try:
                outcome = self.backend.result(handle)
            except TaskRaised as exc:
                fail_trial(self.storage, trial_id, str(exc))
                outcome = Outcome(trial_id, TrialState.FAIL, error=str(exc))
            except WorkerDied as exc:
                fail_and_retry(self.storage, self.study, trial_id, str(exc))
                outcome = Outcome(trial_id, TrialState.FAIL, error=str(exc))
            self.tracker.outcomes.append(outcome)
            if outcome.stops_study and not self.tracker.stopped:
                self.tracker.stopped = outcome.error

    def wait_for_others(self) -> bool:
        """Nothing in flight here: go on while cells are queued or running elsewhere."""
        fail_stale_trials(self.study)
        if self.tracker.stopped:
            return False
        trials = self.storage.get_all_trials(self.study_id, deepcopy=False)
        if dispatchable(trials, self.baseline, self.gated):
            return True
        if not any(t.state in PENDING for t in trials):
            return False
        self.on_change(self.tracker)
        time.sleep(min(self.heartbeat_interval, 5 * self.poll_seconds))
        return True

    def interrupt(self) -> None:
        """Ctrl-C: cancel this driver's tasks and fail their trials so a relaunch re-runs them."""
        for handle in [*self.warming, *self.sides]:
            self.backend.cancel(handle)
        for handle, trial_id in self.tracker.in_flight.items():
            self.backend.cancel(handle)
            fail_trial(self.storage, trial_id, "interrupted (Ctrl-C); relaunch the study to run it")


def run_study(
    storage: optuna.storages.RDBStorage,
    study: optuna.Study,
    job: Job,
    resources: Resources,
    on_change: Callable[[Tracker], None] = lambda _: None,
    poll_seconds: float = 1.0,
    warming: Sequence[Any] = (),
    side_tasks: Sequence[SideTask] = (),
) -> Tracker:
    """Run every queued trial of ``study`` on Ray (see ``Scheduler``); ``warming``: the handles
    ``warm_workers`` returned; ``side_tasks`` run in slots no cell can use."""
    return Scheduler(
        storage,
        study,
        RayBackend(job, resources),
        baseline=job.plan.baseline,
        gated=job.pruning.name != "none",
        max_concurrent=resources.max_concurrent,
        heartbeat_interval=job.storage_settings.heartbeat_interval,
        poll_seconds=poll_seconds,
        on_change=on_change,
        warming=warming,
        side_tasks=side_tasks,
    ).run()
