"""The reference row of every study: the untrained backbone with mean pooling, on the same texts.

A table of arms that all trained says which arm is best, not whether training helped at all: the
short CPU recipes can leave every arm below the backbone it started from. So each study scores,
once, the backbone as released (its own attention mode, mean pooling over the last layer's token
states, no LoRA, no head, nothing trained) on the tasks and seeded text subsets its arms are scored
on, with the same prompts and instructions. The scores are stored with the study
(``storage.study_records.write_reference``) and shown as a reference row, never in a verdict.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time

import torch
from threadpoolctl import threadpool_limits

from objectives.config.trial_config import TrialConfig, override, to_dict
from objectives.evaluation.instructions import instructions_of
from objectives.evaluation.mteb_tasks import load_tasks
from objectives.evaluation.scoring import CachedEncoder, evaluate
from objectives.model.backbone import attention_kernels, native_attention
from objectives.model.embedding_model import EmbeddingModel
from objectives.trial.results import ReferenceResult, category_means
from objectives.trial.run import resolve_device

REFERENCE_LABEL = "untrained backbone, mean pooling"


def reference_config(config: TrialConfig) -> TrialConfig:
    """``config`` with its backbone as released: native attention, mean pooling, no LoRA.

    Evaluation (tasks, subset size, instructions), prompts, max length, dtype and threads stay
    ``config``'s, so the reference sees exactly the texts the arms are scored on.
    """
    changes = {
        "model.pooling.kind": "mean",
        "model.attention": native_attention(config.model.backbone),
        "model.lora": None,
    }
    return override(config, changes)


def score_reference(config: TrialConfig) -> ReferenceResult:
    """The scores of ``reference_config(config)``'s model, untrained; ``objective`` is the mean of
    its category means (the trials' ``average``) until the caller sets the study's own.

    ``config`` is any arm's config of the study (the launcher passes the baseline's).
    """
    reference = reference_config(config)
    if reference.threads:
        torch.set_num_threads(reference.threads)
    limits = threadpool_limits(reference.threads) if reference.threads else contextlib.nullcontext()
    device = resolve_device(reference.device)
    start = time.perf_counter()
    with limits, attention_kernels(device):
        tasks = load_tasks(reference.eval)
        model = EmbeddingModel.build(reference.model, seed=reference.seed, device=device)
        encoder = CachedEncoder.for_model(
            model, reference.eval.batch_size, instructions_of(tasks, reference.eval)
        )
        evaluation = evaluate(encoder, tasks, progress=False)
    categories = category_means(evaluation.task_scores, evaluation.task_category)
    return ReferenceResult(
        label=REFERENCE_LABEL,
        task_scores=evaluation.task_scores,
        category_scores=categories,
        objective=sum(categories.values()) / len(categories),
        config=to_dict(dataclasses.replace(reference, device=device)),
        seconds=time.perf_counter() - start,
    )
