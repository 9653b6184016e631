"""The instruction each evaluated task gives the model, as the paper's released evaluation does.

The released code prepends a task instruction to every text it embeds, STS and clustering and
classification included, not only retrieval queries; an instruction-tuned embedding scored without
them is scored on inputs it never saw in that form. With ``eval.use_instructions`` (the ``gpu`` and
``paper`` presets) every task gets one: a per-task override (``eval.instructions``, else the task
folder's manifest ``instruction:``), else a built-in one for the task, else the default of its type. Symmetric tasks
carry it on both sides, retrieval on queries only (documents are embedded bare, as in training).

The instruction is wrapped like the training queries' prompt (``prompt_for``), so a retrieval query
at evaluation reads exactly as a training query did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from objectives.categories import Category
from objectives.config.trial_config import ConfigError, EvalConfig
from objectives.evaluation.task_files import discover_tasks

QUERY_INSTRUCTION = "Given a query, retrieve passages that answer it"
PROMPT_TEMPLATE = "Instruct: {instruction}\nQuery: "

# By task type (mteb's ``metadata.type``); STS's is the released code's own wording.
TYPE_DEFAULTS: dict[str, str] = {
    Category.STS: "Retrieve semantically similar text.",
    Category.RETRIEVAL: QUERY_INSTRUCTION,
    Category.CLASSIFICATION: "Classify the given text into its category",
    Category.CLUSTERING: "Identify the topic or category of the given text",
}
# Tasks whose data says more than their type does (the offline default set and their MTEB twins).
TASK_DEFAULTS: dict[str, str] = {
    "SciFact": "Given a scientific claim, find the documents that support or refute it",
    "SciFactSubset": "Given a scientific claim, find the documents that support or refute it",
    "Banking77Classification": "Given an online banking query, find its intent",
    "Banking77Intents": "Given an online banking query, find its intent",
    "ArxivTitles": "Identify the category of arXiv papers from their titles",
    "ArxivClusteringS2S": "Identify the category of arXiv papers from their titles",
}
# Types whose two sides are the same kind of text, so both carry the instruction.
SYMMETRIC_TYPES = (Category.STS, Category.CLASSIFICATION, Category.CLUSTERING)


def instruction_for(
    task_name: str, task_type: str, overrides: Mapping[str, str] | None = None
) -> str:
    """The instruction of task ``task_name``: an override, else the task's own, else its type's."""
    if overrides and task_name in overrides:
        return overrides[task_name]
    if task_name in TASK_DEFAULTS:
        return TASK_DEFAULTS[task_name]
    if task_type not in TYPE_DEFAULTS:
        raise ConfigError(
            f"no instruction for task '{task_name}' of type {task_type!r}; set "
            f"eval.instructions.{task_name}=... or use a task of type {sorted(TYPE_DEFAULTS)}"
        )
    return TYPE_DEFAULTS[task_type]


def prompt_for(instruction: str) -> str:
    """The text put before an instructed input, the same form as the training queries' prompt."""
    return PROMPT_TEMPLATE.format(instruction=instruction)


def instructed_side(task_type: str, is_query: bool) -> bool:
    """Whether this side of a task gets the instruction: both of symmetric tasks, queries else."""
    return task_type in SYMMETRIC_TYPES or is_query


def instructions_of(tasks: Sequence[Any], config: EvalConfig) -> dict[str, str] | None:
    """The instructions ``config`` asks for on ``tasks`` (``None`` when instructions are off)."""
    if not config.use_instructions:
        return None
    return task_instructions(tasks, dict(config.instructions), config.tasks_dir)


def task_instructions(
    tasks: Sequence[Any], overrides: Mapping[str, str], tasks_dir: str | None = None
) -> dict[str, str]:
    """Each mteb task's instruction by name, to run with and to store with the trial.

    A local task folder's manifest may carry ``instruction:``; ``overrides`` (the user's
    ``eval.instructions``) still win over it.
    """
    chosen = {
        name: manifest.instruction
        for name, manifest in discover_tasks(tasks_dir).items()
        if manifest.instruction
    }
    chosen.update(overrides)
    return {
        task.metadata.name: instruction_for(task.metadata.name, task.metadata.type, chosen)
        for task in tasks
    }
