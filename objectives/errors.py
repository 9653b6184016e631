"""The project's one error root: every error a user can fix is an ``AblationError``.

Each command (launcher, report, dashboard, storage check, evaluation) turns an ``AblationError``
into one ``error:`` line and its ``exit_code`` (``objectives.cli.one_line_errors``) instead of a
traceback; anything else is a bug and keeps its traceback. Subclasses keep the built-in base their
callers already catch (``ConfigError`` is also a ``ValueError``, ``StorageError`` a
``RuntimeError``), so the root adds a contract without changing what an ``except`` sees. This module
imports nothing, so every layer (``storage`` and ``dashboards`` included) can depend on it.
"""

from __future__ import annotations

__all__ = ["EXIT_INPUT", "AblationError", "one_line"]

EXIT_INPUT = 2  # bad input, as argparse exits: the user changes a flag, a file or an install


class AblationError(Exception):
    """An error the user can fix; its message is one line that names the fix."""

    exit_code: int = EXIT_INPUT


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (a wrapped library message may span several)."""
    return " ".join(str(error).split()) or type(error).__name__
