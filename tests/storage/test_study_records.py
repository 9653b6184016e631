"""Study records (``storage.study_records``) survive a real storage, old studies read as defaults,
and retry lineage is Optuna's own.

Every record goes through the writers the service uses and comes back through the readers the
reports use, on SQLite and PostgreSQL alike (JSON attrs are stored as text by both; a round trip
must not turn int keys, ints or floats into something else).
"""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from objectives.evaluation.evidence import TaskEvidence, items_hash
from objectives.trial.results import Costs, TrialResult
from storage import open_storage
from storage.connect import RETRY_CALLBACK
from storage.study_records import (
    Cell,
    PlanRecord,
    Pruned,
    StoredTrial,
    StudyRecord,
    WorkerTime,
    cell_distributions,
    enqueue_cell,
    read_cell,
    read_data_hashes,
    read_dev_curves,
    read_dropped_overlap,
    read_error,
    read_evidence,
    read_model_dir,
    read_node,
    read_pruned,
    read_result,
    read_result_files,
    read_study_record,
    read_worker_time,
    retried_from,
    suggest_cell,
    without_error,
    write_dev_curve,
    write_error,
    write_evidence,
    write_model_dir,
    write_node,
    write_pruned,
    write_result,
    write_result_files,
    write_study_record,
    write_worker_time,
)

# The worker records a heartbeat outside Study.optimize; so do these tests.
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")

LABELS = ["W on", "W off"]
SEEDS = 3
RECORD = StudyRecord(
    plan=PlanRecord(
        name="layer-weights",
        description="trainable layer-weight matrix W",
        ablated="model.pooling.layer_weights",
        action="remove",
        baseline="W on",
        base="model5",
        arms=[
            {"label": "W on", "overrides": {"model.pooling.layer_weights": True}},
            {"label": "W off", "overrides": {"model.pooling.layer_weights": False}},
        ],
        seeds=[0, 1, 2],
        metrics=["STS", "Retrieval"],
        objective=None,
        objective_name="average of STS, Retrieval",
    ),
    skipped_arms=[{"arm": "top 16", "reason": "a 6-layer backbone has no top 16"}],
    preset="cpu",
    backbone="minilm",
    base="model5",
    config_fingerprint="0123abcd",
    data_hashes={"task.STS14": "aa11", "train": "bb22"},
)
RESULT = TrialResult(
    task_scores={"STS14": 0.61, "SciFactSubset": 0.42},
    category_scores={"STS": 0.61, "Retrieval": 0.42},
    average=0.515,
    costs=Costs(train_seconds=12.5, eval_seconds=3.25, peak_memory_mb=900.0),
    params={"total": 22_800_000, "trainable": 150_000, "head": 90_000},
    config={"seed": 1, "train": {"steps": 8, "eval_every": 2}},
    versions={"optuna": optuna.__version__},
    task_category={"STS14": "STS", "SciFactSubset": "Retrieval"},
    evidence={
        "SciFactSubset": TaskEvidence(
            "Retrieval", items_hash(["q1", "q2", "q3"]), {"values": np.array([0.2, 0.5, 0.56])}
        )
    },
    data={"dropped_overlap": 7},
    provenance={"commit": "abc123", "data": {"train": "bb22"}},
)
CURVES = {"STS": {0: 0.30, 2: 0.41, 4: 0.47}, "Retrieval": {0: 0.10, 2: 0.18, 4: 0.22}}


def _study(url: str) -> tuple[optuna.storages.RDBStorage, optuna.Study]:
    storage = open_storage(url)
    name = f"records-{uuid.uuid4().hex[:8]}"
    return storage, optuna.create_study(study_name=name, storage=storage, direction="maximize")


def _run_cell(study: optuna.Study, cell: Cell) -> optuna.Trial:
    """Queue ``cell`` and take it as a worker does: ask, then record the cell as params."""
    enqueue_cell(study, cell)
    trial = study.ask()
    assert suggest_cell(trial, LABELS, SEEDS) == cell
    assert trial.distributions == cell_distributions(LABELS, SEEDS)  # what FrozenTrials get
    return trial


def _reload(url: str, study: optuna.Study) -> tuple[optuna.Study, list[optuna.trial.FrozenTrial]]:
    again = optuna.load_study(study_name=study.study_name, storage=open_storage(url))
    return again, again.get_trials(deepcopy=False)


def test_every_record_written_by_the_service_reads_back_the_same(any_storage_url: str) -> None:
    storage, study = _study(any_storage_url)
    write_study_record(study, RECORD)
    done = _run_cell(study, Cell("W off", 1))
    write_node(done, "node-a")
    for category, curve in CURVES.items():
        write_dev_curve(done, category, curve)
    write_result(done, RESULT)
    write_evidence(storage, done._trial_id, RESULT.evidence)
    write_result_files(done, [Path("results/a.json"), "results/b.json"])
    write_model_dir(done, Path("results/models/W off.seed1"))
    write_worker_time(done, WorkerTime(run_seconds=14.25, cpu_seconds=27.5))
    study.tell(done, RESULT.average)
    pruned = _run_cell(study, Cell("W off", 2))
    pruned.report(0.2, 2)
    write_pruned(pruned, 2, -0.0625)
    write_worker_time(pruned, WorkerTime(run_seconds=3, cpu_seconds=5))
    study.tell(pruned, state=TrialState.PRUNED)
    failed = _run_cell(study, Cell("W on", 0))
    write_error(failed, "RuntimeError: out of memory")
    study.tell(failed, state=TrialState.FAIL)
    enqueue_cell(study, Cell("W on", 2))

    again, (first, second, third, queued) = _reload(any_storage_url, study)
    assert read_study_record(again) == RECORD
    assert read_data_hashes(again) == RECORD.data_hashes
    assert again.metric_names == ["average of STS, Retrieval"]
    assert [read_cell(t) for t in (first, second, third, queued)] == [
        ("W off", 1),
        ("W off", 2),
        ("W on", 0),
        ("W on", 2),
    ]
    result = read_result(first)
    assert result is not None
    for name in ("task_scores", "category_scores", "average", "costs", "params", "config"):
        assert getattr(result, name) == getattr(RESULT, name), name
    for name in ("versions", "task_category", "data", "provenance"):
        assert getattr(result, name) == getattr(RESULT, name), name
    assert isinstance(result.params["total"], int) and read_dropped_overlap(first) == 7
    evidence = read_evidence(first)["SciFactSubset"]
    assert evidence.items == RESULT.evidence["SciFactSubset"].items
    np.testing.assert_array_equal(evidence.arrays["values"], [0.2, 0.5, 0.56])
    assert read_dev_curves(first) == CURVES
    assert read_node(first) == "node-a"
    assert read_result_files(first) == ["results/a.json", "results/b.json"]
    assert read_model_dir(first) == str(Path("results/models/W off.seed1"))
    assert read_pruned(first) is None and read_error(first) is None
    assert read_worker_time(first) == WorkerTime(14.25, 27.5)
    assert read_worker_time(second) == WorkerTime(3.0, 5.0)
    assert read_worker_time(third) is None
    assert read_pruned(second) == Pruned(step=2, gap=-0.0625) and read_result(second) is None
    assert read_error(third) == "RuntimeError: out of memory" and read_pruned(third) is None


def test_a_study_written_before_the_records_existed_reads_as_defaults(sqlite_url: str) -> None:
    _, study = _study(sqlite_url)
    study.set_user_attr("plan", {"name": "old", "baseline": "W on"})
    config_seed_only = optuna.trial.create_trial(
        value=0.5,
        params={"arm": "W on"},
        distributions={"arm": optuna.distributions.CategoricalDistribution(LABELS)},
        user_attrs={"config": {"seed": 2}},
    )
    pruned_without_record = optuna.trial.create_trial(
        state=TrialState.PRUNED, intermediate_values={0: 0.1, 4: 0.2}
    )
    failed_by_old_optuna = optuna.trial.create_trial(  # Optuna 2 kept the reason itself
        state=TrialState.FAIL, system_attrs={"fail_reason": "ValueError: bad\nsecond line"}
    )
    study.add_trials([config_seed_only, pruned_without_record, failed_by_old_optuna])

    again, (old, pruned, failed) = _reload(sqlite_url, study)
    record = read_study_record(again)
    assert record == StudyRecord(plan=PlanRecord(name="old", baseline="W on"))
    assert read_data_hashes(again) is None
    assert read_cell(old) == Cell("W on", 2) and read_cell(pruned) is None
    assert read_result(old) is None and read_dropped_overlap(old) is None
    assert read_dev_curves(old) == {} and read_evidence(old) == {}
    assert read_result_files(old) == [] and read_model_dir(old) is None
    assert read_node(old) is None and retried_from(old) is None and _retry_history(old) == []
    assert read_pruned(old) is None and read_worker_time(old) is None
    assert read_pruned(pruned) == Pruned(step=4, gap=None)
    assert read_error(old) is None and read_error(failed) == "ValueError: bad"


def _retry_history(trial: optuna.trial.FrozenTrial) -> list[int]:
    """Optuna's own record of the trials ``trial`` retries, oldest first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return list(RETRY_CALLBACK.retry_history(trial))


def test_retry_lineage_is_optunas_record_through_the_storages_retry_callback(
    any_storage_url: str,
) -> None:
    storage, study = _study(any_storage_url)
    retry = storage.get_heartbeat_stale_trial_callback()
    original = _run_cell(study, Cell("W off", 1))
    write_node(original, "node-a")
    for attempt in range(2):  # the first trial dies, then its retry dies too
        trial_id = study.get_trials(deepcopy=False)[-1]._trial_id
        storage.set_trial_state_values(trial_id, state=TrialState.RUNNING)
        write_error(StoredTrial(storage, trial_id), f"heartbeat lost (attempt {attempt})")
        storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        retry(study, without_error(storage.get_trial(trial_id)))

    _, (first, second, third) = _reload(any_storage_url, study)
    assert read_error(first) == "heartbeat lost (attempt 0)"
    assert read_error(second) == "heartbeat lost (attempt 1)"
    assert third.state == TrialState.WAITING and read_error(third) is None
    assert retried_from(first) is None and _retry_history(first) == []
    assert retried_from(second) == retried_from(third) == first.number
    assert _retry_history(third) == [first.number, second.number]
    assert read_cell(third) == Cell("W off", 1) and read_node(third) == "node-a"
