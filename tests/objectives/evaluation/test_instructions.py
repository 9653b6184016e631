"""Every evaluated task gets its instruction when a preset asks for it: an override first, then the
task's own, then its type's; symmetric tasks on both sides, retrieval on queries only."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from objectives.config.presets import preset_config
from objectives.config.trial_config import ConfigError, EvalConfig
from objectives.evaluation.instructions import (
    QUERY_INSTRUCTION,
    TYPE_DEFAULTS,
    instruction_for,
    prompt_for,
    task_instructions,
)
from objectives.evaluation.mteb_tasks import load_tasks
from objectives.evaluation.scoring import CachedEncoder, evaluate

STS = "Retrieve semantically similar text."


def test_an_override_beats_the_tasks_own_which_beats_its_types() -> None:
    assert instruction_for("SICK-R", "STS") == STS
    assert instruction_for("MyClusters", "Clustering") == TYPE_DEFAULTS["Clustering"]
    assert instruction_for("MyRetrieval", "Retrieval") == QUERY_INSTRUCTION
    own = instruction_for("Banking77Classification", "Classification")
    assert own != TYPE_DEFAULTS["Classification"] and "banking" in own
    assert instruction_for("SICK-R", "STS", {"SICK-R": "Say it again."}) == "Say it again."
    assert instruction_for("STS14", "STS", {"SICK-R": "Say it again."}) == STS


def test_a_task_type_without_a_default_needs_an_override_named_in_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        instruction_for("SummEval", "Summarization")
    assert "eval.instructions.SummEval=" in str(info.value) and "\n" not in str(info.value)
    assert instruction_for("SummEval", "Summarization", {"SummEval": "Summarise."}) == "Summarise."


def test_a_task_folders_manifest_instruction_is_used_unless_the_user_overrides_it(
    tasks_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "sts/MySTS"
    folder.mkdir(parents=True)
    rows = (tasks_dir / "sts/SICK-R/test.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    (folder / "test.jsonl").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (folder / "task.yaml").write_text(
        "name: MySTS\ntype: STS\ndescription: d\nlicense: l\ninstruction: Compare the claims.\n"
    )
    tasks = load_tasks(EvalConfig(tasks=("MySTS",), tasks_dir=str(tmp_path)))
    assert task_instructions(tasks, {}, str(tmp_path)) == {"MySTS": "Compare the claims."}
    assert task_instructions(tasks, {"MySTS": "Mine."}, str(tmp_path)) == {"MySTS": "Mine."}


def test_gpu_presets_turn_instructions_on_and_cpu_presets_keep_them_off() -> None:
    for name in ("gpu", "gpu-offline", "paper"):
        config = preset_config(name)
        assert config.eval.use_instructions
        assert config.model.query_prompt == prompt_for(QUERY_INSTRUCTION)
    for name in ("smoke", "cpu", "cpu-decoder"):
        assert not preset_config(name).eval.use_instructions


class Hashing:
    """A cheap deterministic encoder (a vector per prompt+text) that records what it was asked."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str | None, str]] = Counter()

    def encode(self, texts, batch_size, prompt=None):
        self.calls.update((prompt, t) for t in texts)
        rows = []
        for text in texts:
            seed = int(hashlib.sha256(f"{prompt}|{text}".encode()).hexdigest()[:8], 16)
            rows.append(np.random.default_rng(seed).standard_normal(16))
        vectors = np.array(rows, dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_each_task_is_encoded_with_its_own_instruction_on_the_right_sides(tasks_dir: Path) -> None:
    names = ("SICK-R", "SciFactSubset", "Banking77Classification", "ArxivTitles")
    tasks = {
        t.metadata.name: t
        for t in load_tasks(EvalConfig(tasks=names, tasks_dir=str(tasks_dir), max_texts=40))
    }
    recording = Hashing()
    overrides = {"ArxivTitles": "Name the arXiv category of the title."}
    encoder = CachedEncoder(
        recording, name="hash", embed_dim=16, batch_size=16, instructions=overrides
    )
    evaluate(encoder, list(tasks.values()), progress=False)
    by_prompt: dict[str | None, set[str]] = {}
    for prompt, text in recording.calls:
        by_prompt.setdefault(prompt, set()).add(text)

    sick = tasks["SICK-R"].dataset["default"]["test"]
    assert set(sick["sentence1"]) | set(sick["sentence2"]) == by_prompt[prompt_for(STS)]
    scifact = tasks["SciFactSubset"].dataset["default"]["test"]
    instruction = instruction_for("SciFactSubset", "Retrieval")
    assert by_prompt[prompt_for(instruction)] == set(scifact["queries"]["text"])
    assert by_prompt[None] == set(scifact["corpus"]["text"])  # documents stay bare
    banking = tasks["Banking77Classification"].dataset["default"]
    instruction = instruction_for("Banking77Classification", "Classification")
    assert by_prompt[prompt_for(instruction)] == set(banking["train"]["text"]) | set(
        banking["test"]["text"]
    )
    arxiv = tasks["ArxivTitles"].dataset["default"]["test"]
    assert by_prompt[prompt_for(overrides["ArxivTitles"])] == set(arxiv["text"])
    assert len(by_prompt) == 5
