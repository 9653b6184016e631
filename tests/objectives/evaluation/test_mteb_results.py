"""Trial scores written in MTEB's results layout load back with mteb's own loader."""

from __future__ import annotations

from pathlib import Path

import mteb
import pytest

from objectives.config.trial_config import EvalConfig, ModelConfig, PoolingConfig
from objectives.evaluation.mteb_results import cell_revision, write_results
from objectives.evaluation.mteb_tasks import load_tasks
from objectives.evaluation.scoring import CachedEncoder
from objectives.model.embedding_model import EmbeddingModel


def test_every_cell_is_a_model_revision_that_mtebs_loader_reads_with_the_same_scores(
    tasks_dir: Path, tmp_path: Path
) -> None:
    config = EvalConfig(
        tasks=("SICK-R", "Banking77Intents"), tasks_dir=str(tasks_dir), max_texts=40
    )
    tasks = load_tasks(config)
    model = EmbeddingModel.build(
        ModelConfig(pooling=PoolingConfig(kind="mean"), lora=None, max_length=32)
    )
    encoder = CachedEncoder(model, name="minilm", embed_dim=model.dim, batch_size=32)
    results = mteb.evaluate(encoder, tasks, cache=None, show_progress_bar=False).task_results
    for arm, seed in (("W off", 0), ("W on", 1)):
        paths = write_results(tmp_path, results, study="layer-weights.cpu", arm=arm, seed=seed)
        assert all(p.is_file() for p in paths) and len(paths) == 2

    loaded = mteb.ResultCache(tmp_path).load_results(include_remote=False)
    revisions = {m.model_revision: m for m in loaded.model_results}
    assert (
        set(revisions)
        == {cell_revision("W off", 0), cell_revision("W on", 1)}
        == {
            "W-off.seed0",
            "W-on.seed1",
        }
    )
    for model_result in revisions.values():
        assert model_result.model_name == "embedding-ablation/layer-weights.cpu"
        scores = {r.task_name: r.get_score() for r in model_result.task_results}
        assert scores == pytest.approx({r.task_name: r.get_score() for r in results})
