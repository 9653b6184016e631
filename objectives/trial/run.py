"""One trial end to end: load data and model, fine-tune with intermediate reports, score on MTEB.

This is the function a search worker runs. It knows nothing of Optuna or Ray: the search layer
passes ``report`` and may raise from it (to prune); the exception stops training and propagates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch
from threadpoolctl import threadpool_limits

from objectives.categories import Category
from objectives.config.trial_config import EvalConfig, TrialConfig, to_dict
from objectives.evaluation.instructions import instructions_of
from objectives.evaluation.mteb_tasks import load_tasks, resolve_tasks_dir, task_names, task_texts
from objectives.evaluation.saved_model import save_eval_config
from objectives.evaluation.scoring import CachedEncoder, evaluate
from objectives.model.backbone import attention_kernels
from objectives.model.embedding_model import EmbeddingModel
from objectives.training.dev_signal import DevSet, dev_proxies, labelled_slices
from objectives.training.loop import train
from objectives.training.pairs import (
    DevSlices,
    cap_pairs,
    dev_sts,
    drop_overlap,
    load_pairs,
    normalise,
    pairs_source,
    split_dev,
)
from objectives.trial.memory import peak_memory
from objectives.trial.provenance import trial_provenance
from objectives.trial.results import Costs, TrialResult, category_means

# report(step, proxies): each scored category's dev proxy at that training step.
Report = Callable[[int, dict[str, float]], None]


def run_trial(
    config: TrialConfig,
    report: Report | None = None,
    progress: bool = True,
    save_to: Path | None = None,
) -> TrialResult:
    """Build, fine-tune and score the model ``config`` describes.

    ``report(step, proxies)`` receives the cheap held-out proxy of each scored category
    (``objectives.training.dev_signal``) before training (step 0), every ``train.eval_every`` optimizer
    steps and after the last step. The same seed gives the same data order, initialisation and
    result on CPU.

    Costs: ``objectives.trial.results.Costs``, every field recorded.

    ``save_to``: a directory to keep the scored model in, with the evaluation settings it was scored
    with, so ``python -m objectives.evaluation.saved_model --model DIR`` reproduces the scores.
    """
    if config.threads:
        torch.set_num_threads(config.threads)
    limits = threadpool_limits(config.threads) if config.threads else contextlib.nullcontext()
    with limits:
        return _run(config, report, progress, save_to)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _run(
    config: TrialConfig, report: Report | None, progress: bool, save_to: Path | None
) -> TrialResult:
    device = resolve_device(config.device)
    with peak_memory(device) as peak, attention_kernels(device):
        start = time.perf_counter()
        tasks = load_tasks(config.eval)
        instructions = instructions_of(tasks, config.eval)
        evaluated = {normalise(t) for task in tasks for t in task_texts(task)}
        source = pairs_source(config.train, config.eval.tasks_dir)
        # Hub data are capped before they are materialised (a seeded draw); local files are read
        # whole, so every local form of the same pairs trains on the same ones.
        limit = config.train.max_pairs
        if limit is not None and not Path(source).expanduser().exists():
            limit += config.train.dev_queries
        else:
            limit = None
        pairs, dropped = drop_overlap(load_pairs(source, limit), evaluated)
        pairs, dev_pairs = split_dev(pairs, config.train.dev_queries)
        pairs = cap_pairs(pairs, config.train.max_pairs)
        labelled = labelled_slices(tasks, config.eval.tasks_dir, config.train.dev_pairs, evaluated)
        dev = DevSet(
            slices=DevSlices(
                sts=dev_sts(config.eval.tasks_dir, config.train.dev_pairs, evaluated),
                retrieval=dev_pairs,
            ),
            classification=labelled[Category.CLASSIFICATION],
            clustering=labelled[Category.CLUSTERING],
        )
        origin = trial_provenance(tasks, config.eval.tasks_dir, source)
        model = EmbeddingModel.build(config.model, seed=config.seed, device=device)
        load_seconds = time.perf_counter() - start

        def on_step(step: int) -> None:
            proxies = dev_proxies(
                model,
                dev,
                batch_size=config.eval.batch_size,
                query_prompt=config.model.query_prompt,
            )
            if report is not None:
                report(step, proxies)

        on_step(0)  # the untrained model's signal: what "did it learn" and pruning compare with
        torch.manual_seed(config.seed)
        stats = train(
            model,
            pairs,
            config.train,
            seed=config.seed,
            query_prompt=config.model.query_prompt,
            on_step=on_step,
            progress=progress,
        )
        encoder = CachedEncoder.for_model(model, config.eval.batch_size, instructions)
        evaluation = evaluate(encoder, tasks, progress=progress)
        if save_to is not None:
            model.save(save_to)
            save_eval_config(save_to, _scored_with(config.eval, instructions))
    categories = category_means(evaluation.task_scores, evaluation.task_category)
    return TrialResult(
        task_scores=evaluation.task_scores,
        category_scores=categories,
        average=sum(categories.values()) / len(categories),
        costs=Costs(
            load_seconds=load_seconds,
            train_seconds=stats.seconds,
            eval_seconds=evaluation.seconds,
            train_pairs_per_second=stats.pairs / stats.seconds,
            eval_texts_per_second=evaluation.texts_encoded / max(evaluation.encode_seconds, 1e-9),
            peak_memory_mb=peak(),
        ),
        params=model.parameter_counts(),
        config=_resolved(config, source, device, instructions),
        versions=origin["versions"],
        provenance={"commit": origin["commit"], "data": origin["data"]},
        task_category=evaluation.task_category,
        evidence=evaluation.evidence,
        task_results=evaluation.task_results,
        data={"dropped_overlap": dropped},
    )


def _scored_with(config: EvalConfig, instructions: dict[str, str] | None) -> EvalConfig:
    """The evaluation settings as run: tasks, tasks directory and instructions made explicit."""
    root = resolve_tasks_dir(config.tasks_dir)
    used = config.instructions if instructions is None else tuple(sorted(instructions.items()))
    return dataclasses.replace(
        config,
        tasks=task_names(config),
        tasks_dir=str(root) if root else None,
        instructions=used,
    )


def _resolved(
    config: TrialConfig, source: str, device: str, instructions: dict[str, str] | None
) -> dict:
    """The config as run: tasks, tasks directory, training data, device and, when on, every task's
    instruction made explicit."""
    return to_dict(
        dataclasses.replace(
            config,
            eval=_scored_with(config.eval, instructions),
            train=dataclasses.replace(config.train, data=source),
            device=device,
        )
    )
