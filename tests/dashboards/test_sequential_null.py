"""The race's study-wide error under optional stopping, on an independent null simulation.

The data generator here is this file's own (numpy): per arm and column, item-level scores with the
structure of real studies (``dashboards.verdicts``' model): a seed effect per arm and seed, a
seed effect every arm of the same seed shares, an arm x item interaction every seed of the arm
shares, the baseline's own interaction shared by every comparison, and seed x item noise; the
paired bootstrap over items uses the same draws for every seed. Every arm equals the baseline, so
any ``better``/``worse`` is false. The race under test (``dashboards.sequential.race``, its looks,
Holm per look and stopping) decides from ``paired_interval`` as the table does.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from dashboards.sequential import Comparison, race
from dashboards.verdicts import paired_interval, verdict_kind
from storage.study_records import RaceDesign

STUDIES = 300
DRAWS = 60
ITEMS = 80


def _study(rng: np.random.Generator, arms: int, columns: int, max_seeds: int):
    """Per arm and column: each seed's mean paired difference, and its bootstrap replicates."""
    data = {}
    for column in range(columns):
        idx = rng.integers(0, ITEMS, (DRAWS, ITEMS))
        seed_sd, item_sd, noise_sd = rng.choice([0.005, 0.02, 0.04]), 0.1, 0.25
        shared_seed = rng.normal(0, seed_sd, max_seeds)[:, None]
        base = (
            rng.normal(0, item_sd, ITEMS)[None, :]
            + shared_seed
            + rng.normal(0, seed_sd, (max_seeds, 1))
            + rng.normal(0, noise_sd, (max_seeds, ITEMS))
        )
        for arm in range(arms):
            scores = (
                rng.normal(0, item_sd, ITEMS)[None, :]
                + shared_seed
                + rng.normal(0, seed_sd, (max_seeds, 1))
                + rng.normal(0, noise_sd, (max_seeds, ITEMS))
            )
            diff = scores - base
            data[(f"arm{arm}", f"col{column}")] = (diff.mean(axis=1), diff[:, idx].mean(axis=2))
    return data


@pytest.mark.slow  # about 60 CPU-seconds
def test_the_race_keeps_study_wide_false_better_worse_at_or_below_alpha() -> None:
    gc.freeze()  # statsmodels' Holm runs gc.collect() on every call; frozen objects make it cheap
    try:
        _null_races()
    finally:
        gc.unfreeze()


def _null_races() -> None:
    rng = np.random.default_rng(20261203)
    false, looks = 0, []
    for _ in range(STUDIES):
        arms, columns = int(rng.integers(2, 7)), int(rng.integers(2, 4))
        plan = int(rng.integers(2, 4))
        design = RaceDesign(max_seeds=6, plan_seeds=plan)
        data = _study(rng, arms, columns, 6)

        def tests_at(n: int, closed: frozenset[str], data=data) -> list[Comparison]:
            return [
                Comparison(arm, col, paired_interval(means[:n], draws[:n], items=ITEMS), 0.005)
                for (arm, col), (means, draws) in data.items()
            ]

        state = race(design, [f"arm{a}" for a in range(arms)], tests_at, lambda n, _: True)
        words = [w for arm in state.arms.values() for w in arm.words.values()]
        false += any(verdict_kind(w) in ("better", "worse") for w in words)
        looks.append(len(state.looks))
    low, high = proportion_confint(false, STUDIES, alpha=0.05, method="wilson")
    print(
        f"null races: {false}/{STUDIES} studies with a false better/worse [{low:.3f}, {high:.3f}]"
    )
    assert high <= 0.05, (false, low, high)  # the Wilson 95% upper bound
    assert max(looks) >= 3  # the races did look several times
