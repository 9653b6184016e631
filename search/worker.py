"""The worker side: one Ray task runs one Optuna trial (a cell) of the shared study.

The scheduler (``search.scheduler``) claims a queued trial and hands its id here. The task opens the
storage, runs the trial function with a ``report`` callback (``search.report_bridge``), beats for
the trial while it runs (``search.worker_health``), and tells the result, so params, every
intermediate value, PRUNED states and scores land natively in the study.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from objectives.config.trial_config import TrialConfig, from_dict, to_dict
from objectives.errors import AblationError, one_line
from objectives.evaluation.mteb_results import cell_revision, write_results
from search.plans import Plan
from search.pruners import Pruning
from search.report_bridge import ReportRules, reporter
from search.study import load, suggest_tunables, with_seed
from search.worker_health import Heartbeat, WorkerClock, node_id
from storage import StorageSettings, open_storage
from storage.study_records import (
    suggest_cell,
    write_error,
    write_evidence,
    write_model_dir,
    write_node,
    write_reference,
    write_result,
    write_result_files,
)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to run any cell of the study (picklable, sent with each task)."""

    study_name: str
    storage_url: str
    storage_settings: StorageSettings
    plan: Plan
    configs: dict[str, dict[str, Any]]
    pruning: Pruning = field(default_factory=Pruning)
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


_STORAGES: dict[tuple[str, StorageSettings], optuna.storages.RDBStorage] = {}


def _storage(job: Job) -> optuna.storages.RDBStorage:
    """One storage (connection pool) per worker process, reused by the trials it runs."""
    key = (job.storage_url, job.storage_settings)
    if key not in _STORAGES:
        _STORAGES[key] = open_storage(job.storage_url, job.storage_settings)
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

    import objectives.trial.run  # noqa: F401

    _quiet_libraries()
    _storage(job)
    return os.getpid()


def run_cell(job: Job, trial_id: int) -> Outcome:
    """Run the queued trial ``trial_id`` to COMPLETE, PRUNED or FAIL (never raises for the trial)."""
    # Imported here, in the worker: the launcher itself never loads the training stack.
    from objectives.trial.run import run_trial

    _quiet_libraries()
    storage = _storage(job)
    study = load(storage, job.study_name, job.pruning)
    study.get_trials(deepcopy=False)  # sync Optuna's trial cache, which must know the trial
    trial = optuna.Trial(study, trial_id)
    node = node_id()
    with Heartbeat(storage, trial_id, job.storage_settings.heartbeat_interval):
        write_node(trial, node)
        try:
            arm, seed = suggest_cell(trial, [a.label for a in job.plan.arms], job.plan.seeds)
            tuned = suggest_tunables(trial, job.plan)
            config = with_seed(from_dict(TrialConfig, job.configs[arm]), seed, tuned)
            rules = ReportRules(arm == job.plan.baseline, config.train.steps, job.plan.metrics)
            save_to = _model_dir(job, arm, seed) if job.save_models else None
            clock = WorkerClock()
            report = reporter(trial, rules, seed)
            result = run_trial(config, report, progress=False, save_to=save_to)
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
    texts, ``objectives.evaluation.reference``) and store it with the study; the error line if that failed
    (never raises: a missing reference row must not fail the study)."""
    from objectives.evaluation.reference import score_reference

    _quiet_libraries()
    try:
        study = optuna.load_study(study_name=job.study_name, storage=_storage(job))
        result = score_reference(from_dict(TrialConfig, job.configs[job.plan.baseline]))
        objective = job.plan.objective_value(result.task_scores, result.category_scores)
        write_reference(study, replace(result, objective=objective))
    except Exception as exc:  # reported by the launcher; the trials are unaffected
        return one_line(exc, typed=True)
    return None


class UndefinedObjective(ValueError):
    """The trial was scored, but its objective is NaN, which a study cannot store as a value."""


def _nan_tasks(task_scores: dict[str, float]) -> str:
    tasks = ", ".join(sorted(t for t, score in task_scores.items() if math.isnan(score)))
    return (
        f"the objective is NaN ({tasks or 'a category mean'} scored NaN): constant embeddings, "
        "the model collapsed; lower train.lr"
    )


def _model_dir(job: Job, arm: str, seed: int) -> Path:
    """``<results dir>/models/<study>/<arm>.seed<N>``: one saved model per cell."""
    return Path(job.results_dir or "results") / "models" / job.study_name / cell_revision(arm, seed)


def stops_study(exc: BaseException) -> bool:
    """A trial error that every cell of the study would hit: the scheduler stops the study."""
    return isinstance(exc, AblationError) and exc.stops_study
