"""The ``--storage`` flag every command shares, and opening it the way a command line should.

Each CLI (launcher, dashboard, report, storage check) takes the same flag with the same default and
turns a storage failure into one ``error:`` line and exit code 2; this keeps them saying the same.
"""

from __future__ import annotations

import argparse
import sys

import optuna

from storage.connect import open_storage
from storage.urls import DEFAULT_URL, ENV_VAR, StorageError


def add_storage_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--storage URL`` with the shared default ($ABLATION_STORAGE, else the SQLite file)."""
    parser.add_argument("--storage", help=f"storage URL (default: ${ENV_VAR}, else {DEFAULT_URL})")


def open_storage_or_exit(url: str) -> optuna.storages.RDBStorage:
    """``open_storage(url)``, or print its one-line error and exit with code 2."""
    try:
        return open_storage(url)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
