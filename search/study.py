"""A plan becomes an Optuna study: one enqueued trial per arm x seed cell, under one name and one
experiment.

Cells are enqueued, not sampled: every arm x seed runs exactly once, in a fixed order (per seed, the
baseline first, so a pruner has a reference early), and enqueueing is idempotent, so relaunching
a study adds only the cells that have no finished, queued or running trial. A relaunch must train
and score what the study's earlier trials did: the same config and arms, and the same task files and
training data, byte for byte (their content hashes are stored with the study), or the trials of two
experiments would share one table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import TrialState

from objectives.config.trial_config import TrialConfig, override
from objectives.evaluation.mteb_tasks import discover_tasks, task_names
from objectives.training.pairs import pairs_source
from objectives.trial.provenance import data_hashes, hub_record
from search.arms import Arms, Choices, fingerprint
from search.plans import Plan, PlanError
from search.pruners import Pruning, make_pruner
from storage.study_records import (
    Cell,
    PlanRecord,
    SkippedArm,
    StudyRecord,
    enqueue_cell,
    read_cell,
    read_study_record,
    write_study_record,
)

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


PENDING = (TrialState.WAITING, TrialState.RUNNING)


def default_study_name(plan: Plan, choices: Choices) -> str:
    """``<plan>.<preset>.<base>[.<backbone>]``: different presets or backbones never share a study."""
    parts = [plan.name, choices.preset, choices.base or plan.base]
    if choices.model:
        parts.append(choices.model.rstrip("/").rsplit("/", 1)[-1])
    return ".".join(parts)


def load(storage: optuna.storages.BaseStorage, name: str, pruning: Pruning) -> optuna.Study:
    """The study with our pruner and sampler (TPE only matters for a plan's ``search`` tunables)."""
    return optuna.load_study(
        study_name=name,
        storage=storage,
        pruner=make_pruner(pruning),
        sampler=optuna.samplers.TPESampler(),
    )


def prepare_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    plan: Plan,
    arms: Arms,
    choices: Choices,
) -> optuna.Study:
    """Create the study or check that an existing one ran the same plan on the same base config
    and data.

    A relaunch may add seeds; a different base config, different arm overrides or other task files
    or training data (``study_data_hashes``) under the same name would mix two experiments, so it
    is refused (``PlanError``, one line with the fix) before anything is written.
    """
    fp = fingerprint(arms.base_config)
    hashes = study_data_hashes(
        arms.base_config
    )  # read before writing: a broken file changes nothing
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True
    )
    old = read_study_record(study)
    record = plan.record()
    if old.plan:
        _check_same_experiment(name, old, record, fp, hashes)
        record["seeds"] = sorted(set(old.plan.get("seeds", [])) | set(record["seeds"]))
    write_study_record(
        study,
        StudyRecord(
            plan=PlanRecord(**record),
            skipped_arms=[SkippedArm(arm=s["arm"], reason=s["reason"]) for s in arms.skipped],
            preset=choices.preset,
            backbone=arms.base_config.model.backbone,
            base=choices.base or plan.base,
            config_fingerprint=fp,
            data_hashes=hashes,
        ),
    )
    return study


def _check_same_experiment(
    name: str, old: StudyRecord, record: dict[str, Any], fp: str, hashes: dict[str, str]
) -> None:
    old_fp = old.config_fingerprint
    old_arms = {a["label"]: a["overrides"] for a in old.plan.get("arms", [])}
    new_arms = {a["label"]: a["overrides"] for a in record["arms"]}
    if old_fp != fp or old_arms != new_arms:
        raise PlanError(
            f"study '{name}' was run with other settings (config {old_fp}, now {fp}; "
            "or other arms); pass --study-name to start a separate study"
        )
    stored = old.data_hashes
    if stored is None:  # a study from before data hashes were recorded: nothing to compare with
        return
    changed = sorted(k for k in stored.keys() | hashes.keys() if stored.get(k) != hashes.get(k))
    if changed:
        raise PlanError(
            f"study '{name}' was run on other data ({', '.join(changed)} differ in content); "
            "pass --study-name to start a separate study, or restore the data it was run on"
        )


def study_data_hashes(config: TrialConfig) -> dict[str, str]:
    """The content hash of each task and of the training data that trials of ``config`` read, keyed
    as ``objectives.trial.provenance`` keys a trial's: ``task.<name>`` and ``train``.

    A hub task is recorded by its pinned dataset revision, as the trial records it.
    """
    local = discover_tasks(config.eval.tasks_dir)
    names = task_names(config.eval)
    source = pairs_source(config.train, config.eval.tasks_dir)
    hashes = data_hashes({n: local[n].folder for n in names if n in local}, source)
    for name in names:
        if name not in local:
            hashes[f"task.{name}"] = hub_record(_hub_metadata(name))
    return hashes


def _hub_metadata(name: str) -> Any:
    import mteb  # only for hub tasks: its metadata, no download

    return mteb.get_task(name).metadata


def cells(plan: Plan, arms: Arms) -> list[tuple[str, int]]:
    """Every arm x seed cell, per seed the baseline first (the pruner's early reference)."""
    order = [plan.baseline] + [a.label for a in plan.arms if a.label != plan.baseline]
    return [(arm, seed) for seed in plan.seed_values() for arm in order if arm in arms.configs]


def suggest_tunables(trial: optuna.Trial, plan: Plan) -> dict[str, Any]:
    """TPE-suggested values of the plan's ``search`` section, keyed by dotted config path."""
    values: dict[str, Any] = {}
    for path, spec in plan.search.items():
        if spec.kind == "int":
            values[path] = trial.suggest_int(path, int(spec.low), int(spec.high), log=spec.log)
        else:
            values[path] = trial.suggest_float(path, spec.low, spec.high, log=spec.log)
    return values


def shortfall(
    study: optuna.Study, plan: Plan, arms: Arms, states: tuple[TrialState, ...]
) -> list[tuple[str, int]]:
    """One entry per trial a cell lacks: cells with fewer than ``trials_per_cell`` in ``states``."""
    have = Counter(read_cell(t) for t in study.get_trials(deepcopy=False, states=states))
    return [cell for cell in cells(plan, arms) for _ in range(plan.trials_per_cell - have[cell])]


def enqueue_missing(study: optuna.Study, plan: Plan, arms: Arms) -> list[tuple[str, int]]:
    """Enqueue what each cell lacks beyond its finished and pending trials; returns those cells.

    Idempotent: a relaunch adds nothing for a cell that is done, queued or running. FAILed trials
    do not count, so a relaunch re-runs a cell whose every attempt failed.
    """
    added = shortfall(study, plan, arms, FINISHED + PENDING)
    for arm, seed in added:
        enqueue_cell(study, Cell(arm, seed))
    return added


def with_seed(config: TrialConfig, seed: int, tuned: dict[str, Any]) -> TrialConfig:
    """The cell's config: the arm's config with the seed and any TPE-suggested values."""
    return override(replace(config, seed=seed), tuned)
