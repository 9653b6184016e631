"""Is an arm better, worse or equivalent to the baseline? Paired intervals calibrated for few seeds.

An arm's effect on a column is the mean, over the seeds both arms completed, of the paired
difference arm - baseline (same seed: same data order and initialisation). Two things make it
uncertain: training noise (another seed gives another difference) and test-set luck (other test
items of the same task would give other scores). The interval combines both:

- seeds: a bootstrap over 2-3 seeds resamples 2-3 numbers and is badly overconfident, so the seed
  level is a t interval instead: the sample variance of the per-seed differences over n seeds;
- items: a paired bootstrap over each task's test items (``objectives.evidence``), the same draws
  for both arms and every seed, gives the item variance of the difference; the part every seed
  shares (items on which the arm is consistently better or worse) is added to the seed variance.

The interval is Student t with Welch-Satterthwaite degrees of freedom (the item variance counts as
known), so with 2 seeds it is wide, as it must be. Verdicts: ``equivalent``
when the interval lies inside +-ROPE; ``better``/``worse`` when it excludes 0 and the Holm-adjusted
p-value (over every test of the study) is below alpha; else ``inconclusive``. No pair in which the
arm or the baseline did not learn gets a decided word (``inconclusive (did not learn)``): the
difference of two heads that training did not improve says how they were initialised (or how the
recipe damaged them), not what the ablated part does. The paper's own test, Wilcoxon signed-rank across the tasks of a
category, is reported beside it where it can reach alpha.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

ROPE = 0.005
ALPHA = 0.05
POWER = 0.8
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
PRUNED = "pruned (worse on dev)"
DID_NOT_LEARN = "did not learn"
# The only word for a pair in which the arm or the baseline did not learn (module docstring).
NOT_LEARNED = f"{INCONCLUSIVE} ({DID_NOT_LEARN})"
METHOD = (
    "paired difference vs the baseline over the seeds both completed; 95% interval: Student t over "
    "seeds (Welch-Satterthwaite df) plus test-item variance from a paired bootstrap over items"
)
SEEDS_ONLY = "seeds only (no item evidence stored)"


@dataclass(frozen=True)
class Interval:
    """The paired mean difference, its interval (``None`` below 2 seeds) and the test of 0."""

    mean: float
    low: float | None
    high: float | None
    n_seeds: int
    p: float | None
    se: float | None
    df: float | None
    item_level: bool


@dataclass(frozen=True)
class TaskTest:
    """Wilcoxon signed-rank across ``n`` tasks; ``p`` is ``None`` when n tasks cannot reach alpha."""

    n: int
    p: float | None
    min_p: float

    def label(self) -> str:
        return f"n/a ({self.n} tasks)" if self.p is None else f"p = {self.p:.3g}"


def paired_interval(
    seed_diffs: Sequence[float], item_draws: np.ndarray | None, alpha: float = ALPHA
) -> Interval:
    """The ``1 - alpha`` interval of the mean of ``seed_diffs``.

    ``item_draws[s, b]`` is seed s's difference recomputed on bootstrap draw b of the test items
    (``None`` when no evidence was stored: the interval is then over seeds only). The per-seed
    differences already vary with each trial's item-by-item noise, so only the part of the item
    variance that all seeds share is added: the variance of the seed mean over draws minus the
    within-seed part / (n - 1), as in a random-effects ANOVA (floored at 0).
    """
    diffs = np.asarray(seed_diffs, dtype=float)
    n, mean = len(diffs), float(np.mean(diffs))
    item_var = 0.0
    if item_draws is not None:
        item_mean = item_draws.mean(axis=0)
        item_var = float(np.var(item_mean, ddof=1))
        if n > 1:
            within = float(np.mean(np.var(item_draws - item_mean, axis=1, ddof=1)))
            item_var = max(item_var - within / (n - 1), 0.0)
    if n < 2:
        return Interval(mean, None, None, n, None, None, None, item_draws is not None)
    seed_var = float(np.var(diffs, ddof=1)) / n
    se = math.sqrt(seed_var + item_var)
    df = (seed_var + item_var) ** 2 * (n - 1) / seed_var**2 if seed_var > 0 else math.inf
    if se == 0:
        return Interval(mean, mean, mean, n, 1.0 if mean == 0 else 0.0, 0.0, df, True)
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, df))
    return Interval(mean, mean - half, mean + half, n, p, se, df, item_draws is not None)


def verdict(
    interval: Interval | None,
    p_adjusted: float | None,
    rope: float,
    alpha: float,
    both_learned: bool = True,
) -> str:
    """``equivalent`` inside +-rope, else ``better``/``worse`` if Holm-significant, else
    ``inconclusive``; always ``inconclusive (did not learn)`` when the arm or its baseline did not
    learn (``both_learned`` false)."""
    if not both_learned:
        return NOT_LEARNED
    if interval is None or interval.low is None or interval.high is None:
        return INCONCLUSIVE
    if -rope <= interval.low and interval.high <= rope:
        return EQUIVALENT
    if p_adjusted is not None and p_adjusted < alpha:
        if interval.low > 0:
            return BETTER
        if interval.high < 0:
            return WORSE
    return INCONCLUSIVE


def wilcoxon_across_tasks(diffs: Sequence[float], alpha: float = ALPHA) -> TaskTest:
    """The paper's test on per-task differences (seed means); n/a where n tasks cannot reach alpha.

    The exact two-sided p-value of n nonzero differences is at least 2 / 2**n, so 5 tasks or
    fewer can never reach 0.05.
    """
    n = len(diffs)
    min_p = 2.0 / 2**n if n else 1.0
    if n == 0 or min_p >= alpha:
        return TaskTest(n, None, min_p)
    if all(d == 0 for d in diffs):
        return TaskTest(n, 1.0, min_p)
    return TaskTest(n, float(stats.wilcoxon(diffs).pvalue), min_p)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (statsmodels), in the order given."""
    if not pvalues:
        return []
    return [float(p) for p in multipletests(list(pvalues), method="holm")[1]]


def detectable_effect(interval: Interval, family: int, alpha: float = ALPHA) -> float | None:
    """The smallest true effect this interval's noise detects with 80% power after Holm's worst
    case (alpha / family tests): (t_{1-alpha'/2} + t_{0.8}) x se."""
    if interval.se is None or interval.df is None:
        return None
    level = alpha / max(family, 1)
    return float(
        (stats.t.ppf(1 - level / 2, interval.df) + stats.t.ppf(POWER, interval.df)) * interval.se
    )


def learned(step0: Sequence[float], final: Sequence[float], rope: float = ROPE) -> bool:
    """Whether the dev signal rose from step 0 by more than noise: the mean gain over seeds must
    exceed both the ROPE and twice the seed-to-seed spread of the untrained (step 0) signal."""
    gains = np.asarray(final, dtype=float) - np.asarray(step0, dtype=float)
    noise = 2 * float(np.std(step0, ddof=1)) if len(step0) > 1 else 0.0
    return float(np.mean(gains)) > max(noise, rope)
