"""The study storage against the real PostgreSQL server and the embedded SQLite file.

Workers are real OS processes (spawned), the killed worker is SIGKILLed, and a database "restart" is
the server terminating every connection of the test database, which is what clients see.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from pathlib import Path

import optuna
import pytest
import sqlalchemy as sa

from storage import StorageError, StorageSettings, fail_stale_trials, open_storage, retried_from
from tests.conftest import PG_ADMIN_URL

FAST_HEARTBEAT = StorageSettings(heartbeat_interval=1, grace_period=3, max_retry=2)
STEPS = 4


def _write_trials(url: str, study_name: str, worker: int, n_trials: int) -> None:
    """A worker process: complete ``n_trials`` trials, each with STEPS intermediate values."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        trial.set_user_attr("worker", worker)
        for step in range(STEPS):
            trial.report(x * step, step)
        return x

    study.optimize(objective, n_trials=n_trials)


def _hang_in_trial(url: str, study_name: str) -> None:
    """A worker that reports once and then hangs inside its trial until it is killed."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(url, FAST_HEARTBEAT))

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_categorical("arm", ["a", "b"])
        trial.report(0.5, 0)
        time.sleep(600)
        return 0.0

    study.optimize(objective, n_trials=1)


def _spawn(target, *args) -> mp.Process:
    process = mp.get_context("spawn").Process(target=target, args=args)
    process.start()
    return process


@pytest.mark.integration
def test_two_processes_write_concurrently_and_everything_reads_back(any_storage_url: str) -> None:
    name = f"concurrent-{time.time_ns()}"
    optuna.create_study(
        study_name=name, storage=open_storage(any_storage_url), direction="maximize"
    )
    workers = [_spawn(_write_trials, any_storage_url, name, w, 3) for w in range(2)]
    for worker in workers:
        worker.join(timeout=180)
        assert worker.exitcode == 0
    trials = optuna.load_study(study_name=name, storage=open_storage(any_storage_url)).get_trials()
    assert len(trials) == 6
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}
    for trial in trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert trial.intermediate_values == {s: trial.params["x"] * s for s in range(STEPS)}
        assert trial.value == trial.params["x"]


@pytest.mark.integration
def test_killed_worker_trial_is_failed_and_retried_without_losing_finished(
    any_storage_url: str,
) -> None:
    name = f"killed-{time.time_ns()}"
    storage = open_storage(any_storage_url, FAST_HEARTBEAT)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.enqueue_trial({"arm": "b"})
    study.optimize(
        lambda t: {"a": 0.1, "b": 0.9}[t.suggest_categorical("arm", ["a", "b"])], n_trials=1
    )
    study.enqueue_trial({"arm": "a"})

    worker = _spawn(_hang_in_trial, any_storage_url, name)
    deadline = time.time() + 120
    while time.time() < deadline:
        running = study.get_trials(states=(optuna.trial.TrialState.RUNNING,))
        if running and running[0].intermediate_values:
            break
        time.sleep(0.2)
    else:
        pytest.fail("worker never started its trial")
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    time.sleep(FAST_HEARTBEAT.grace_period + 1.5)

    fail_stale_trials(study)
    by_number = {t.number: t for t in study.get_trials()}
    assert by_number[0].state == optuna.trial.TrialState.COMPLETE and by_number[0].value == 0.9
    dead = by_number[running[0].number]
    assert dead.state == optuna.trial.TrialState.FAIL
    retries = [t for t in by_number.values() if retried_from(t) == dead.number]
    assert len(retries) == 1
    assert retries[0].state == optuna.trial.TrialState.WAITING
    assert retries[0].params == {"arm": "a"}


@pytest.mark.postgres
def test_dropped_connections_lose_no_finished_trial(postgres_url: str) -> None:
    name = f"restart-{time.time_ns()}"
    storage = open_storage(postgres_url)
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    before = {t.number: t.value for t in study.get_trials()}

    database = sa.engine.make_url(postgres_url).database
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid()"
            ),
            {"db": database},
        ).scalar()
    admin.dispose()
    assert killed >= 1  # the pooled connections really were cut

    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    after = {t.number: t.value for t in study.get_trials()}
    assert len(after) == 4
    assert all(after[n] == v for n, v in before.items())


@pytest.mark.parametrize(
    ("bad_url", "expected"),
    [
        ("sqlite:///{tmp}/missing-dir/studies.db", "does not exist; create it"),
        ("mysql://u:secret@localhost/db", "not supported"),
        ("not a url", "is not a database URL"),
        ("sqlite:///:memory:", "would lose every trial"),
        ("postgresql://u:secret@127.0.0.1:1/db", "cannot reach PostgreSQL at 127.0.0.1:1"),
        pytest.param(
            "postgresql+psycopg://postgres:secret@127.0.0.1:5432/{missing}",
            "does not exist on 127.0.0.1:5432",
            marks=pytest.mark.integration,  # the server answers that the database is missing
        ),
    ],
)
def test_bad_storage_urls_fail_in_one_line_and_write_nothing(
    bad_url: str, expected: str, tmp_path: Path
) -> None:
    missing = f"ablation_missing_{time.time_ns()}"
    url = bad_url.format(tmp=tmp_path, missing=missing)
    with pytest.raises(StorageError) as info:
        open_storage(url)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message
    assert "secret" not in message
    assert list(tmp_path.iterdir()) == []
    admin = sa.create_engine(PG_ADMIN_URL)
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": missing}
        )
        assert exists.first() is None
    admin.dispose()


def test_storage_check_cli_reports_studies_and_errors(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    from storage.__main__ import main

    url = f"sqlite:///{tmp_path / 'studies.db'}"
    optuna.create_study(study_name="demo", storage=open_storage(url)).optimize(
        lambda t: 1.0, n_trials=2
    )
    assert main(["--storage", url]) == 0
    assert "demo: 2 complete" in capfd.readouterr().out
    assert main(["--storage", f"sqlite:///{tmp_path}/nope/x.db"]) == 2
    err = capfd.readouterr().err
    assert err.startswith("error: SQLite directory") and err.count("\n") == 1
