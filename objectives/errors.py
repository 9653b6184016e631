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
    # True for an error of a trial that every cell of its study would hit, so the scheduler stops
    # the study instead of running more cells into it (``search.worker.stops_study``).
    stops_study: bool = False


def one_line(
    error: BaseException, *, first_line: bool = False, typed: bool = False, limit: int | None = None
) -> str:
    """``error``'s message on one line (a wrapped library message may span several).

    ``first_line``: only the message's first line (a parser's message goes on with context lines);
    ``typed``: ``Type: first line of the message``, what a trial's error record and the logs show;
    ``limit``: at most that many characters of the message (a library's message quoted in ours).
    """
    text = str(error).strip()
    if (first_line or typed) and text:
        text = text.splitlines()[0]
    text = " ".join(text.split())[:limit]
    if not typed:
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
