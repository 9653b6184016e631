"""The ``--storage`` flag every command shares, with the same default everywhere.

Each CLI (launcher, dashboard, report, storage check) takes the same flag with the same default; a
storage that cannot be opened raises ``StorageError``, which every command's
``objectives.cli.one_line_errors`` wrapper turns into one ``error:`` line and exit code 2.
"""

from __future__ import annotations

import argparse

from storage.urls import DEFAULT_URL, ENV_VAR


def add_storage_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--storage URL`` with the shared default ($ABLATION_STORAGE, else the SQLite file)."""
    parser.add_argument("--storage", help=f"storage URL (default: ${ENV_VAR}, else {DEFAULT_URL})")
