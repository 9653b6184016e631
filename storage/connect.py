"""Open the Optuna storage that every worker, the launcher and the dashboards share.

The storage is an ``RDBStorage`` with a heartbeat: a worker that dies mid-trial stops beating, the
trial is failed once the grace period passes, and the retry callback re-queues it with the same
params, so a killed worker never loses a grid cell. The server is probed before Optuna touches it,
so an unreachable server or a missing database is one line naming the fix and nothing is written.
"""

from __future__ import annotations

import inspect
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError

from objectives.errors import one_line
from storage.urls import StorageError, parse_url, redact, resolve_url


@dataclass(frozen=True)
class StorageSettings:
    """Heartbeat, retry and pool settings; defaults suit trials that take minutes on many workers.

    ``grace_period`` must exceed ``heartbeat_interval`` plus a worker's longest stall (GC, a slow
    step holding the GIL), or live trials get failed; ``max_retry`` bounds retries of one cell.
    """

    heartbeat_interval: int = 30
    grace_period: int = 120
    max_retry: int = 3
    pool_size: int = 5
    max_overflow: int = 10
    pool_recycle_seconds: int = 1800
    connect_timeout_seconds: int = 10


def open_storage(
    url: str | None = None, settings: StorageSettings | None = None
) -> optuna.storages.RDBStorage:
    """The study storage for ``url`` (see ``resolve_url``), probed, with heartbeat and retry.

    Raises ``StorageError`` (one line, password redacted) when the URL is malformed, the server is
    unreachable, the database is missing or the schema belongs to another Optuna version.
    """
    settings = settings or StorageSettings()
    parsed = parse_url(resolve_url(url))
    engine_kwargs = _engine_kwargs(parsed, settings)
    _probe(parsed, engine_kwargs)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.storages.RDBStorage(
                parsed.render_as_string(hide_password=False),
                engine_kwargs=engine_kwargs,
                heartbeat_interval=settings.heartbeat_interval,
                grace_period=settings.grace_period,
                **{_STALE_CALLBACK_KWARG: RETRY_CALLBACK(max_retry=settings.max_retry)},
            )
    except (RuntimeError, sa.exc.SQLAlchemyError) as exc:
        raise StorageError(
            f"cannot use storage '{redact(parsed)}': {one_line(exc, first_line=True)}; "
            "if the schema is from another Optuna version run `optuna storage upgrade --storage URL`"
        ) from None


def fail_stale_trials(study: optuna.Study) -> None:
    """Fail trials whose worker stopped beating, which re-queues them through the retry callback.

    Optuna only checks this when a new trial starts; launchers also call it at start and at the end so
    a dead worker's cell is not left RUNNING forever.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _engine_kwargs(parsed: URL, settings: StorageSettings) -> dict[str, Any]:
    if parsed.get_backend_name() == "sqlite":
        # Writers wait for the file lock instead of failing at once under concurrent workers.
        return {"connect_args": {"timeout": 60}, "pool_pre_ping": True}
    return {
        "pool_pre_ping": True,  # a restarted server's dead connections are replaced, not raised
        "pool_size": settings.pool_size,
        "max_overflow": settings.max_overflow,
        "pool_recycle": settings.pool_recycle_seconds,
        "connect_args": {"connect_timeout": settings.connect_timeout_seconds},
    }


def _probe(parsed: URL, engine_kwargs: dict[str, Any]) -> None:
    """Connect once with a throw-away engine and translate failures into a fix the user can apply."""
    engine = sa.create_engine(parsed, **engine_kwargs)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (OperationalError, DBAPIError) as exc:
        raise StorageError(_explain(parsed, exc.orig or exc)) from None
    finally:
        engine.dispose()


def _explain(parsed: URL, error: BaseException) -> str:
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}"
    lowered = str(error).lower()
    if parsed.get_backend_name() == "sqlite":
        return f"cannot open SQLite storage '{redact(parsed)}': {one_line(error, first_line=True)}"
    if "does not exist" in lowered and "database" in lowered:
        return (
            f"database '{parsed.database}' does not exist on {where}; create it "
            f"(createdb -h {parsed.host or 'localhost'} {parsed.database}) or fix the URL"
        )
    if "password authentication failed" in lowered or "authentication" in lowered:
        return f"PostgreSQL at {where} rejected user '{parsed.username}'; check the user/password in the storage URL"
    if "role" in lowered and "does not exist" in lowered:
        return f"PostgreSQL at {where} has no user '{parsed.username}'; create it or fix the URL"
    return (
        f"cannot reach PostgreSQL at {where} ({one_line(error, first_line=True)}); start the server "
        "(e.g. `docker compose up -d postgres`) or fix the host/port in the storage URL"
    )


# Optuna >= 4.9 renamed RetryFailedTrialCallback (kept as a deprecated alias, same methods): the
# callback the storage gets and the one whose ``retried_trial_number`` reads its lineage back.
RETRY_CALLBACK: Any = (
    getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    or optuna.storages.RetryFailedTrialCallback
)


_STALE_CALLBACK_KWARG = (
    "heartbeat_stale_trial_callback"
    if "heartbeat_stale_trial_callback" in inspect.signature(optuna.storages.RDBStorage).parameters
    else "failed_trial_callback"
)
