"""Write Optuna studies that follow the "Study records" contract (docs/DESIGN.md) for report tests.

The reports must work on what the search service stores, so these studies are written through the
writers the service uses (``storage.study_records``): the study record (plan, skipped arms, preset,
backbone), trial params ``arm``/``seed`` with the distributions ``suggest_cell`` records, each
trial's node and dev curves, the result and item-level evidence of finished trials, the pruning
record of PRUNED trials that stopped early, the error of a FAIL; intermediate values by step from
step 0. Trials are built as ``FrozenTrial`` (not run through ask/tell) so that their durations are
realistic, which the report's pruning savings read. Scores come from a seeded generator
with a fixed effect per arm, so tests can check real statistics rather than hard-coded numbers: the
retrieval and classification tasks get per-item evidence whose mean is the task score (the other
tasks store none, as a trial of an online task would).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from objectives.evaluation.evidence import TaskEvidence, items_hash
from objectives.trial.results import CATEGORIES, Costs, TrialResult, category_means
from storage.study_records import (
    Cell,
    PlanRecord,
    StudyRecord,
    cell_distributions,
    cell_params,
    evidence_system_attrs,
    write_dev_curve,
    write_error,
    write_node,
    write_pruned,
    write_result,
    write_study_record,
)

TASKS: dict[str, str] = {
    "SICK-R": "STS",
    "STS14": "STS",
    "STSBenchmark": "STS",
    "SciFactSubset": "Retrieval",
    "Banking77Classification": "Classification",
    "ArxivTitles": "Clustering",
    "Banking77Intents": "Clustering",
}
BASE_SCORES: dict[str, float] = {
    "SICK-R": 0.72,
    "STS14": 0.65,
    "STSBenchmark": 0.70,
    "SciFactSubset": 0.45,
    "Banking77Classification": 0.71,
    "ArxivTitles": 0.30,
    "Banking77Intents": 0.55,
}


@dataclass(frozen=True)
class ArmSpec:
    """One arm of a fixture study: its effect on every task score, and what happens to its seeds."""

    label: str
    effect: float
    overrides: dict[str, object] = field(default_factory=dict)
    pruned_seeds: tuple[int, ...] = ()
    failed_seeds: tuple[int, ...] = ()


LAYER_WEIGHTS_ARMS: tuple[ArmSpec, ...] = (
    ArmSpec("W on", 0.0, {"model.pooling.layer_weights": True}),
    ArmSpec("W off", -0.03, {"model.pooling.layer_weights": False}, failed_seeds=(2,)),
    ArmSpec("W off, 8 heads", -0.12, {"model.pooling.heads": 8}, pruned_seeds=(0, 1, 2)),
    ArmSpec("W on, 64 heads", 0.01, {"model.pooling.heads": 64}, pruned_seeds=(1,)),
)
SKIPPED: tuple[dict[str, str], ...] = (
    {"arm": "top 16", "reason": "top 16 of a 6-layer backbone does not exist"},
)
STEPS = 8
EVAL_EVERY = 2
ITEMS = 40  # test items per task with evidence
WITH_EVIDENCE = ("SciFactSubset", "Banking77Classification")
ITEM_SPREAD = 0.15  # how much items differ in difficulty (fixed per task, shared by all trials)
ITEM_NOISE = 0.02  # a trial's per-item deviation (training noise seen item by item)
SEED_NOISE = 0.004


def write_study(
    storage: str | optuna.storages.BaseStorage,
    name: str = "layer-weights",
    arms: tuple[ArmSpec, ...] = LAYER_WEIGHTS_ARMS,
    seeds: int = 3,
    baseline: str = "W on",
) -> optuna.Study:
    """Create study ``name`` with one trial per arm x seed, in the order a grid would run them."""
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    plan = PlanRecord(
        name=name,
        description="trainable layer-weight matrix W (fixture)",
        ablated="model.pooling.layer_weights",
        action="remove",
        baseline=baseline,
        base="model5",
        arms=[{"label": a.label, "overrides": dict(a.overrides)} for a in arms],
        seeds=list(range(seeds)),
        metrics=list(CATEGORIES),  # categories only, as search.plans.Plan stores them
        objective=None,
        objective_name="average",
    )
    record = StudyRecord(
        plan=plan,
        skipped_arms=[{"arm": s["arm"], "reason": s["reason"]} for s in SKIPPED],
        preset="smoke",
        backbone="minilm",
        base="model5",
        config_fingerprint="fixture",
    )
    write_study_record(study, record)
    add_seeds(study, arms, range(seeds), seeds)
    return study


def add_seeds(
    study: optuna.Study,
    arms: tuple[ArmSpec, ...],
    new: range,
    seeds: int,
    shift: float = 0.0,
    dev_shift: float | None = None,
    only: tuple[str, ...] | None = None,
) -> None:
    """Add one trial per arm for each seed in ``new``, as a launch with ``--seeds seeds`` does
    (``only``: for these arms alone, as a race's round does).

    ``shift`` moves every test score of the added trials (a second, worse TPE trial of a cell),
    ``dev_shift`` their dev curve (default: the same as ``shift``).
    """
    rng = random.Random(1234 + new.start + int(shift * 1000))
    start = dt.datetime(2025, 1, 1, 12, 0, 0) + dt.timedelta(minutes=len(study.trials))
    distributions = cell_distributions([a.label for a in arms], seeds)
    for seed in new:
        for arm in (a for a in arms if only is None or a.label in only):
            dev = shift if dev_shift is None else dev_shift
            study.add_trial(_trial(arm, seed, rng, start, distributions, shift, dev))
            start += dt.timedelta(seconds=60)


def _trial(
    arm: ArmSpec,
    seed: int,
    rng: random.Random,
    start: dt.datetime,
    distributions: dict[str, BaseDistribution],
    shift: float,
    dev_shift: float = 0.0,
) -> FrozenTrial:
    curve = {
        step: 0.4 + arm.effect + dev_shift + 0.02 * step + rng.gauss(0, 0.003)
        for step in range(0, STEPS + 1, EVAL_EVERY)
    }
    if seed in arm.failed_seeds:
        state, reports, seconds = TrialState.FAIL, 1, 5
    elif seed in arm.pruned_seeds:
        state, reports, seconds = TrialState.PRUNED, 2, 12
    else:
        state, reports, seconds = TrialState.COMPLETE, len(curve), 45
    reported = dict(list(curve.items())[:reports])
    result = _result(arm, seed, rng, shift) if state == TrialState.COMPLETE else None
    trial = FrozenTrial(
        number=0,
        trial_id=0,
        state=state,
        value=None if result is None else result.average,
        datetime_start=start,
        datetime_complete=start + dt.timedelta(seconds=seconds),
        params=cell_params(Cell(arm.label, seed)),
        distributions=distributions,
        user_attrs={},
        system_attrs={} if result is None else evidence_system_attrs(result.evidence),
        intermediate_values=reported,
    )
    write_node(trial, "fixture-node")
    for category in CATEGORIES:  # every proxy on the composite's curve, so their mean is it
        write_dev_curve(trial, category, reported)
    if state == TrialState.FAIL:
        write_error(trial, "RuntimeError: CUDA out of memory while building the head")
    elif state == TrialState.PRUNED:
        write_pruned(trial, EVAL_EVERY, arm.effect)
    if result is not None:
        write_result(trial, result)
    return trial


def _result(arm: ArmSpec, seed: int, rng: random.Random, shift: float) -> TrialResult:
    scores = {t: s + arm.effect + shift + rng.gauss(0, SEED_NOISE) for t, s in BASE_SCORES.items()}
    evidence = {}
    for task in WITH_EVIDENCE:
        difficulty = np.random.default_rng(len(task)).normal(0, ITEM_SPREAD, ITEMS)
        noise = np.random.default_rng(rng.randrange(2**32)).normal(0, ITEM_NOISE, ITEMS)
        values = scores[task] + difficulty - difficulty.mean() + noise - noise.mean()
        evidence[task] = TaskEvidence(
            TASKS[task], items_hash(f"{task}-{i}" for i in range(ITEMS)), {"values": values}
        )
        scores[task] = evidence[task].score()
    categories = category_means(scores, TASKS)
    return TrialResult(
        task_scores=scores,
        category_scores=categories,
        average=sum(categories.values()) / len(categories),
        costs=Costs(
            train_seconds=30.0 + rng.random(),
            eval_seconds=10.0 + rng.random(),
            load_seconds=1.5,
            peak_memory_mb=900.0,
            train_pairs_per_second=40.0,
        ),
        params={"total": 22_800_000, "trainable": 150_000, "head": 90_000},
        config={"train": {"steps": STEPS, "eval_every": EVAL_EVERY}, "seed": seed},
        versions={"optuna": optuna.__version__},
        task_category=dict(TASKS),
        evidence=evidence,
    )
