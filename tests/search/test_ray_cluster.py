"""Ray itself: the launcher joins two nodes (``ray.cluster_utils.Cluster``) with --address and uses
both, and cells run in the worker processes the warm-up prepared."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from optuna.trial import TrialState
from ray.cluster_utils import Cluster

from search import scheduler
from search.launch import main
from search.plans import get_plan
from search.worker import Job
from storage import StorageSettings, open_storage
from storage.study_records import read_node
from tests.search_helpers import by_cell, lean_args, trials

pytestmark = pytest.mark.integration


@pytest.fixture
def two_nodes() -> Iterator[Cluster]:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        yield cluster
    finally:
        cluster.shutdown()


def test_trials_run_on_both_nodes(two_nodes: Cluster, tasks_dir: Path, sqlite_url: str) -> None:
    node_ids = {node.node_id for node in two_nodes.list_all_nodes()}
    assert len(node_ids) == 2
    # One CPU per node and per trial, two trials at once: each node must take one. Without a pruner
    # no cell waits for its seed's baseline, so both start together.
    args = lean_args(tasks_dir, sqlite_url, "--address", two_nodes.address, "--max-concurrent", "2")
    args += ["--pruner", "none"]
    assert main(["--study", "layer-weights", *args]) == 0
    complete = by_cell(trials(sqlite_url, "layer-weights.smoke.model5"), TrialState.COMPLETE)
    assert set(complete) == {("W on", 0), ("W off", 0)}
    assert {read_node(trial) for (trial,) in complete.values()} == node_ids


def test_cells_run_in_the_worker_processes_the_warm_up_prepared(sqlite_url: str) -> None:
    open_storage(sqlite_url)  # the launcher creates the storage before it warms the workers
    job = Job("s", sqlite_url, StorageSettings(), get_plan("layer-weights"), configs={})
    resources = scheduler.Resources(cpus_per_trial=1, max_concurrent=2)
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        warmed = set(ray.get(scheduler.warm_workers(job, resources)))
        # Shaped as RayBackend shapes a cell: another function, the same resources.
        cell = ray.remote(max_retries=0)(_busy_pid).options(num_cpus=1)
        ran_in = set(ray.get([cell.remote() for _ in range(2)]))
    finally:
        ray.shutdown()
    assert len(warmed) == 2  # one process per slot
    assert ran_in <= warmed  # no cell landed in a cold process


def _busy_pid() -> int:
    time.sleep(1)  # both slots busy at once, so both processes are needed
    return os.getpid()
