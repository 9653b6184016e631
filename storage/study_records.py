"""Study records: the one place that names and (de)serialises every study and trial attribute.

The search service writes a study (its plan, the cells' params, each trial's scores, costs, dev
curves, pruning and failure records) and the reports read it back, possibly years and versions
later, from SQLite or PostgreSQL. When each side spelled the keys itself they drifted (the test
fixtures stored ``seed`` as a categorical while the service stored an int, and the report's
importance plot broke on real studies only). So every key lives here, private, behind typed
writers and readers: writers take the live Optuna object (``optuna.Study``, ``optuna.Trial``, a
``FrozenTrial`` being built, or a ``StoredTrial`` handle on a trial id), readers take what Optuna
hands back (``optuna.Study``, ``FrozenTrial``) and return typed values. A record missing from an
older study reads as its empty default, never as a ``KeyError``.

Item-level evidence is a trial *system* attr (optuna-dashboard ships user attrs to browsers) with
its own codec in ``storage.evidence``, re-exported here. Retry lineage is Optuna's own record, read
through ``RetryFailedTrialCallback.retried_trial_number`` (docs/DESIGN.md, "Study records").
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypedDict

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial

from objectives.trial.results import COST_FIELDS, Costs, ReferenceResult, TrialResult
from storage.connect import RETRY_CALLBACK
from storage.evidence import read_evidence, write_evidence
from storage.evidence import system_attrs as evidence_system_attrs

__all__ = [
    "ArmRecord",
    "Cell",
    "PlanRecord",
    "Pruned",
    "RaceDesign",
    "SkippedArm",
    "StoredTrial",
    "StudyRecord",
    "UserAttrTarget",
    "WorkerTime",
    "cell_distributions",
    "cell_params",
    "enqueue_cell",
    "evidence_system_attrs",
    "read_cell",
    "read_data_hashes",
    "read_dev_curves",
    "read_dropped_overlap",
    "read_error",
    "read_evidence",
    "read_model_dir",
    "read_node",
    "read_pruned",
    "read_race_design",
    "read_reference",
    "read_result",
    "read_result_files",
    "read_study_record",
    "read_worker_time",
    "retried_from",
    "suggest_cell",
    "without_error",
    "write_data_hashes",
    "write_dev_curve",
    "write_error",
    "write_evidence",
    "write_model_dir",
    "write_node",
    "write_pruned",
    "write_race_design",
    "write_reference",
    "write_result",
    "write_result_files",
    "write_study_record",
    "write_worker_time",
]

# Study user attrs.
_PLAN = "plan"
_SKIPPED_ARMS = "skipped_arms"
_PRESET = "preset"
_BACKBONE = "backbone"
_BASE = "base"
_CONFIG_FINGERPRINT = "config_fingerprint"
_DATA_HASHES = "data_hashes"
_REFERENCE = "reference"  # the untrained backbone's scores (objectives.evaluation.reference)
_RACE = "race"  # the design of a run-until-decided study (dashboards.sequential)
# Trial params (the cell), and Optuna's system attr holding an enqueued trial's params.
_ARM = "arm"
_SEED = "seed"
_FIXED_PARAMS = "fixed_params"
# Trial user attrs of a finished trial (TrialResult).
_AVERAGE = "average"
_SCORE = "score."
_CATEGORY = "category."
_COST = "cost."
_PARAMS = "params."
_DATA = "data."
_CONFIG = "config"
_VERSIONS = "versions"
_PROVENANCE = "provenance"
_TASK_CATEGORY = "task_category"
_DROPPED_OVERLAP = "dropped_overlap"  # under data.: training pairs sharing an evaluated text
# Trial user attrs the service adds around a result.
_DEV = "dev."  # dev.<category>: {"<step>": proxy}
_PRUNED_STEP = "pruned_step"
_PRUNED_GAP = "pruned_gap"
_NODE = "node"
_ERROR = "error"
_RESULT_FILES = "results.files"
_MODEL_DIR = "model_dir"
_RUN_SECONDS = "worker.run_seconds"
_CPU_SECONDS = "worker.cpu_seconds"
# Optuna's own record of why study.optimize failed a trial (a system attr).
_OPTUNA_FAIL_REASON = "fail_reason"


class UserAttrTarget(Protocol):
    """Anything that takes user attrs: ``optuna.Study``, ``optuna.Trial``, ``FrozenTrial``,
    ``StoredTrial``."""

    def set_user_attr(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class StoredTrial:
    """A trial addressed by storage and id, for code that holds no ``optuna.Trial`` (the scheduler
    failing a dead worker's trial)."""

    storage: optuna.storages.BaseStorage
    trial_id: int

    def set_user_attr(self, key: str, value: Any) -> None:
        self.storage.set_trial_user_attr(self.trial_id, key, value)


# --- the study -----------------------------------------------------------------------------------


class ArmRecord(TypedDict):
    """One arm of a stored plan: its label and its config overrides (dotted path -> value)."""

    label: str
    overrides: dict[str, Any]


class PlanRecord(TypedDict, total=False):
    """The plan as stored (``search.plans.Plan.record()``); older studies may lack any key."""

    name: str
    description: str
    ablated: str
    action: str
    baseline: str
    base: str
    arms: list[ArmRecord]
    seeds: list[int]
    metrics: list[str]
    overrides: dict[str, Any]
    search: dict[str, Any]
    trials_per_cell: int
    objective: str | None
    objective_name: str


class SkippedArm(TypedDict):
    """An arm the plan names that cannot exist on the backbone, and why."""

    arm: str
    reason: str


@dataclass(frozen=True)
class StudyRecord:
    """Everything a study itself records; a study written before a field existed reads it empty."""

    plan: PlanRecord = field(default_factory=lambda: PlanRecord())
    skipped_arms: list[SkippedArm] = field(default_factory=list)
    preset: str | None = None
    backbone: str | None = None
    base: str | None = None
    config_fingerprint: str | None = None
    # ``objectives.trial.provenance.data_hashes`` of the data the study started with; None before.
    data_hashes: dict[str, str] | None = None


def write_study_record(study: optuna.Study, record: StudyRecord) -> None:
    """Store ``record`` on the study and name its objective after the plan's (``objective_name``),
    so optuna-dashboard labels the value it shows instead of ``Objective 0``."""
    study.set_user_attr(_PLAN, dict(record.plan))
    study.set_user_attr(_SKIPPED_ARMS, [dict(s) for s in record.skipped_arms])
    study.set_user_attr(_PRESET, record.preset)
    study.set_user_attr(_BACKBONE, record.backbone)
    study.set_user_attr(_BASE, record.base)
    study.set_user_attr(_CONFIG_FINGERPRINT, record.config_fingerprint)
    if record.data_hashes is not None:
        write_data_hashes(study, record.data_hashes)
    objective = record.plan.get("objective_name")
    if objective:
        with warnings.catch_warnings():  # experimental API (Optuna >= 3.2): its warning is noise
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([objective])


def read_study_record(study: optuna.Study) -> StudyRecord:
    """The study's record; missing attrs (an older or foreign study) read as the defaults."""
    attrs = study.user_attrs
    return StudyRecord(
        plan=PlanRecord(**(attrs.get(_PLAN) or {})),
        skipped_arms=[
            SkippedArm(
                arm=str(s.get("arm", "?")), reason=str(s.get("reason", "no reason recorded"))
            )
            for s in attrs.get(_SKIPPED_ARMS) or []
        ],
        preset=attrs.get(_PRESET),
        backbone=attrs.get(_BACKBONE),
        base=attrs.get(_BASE),
        config_fingerprint=attrs.get(_CONFIG_FINGERPRINT),
        data_hashes=read_data_hashes(study),
    )


def write_data_hashes(study: optuna.Study, hashes: Mapping[str, str]) -> None:
    """Store the data hashes (``task.<name>``/``train`` -> hash) the study's trials must share."""
    study.set_user_attr(_DATA_HASHES, dict(hashes))


def read_data_hashes(study: optuna.Study) -> dict[str, str] | None:
    """The stored data hashes; ``None`` for a study started before they were kept."""
    hashes = study.user_attrs.get(_DATA_HASHES)
    return None if hashes is None else {str(k): str(v) for k, v in hashes.items()}


def write_reference(study: optuna.Study, reference: ReferenceResult) -> None:
    """Store the study's reference row: the untrained backbone's scores on the arms' texts."""
    study.set_user_attr(
        _REFERENCE,
        {
            "label": reference.label,
            "task_scores": dict(reference.task_scores),
            "category_scores": dict(reference.category_scores),
            "objective": float(reference.objective),
            "config": dict(reference.config),
            "seconds": reference.seconds,
        },
    )


def read_reference(study: optuna.Study) -> ReferenceResult | None:
    """The study's reference row; ``None`` when not scored (yet, or a study from before it was)."""
    data = study.user_attrs.get(_REFERENCE)
    if not data:
        return None
    seconds = data.get("seconds")
    return ReferenceResult(
        label=str(data.get("label", "reference")),
        task_scores={str(k): float(v) for k, v in (data.get("task_scores") or {}).items()},
        category_scores={str(k): float(v) for k, v in (data.get("category_scores") or {}).items()},
        objective=float(data["objective"]),
        config=dict(data.get("config") or {}),
        seconds=None if seconds is None else float(seconds),
    )


@dataclass(frozen=True)
class RaceDesign:
    """How a ``--until-decided`` study races its arms (``dashboards.sequential``): at most
    ``max_seeds`` seeds per arm, the first ``plan_seeds`` for every arm, the alpha spent over the
    seed rounds by ``spending``, and an optional budget that stops starting new rounds."""

    max_seeds: int
    plan_seeds: int
    spending: str = "obrien-fleming"
    alpha: float = 0.05
    budget_trials: int | None = None
    budget_hours: float | None = None


def write_race_design(study: optuna.Study, design: RaceDesign) -> None:
    """Store the race design; the looks themselves are recomputed from the trials."""
    study.set_user_attr(_RACE, asdict(design))


def read_race_design(study: optuna.Study) -> RaceDesign | None:
    """The study's race design; ``None`` for a study launched without ``--until-decided``."""
    data = study.user_attrs.get(_RACE)
    if not data:
        return None
    trials, hours = data.get("budget_trials"), data.get("budget_hours")
    return RaceDesign(
        max_seeds=int(data["max_seeds"]),
        plan_seeds=int(data["plan_seeds"]),
        spending=str(data.get("spending", "obrien-fleming")),
        alpha=float(data.get("alpha", 0.05)),
        budget_trials=None if trials is None else int(trials),
        budget_hours=None if hours is None else float(hours),
    )


# --- the cell ------------------------------------------------------------------------------------


class Cell(NamedTuple):
    """An arm x seed cell; a tuple, so it compares and unpacks like ``(arm, seed)``."""

    arm: str
    seed: int | None


def cell_distributions(labels: Sequence[str], seeds: int) -> dict[str, BaseDistribution]:
    """The params' distributions of a cell: ``arm`` categorical over every plan label, ``seed`` an
    int (not categorical: Optuna refuses categorical choices that change, and a relaunch may add
    seeds). For trials built as ``FrozenTrial``; a worker records them with ``suggest_cell``."""
    return {
        _ARM: CategoricalDistribution(list(labels)),
        _SEED: IntDistribution(0, max(seeds - 1, 0)),
    }


def cell_params(cell: Cell) -> dict[str, Any]:
    """The params that record ``cell`` (for a trial built as ``FrozenTrial``)."""
    return {_ARM: cell.arm, _SEED: cell.seed}


def suggest_cell(trial: optuna.Trial, labels: Sequence[str], seeds: int) -> Cell:
    """Record the enqueued cell as params, with the distributions of ``cell_distributions``."""
    arm = trial.suggest_categorical(_ARM, list(labels))
    seed = trial.suggest_int(_SEED, 0, max(seeds - 1, 0))
    return Cell(str(arm), int(seed))


def enqueue_cell(study: optuna.Study, cell: Cell) -> None:
    """Queue one trial of ``cell``; the worker's ``suggest_cell`` then records it as params."""
    study.enqueue_trial(cell_params(cell))


def read_cell(trial: FrozenTrial) -> Cell | None:
    """A trial's cell: from its params, else (still queued) its enqueued params; ``None`` without
    an arm. The seed falls back to the stored config's for trials that recorded no seed param."""
    params = trial.params or trial.system_attrs.get(_FIXED_PARAMS) or {}
    if params.get(_ARM) is None:
        return None
    seed = params.get(_SEED)
    if seed is None:
        seed = (trial.user_attrs.get(_CONFIG) or {}).get(_SEED)
    return Cell(str(params[_ARM]), None if seed is None else int(seed))


# --- a finished trial's result -------------------------------------------------------------------


def write_result(trial: UserAttrTarget, result: TrialResult) -> None:
    """Store a finished trial's scores, costs, parameter counts, data facts, config, versions,
    provenance and task categories (the evidence goes through ``write_evidence``)."""
    attrs: dict[str, Any] = {_AVERAGE: result.average}
    attrs.update({_SCORE + k: v for k, v in result.task_scores.items()})
    attrs.update({_CATEGORY + k: v for k, v in result.category_scores.items()})
    attrs.update({_COST + k: v for k, v in asdict(result.costs).items() if v is not None})
    attrs.update({_PARAMS + k: v for k, v in result.params.items()})
    attrs.update({_DATA + k: v for k, v in result.data.items()})
    attrs[_CONFIG] = result.config
    attrs[_VERSIONS] = result.versions
    attrs[_PROVENANCE] = result.provenance
    attrs[_TASK_CATEGORY] = result.task_category
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def read_result(trial: FrozenTrial) -> TrialResult | None:
    """The stored result of a trial, ``None`` when it has none (pruned, failed, still running).

    Holds what the user attrs hold: evidence is read with ``read_evidence``, dev curves with
    ``read_dev_curves``, and MTEB's task results live in the result files.
    """
    attrs = trial.user_attrs
    if attrs.get(_AVERAGE) is None:
        return None
    return TrialResult(
        task_scores=_prefixed(attrs, _SCORE, float),
        category_scores=_prefixed(attrs, _CATEGORY, float),
        average=float(attrs[_AVERAGE]),
        costs=Costs(
            **{k: v for k, v in _prefixed(attrs, _COST, float).items() if k in COST_FIELDS}
        ),
        params=_prefixed(attrs, _PARAMS, int),
        config=dict(attrs.get(_CONFIG) or {}),
        versions=dict(attrs.get(_VERSIONS) or {}),
        task_category=dict(attrs.get(_TASK_CATEGORY) or {}),
        data=_prefixed(attrs, _DATA, lambda value: value),
        provenance=dict(attrs.get(_PROVENANCE) or {}),
    )


def read_dropped_overlap(trial: FrozenTrial) -> int | None:
    """Training pairs the trial dropped for sharing a text with an evaluated task; ``None`` when
    not recorded (no result, or a study from before the count was kept)."""
    value = trial.user_attrs.get(_DATA + _DROPPED_OVERLAP)
    return None if value is None else int(value)


def _prefixed(attrs: Mapping[str, Any], prefix: str, cast: Any) -> dict[str, Any]:
    return {
        key.removeprefix(prefix): cast(value)
        for key, value in attrs.items()
        if key.startswith(prefix) and value is not None
    }


# --- what the service records while running a trial ----------------------------------------------


def write_node(trial: UserAttrTarget, node: str) -> None:
    """The Ray node that runs the trial."""
    trial.set_user_attr(_NODE, node)


def read_node(trial: FrozenTrial) -> str | None:
    node = trial.user_attrs.get(_NODE)
    return None if node is None else str(node)


def write_error(trial: UserAttrTarget, error: str) -> None:
    """Why the trial failed, as one line."""
    trial.set_user_attr(_ERROR, error)


def read_error(trial: FrozenTrial) -> str | None:
    """The first line of why a trial failed: the service's record, else Optuna's own (a trial that
    ``study.optimize`` failed); ``None`` when neither recorded one (a killed worker)."""
    reason = trial.user_attrs.get(_ERROR) or trial.system_attrs.get(_OPTUNA_FAIL_REASON)
    lines = str(reason).strip().splitlines() if reason else []
    return lines[0] if lines else None


def without_error(trial: FrozenTrial) -> FrozenTrial:
    """A copy of a failed trial without its error, for the retry callback: the retry starts clean."""
    clean = copy.deepcopy(trial)
    clean.user_attrs.pop(_ERROR, None)
    return clean


def write_dev_curve(trial: UserAttrTarget, category: str, curve: Mapping[int, float]) -> None:
    """One category's held-out proxy so far, step -> value (JSON keys are strings)."""
    trial.set_user_attr(_DEV + category, {str(step): float(v) for step, v in curve.items()})


def read_dev_curves(trial: FrozenTrial) -> dict[str, dict[int, float]]:
    """Category -> {step: proxy}, steps ascending; ``{}`` for trials that reported none."""
    return {
        category: {
            int(step): float(v) for step, v in sorted(curve.items(), key=lambda i: int(i[0]))
        }
        for category, curve in _prefixed(trial.user_attrs, _DEV, dict).items()
    }


@dataclass(frozen=True)
class Pruned:
    """Where a pruned trial stopped, and its dev composite minus its same-seed reference's there
    (``None`` when no reference had finished)."""

    step: int | None
    gap: float | None


def write_pruned(trial: UserAttrTarget, step: int, gap: float | None) -> None:
    """Record that the pruner stopped the trial at ``step``, ``gap`` below its reference."""
    trial.set_user_attr(_PRUNED_STEP, int(step))
    if gap is not None:
        trial.set_user_attr(_PRUNED_GAP, float(gap))


def read_pruned(trial: FrozenTrial) -> Pruned | None:
    """The pruning record; ``None`` when the trial has none. A trial pruned before the step was
    recorded stopped at its last reported step."""
    attrs = trial.user_attrs
    if _PRUNED_STEP not in attrs and _PRUNED_GAP not in attrs:
        if trial.state != optuna.trial.TrialState.PRUNED:
            return None
        return Pruned(max(trial.intermediate_values, default=None), None)
    step = attrs.get(_PRUNED_STEP, max(trial.intermediate_values, default=None))
    gap = attrs.get(_PRUNED_GAP)
    return Pruned(None if step is None else int(step), None if gap is None else float(gap))


def write_result_files(trial: UserAttrTarget, files: Sequence[str | Path]) -> None:
    """The cell's MTEB-format result files."""
    trial.set_user_attr(_RESULT_FILES, [str(path) for path in files])


def read_result_files(trial: FrozenTrial) -> list[str]:
    return [str(path) for path in trial.user_attrs.get(_RESULT_FILES) or []]


def write_model_dir(trial: UserAttrTarget, path: str | Path) -> None:
    """Where ``--save-models`` kept the cell's model."""
    trial.set_user_attr(_MODEL_DIR, str(path))


def read_model_dir(trial: FrozenTrial) -> str | None:
    path = trial.user_attrs.get(_MODEL_DIR)
    return None if path is None else str(path)


@dataclass(frozen=True)
class WorkerTime:
    """What one trial function call cost its worker process, pruned trials too: wall seconds (the
    rest of the trial's duration is the service's) and CPU seconds (its compute, which other load
    on the machine barely changes)."""

    run_seconds: float
    cpu_seconds: float


def write_worker_time(trial: UserAttrTarget, time: WorkerTime) -> None:
    trial.set_user_attr(_RUN_SECONDS, float(time.run_seconds))
    trial.set_user_attr(_CPU_SECONDS, float(time.cpu_seconds))


def read_worker_time(trial: FrozenTrial) -> WorkerTime | None:
    """The worker's time on the trial; ``None`` when not recorded (queued, a dead worker's, or a
    study from before it was kept)."""
    attrs = trial.user_attrs
    if attrs.get(_RUN_SECONDS) is None or attrs.get(_CPU_SECONDS) is None:
        return None
    return WorkerTime(float(attrs[_RUN_SECONDS]), float(attrs[_CPU_SECONDS]))


# --- evidence and retry lineage ------------------------------------------------------------------


def retried_from(trial: FrozenTrial) -> int | None:
    """The number of the original trial that ``trial`` retries, or ``None`` (Optuna's record)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RETRY_CALLBACK.retried_trial_number(trial)
