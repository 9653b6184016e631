"""No evaluated text is ever trained on: pairs sharing a text with an evaluated task are dropped
whatever data a user brings, the count is stored with the trial, and the STS dev signal reads the
STS Benchmark validation split, never a test split."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import torch

from objectives.config.presets import preset_config
from objectives.config.trial_config import EvalConfig
from objectives.evaluation.mteb_tasks import load_tasks, task_texts
from objectives.evaluation.task_files import read_jsonl
from objectives.training.pairs import (
    DEV_STS_FILE,
    Pair,
    dev_sts,
    drop_overlap,
    load_pairs,
    normalise,
)
from objectives.trial.run import run_trial
from storage.study_records import read_dropped_overlap, write_result


def test_a_pair_with_any_evaluated_text_is_dropped_after_normalising() -> None:
    evaluated = {normalise("A man plays a guitar."), normalise("The cat sleeps")}
    pairs = [
        Pair("a man  plays a GUITAR.", "someone makes music"),  # the query, case and spaces aside
        Pair("a dog runs", "the cat sleeps"),  # the positive
        Pair("a dog runs", "an animal moves", "The cat sleeps"),  # the negative
        Pair("a dog runs", "an animal moves", "a dog sits"),
        Pair("a man plays a guitar", "music"),  # not the same text (no full stop)
    ]
    kept, dropped = drop_overlap(pairs, evaluated)
    assert dropped == 3 and kept == pairs[3:]
    assert drop_overlap(pairs, set()) == (pairs, 0)


def test_the_sts_dev_slice_comes_from_the_validation_split_only(tasks_dir: Path) -> None:
    assert DEV_STS_FILE == "sts/STSBenchmark/dev.jsonl"
    fields = {"sentence1": str, "sentence2": str, "score": (int, float)}
    dev = {(r["sentence1"], r["sentence2"]) for r in read_jsonl(tasks_dir / DEV_STS_FILE, fields)}
    test_file = tasks_dir / "sts/STSBenchmark/test.jsonl"
    test = {(r["sentence1"], r["sentence2"]) for r in read_jsonl(test_file, fields)}
    evaluated = {normalise(next(iter(dev))[0])}
    drawn = dev_sts(str(tasks_dir), 10_000, evaluated)
    pairs = {(left, right) for left, right, _ in drawn}
    assert pairs and pairs <= dev and not pairs & test
    assert len(drawn) < len(dev)  # the pair sharing an evaluated sentence is left out
    assert all(normalise(left) not in evaluated for left, _ in pairs)


def test_a_trial_drops_overlapping_pairs_and_stores_the_count_and_instructions(
    tiny_encoder_dir: Path, tasks_dir: Path, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    eval_config = EvalConfig(tasks=("SICK-R",), tasks_dir=str(tasks_dir), max_texts=64)
    evaluated = sorted(task_texts(load_tasks(eval_config)[0]))
    clean = load_pairs(str(tasks_dir / "train" / "pairs.jsonl"))[:60]
    leaking = [
        {"query": evaluated[0].upper(), "positive": "x y z"},
        {"query": "p q r", "positive": f"  {evaluated[1]} "},
        {"query": "s t u", "positive": "v w", "negative": evaluated[2]},
    ]
    path = tmp_path / "pairs.jsonl"
    rows = [{"query": p.query, "positive": p.positive} for p in clean] + leaking
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = preset_config(
        "smoke",
        {
            "model.backbone": str(tiny_encoder_dir),
            "eval.tasks_dir": str(tasks_dir),
            "eval.tasks": "SICK-R",
            "eval.use_instructions": True,
            "train.data": str(path),
            "train.steps": 1,
            "train.eval_every": 1,
        },
    )
    result = run_trial(config, progress=False)
    assert result.data == {"dropped_overlap": 3}
    stored = optuna.trial.create_trial(value=result.average)
    write_result(stored, result)
    assert read_dropped_overlap(stored) == 3  # what the launcher reports
    assert result.config["eval"]["instructions"] == [
        ["SICK-R", "Retrieve semantically similar text."]
    ]
