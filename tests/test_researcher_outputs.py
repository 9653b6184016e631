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

from objectives.evaluate import main as evaluate_main
from search.launch import main
from search.runner import MODEL_DIR, RESULT_FILES
from storage.study_records import read_data_hashes
from tests.search_helpers import lean_args, trials


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
    for trial in done:  # what produced each number: the study's data, this checkout, libraries
        provenance = trial.user_attrs["provenance"]
        assert provenance["data"] == data
        assert provenance["commit"]
        assert {"torch", "mteb", "optuna"} <= set(trial.user_attrs["versions"])

    loaded = mteb.ResultCache(out).load_results(include_remote=False)
    by_revision = {m.model_revision: m for m in loaded.model_results}
    assert set(by_revision) == {"W-on.seed0", "W-off.seed0"}
    for trial in done:
        files = trial.user_attrs[RESULT_FILES]
        assert all(Path(f).is_file() for f in files)
        model_result = by_revision[f"{trial.params['arm'].replace(' ', '-')}.seed0"]
        mteb_scores = {r.task_name: r.get_score() for r in model_result.task_results}
        stored = {
            k.removeprefix("score."): v
            for k, v in trial.user_attrs.items()
            if k.startswith("score.")
        }
        assert mteb_scores == pytest.approx(stored, abs=1e-6)  # mteb rounds its files

    trial = done[0]
    capsys.readouterr()
    assert evaluate_main(["--model", trial.user_attrs[MODEL_DIR], "--json"]) == 0
    rescored = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    stored = {
        k.removeprefix("score."): v for k, v in trial.user_attrs.items() if k.startswith("score.")
    }
    assert rescored == pytest.approx(stored, abs=1e-4)
