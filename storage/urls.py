"""Storage URLs: where the default comes from, which schemes we accept, how they are shown.

One resolution rule for every entry point (launcher, dashboard, reports): the explicit argument, else
``ABLATION_STORAGE``, else the embedded SQLite file ``studies.db`` in the working directory. URLs are
validated before anything connects, so a typo never creates a stray database file.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from objectives.errors import AblationError

ENV_VAR = "ABLATION_STORAGE"
DEFAULT_URL = "sqlite:///studies.db"
EXAMPLE_PG = "postgresql+psycopg://USER:PASSWORD@HOST:5432/DBNAME"


class StorageError(AblationError, RuntimeError):
    """A storage that cannot be used; the message is one line that names the fix."""


def resolve_url(url: str | None = None) -> str:
    """The storage URL to use: argument, else ``$ABLATION_STORAGE``, else ``sqlite:///studies.db``."""
    return url or os.environ.get(ENV_VAR) or DEFAULT_URL


def redact(url: str | URL) -> str:
    """The URL with its password hidden, for logs and error messages."""
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError:
        return "<unparseable storage URL>"
    return parsed.render_as_string(hide_password=True)


def parse_url(url: str) -> URL:
    """Validate ``url`` and normalise it to a driver we ship (psycopg 3 for PostgreSQL).

    Raises ``StorageError`` for anything that is not SQLite or PostgreSQL, and for a SQLite file whose
    directory does not exist (SQLite would otherwise fail later, or create the file somewhere odd).
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"storage URL '{redact(url)}' is not a database URL; use sqlite:///studies.db or {EXAMPLE_PG}"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _check_sqlite(parsed)
    if backend == "postgresql":
        if (
            parsed.get_driver_name() not in ("psycopg", "psycopg2")
            or parsed.drivername == "postgresql"
        ):
            parsed = parsed.set(drivername="postgresql+psycopg")
        if not parsed.database:
            raise StorageError(
                f"storage URL '{redact(parsed)}' names no database; append /DBNAME, e.g. {EXAMPLE_PG}"
            )
        return parsed
    raise StorageError(
        f"storage backend '{backend}' in '{redact(parsed)}' is not supported; "
        f"use sqlite:///studies.db (embedded) or {EXAMPLE_PG}"
    )


def _check_sqlite(parsed: URL) -> URL:
    database = parsed.database
    if not database or database == ":memory:":
        raise StorageError(
            "an in-memory SQLite storage would lose every trial; use a file, e.g. sqlite:///studies.db"
        )
    directory = Path(database).expanduser().resolve().parent
    if not directory.is_dir():
        raise StorageError(
            f"SQLite directory '{directory}' does not exist; create it or point the URL at an existing folder"
        )
    return parsed
