"""Resume and faults: a SIGKILLed launcher loses no finished trial, and a relaunch completes the study.

The launcher runs as a real subprocess in its own session so that it, its local Ray and its workers
can be killed (and cleaned up) exactly as a crash would, without touching anything else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from search import scheduler
from search.study import enqueue_missing
from storage.study_records import read_cell, read_error, retried_from, suggest_cell
from tests.search_helpers import by_cell, lean_args, queued_smoke_study, trials

REPO = Path(__file__).resolve().parents[2]
STUDY = "layer-weights.smoke.model5"


@contextlib.contextmanager
def _launched(
    tasks_dir: Path, url: str, log: Path, settle: float = 0.0
) -> Iterator[subprocess.Popen]:
    """The launcher as a subprocess; on exit, ``settle`` seconds, then its whole group is killed."""
    args = lean_args(tasks_dir, url, "--max-concurrent", "1", "--grace-period", "4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.launch", "--study", "layer-weights", *args],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the launcher, its Ray, its workers
    )
    try:
        yield proc
    finally:
        time.sleep(settle)
        _kill_group(proc)


def _states(url: str) -> list[TrialState]:
    try:
        return [t.state for t in optuna.load_study(study_name=STUDY, storage=url).trials]
    except KeyError:  # not created yet
        return []


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _wait_for_one_complete_and_one_running(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 240
    while not {TrialState.COMPLETE, TrialState.RUNNING} <= set(_states(url)):
        assert proc.poll() is None, log.read_text()[-2000:]
        assert time.monotonic() < deadline, "the launch never got going"
        time.sleep(0.5)


@pytest.mark.integration
def test_sigkilled_launcher_then_relaunch_completes_without_duplicates(
    tasks_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    # After the crash, let Ray notice its driver died, then reap what is left of it.
    with _launched(tasks_dir, sqlite_url, tmp_path / "first.log", settle=2) as first:
        _wait_for_one_complete_and_one_running(first, sqlite_url, tmp_path / "first.log")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    before = {t.number: t for t in trials(sqlite_url, STUDY) if t.state == TrialState.COMPLETE}
    killed = [t for t in trials(sqlite_url, STUDY) if t.state == TrialState.RUNNING]
    assert len(before) == 1 and len(killed) == 1

    with _launched(tasks_dir, sqlite_url, tmp_path / "second.log") as second:
        assert second.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]

    found = trials(sqlite_url, STUDY)
    complete = by_cell(found, TrialState.COMPLETE)
    assert set(complete) == {("W on", 0), ("W off", 0)}
    assert all(len(cell) == 1 for cell in complete.values())  # no duplicate arm x seed
    for number, trial in before.items():  # nothing finished was lost or changed
        assert found[number].state == TrialState.COMPLETE
        assert found[number].value == trial.value
    dead = found[killed[0].number]
    assert dead.state == TrialState.FAIL  # the heartbeat failed it after the grace period ...
    retry = next(t for t in found if retried_from(t) == dead.number)
    assert retry.state == TrialState.COMPLETE  # ... and the same cell was re-run
    assert read_cell(retry) == read_cell(dead)


@pytest.mark.integration
def test_ctrl_c_stops_cleanly_and_keeps_what_finished(
    tasks_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "launch.log"
    with _launched(tasks_dir, sqlite_url, log) as proc:
        _wait_for_one_complete_and_one_running(proc, sqlite_url, log)
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends
        assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    found = trials(sqlite_url, STUDY)
    assert [t.state for t in found] == [TrialState.COMPLETE, TrialState.FAIL]
    assert "interrupted" in (read_error(found[1]) or "")
    assert "relaunch the same command to resume" in log.read_text()


def _running_ray_task(session: int, deadline: float) -> int:
    """The pid of the Ray worker process now running a trial in ``session`` (Ray's process title)."""
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes()
                if title.startswith(b"ray::run_cell") and os.getsid(int(entry.name)) == session:
                    return int(entry.name)
        time.sleep(0.2)
    raise AssertionError("no Ray worker ran a trial")


@pytest.mark.integration
def test_a_sigkilled_ray_worker_fails_its_trial_and_the_launcher_reruns_the_cell(
    tasks_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "launch.log"
    with _launched(tasks_dir, sqlite_url, log) as proc:
        _wait_for_one_complete_and_one_running(proc, sqlite_url, log)
        finished = {t.number: t.value for t in trials(sqlite_url, STUDY) if t.value is not None}
        os.kill(_running_ray_task(proc.pid, time.monotonic() + 60), signal.SIGKILL)
        assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]

    found = trials(sqlite_url, STUDY)
    assert {n: found[n].value for n in finished} == finished  # nothing finished was lost
    complete = by_cell(found, TrialState.COMPLETE)
    assert set(complete) == {("W on", 0), ("W off", 0)}
    assert all(len(cell) == 1 for cell in complete.values())
    dead = next(t for t in found if t.state == TrialState.FAIL)
    assert (read_error(dead) or "").startswith("worker died")
    retry = next(t for t in found if retried_from(t) == dead.number)
    assert retry.state == TrialState.COMPLETE and read_cell(retry) == read_cell(dead)


def test_a_dead_workers_trial_fails_with_a_reason_and_its_cell_is_requeued(sqlite_url: str) -> None:
    storage, study, plan, arms = queued_smoke_study(sqlite_url)
    waiting = storage.get_all_trials(storage.get_study_id_from_name("s"))
    trial_id = scheduler.claim(storage, scheduler.dispatchable(waiting, plan.baseline, gated=True))
    trial = optuna.Trial(study, trial_id)
    suggest_cell(trial, [a.label for a in plan.arms], plan.seeds)

    scheduler.fail_and_retry(storage, study, trial_id, "worker died: WorkerCrashedError: gone")

    dead = storage.get_trial(trial_id)
    assert dead.state == TrialState.FAIL
    assert read_error(dead) == "worker died: WorkerCrashedError: gone"
    retry = next(t for t in study.get_trials() if retried_from(t) == dead.number)
    assert retry.state == TrialState.WAITING and read_cell(retry) == read_cell(dead)
    assert read_error(retry) is None  # the re-run starts clean
    assert enqueue_missing(study, plan, arms) == []  # the queued retry covers the cell
