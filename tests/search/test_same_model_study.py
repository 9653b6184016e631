"""Two arms that build the same model never differ in the table: a real launch, real trials.

The arms differ only in the evaluation batch size, which changes no score beyond float noise, and
run on the same seeds; whatever the noise, the table must not call one better or worse.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboards.ablation_table import build_table
from dashboards.records import load_records
from dashboards.verdicts import BETTER, WORSE, verdict_kind
from search.launch import main

pytestmark = pytest.mark.integration

PLAN = """\
name: eval-batch
description: the same model scored with two evaluation batch sizes
ablated: evaluation batch size
action: replace
base: model5
baseline: batch 32
arms:
  - label: batch 32
    overrides: {eval.batch_size: 32}
  - label: batch 8
    overrides: {eval.batch_size: 8}
seeds: 3
metrics: [STS, Retrieval, Classification, Clustering]
"""


@pytest.mark.slow
def test_arms_that_build_the_same_model_are_never_better_or_worse(
    tasks_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    plan = tmp_path / "eval-batch.yaml"
    plan.write_text(PLAN, encoding="utf-8")
    args = ["--plan", str(plan), "--preset", "smoke", "--tasks-dir", str(tasks_dir)]
    args += ["--storage", sqlite_url, "--set", "eval.max_texts=32", "--max-concurrent", "2"]
    args += ["--set", "eval.tasks=SICK-R,SciFactSubset,Banking77Classification,Banking77Intents"]
    args += ["--study-name", "eval-batch", "--results-dir", str(tmp_path / "results")]
    assert main(args) == 0
    table = build_table(load_records("eval-batch", sqlite_url))
    arm = next(r for r in table.rows if r.arm == "batch 8")
    assert arm.shared == 3
    words = {column: cell.verdict for column, cell in arm.cells.items()}
    assert words and all(verdict_kind(w) not in (BETTER, WORSE) for w in words.values()), words
    for cell in arm.cells.values():  # the same model: the differences are float noise at most
        assert abs(cell.delta) < 1e-3
