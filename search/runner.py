"""The worker side: one Ray task runs one Optuna trial (a cell) of the shared study.

The scheduler (``search.scheduler``) claims a queued trial and hands its id here. The task opens the
storage, runs the trial function with a ``report`` callback bridged to ``trial.report`` /
``trial.should_prune`` (``optuna.TrialPruned`` stops the trial), beats for the trial while it runs,
and tells the result, so params, every intermediate value, PRUNED states and scores land natively in
the study. The bridge is where pruning is kept from biasing the table: the baseline is never
pruned, nor is any trial at step 0 (before training) or at its last step (training is paid for).
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import ray
from optuna.trial import TrialState

from objectives.config import TrialConfig, from_dict, to_dict
from objectives.errors import AblationError, one_line
from objectives.mteb_results import cell_revision, write_results
from search import space
from search.plans import Plan
from search.pruners import same_seed_reference
from storage import StorageSettings, open_storage
from storage.study_records import (
    WorkerTime,
    suggest_cell,
    write_dev_curve,
    write_error,
    write_evidence,
    write_model_dir,
    write_node,
    write_pruned,
    write_reference,
    write_result,
    write_result_files,
    write_worker_time,
)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to run any cell of the study (picklable, sent with each task)."""

    study_name: str
    storage_url: str
    settings: StorageSettings
    plan: Plan
    configs: dict[str, dict[str, Any]]
    pruning: space.Pruning = field(default_factory=space.Pruning)
    # Where each COMPLETE cell's MTEB-format results (and, with save_models, its model) go; an
    # absolute path every worker can write (shared storage on a cluster); None writes nothing.
    results_dir: str | None = None
    save_models: bool = False


@dataclass(frozen=True)
class Outcome:
    """What a task reports back to the driver (the study holds the full record)."""

    trial_id: int
    state: TrialState
    value: float | None = None
    node: str | None = None
    error: str | None = None
    stops_study: bool = False


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


def warm_up(job: Job) -> int:
    """Pay, in this worker process, what its first cell would: the training and evaluation stack's
    imports (mteb loads sentence-transformers only at its first evaluation) and the study's storage
    connection; returns the process id (see ``search.scheduler.warm_workers``)."""
    import sentence_transformers  # noqa: F401

    import objectives.trial  # noqa: F401

    _quiet_libraries()
    _storage(job)
    return os.getpid()


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
        write_node(trial, node)
        try:
            arm, seed = suggest_cell(trial, [a.label for a in job.plan.arms], job.plan.seeds)
            tuned = space.suggest_tunables(trial, job.plan)
            config = space.with_seed(from_dict(TrialConfig, job.configs[arm]), seed, tuned)
            rules = Bridge(arm == job.plan.baseline, config.train.steps, job.plan.metrics)
            save_to = _model_dir(job, arm, seed) if job.save_models else None
            clock = _Clock()
            reporter = _reporter(trial, rules, seed)
            result = run_trial(config, reporter, progress=False, save_to=save_to)
            clock.record(trial)
            value = job.plan.objective_value(result.task_scores, result.category_scores)
            if math.isnan(value):  # Optuna would fail the trial silently
                raise UndefinedObjective(_nan_tasks(result.task_scores))
        except optuna.TrialPruned:
            clock.record(trial)
            frozen = study.tell(trial, state=TrialState.PRUNED)
            return Outcome(trial_id, TrialState.PRUNED, frozen.value, node)
        except Exception as exc:  # the trial failed, the service did not: record and go on
            error = one_line(exc, typed=True)
            write_error(trial, error)
            study.tell(trial, state=TrialState.FAIL)
            return Outcome(trial_id, TrialState.FAIL, None, node, error, stops_study(exc))
        write_result(trial, result)
        write_evidence(storage, trial_id, result.evidence)
        if job.results_dir:
            files = write_results(
                job.results_dir, result.task_results, study=job.study_name, arm=arm, seed=seed
            )
            write_result_files(trial, files)
        if save_to is not None:
            write_model_dir(trial, save_to)
        study.tell(trial, value)
        return Outcome(trial_id, TrialState.COMPLETE, value, node)


def run_reference(job: Job) -> str | None:
    """Score the study's reference row (the untrained backbone with mean pooling on the arms'
    texts, ``objectives.reference``) and store it with the study; the error line if that failed
    (never raises: a missing reference row must not fail the study)."""
    from objectives.reference import score_reference

    _quiet_libraries()
    try:
        study = optuna.load_study(study_name=job.study_name, storage=_storage(job))
        result = score_reference(from_dict(TrialConfig, job.configs[job.plan.baseline]))
        objective = job.plan.objective_value(result.task_scores, result.category_scores)
        write_reference(study, replace(result, objective=objective))
    except Exception as exc:  # reported by the launcher; the trials are unaffected
        return one_line(exc, typed=True)
    return None


class _Clock:
    """Wall and CPU seconds of one trial function call in this worker process."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def record(self, trial: optuna.Trial) -> None:
        spent = WorkerTime(time.perf_counter() - self.wall, time.process_time() - self.cpu)
        write_worker_time(trial, spent)


class UndefinedObjective(ValueError):
    """The trial was scored, but its objective is NaN, which a study cannot store as a value."""


def _nan_tasks(task_scores: dict[str, float]) -> str:
    tasks = ", ".join(sorted(t for t, score in task_scores.items() if math.isnan(score)))
    return (
        f"the objective is NaN ({tasks or 'a category mean'} scored NaN): constant embeddings, "
        "the model collapsed; lower train.lr"
    )


@dataclass(frozen=True)
class Bridge:
    """What the report bridge of one trial needs to know about its cell."""

    baseline: bool  # the cell is the plan's baseline arm: the reference, never pruned
    steps: int  # the trial's last training step: a report there is never pruned
    metrics: tuple[str, ...]  # the categories the objective averages (the composite's)


def may_prune(rules: Bridge, step: int) -> bool:
    """Pruning may act only during training, and never on the baseline."""
    return not rules.baseline and 0 < step < rules.steps


def _reporter(
    trial: optuna.Trial, rules: Bridge, seed: int
) -> Callable[[int, dict[str, float]], None]:
    """``report(step, proxies)``: store each proxy and their composite, then maybe prune against
    the finished trials of the cell's ``seed``."""
    from objectives.dev_signal import composite  # worker side only: it loads the eval stack

    curves: dict[str, dict[int, float]] = {}

    def report(step: int, proxies: dict[str, float]) -> None:
        value = composite(proxies, rules.metrics)
        trial.report(value, step)
        for category, proxy in proxies.items():
            curves.setdefault(category, {})[step] = proxy
            write_dev_curve(trial, category, curves[category])
        if not may_prune(rules, step) or not trial.should_prune():
            return
        reference = same_seed_reference(trial.study, seed, step)
        write_pruned(trial, step, None if reference is None else value - reference)
        raise optuna.TrialPruned(f"pruned at step {step} (dev composite {value:.4f})")

    return report


def _model_dir(job: Job, arm: str, seed: int) -> Path:
    """``<results dir>/models/<study>/<arm>.seed<N>``: one saved model per cell."""
    return Path(job.results_dir or "results") / "models" / job.study_name / cell_revision(arm, seed)


def stops_study(exc: BaseException) -> bool:
    """A trial error that every cell of the study would hit: the scheduler stops the study."""
    return isinstance(exc, AblationError) and exc.stops_study


def _node_id() -> str:
    if ray.is_initialized():  # asking outside Ray would start a Ray instance
        return ray.get_runtime_context().get_node_id()
    return f"local-{os.getpid()}"


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
