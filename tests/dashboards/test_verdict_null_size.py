"""The paired test's size under a true null, by a simulation of its own.

This simulation shares no code with ``benchmarks/verdicts.py`` or the table: it draws per-item paired
differences ``d[s, i] = a_s + u_i + e_si`` (a seed effect, an arm x item interaction every seed
shares, seed x item noise), the same test items for every seed, and item-bootstrap draws shared by
every seed, which is what the service stores, then asks ``paired_interval`` for its p-value.
The item counts include the smoke preset's (12 retrieval queries, 32 STS pairs).

Not covered, and said so in ``dashboards.verdicts``: seed effects far from normal (a rare collapsed
seed) make any t-based test with 3-5 seeds liberal when seeds dominate.
"""

from __future__ import annotations

import numpy as np
import pytest

from dashboards.verdicts import paired_interval

# Thousands of simulated tests per case: minutes of CPU, so out of the unit tier (CI runs it).
pytestmark = pytest.mark.slow

ITEMS, DRAWS, SIMULATIONS = 80, 200, 2000

# Standard errors that each term contributes to one seed-averaged difference with 1 seed:
# (seed sd, shared item SE, per-seed item SE).
NOISE = {
    "pure-seed": (0.03, 0.0, 0.0),
    "seed-dominated": (0.03, 0.003, 0.005),
    "mixed": (0.015, 0.012, 0.012),
    "item-dominated": (0.002, 0.02, 0.01),
    "item-only": (0.0, 0.02, 0.0),
}


def _null_rejections(
    seeds: int, noise: tuple[float, float, float], rng_seed: int, items: int = ITEMS
) -> float:
    seed_sd, shared_se, own_se = noise
    rng = np.random.default_rng(rng_seed)
    rejected = 0
    for _ in range(SIMULATIONS):
        seed_effect = rng.normal(0.0, seed_sd, (seeds, 1))
        interaction = rng.normal(0.0, shared_se * np.sqrt(items), (1, items))
        noise_si = rng.normal(0.0, own_se * np.sqrt(items), (seeds, items))
        d = seed_effect + interaction + noise_si
        draws = rng.integers(0, items, (DRAWS, items))  # one set of draws for every seed
        replicates = d[:, draws].mean(axis=2)
        interval = paired_interval(d.mean(axis=1), replicates, items=items)
        rejected += interval.p is not None and interval.p < 0.05
    return rejected / SIMULATIONS


@pytest.mark.parametrize("seeds", [2, 3, 5])
@pytest.mark.parametrize("kind", sorted(NOISE))
def test_a_true_null_is_rejected_at_most_at_the_nominal_rate(seeds: int, kind: str) -> None:
    size = _null_rejections(seeds, NOISE[kind], rng_seed=seeds * 100 + len(kind))
    # 0.05 nominal; 2,000 simulations have a binomial sd of 0.005, so 0.06 is 2 sd of slack.
    assert size <= 0.06, f"{kind}, {seeds} seeds: null rejected in {size:.3f} of tests"


@pytest.mark.parametrize("items", [12, 32])
@pytest.mark.parametrize("kind", ["item-only", "mixed"])
def test_few_test_items_keep_the_size(items: int, kind: str) -> None:
    size = _null_rejections(3, NOISE[kind], rng_seed=items + len(kind), items=items)
    assert size <= 0.06, f"{kind}, {items} items: null rejected in {size:.3f} of tests"


def test_the_old_welch_satterthwaite_df_would_fail_this_check() -> None:
    """The simulation can tell: the df that ignored the item variance's own uncertainty (the
    previous method) rejects far above 0.05 with 2 seeds when the seed term dominates."""
    from scipy import stats

    rng = np.random.default_rng(7)
    seed_sd, shared_se, own_se = 0.03, 0.012, 0.005
    rejected = 0
    for _ in range(SIMULATIONS):
        d = (
            rng.normal(0.0, seed_sd, (2, 1))
            + rng.normal(0.0, shared_se * np.sqrt(ITEMS), (1, ITEMS))
            + rng.normal(0.0, own_se * np.sqrt(ITEMS), (2, ITEMS))
        )
        interval = paired_interval(
            d.mean(axis=1), d[:, rng.integers(0, ITEMS, (DRAWS, ITEMS))].mean(2)
        )
        seed_var = np.var(d.mean(axis=1), ddof=1) / 2
        welch_df = interval.se**4 / seed_var**2 if seed_var > 0 else np.inf
        rejected += 2 * stats.t.sf(abs(interval.mean) / interval.se, welch_df) < 0.05
    assert rejected / SIMULATIONS > 0.08
    assert _null_rejections(2, (seed_sd, shared_se, own_se), rng_seed=7) <= 0.06
