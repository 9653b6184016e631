"""What a researcher takes away from a study: MTEB-format result files mteb itself loads, and saved
models that re-score to the numbers stored with their trials."""

from __future__ import annotations

import json
from pathlib import Path

import mteb
import pytest
from optuna.trial import TrialState

from objectives.evaluate import main as evaluate_main
from search.launch import main
from search.runner import MODEL_DIR, RESULT_FILES
from tests.search_helpers import lean_args, trials

STUDY = "layer-weights.smoke.model5"


def test_a_study_writes_mteb_results_and_models_that_rescore_to_the_stored_scores(
    tasks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    out = tmp_path / "results"
    args = lean_args(tasks_dir, url, "--pruner", "none", "--results-dir", str(out))
    assert main(["--study", "layer-weights", *args, "--save-models"]) == 0
    done = [t for t in trials(url, STUDY) if t.state == TrialState.COMPLETE]
    assert len(done) == 2

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
