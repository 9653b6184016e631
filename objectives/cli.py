"""One wrapper for every command's ``main`` and one parser: user errors are one line, Ctrl-C is
exit 130.

Without it each command caught its own error classes and printed them its own way, and an error
class one of them forgot (a missing decoder package in the launcher) surfaced as a traceback. A
``main`` decorated with ``one_line_errors`` may raise any ``AblationError``; the wrapper prints
``error: <message>`` on stderr and returns the error's ``exit_code``, so ``main(argv)`` stays a
plain function that returns an exit code (what tests call) and ``sys.exit(main())`` runs it.
``Parser`` gives argparse's usage errors the same shape: one line naming ``--help``, exit 2.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable
from typing import NoReturn

from objectives.errors import EXIT_INPUT, AblationError, one_line

__all__ = ["EXIT_INTERRUPTED", "Main", "Parser", "one_line_errors"]

EXIT_INTERRUPTED = 130  # the shell's code for a command stopped by SIGINT
Main = Callable[[list[str] | None], int | None]


def one_line_errors(main: Main) -> Callable[[list[str] | None], int]:
    """``main`` whose ``AblationError`` becomes one stderr line and its exit code, whose
    ``KeyboardInterrupt`` becomes exit 130, and whose ``None`` becomes 0."""

    @functools.wraps(main)
    def run(argv: list[str] | None = None) -> int:
        try:
            return main(argv) or 0
        except AblationError as error:
            print(f"error: {one_line(error)}", file=sys.stderr, flush=True)
            return error.exit_code
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED

    return run


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line that points at ``--help``, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"error: {message}; see {self.prog} --help\n")
