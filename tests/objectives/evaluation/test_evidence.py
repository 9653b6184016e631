"""Item-level evidence reproduces mteb's scores and survives the study storage (SQLite, PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from scipy.stats import spearmanr
from sklearn.metrics import v_measure_score

from objectives.categories import Category
from objectives.config.trial_config import EvalConfig
from objectives.evaluation.mteb_tasks import load_tasks
from objectives.evaluation.scoring import CachedEncoder, evaluate
from objectives.model.embedding_model import EmbeddingModel
from storage import open_storage
from storage.study_records import read_evidence, write_evidence
from tests.tiny_models import tiny_model_config

TASKS = ("SICK-R", "SciFactSubset", "Banking77Classification", "Banking77Intents")
# mteb rounds retrieval metrics to 5 decimals; every other score is reproduced to float precision.
TOLERANCE = {"SciFactSubset": 5e-6}


@pytest.fixture(scope="module")
def evaluation(tiny_encoder_dir: Path, tasks_dir: Path):
    torch.set_num_threads(1)
    model = EmbeddingModel.build(tiny_model_config(tiny_encoder_dir), seed=0)
    tasks = load_tasks(EvalConfig(tasks=TASKS, tasks_dir=str(tasks_dir), max_texts=120))
    encoder = CachedEncoder(model, name="tiny", embed_dim=model.dim, batch_size=32)
    return evaluate(encoder, tasks, progress=False)


@pytest.mark.parametrize("task", TASKS)
def test_each_task_score_is_recomputed_from_its_evidence(evaluation, task: str) -> None:
    evidence = evaluation.evidence[task]
    assert evidence.kind == evaluation.task_category[task]
    assert evidence.score() == pytest.approx(
        evaluation.task_scores[task], abs=TOLERANCE.get(task, 1e-6)
    )


def test_a_resampled_sts_score_is_scipy_spearman_of_the_drawn_pairs(evaluation) -> None:
    evidence = evaluation.evidence["SICK-R"]
    draws = np.random.default_rng(0).integers(0, evidence.n_items, (3, evidence.n_items))
    expected = [
        spearmanr(evidence.arrays["similarity"][row], evidence.arrays["gold"][row]).statistic
        for row in draws
    ]
    assert evidence.kind == Category.STS
    np.testing.assert_allclose(evidence.resampled(draws), expected, atol=1e-12)


def test_a_resampled_clustering_score_is_sklearn_v_measure_with_positions_repeated(
    evaluation,
) -> None:
    evidence = evaluation.evidence["Banking77Intents"]
    labels, drawn, assigned = (evidence.arrays[k] for k in ("labels", "drawn", "assigned"))
    draw = np.random.default_rng(1).integers(0, evidence.n_items, evidence.n_items)
    times = np.bincount(draw, minlength=evidence.n_items)
    expected = np.mean(
        [
            v_measure_score(np.repeat(labels[d], times[d]), np.repeat(a, times[d]))
            for d, a in zip(drawn, assigned, strict=True)
        ]
    )
    assert evidence.kind == Category.CLUSTERING
    assert evidence.resampled(draw[None, :])[0] == pytest.approx(expected, abs=1e-9)


def test_evidence_stored_as_a_system_attr_reads_back_identical(
    evaluation, any_storage_url: str
) -> None:
    storage = open_storage(any_storage_url)
    study = optuna.create_study(study_name=f"evidence-{id(evaluation)}", storage=storage)
    trial = study.ask()
    write_evidence(storage, trial._trial_id, evaluation.evidence)
    study.tell(trial, 0.5)

    frozen = optuna.load_study(
        study_name=study.study_name, storage=open_storage(any_storage_url)
    ).trials[0]
    back = read_evidence(frozen)
    assert frozen.user_attrs == {}
    assert set(back) == set(TASKS)
    for name, evidence in evaluation.evidence.items():
        assert back[name].items == evidence.items
        for key, array in evidence.arrays.items():
            np.testing.assert_array_equal(back[name].arrays[key], array)
        assert back[name].score() == evidence.score()


def test_a_trial_written_before_evidence_was_kept_reads_as_none() -> None:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert read_evidence(study.trials[0]) == {}
