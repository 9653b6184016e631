"""What a researcher takes away from a study: MTEB-format result files mteb itself loads, saved
models that re-score to the numbers stored with their trials, and each trial's provenance, on
SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import mteb
import optuna
import pytest
from optuna.trial import TrialState

from objectives.evaluation.saved_model import main as evaluate_main
from search.launch import main
from storage.study_records import (
    read_cell,
    read_data_hashes,
    read_model_dir,
    read_result,
    read_result_files,
)
from tests.search_helpers import lean_args, trials

pytestmark = pytest.mark.integration


def test_a_study_writes_mteb_results_and_models_that_rescore_to_the_stored_scores(
    tasks_dir: Path, tmp_path: Path, any_storage_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    study = f"outputs-{uuid.uuid4().hex[:8]}"  # the PostgreSQL database is the session's
    out = tmp_path / "results"
    args = lean_args(tasks_dir, any_storage_url, "--pruner", "none", "--results-dir", str(out))
    assert main(["--study", "layer-weights", *args, "--study-name", study, "--save-models"]) == 0
    done = [t for t in trials(any_storage_url, study) if t.state == TrialState.COMPLETE]
    assert len(done) == 2
    data = read_data_hashes(optuna.load_study(study_name=study, storage=any_storage_url))
    results = {trial.number: read_result(trial) for trial in done}
    for result in results.values():  # what produced each number: the study's data, this checkout
        assert result.provenance["data"] == data
        assert result.provenance["commit"]
        assert {"torch", "mteb", "optuna"} <= set(result.versions)

    loaded = mteb.ResultCache(out).load_results(include_remote=False)
    by_revision = {m.model_revision: m for m in loaded.model_results}
    assert set(by_revision) == {"W-on.seed0", "W-off.seed0"}
    for trial in done:
        files = read_result_files(trial)
        assert files and all(Path(f).is_file() for f in files)
        model_result = by_revision[f"{read_cell(trial).arm.replace(' ', '-')}.seed0"]
        mteb_scores = {r.task_name: r.get_score() for r in model_result.task_results}
        stored = results[trial.number].task_scores
        assert mteb_scores == pytest.approx(stored, abs=1e-6)  # mteb rounds its files

    trial = done[0]
    capsys.readouterr()
    assert evaluate_main(["--model", read_model_dir(trial), "--json"]) == 0
    rescored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rescored == pytest.approx(results[trial.number].task_scores, abs=1e-4)
