"""Live progress is read from the study: a running trial's cell, node, step k/N and dev score."""

from __future__ import annotations

import io

import optuna
import pytest
from optuna.trial import TrialState
from rich.console import Console

from search.arms import Arms, Choices, resolve_arms
from search.plans import get_plan
from search.progress import LiveProgress, snapshot
from search.study import enqueue_missing, prepare_study
from storage.study_records import Cell, enqueue_cell, suggest_cell, write_node

SMOKE = Choices(preset="smoke")
NODE = "3f2a1b4c" + "0" * 48  # a Ray node id


@pytest.fixture
def study_in_flight(
    sqlite_url: str,
) -> tuple[optuna.Study, Arms]:
    """layer-weights on smoke, 6 cells queued: one COMPLETE, one RUNNING at step 2 on a node,
    one RUNNING that its worker has just claimed (no node, no report yet)."""
    plan = get_plan("layer-weights")
    arms = resolve_arms(plan, SMOKE)
    storage = optuna.storages.RDBStorage(sqlite_url)
    study = prepare_study(storage, "progress", plan, arms, SMOKE)
    enqueue_missing(study, plan, arms)
    labels = [a.label for a in plan.arms]

    done = study.ask()  # ("W on", 0), the oldest queued cell
    suggest_cell(done, labels, plan.seeds)
    study.tell(done, 0.61)
    running = study.ask()  # ("W off", 0)
    write_node(running, NODE)
    suggest_cell(running, labels, plan.seeds)
    running.report(0.4012, 0)
    running.report(0.4321, 2)
    study.ask()  # ("W on", 1): claimed, nothing stored yet
    return study, arms


def test_a_log_line_names_each_running_trials_cell_node_step_and_dev_score(
    study_in_flight: tuple[optuna.Study, Arms],
) -> None:
    study, arms = study_in_flight
    out = io.StringIO()
    progress = LiveProgress(study, get_plan("layer-weights"), arms, console=Console(file=out))
    progress.update(force=True)
    (line,) = out.getvalue().splitlines()
    steps = arms.configs["W off"].train.steps
    assert line.startswith("progress: 1/6 finished (0 pruned, 0 failed), 2 running, 3 queued")
    assert "best W on 0.6100 (1)" in line
    assert f"#1 W off seed 0 node 3f2a1b4c step 2/{steps} dev 0.4321" in line
    assert f"#2 W on seed 1 node ? step -/{steps} dev -" in line


def test_a_log_gets_a_line_only_once_the_refresh_interval_passed(
    study_in_flight: tuple[optuna.Study, Arms],
) -> None:
    study, arms = study_in_flight
    out = io.StringIO()
    progress = LiveProgress(study, get_plan("layer-weights"), arms, console=Console(file=out))
    progress.update()
    progress.update()  # within LOG_REFRESH of the first: nothing
    assert len(out.getvalue().splitlines()) == 1


def test_the_terminal_table_shows_the_running_trials_and_stays_after_close(
    study_in_flight: tuple[optuna.Study, Arms],
) -> None:
    study, arms = study_in_flight
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    progress = LiveProgress(study, get_plan("layer-weights"), arms, console=console)
    progress.update(force=True)
    progress.close()
    shown = out.getvalue()
    assert "1/6 finished" in shown
    row = next(line for line in shown.splitlines() if "#1" in line)
    for cell in ("W off", "3f2a1b4c", f"2/{arms.configs['W off'].train.steps}", "0.4321"):
        assert cell in row


def test_a_trial_of_a_cell_the_launch_does_not_run_is_not_counted(
    study_in_flight: tuple[optuna.Study, Arms],
) -> None:
    study, arms = study_in_flight
    enqueue_cell(study, Cell("W on", 7))  # a cell this launch does not run
    state = snapshot(study, get_plan("layer-weights"), arms)
    assert (state.complete, state.queued, len(state.running)) == (1, 3, 2)
    assert [t.state for t in study.trials].count(TrialState.WAITING) == 4
