"""``--until-decided`` end to end on the smoke preset: real Ray, real trials, a killed launcher.

On the smoke preset the baseline is usually not shown to learn (4 steps), which withholds every
verdict, so no arm is decided and every arm runs to ``--max-seeds``: this checks the wiring (rounds
one seed at a time, the baseline on every seed an arm runs, the stopping reason stored and shown,
a killed launcher's race continued by a relaunch without re-running a finished cell). That decided
arms get no more seeds is checked on stored trials in ``tests/dashboards/test_sequential.py`` and by the
learning-preset run in docs/MEASUREMENTS.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from dashboards.ablation_table import build_table
from dashboards.records import load_records
from search.launch import main
from storage.study_records import read_cell, read_race_design
from tests.search_helpers import by_cell, lean_args, trials

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
STUDY = "layer-weights.smoke.model5.race"


def _race_args(tasks_dir: Path, url: str) -> list[str]:
    # No pruner: a pruned seed would stop its arm ('pruned'), and this checks the max-seeds path.
    args = lean_args(tasks_dir, url, "--max-concurrent", "1", "--grace-period", "4")
    args += ["--pruner", "none"]
    seeds = args.index("--seeds")
    args[seeds + 1] = "2"
    return ["--study", "layer-weights", *args, "--until-decided", "--max-seeds", "3"]


def _seeds(url: str) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    for arm, seed in by_cell(trials(url, STUDY), TrialState.COMPLETE):
        out.setdefault(arm, set()).add(seed)
    return out


def test_a_killed_race_is_continued_by_a_relaunch_to_max_seeds(
    tasks_dir: Path, sqlite_url: str, tmp_path: Path, capsys
) -> None:
    log = tmp_path / "first.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "search.launch", *_race_args(tasks_dir, sqlite_url)],
        cwd=REPO,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:  # kill the launcher as soon as the second round (seed 2) has started
        deadline = time.monotonic() + 400
        while not any(read_cell(t).seed == 2 for t in _safe_trials(sqlite_url)):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the race never reached its second round"
            time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    first = log.read_text()
    assert "looks 2 seeds at" in first and "race: look 2 needs 3 seeds" in first
    before = {
        t.number: t.value for t in trials(sqlite_url, STUDY) if t.state == TrialState.COMPLETE
    }
    assert _seeds(sqlite_url)["W on"] >= {0, 1}

    assert main(_race_args(tasks_dir, sqlite_url)) == 0  # the relaunch continues the race
    out = capsys.readouterr().out
    found = trials(sqlite_url, STUDY)
    complete = by_cell(found, TrialState.COMPLETE)
    assert set(complete) == {(arm, s) for arm in ("W on", "W off") for s in range(3)}
    assert all(len(cell) == 1 for cell in complete.values())  # nothing finished ran twice
    assert all(found[n].value == value for n, value in before.items())
    # The baseline ran every seed the arm ran; the arm stopped at max seeds, and says so.
    seeds = _seeds(sqlite_url)
    assert seeds["W off"] <= seeds["W on"]
    assert "race: 'W off' stopped at look 2 (max seeds) after 3 seeds" in out
    assert "race finished; looks 1: 2 seeds at alpha" in out
    table = build_table(load_records(STUDY, sqlite_url))  # what the printed table shows
    note = next(r for r in table.rows if r.arm == "W off").race
    assert note == "race: stopped at look 2 (max seeds) after 3 seeds, alpha 0.0336"
    assert "ablation table" in out and "race finished" in table.legend()
    assert "Lan-DeMets O'Brien-Fleming spending over seed rounds" in out
    design = read_race_design(optuna.load_study(study_name=STUDY, storage=sqlite_url))
    assert design is not None and (design.max_seeds, design.plan_seeds) == (3, 2)

    # A relaunch of a finished race queues nothing and starts no round.
    assert main(_race_args(tasks_dir, sqlite_url)) == 0
    out = capsys.readouterr().out
    assert "0 trials queued now" in out and "needs" not in out
    assert len(trials(sqlite_url, STUDY)) == len(found)


def _safe_trials(url: str) -> list[optuna.trial.FrozenTrial]:
    try:
        return [t for t in trials(url, STUDY) if read_cell(t) is not None]
    except KeyError:  # not created yet
        return []
