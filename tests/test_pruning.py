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

from search.launch import main
from search.runner import CPU_SECONDS, RUN_SECONDS
from search.space import Pruning
from tests.search_helpers import CATEGORY_KEYS, LEAN, trials

STUDY = "tokens.smoke.model5"
PLAN = (
    "name: tokens\nbaseline: 32 tokens\narms:\n"
    "  - {label: 32 tokens, overrides: {}}\n"
    "  - {label: 4 tokens, overrides: {model.max_length: 4}}\n"
)
STEPS = 4  # the smoke preset's train.steps; reports at 0, 2 and 4
CATEGORIES = [key.removeprefix("category.") for key in CATEGORY_KEYS]


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
    assert len(found) == 4 and {t.params["seed"] for t in found} == {0, 1}
    for trial in found:  # what each spent, pruned ones too (the benchmark's figures)
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
        assert 0 < trial.user_attrs[RUN_SECONDS] < duration  # the rest is the service's
        assert trial.user_attrs[CPU_SECONDS] > 0
    pruned = [t for t in found if t.state == TrialState.PRUNED]
    assert any(t.params["arm"] == "4 tokens" for t in pruned)  # pruned in at least one seed
    baselines = [t for t in found if t.params["arm"] == "32 tokens"]
    assert [t.state for t in baselines] == [TrialState.COMPLETE] * 2  # the baseline never is
    for trial in baselines:
        assert sorted(trial.intermediate_values) == [0, 2, 4]
        assert all(sorted(trial.user_attrs[f"dev.{c}"]) == ["0", "2", "4"] for c in CATEGORIES)
    for trial in pruned:
        step = trial.user_attrs["pruned_step"]
        assert 0 < step < STEPS and max(trial.intermediate_values) == step
        assert trial.user_attrs["pruned_gap"] < -Pruning.margin
        assert trial.value == trial.intermediate_values[step]
        assert "category.STS" not in trial.user_attrs  # a pruned trial never scores as an arm


def test_the_weak_arm_is_pruned_at_default_settings_on_sqlite(
    local_ray: None, tasks_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    _weak_arm_study(tasks_dir, sqlite_url, tmp_path)


@pytest.mark.postgres
def test_the_weak_arm_is_pruned_at_default_settings_on_postgresql(
    local_ray: None, tasks_dir: Path, postgres_url: str, tmp_path: Path
) -> None:
    _weak_arm_study(tasks_dir, postgres_url, tmp_path)
