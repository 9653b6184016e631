"""The reference row: the untrained backbone with mean pooling, stored once per study by the
service's own writer (``storage.study_records.write_reference``) and shown in every view of the
ablation table beside the arms, never in a verdict."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from dashboards.ablation_table import build_table
from dashboards.exports import console_table, to_csv, to_latex, to_markdown
from dashboards.records import load_records
from dashboards.report import main as report_main
from objectives.config.presets import preset_config
from objectives.config.trial_config import override
from objectives.evaluation.reference import REFERENCE_LABEL, reference_config, score_reference
from objectives.trial.results import ReferenceResult, category_means
from storage.study_records import read_reference, write_reference
from tests.study_fixtures import TASKS, write_study

SCORES = {task: 0.2 + 0.05 * i for i, task in enumerate(TASKS)}
CATEGORY_SCORES = category_means(SCORES, TASKS)
REFERENCE = ReferenceResult(
    label=REFERENCE_LABEL,
    task_scores=SCORES,
    category_scores=CATEGORY_SCORES,
    objective=sum(CATEGORY_SCORES.values()) / len(CATEGORY_SCORES),
    config={"model": {"pooling": {"kind": "mean"}}},
    seconds=12.5,
)
LABEL = f"{REFERENCE_LABEL} (reference)"


@pytest.fixture
def url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    write_study(url)
    return url


def _add_reference(url: str) -> None:
    write_reference(optuna.load_study(study_name="layer-weights", storage=url), REFERENCE)


def test_the_stored_reference_reads_back_and_a_study_without_one_has_no_row(url: str) -> None:
    study = optuna.load_study(study_name="layer-weights", storage=url)
    assert read_reference(study) is None
    assert build_table(load_records("layer-weights", url)).reference is None
    _add_reference(url)
    assert read_reference(optuna.load_study(study_name="layer-weights", storage=url)) == REFERENCE


def test_the_reference_scores_are_a_row_of_the_table_and_change_no_verdict(url: str) -> None:
    before = build_table(load_records("layer-weights", url))
    _add_reference(url)
    table = build_table(load_records("layer-weights", url))
    assert table.rows == before.rows  # not an arm: no verdict, no best mark, no Holm test
    assert table.tests == before.tests
    expected = {**CATEGORY_SCORES, "average": REFERENCE.objective}
    assert table.reference.label == LABEL
    assert table.reference.values == pytest.approx(expected)


def test_every_export_shows_the_reference_row(url: str, tmp_path: Path) -> None:
    _add_reference(url)
    table = build_table(load_records("layer-weights", url))
    sts = f"{CATEGORY_SCORES['STS']:.4f}"

    line = next(row for row in to_markdown(table).splitlines() if LABEL in row)
    assert f"*{sts}*" in line and f"*{REFERENCE.objective:.4f}*" in line

    rows = list(csv.DictReader(io.StringIO(to_csv(table))))
    reference = [r for r in rows if r["reference"] == "True"]
    assert [r["arm"] for r in reference] == [LABEL]
    assert float(reference[0]["STS_mean"]) == pytest.approx(CATEGORY_SCORES["STS"])
    assert reference[0]["STS_verdict"] == "" and reference[0]["STS_delta"] == ""
    assert all(r["reference"] == "False" for r in rows if r["arm"] != LABEL)

    latex = to_latex(table)
    assert rf"\textit{{{sts}}}" in latex

    console = Console(record=True, width=400)
    console.print(console_table("layer-weights", url)[0])
    assert "layer-weights: ablation table" in console.export_text(clear=False)
    line = next(row for row in console.export_text().splitlines() if LABEL in row)
    assert line.split("│")[2].strip() == sts  # the STS column, after the arm's

    out = tmp_path / "report.html"
    assert report_main(["--study", "layer-weights", "--storage", url, "--out", str(out)]) == 0
    html = out.read_text()
    assert f'<tr class="reference"><td>{LABEL}</td><td>{sts}</td>' in html


def test_the_reference_is_the_backbone_as_released_scored_on_the_arms_texts(
    tasks_dir: Path,
) -> None:
    arm = preset_config(
        "smoke",
        {
            "eval.tasks_dir": str(tasks_dir),
            "eval.tasks": "STSBenchmark",
            "eval.max_texts": 32,
            "model.attention": "causal",
            "model.pooling.kind": "eos",
        },
    )
    reference = reference_config(arm)
    assert reference.model.pooling.kind == "mean" and reference.model.lora is None
    assert reference.model.attention == "bidirectional"  # MiniLM, an encoder, as released
    assert reference.eval == arm.eval and reference.model.max_length == arm.model.max_length
    assert reference_config(override(arm, {"model.backbone": "smollm2-135m"})).model.attention == (
        "causal"
    )
    result = score_reference(arm)
    assert result.label == REFERENCE_LABEL and set(result.task_scores) == {"STSBenchmark"}
    assert result.category_scores == {"STS": result.task_scores["STSBenchmark"]}
    assert result.objective == pytest.approx(result.task_scores["STSBenchmark"])
    assert result.config["model"]["pooling"]["kind"] == "mean"
    assert 0.5 < result.task_scores["STSBenchmark"] <= 1  # MiniLM is a sentence encoder already
