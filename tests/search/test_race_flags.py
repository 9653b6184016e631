"""``--until-decided`` flags: what the launcher refuses (one line, exit 2, nothing written), and what
a dry run says about the race. No Ray, no trial."""

from __future__ import annotations

import sys
from pathlib import Path

import optuna
import pytest

from search.launch import main
from storage.study_records import RaceDesign, read_race_design, write_race_design


def _exit(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exited:
        sys.exit(main(argv))
    return exited.value.code


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--until-decided"], "--until-decided needs --max-seeds N"),
        (["--max-seeds", "6"], "--max-seeds only apply with --until-decided"),
        (["--budget-trials", "20"], "--budget-trials only apply with --until-decided"),
        (
            ["--budget-hours", "2", "--max-seeds", "4"],
            "--budget-hours and --max-seeds only apply with --until-decided",
        ),
        (["--until-decided", "--max-seeds", "1"], "--max-seeds must be 2 to 50, got 1"),
        (["--until-decided", "--max-seeds", "500"], "--max-seeds must be 2 to 50, got 500"),
        (["--until-decided", "--max-seeds", "4", "--seeds", "5"], "below the 5 seeds"),
    ],
)
def test_bad_race_flags_are_one_line_exit_2_and_write_nothing(
    extra: list[str], fragment: str, tasks_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)  # the default storage would be ./studies.db
    argv = ["--study", "layer-weights", "--preset", "smoke", "--tasks-dir", str(tasks_dir)]
    assert _exit([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_relaunch_with_another_race_design_is_refused_and_writes_nothing(
    tasks_dir: Path, sqlite_url: str, capsys
) -> None:
    study = optuna.create_study(study_name="s", storage=sqlite_url)
    stored = RaceDesign(max_seeds=4, plan_seeds=2)
    write_race_design(study, stored)
    argv = ["--study", "layer-weights", "--preset", "smoke", "--tasks-dir", str(tasks_dir)]
    argv += ["--storage", sqlite_url, "--study-name", "s", "--seeds", "2"]
    assert _exit([*argv, "--until-decided", "--max-seeds", "5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--until-decided --max-seeds 4 --seeds 2" in err and len(err.splitlines()) == 1
    assert _exit(argv) == 2  # without the race flags: another design too
    assert "relaunch with those flags" in capsys.readouterr().err
    again = optuna.load_study(study_name="s", storage=sqlite_url)
    assert read_race_design(again) == stored and not again.trials
    assert "plan" not in again.user_attrs  # prepare_study never ran


def test_a_race_on_a_study_run_with_fixed_seeds_is_refused(
    tasks_dir: Path, sqlite_url: str, capsys
) -> None:
    study = optuna.create_study(study_name="s", storage=sqlite_url, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=0.5))
    argv = ["--study", "layer-weights", "--preset", "smoke", "--tasks-dir", str(tasks_dir)]
    argv += ["--storage", sqlite_url, "--study-name", "s", "--until-decided", "--max-seeds", "4"]
    assert _exit(argv) == 2
    assert "run with a fixed number of seeds" in capsys.readouterr().err
    assert read_race_design(optuna.load_study(study_name="s", storage=sqlite_url)) is None


def test_a_dry_run_names_the_race_and_its_looks(tasks_dir: Path, tmp_path: Path, capsys) -> None:
    argv = ["--study", "layer-weights", "--preset", "smoke", "--tasks-dir", str(tasks_dir)]
    argv += ["--storage", f"sqlite:///{tmp_path / 'x.db'}", "--dry-run"]
    assert main([*argv, "--until-decided", "--max-seeds", "5", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "layer-weights.smoke.model5.race" in out  # a race never shares a fixed study's name
    assert "Lan-DeMets O'Brien-Fleming spending" in out
    assert "looks 3 seeds at 0.0114, 4 seeds at 0.017, 5 seeds at 0.0216" in out
    assert list(tmp_path.iterdir()) == []
