"""``run_trial`` end to end offline: training, reports, all four categories, costs, failures."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from objectives.config.presets import preset_config
from objectives.evaluation.task_files import TaskDataError
from objectives.trial.results import CATEGORIES
from objectives.trial.run import run_trial

ALL_CATEGORIES = "SICK-R,STS14,SciFactSubset,Banking77Classification,Banking77Intents"


class Pruned(Exception):
    """Stands in for optuna.TrialPruned: objectives must let any report exception through."""


def _smoke(backbone: Path, tasks_dir: Path, **changes: object):
    values = {"model.backbone": str(backbone), "eval.tasks_dir": str(tasks_dir)}
    values["eval.tasks"] = ALL_CATEGORIES
    values.update(changes)
    return preset_config("smoke", values)


@pytest.fixture(scope="module")
def smoke_runs(tiny_encoder_dir: Path, tasks_dir: Path):
    """The same smoke trial twice (same seed), recording its reports."""
    torch.set_num_threads(1)
    runs = []
    for _ in range(2):
        reports: list[tuple[int, dict[str, float]]] = []
        config = _smoke(tiny_encoder_dir, tasks_dir)
        result = run_trial(config, lambda step, proxies, out=reports: out.append((step, proxies)))
        runs.append((config, result, reports))
    return runs


def test_smoke_trial_scores_all_four_categories(smoke_runs) -> None:
    config, result, _ = smoke_runs[0]
    assert set(result.task_scores) == set(ALL_CATEGORIES.split(","))
    assert list(result.category_scores) == list(CATEGORIES)
    assert all(math.isfinite(v) for v in result.task_scores.values())
    assert result.average == pytest.approx(sum(result.category_scores.values()) / 4)
    assert result.category_scores["STS"] == pytest.approx(
        (result.task_scores["SICK-R"] + result.task_scores["STS14"]) / 2
    )
    costs = dataclasses.asdict(result.costs)
    assert set(costs) == {
        "load_seconds",
        "train_seconds",
        "eval_seconds",
        "train_pairs_per_second",
        "eval_texts_per_second",
        "peak_memory_mb",
    }
    assert all(v > 0 for v in costs.values())
    assert result.params["trainable"] > result.params["head"] > 0
    assert result.config["eval"]["tasks_dir"] == str(Path(config.eval.tasks_dir).resolve())
    assert result.config["train"]["data"].endswith("train/pairs.jsonl")
    assert result.config["device"] == "cpu"
    assert {"torch", "transformers", "peft", "mteb"} <= set(result.versions)


def test_a_trial_records_the_commit_and_a_hash_of_every_task_and_of_the_training_data(
    smoke_runs,
) -> None:
    config, result, _ = smoke_runs[0]
    provenance = result.provenance
    assert provenance["commit"] and len(provenance["commit"].split("+")[0]) == 40
    tasks = {f"task.{name}" for name in config.eval.tasks}
    assert set(provenance["data"]) == tasks | {"train"}
    assert (
        len(set(provenance["data"].values())) == len(tasks) + 1
    )  # distinct files, distinct hashes
    assert smoke_runs[1][1].provenance == result.provenance  # same data, same record


def test_reports_come_before_training_and_every_eval_every_steps_with_a_proxy_per_category(
    smoke_runs,
) -> None:
    config, _, reports = smoke_runs[0]
    assert config.train.steps == 4 and config.train.eval_every == 2
    assert [step for step, _ in reports] == [0, 2, 4]
    assert all(list(proxies) == list(CATEGORIES) for _, proxies in reports)
    assert all(-1.0 <= value <= 1.0 for _, proxies in reports for value in proxies.values())


def test_same_seed_gives_the_same_result_on_cpu(smoke_runs) -> None:
    (_, first, first_reports), (_, second, second_reports) = smoke_runs
    assert first.task_scores == second.task_scores
    assert first_reports == second_reports


def test_a_raising_report_stops_training_at_once(tiny_encoder_dir: Path, tasks_dir: Path) -> None:
    steps: list[int] = []

    def prune(step: int, proxies: dict[str, float]) -> None:
        steps.append(step)
        if step > 0:  # the search layer never prunes before training
            raise Pruned

    with pytest.raises(Pruned):
        run_trial(_smoke(tiny_encoder_dir, tasks_dir, **{"train.steps": 6}), prune)
    assert steps == [0, 2]


def test_decoder_smoke_trial_with_eos_pooling(tiny_decoder_dir: Path, tasks_dir: Path) -> None:
    config = _smoke(
        tiny_decoder_dir,
        tasks_dir,
        **{"model.pooling.kind": "eos", "model.attention": "causal", "eval.tasks": "SICK-R"},
    )
    result = run_trial(config)
    assert math.isfinite(result.average) and result.params["head"] == 0


def test_missing_task_file_fails_before_training(tiny_encoder_dir: Path, tmp_path: Path) -> None:
    reports: list[int] = []
    (tmp_path / "sts/SICK-R").mkdir(parents=True)  # a manifest whose data file is missing
    (tmp_path / "sts/SICK-R/task.yaml").write_text(
        "name: SICK-R\ntype: STS\ndescription: d\nlicense: l\n"
    )
    with pytest.raises(TaskDataError, match=r"sts/SICK-R/test.jsonl: file not found"):
        run_trial(_smoke(tiny_encoder_dir, tmp_path), lambda step, proxies: reports.append(step))
    assert reports == []
