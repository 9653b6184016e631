"""``python -m objectives.evaluation.saved_model``: saved models re-score to the same numbers, and the evaluation
path reproduces MTEB's published score of the untrained packaged MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from objectives.config.trial_config import EvalConfig, ModelConfig, PoolingConfig
from objectives.evaluation.saved_model import main, save_eval_config, score
from objectives.model.embedding_model import EmbeddingModel

# mteb's published all-MiniLM-L6-v2 result on STSBenchmark (test split, cosine Spearman).
PUBLISHED_MINILM_STSB = 0.82032


def _last_json(out: str) -> dict[str, float]:
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_untrained_minilm_with_mean_pooling_gives_mtebs_published_stsb_score(
    tasks_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "--model",
            "minilm",
            "--pooling",
            "mean",
            "--max-length",
            "256",
            "--tasks",
            "STSBenchmark",
            "--tasks-dir",
            str(tasks_dir),
            "--json",
        ]
    )
    assert code == 0
    assert _last_json(capsys.readouterr().out)["STSBenchmark"] == pytest.approx(
        PUBLISHED_MINILM_STSB, abs=1e-4
    )


def test_a_saved_model_rescored_from_its_directory_gives_the_same_scores(
    tasks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    head = PoolingConfig(kind="multi_layer", heads=2, head_dim=16, n_latents=4)
    model_config = ModelConfig(backbone="minilm", pooling=head, max_length=32)
    eval_config = EvalConfig(
        tasks=("SICK-R", "Banking77Intents"), tasks_dir=str(tasks_dir), max_texts=40
    )
    model = EmbeddingModel.build(model_config, seed=3)
    model.save(tmp_path / "model")
    save_eval_config(tmp_path / "model", eval_config)

    assert main(["--model", str(tmp_path / "model"), "--json"]) == 0
    rescored = _last_json(capsys.readouterr().out)
    assert set(rescored) == set(eval_config.tasks)
    assert rescored == pytest.approx(score(model, eval_config, progress=False), abs=1e-6)
    # Another initialisation scores differently, so the directory's own head was the one used.
    other = EmbeddingModel.build(model_config, seed=4)
    assert rescored != pytest.approx(score(other, eval_config, progress=False), abs=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "minilm", "--pooling", "multi_layer"], "needs a trained model directory"),
        (["--model", "minilm", "--tasks", "NoSuchTask"], "NoSuchTask"),
        (["--model", "minilm", "--max-texts", "many"], "max_texts"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tasks_dir: Path, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*args, "--tasks-dir", str(tasks_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert message in err
