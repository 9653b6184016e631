"""Write Optuna studies that follow the "Study records" contract (docs/DESIGN.md) for report tests.

The reports must work on what the search service stores, so these studies are written with Optuna
directly, key for key as the service does: trial params ``arm``/``seed``, ``TrialResult.user_attrs()``
on finished trials, intermediate values by step, PRUNED trials that stopped early, a FAIL with
``error``, and the plan/skipped arms as study user attributes. Scores come from a seeded generator
with a fixed effect per arm, so tests can check real statistics rather than hard-coded numbers.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from objectives.results import TrialResult, category_means

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


def write_study(
    storage: str | optuna.storages.BaseStorage,
    name: str = "layer-weights",
    arms: tuple[ArmSpec, ...] = LAYER_WEIGHTS_ARMS,
    seeds: int = 3,
    baseline: str = "W on",
) -> optuna.Study:
    """Create study ``name`` with one trial per arm x seed, in the order a grid would run them."""
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.set_user_attr(
        "plan",
        {
            "name": name,
            "description": "trainable layer-weight matrix W (fixture)",
            "ablated": "model.pooling.layer_weights",
            "action": "remove",
            "baseline": baseline,
            "arms": [{"label": a.label, "overrides": a.overrides} for a in arms],
            "seeds": list(range(seeds)),
            "metrics": ["STS", "Retrieval", "Classification", "Clustering", "average"],
        },
    )
    study.set_user_attr("skipped_arms", list(SKIPPED))
    study.set_user_attr("preset", "smoke")
    study.set_user_attr("backbone", "minilm")
    rng = random.Random(1234)
    start = dt.datetime(2025, 1, 1, 12, 0, 0)
    distributions = {
        "arm": CategoricalDistribution([a.label for a in arms]),
        "seed": CategoricalDistribution(list(range(seeds))),
    }
    for seed in range(seeds):
        for arm in arms:
            trial = _trial(arm, seed, rng, start, distributions)
            study.add_trial(trial)
            start += dt.timedelta(seconds=60)
    return study


def _trial(
    arm: ArmSpec,
    seed: int,
    rng: random.Random,
    start: dt.datetime,
    distributions: dict[str, CategoricalDistribution],
) -> FrozenTrial:
    curve = {
        step: 0.4 + arm.effect + 0.02 * step + rng.gauss(0, 0.003)
        for step in range(EVAL_EVERY, STEPS + 1, EVAL_EVERY)
    }
    if seed in arm.failed_seeds:
        error = {"error": "RuntimeError: CUDA out of memory while building the head"}
        state, value, attrs, reports, seconds = TrialState.FAIL, None, error, 1, 5
    elif seed in arm.pruned_seeds:
        state, value, attrs, reports, seconds = TrialState.PRUNED, None, {}, 2, 12
    else:
        result = _result(arm, seed, rng)
        state, value, attrs = TrialState.COMPLETE, result.average, result.user_attrs()
        reports, seconds = len(curve), 45
    return FrozenTrial(
        number=0,
        trial_id=0,
        state=state,
        value=value,
        datetime_start=start,
        datetime_complete=start + dt.timedelta(seconds=seconds),
        params={"arm": arm.label, "seed": seed},
        distributions=distributions,
        user_attrs=attrs,
        system_attrs={},
        intermediate_values=dict(list(curve.items())[:reports]),
    )


def _result(arm: ArmSpec, seed: int, rng: random.Random) -> TrialResult:
    scores = {t: s + arm.effect + rng.gauss(0, 0.004) for t, s in BASE_SCORES.items()}
    categories = category_means(scores, TASKS)
    return TrialResult(
        task_scores=scores,
        category_scores=categories,
        average=sum(categories.values()) / len(categories),
        costs={
            "train_seconds": 30.0 + rng.random(),
            "eval_seconds": 10.0 + rng.random(),
            "load_seconds": 1.5,
            "peak_memory_mb": 900.0,
            "train_pairs_per_second": 40.0,
        },
        params={"total": 22_800_000, "trainable": 150_000, "head": 90_000},
        config={"train": {"steps": STEPS, "eval_every": EVAL_EVERY}, "seed": seed},
        versions={"optuna": optuna.__version__},
    )
