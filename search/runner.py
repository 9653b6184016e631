"""Ray runs the cells: one Ray task runs one Optuna trial of the shared study.

The driver allocates cells: it takes the next queued (WAITING) trial itself and hands its id to a
Ray task, so two workers can never take the same cell, on PostgreSQL or SQLite alike (Optuna's own
popping raced on SQLite). The task opens the storage, runs the trial function with a ``report``
callback bridged to ``trial.report``/``trial.should_prune`` (``optuna.TrialPruned`` stops the trial),
and tells the result, so params, every intermediate value, PRUNED states and scores land natively in
the study. A worker that dies is noticed by Ray; its trial is failed and re-queued with the same
params through the storage's retry callback. Trials of a launcher that died are failed by the
heartbeat once their grace period passes, and re-queued the same way.
"""

from __future__ import annotations

import contextlib
import copy
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
import ray
from optuna.trial import TrialState

from objectives.config import TrialConfig, from_dict, to_dict
from search import space
from search.plans import Plan
from storage import StorageSettings, fail_stale_trials, open_storage, write_evidence


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to run any cell of the study (picklable, sent with each task)."""

    study_name: str
    storage_url: str
    settings: StorageSettings
    plan: Plan
    configs: dict[str, dict[str, Any]]
    pruning: space.Pruning = field(default_factory=space.Pruning)


@dataclass(frozen=True)
class Outcome:
    """What a task reports back to the driver (the study holds the full record)."""

    trial_id: int
    state: str
    value: float | None = None
    node: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class Resources:
    """Per-trial Ray resources and how many trials may run at once."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 1


class Interrupted(KeyboardInterrupt):
    """Ctrl-C reached the driver; running trials were failed and will re-run on relaunch."""


def job_configs(configs: dict[str, TrialConfig], cpus_per_trial: float) -> dict[str, dict]:
    """Arm configs as plain data; a config without ``threads`` gets the CPUs Ray reserves for it."""
    threads = max(1, int(cpus_per_trial))
    return {
        label: to_dict(config if config.threads else _with_threads(config, threads))
        for label, config in configs.items()
    }


def _with_threads(config: TrialConfig, threads: int) -> TrialConfig:
    return replace(config, threads=threads)


# ---------------------------------------------------------------- worker side


_STORAGES: dict[tuple[str, StorageSettings], optuna.storages.RDBStorage] = {}


def _storage(job: Job) -> optuna.storages.RDBStorage:
    """One storage (connection pool) per worker process, reused by the trials it runs."""
    key = (job.storage_url, job.settings)
    if key not in _STORAGES:
        _STORAGES[key] = open_storage(job.storage_url, job.settings)
    return _STORAGES[key]


def _quiet_libraries() -> None:
    """Silence library progress bars and a deprecation notice in workers.

    The driver's bar shows progress; Ray forwards every worker line into the launcher's terminal,
    where per-task dataset bars and "Loading weights" bars from each trial would bury it.
    """
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    warnings.filterwarnings(
        "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
    )


def run_cell(job: Job, trial_id: int) -> Outcome:
    """Run the queued trial ``trial_id`` to COMPLETE, PRUNED or FAIL (never raises for the trial)."""
    # Imported here, in the worker: the launcher itself never loads the training stack.
    from objectives.trial import run_trial

    _quiet_libraries()
    storage = _storage(job)
    study = space.load(storage, job.study_name, job.pruning)
    study.get_trials(deepcopy=False)  # sync Optuna's trial cache, which must know the trial
    trial = optuna.Trial(study, trial_id)
    node = _node_id()
    with _Heartbeat(storage, trial_id, job.settings.heartbeat_interval):
        trial.set_user_attr("node", node)
        try:
            arm, seed = space.suggest_cell(trial, [a.label for a in job.plan.arms], job.plan.seeds)
            tuned = space.suggest_tunables(trial, job.plan)
            config = space.with_seed(from_dict(TrialConfig, job.configs[arm]), seed, tuned)
            result = run_trial(config, _reporter(trial), progress=False)
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=TrialState.PRUNED)
            return Outcome(trial_id, "PRUNED", frozen.value, node)
        except Exception as exc:  # the trial failed, the service did not: record and go on
            error = one_line(exc)
            trial.set_user_attr("error", error)
            study.tell(trial, state=TrialState.FAIL)
            return Outcome(trial_id, "FAIL", None, node, error)
        for key, value in result.user_attrs().items():
            trial.set_user_attr(key, value)
        write_evidence(storage, trial_id, result.evidence)
        study.tell(trial, result.average)
        return Outcome(trial_id, "COMPLETE", result.average, node)


def _reporter(trial: optuna.Trial) -> Callable[[int, float], None]:
    def report(step: int, score: float) -> None:
        trial.report(score, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} (score {score:.4f})")

    return report


def _node_id() -> str:
    if ray.is_initialized():  # asking outside Ray would start a Ray instance
        return ray.get_runtime_context().get_node_id()
    return f"local-{os.getpid()}"


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` -- what the ``error`` user attr and the logs show."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].strip()}" if lines else type(exc).__name__


class _Heartbeat:
    """Beat for one trial while it runs, so a dead worker's trial is noticed and retried."""

    def __init__(self, storage: optuna.storages.RDBStorage, trial_id: int, interval: int):
        self._storage, self._trial_id, self._interval = storage, trial_id, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while True:
            # A storage hiccup must not kill the trial; the next beat retries.
            with contextlib.suppress(Exception):
                self._storage.record_heartbeat(self._trial_id)
            if self._stop.wait(self._interval):
                return


# ---------------------------------------------------------------- driver side


@dataclass
class Tracker:
    """The driver's view of the trials it launched; ``on_change`` refreshes the progress display."""

    in_flight: dict[Any, int] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)


def run_study(
    storage: optuna.storages.RDBStorage,
    study: optuna.Study,
    job: Job,
    resources: Resources,
    on_change: Callable[[Tracker], None] = lambda _: None,
    poll_seconds: float = 1.0,
) -> Tracker:
    """Run every queued trial of ``study`` on Ray until none is queued or running.

    Trials RUNNING elsewhere (another launcher, or one that died) are waited for; a dead one is
    failed by the heartbeat after the grace period, re-queued, and run here.
    """
    study_id = storage.get_study_id_from_name(study.study_name)
    remote = ray.remote(max_retries=0)(run_cell).options(
        num_cpus=resources.cpus_per_trial, num_gpus=resources.gpus_per_trial
    )
    tracker = Tracker()
    last_beat = 0.0
    try:
        fail_stale_trials(study)
        while True:
            while len(tracker.in_flight) < resources.max_concurrent:
                trial_id = pop_waiting(storage, study_id)
                if trial_id is None:
                    break
                storage.record_heartbeat(trial_id)
                tracker.in_flight[remote.remote(job, trial_id)] = trial_id
                on_change(tracker)
            if not tracker.in_flight:
                fail_stale_trials(study)
                if _count(study, TrialState.WAITING):
                    continue
                if not _count(study, TrialState.RUNNING):
                    break
                on_change(tracker)
                time.sleep(min(job.settings.heartbeat_interval, 5 * poll_seconds))
                continue
            if time.monotonic() - last_beat > job.settings.heartbeat_interval:
                for trial_id in tracker.in_flight.values():  # queued tasks have not started beating
                    storage.record_heartbeat(trial_id)
                last_beat = time.monotonic()
            ready, _ = ray.wait(list(tracker.in_flight), num_returns=1, timeout=poll_seconds)
            for ref in ready:
                trial_id = tracker.in_flight.pop(ref)
                try:
                    tracker.outcomes.append(ray.get(ref))
                except ray.exceptions.RayTaskError as exc:  # the task itself raised: no retry
                    reason = one_line(exc.cause or exc)
                    fail_trial(storage, trial_id, reason)
                    tracker.outcomes.append(Outcome(trial_id, "FAIL", error=reason))
                except ray.exceptions.RayError as exc:  # worker or node died: retry the cell
                    reason = f"worker died: {one_line(exc)}"
                    fail_and_retry(storage, study, trial_id, reason)
                    tracker.outcomes.append(Outcome(trial_id, "FAIL", error=reason))
            on_change(tracker)
        fail_stale_trials(study)
    except KeyboardInterrupt:
        for ref, trial_id in tracker.in_flight.items():
            ray.cancel(ref, force=True)
            fail_trial(storage, trial_id, "interrupted (Ctrl-C); relaunch the study to run it")
        raise Interrupted() from None
    return tracker


def pop_waiting(storage: optuna.storages.BaseStorage, study_id: int) -> int | None:
    """Take the oldest queued trial (WAITING -> RUNNING) for this driver; ``None`` when none."""
    for trial in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                return trial._trial_id
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def fail_trial(storage: optuna.storages.BaseStorage, trial_id: int, reason: str) -> bool:
    """Mark a RUNNING trial FAIL with an ``error``; False if it had finished meanwhile."""
    try:
        storage.set_trial_user_attr(trial_id, "error", reason)
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
        frozen = copy.deepcopy(storage.get_trial(trial_id))
        frozen.user_attrs.pop("error", None)  # the retry starts clean
        retry(study, frozen)


def _count(study: optuna.Study, state: TrialState) -> int:
    return len(study.get_trials(deepcopy=False, states=(state,)))
