"""Two Ray nodes (``ray.cluster_utils.Cluster``): the launcher joins with --address and uses both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from optuna.trial import TrialState
from ray.cluster_utils import Cluster

from search.launch import main
from tests.search_helpers import by_cell, lean_args, trials


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
    assert {trial.user_attrs["node"] for (trial,) in complete.values()} == node_ids
