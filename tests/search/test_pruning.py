"""Pruning end to end at default settings: real Ray, real storages, real smoke trials.

A clearly weak arm (``model.max_length`` 4 vs 32) with 2 seeds, the default pruner, margin and
concurrency (the machine's CPUs): the weak arm is pruned in at least one seed, the baseline never
is, no trial is pruned at step 0 or its last step, and what the table reads is stored. One local Ray
serves the whole module (the launcher uses a Ray its process already runs).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from optuna.trial import TrialState

from objectives.trial.results import CATEGORIES
from search.launch import main
from search.pruners import Pruning
from storage.study_records import (
    read_cell,
    read_dev_curves,
    read_pruned,
    read_result,
    read_worker_time,
)
from tests.search_helpers import LEAN, trials

pytestmark = pytest.mark.integration

STUDY = "tokens.smoke.model5"
PLAN = (
    "name: tokens\nbaseline: 32 tokens\narms:\n"
    "  - {label: 32 tokens, overrides: {}}\n"
    "  - {label: 4 tokens, overrides: {model.max_length: 4}}\n"
)
STEPS = 4  # the smoke preset's train.steps; reports at 0, 2 and 4


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def _weak_arm_study(tasks_dir: Path, url: str, folder: Path) -> None:
    plan = folder / "tokens.yaml"
    plan.write_text(PLAN)
    argv = ["--plan", str(plan), *LEAN, "--seeds", "2", "--tasks-dir", str(tasks_dir)]
    assert main([*argv, "--storage", url]) == 0  # default --pruner, margin and concurrency

    found = trials(url, STUDY)
    arm = {t.number: read_cell(t).arm for t in found}
    assert len(found) == 4 and {read_cell(t).seed for t in found} == {0, 1}
    for trial in found:  # what each spent, pruned ones too (the benchmark's figures)
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        spent = read_worker_time(trial)
        assert 0 < spent.run_seconds < duration  # the rest is the service's
        assert spent.cpu_seconds > 0
    pruned = [t for t in found if t.state == TrialState.PRUNED]
    assert any(arm[t.number] == "4 tokens" for t in pruned)  # pruned in at least one seed
    baselines = [t for t in found if arm[t.number] == "32 tokens"]
    assert [t.state for t in baselines] == [TrialState.COMPLETE] * 2  # the baseline never is
    for trial in baselines:
        assert sorted(trial.intermediate_values) == [0, 2, 4]
        curves = read_dev_curves(trial)
        assert all(sorted(curves.get(c, {})) == [0, 2, 4] for c in CATEGORIES)
    for trial in pruned:
        record = read_pruned(trial)
        assert 0 < record.step < STEPS and max(trial.intermediate_values) == record.step
        assert record.gap < -Pruning.margin
        assert trial.value == trial.intermediate_values[record.step]
        assert read_result(trial) is None  # a pruned trial never scores as an arm


def test_the_weak_arm_is_pruned_at_default_settings_on_sqlite(
    local_ray: None, tasks_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    _weak_arm_study(tasks_dir, sqlite_url, tmp_path)


@pytest.mark.postgres
def test_the_weak_arm_is_pruned_at_default_settings_on_postgresql(
    local_ray: None, tasks_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    _weak_arm_study(tasks_dir, postgres_url, tmp_path)
