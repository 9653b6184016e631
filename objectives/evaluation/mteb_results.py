"""Trial scores in MTEB's own results format, so mteb's loaders and leaderboard tools read them.

Each arm x seed cell is one model entry of mteb's results-folder layout,
``<results dir>/results/<model>/<revision>/<task>.json`` with its ``model_meta.json``: the model is
named after the study, the revision after the arm and seed, so cells never overwrite each other
and ``mteb.ResultCache(dir).load_results()`` lists every cell as a model revision.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MODEL_PREFIX = "embedding-ablation"


def cell_revision(arm: str, seed: int) -> str:
    """A path-safe revision naming one cell, e.g. ``W-off.seed1``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", arm).strip("-") or "arm"
    return f"{safe}.seed{seed}"


def write_results(
    results_dir: str | Path,
    task_results: Iterable[Any],
    *,
    study: str,
    arm: str,
    seed: int,
    embed_dim: int | None = None,
) -> list[Path]:
    """Save mteb ``TaskResult`` objects for one cell with mteb's ``ResultCache``; their paths."""
    from mteb.cache import ResultCache
    from mteb.models.model_meta import ModelMeta, ScoringFunction

    meta = ModelMeta.create_empty(
        overwrites={
            "name": f"{MODEL_PREFIX}/{study}",
            "revision": cell_revision(arm, seed),
            "embed_dim": embed_dim,
            "similarity_fn_name": ScoringFunction.COSINE,
            "framework": ["PyTorch"],
            "loader": None,
        }
    )
    cache = ResultCache(Path(results_dir))
    paths = []
    for result in task_results:
        cache.save_to_cache(result, meta)
        paths.append(cache.get_task_result_path(result.task_name, meta))
    return paths
