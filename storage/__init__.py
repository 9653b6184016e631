"""Where results live: one place that turns a storage URL into an Optuna storage.

SQLite (``sqlite:///studies.db``) is the embedded default; PostgreSQL is for real deployments. The
storage keeps a heartbeat so that a dead worker's trial is failed and retried, and bad URLs or
unreachable servers are reported in one line before anything is written.
"""

from storage.connect import StorageSettings, fail_stale_trials, open_storage
from storage.evidence import read_evidence, write_evidence
from storage.study_records import retried_from
from storage.urls import DEFAULT_URL, ENV_VAR, StorageError, parse_url, redact, resolve_url

__all__ = [
    "DEFAULT_URL",
    "ENV_VAR",
    "StorageError",
    "StorageSettings",
    "fail_stale_trials",
    "open_storage",
    "parse_url",
    "read_evidence",
    "redact",
    "resolve_url",
    "retried_from",
    "write_evidence",
]
