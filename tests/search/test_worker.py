"""The worker side: what the report bridge stores and when pruning may act, and how a cell ends."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from objectives.trial.results import CATEGORIES, TrialResult
from search import scheduler
from search.pruners import SameSeedMedianPruner
from search.report_bridge import ReportRules, may_prune, reporter
from search.worker import Job, job_configs, run_cell
from storage import StorageSettings
from storage.study_records import (
    Cell,
    Pruned,
    cell_distributions,
    cell_params,
    enqueue_cell,
    read_dev_curves,
    read_error,
    read_pruned,
    suggest_cell,
)
from tests.search_helpers import queued_smoke_study

STEPS = 4
LABELS, SEEDS = ["base", "weak"], 2


def _study_with_reference() -> optuna.Study:
    """Seed 0's baseline has finished with a composite of 0.8 at step 2."""
    study = optuna.create_study(direction="maximize", pruner=SameSeedMedianPruner(margin=0.01))
    study.add_trial(
        optuna.create_trial(
            state=TrialState.COMPLETE,
            value=0.9,
            params=cell_params(Cell("base", 0)),
            distributions=cell_distributions(LABELS, SEEDS),
            intermediate_values={0: 0.3, 2: 0.8, 4: 0.9},
        )
    )
    return study


def _running(study: optuna.Study, arm: str) -> optuna.Trial:
    enqueue_cell(study, Cell(arm, 0))
    trial = study.ask()
    suggest_cell(trial, LABELS, SEEDS)
    return trial


def _bridge(baseline: bool) -> ReportRules:
    return ReportRules(baseline=baseline, steps=STEPS, metrics=CATEGORIES)


def test_pruning_may_act_only_during_training_and_never_on_the_baseline() -> None:
    assert [may_prune(_bridge(False), step) for step in range(STEPS + 2)] == [
        False,  # step 0: before training
        True,
        True,
        True,
        False,  # the last step: training is paid for
        False,
    ]
    assert not any(may_prune(_bridge(True), step) for step in range(STEPS + 1))


def test_a_weak_trial_is_pruned_during_training_with_its_step_and_gap() -> None:
    study = _study_with_reference()
    trial = _running(study, "weak")
    report = reporter(trial, _bridge(False), seed=0)
    report(0, {"STS": 0.1, "Retrieval": 0.3})  # far below, but before training: never pruned
    with pytest.raises(optuna.TrialPruned):
        report(2, {"STS": 0.1, "Retrieval": 0.3})
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.intermediate_values == {0: pytest.approx(0.2), 2: pytest.approx(0.2)}
    assert read_dev_curves(frozen) == {"STS": {0: 0.1, 2: 0.1}, "Retrieval": {0: 0.3, 2: 0.3}}
    assert read_pruned(frozen) == Pruned(step=2, gap=pytest.approx(0.2 - 0.8))


def test_the_baseline_and_the_last_step_are_never_pruned() -> None:
    study = _study_with_reference()
    baseline = reporter(_running(study, "base"), _bridge(True), seed=0)
    baseline(2, {"STS": 0.0})  # far below its own seed's finished baseline: still kept
    weak = _running(study, "weak")
    reporter(weak, _bridge(False), seed=0)(STEPS, {"STS": 0.0})
    assert read_pruned(study._storage.get_trial(weak._trial_id)) is None


def test_the_stored_value_is_the_composite_on_the_objectives_categories() -> None:
    study = _study_with_reference()
    trial = _running(study, "weak")
    only_sts = ReportRules(baseline=False, steps=STEPS, metrics=("STS",))
    reporter(trial, only_sts, seed=0)(0, {"STS": 0.6, "Clustering": 0.2})
    assert study._storage.get_trial(trial._trial_id).intermediate_values == {0: 0.6}


def test_a_scored_trial_whose_objective_is_nan_fails_and_says_which_task(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage, study, plan, arms = queued_smoke_study(sqlite_url)
    trial_id = scheduler.claim(storage, [t._trial_id for t in study.trials])
    collapsed = TrialResult(
        task_scores={"SICK-R": float("nan")}, category_scores={"STS": float("nan")}, average=0.0
    )
    monkeypatch.setattr("objectives.trial.run.run_trial", lambda *args, **kwargs: collapsed)
    job = Job("s", sqlite_url, StorageSettings(), plan, job_configs(arms.configs, 1.0))

    outcome = run_cell(job, trial_id)

    assert outcome.state == TrialState.FAIL and "SICK-R scored NaN" in outcome.error
    frozen = storage.get_trial(trial_id)
    assert frozen.state == TrialState.FAIL and read_error(frozen) == outcome.error
