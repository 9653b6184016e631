"""Is an arm better, worse or equivalent to the baseline? Paired intervals valid with few seeds.

An arm's effect on a column is the mean, over the seeds both arms completed, of the paired
difference arm - baseline (same seed: same data order and initialisation). A per-item paired
difference behaves like ``d[s, i] = effect + a_s + u_i + e_si``: a seed effect ``a_s`` (training
noise), an arm x item interaction ``u_i`` that every seed shares (items on which the arm is
consistently better or worse), and seed x item noise ``e_si``. The seed means' sample variance
estimates ``var(a) + var(e) / m`` with ``n - 1`` degrees of freedom; it misses ``var(u) / m``,
which a paired bootstrap over each task's test items (``objectives.evidence``; the same draws for
both arms and every seed) estimates from hundreds of items, as in a crossed random-effects ANOVA:
the variance of the seed-averaged difference over draws minus the within-seed part / (n - 1).

The reference distribution is Student t with ``n - 1`` degrees of freedom, the seed variance's
own. Welch-Satterthwaite, which treats the item variance as known and lets the df grow when the
1-df seed variance happens to come out small, rejected a true null in 9-12% of simulated 2-seed
tests (``tests/test_verdict_null_size.py``). With ``n - 1`` df the test is never liberal: the
standard error squared is the seed part (a scaled chi-square over n - 1) plus a nearly known item
part, a mean-preserving contraction of the pure-seed case, and the tail probability is convex in
it, so its size is at most alpha (exactly alpha when the seed term dominates). The price is power
when items dominate: with 2 seeds the t quantile is 12.7.

Verdicts (``verdict``): no decided word without a variance estimate (fewer than 2 shared seeds,
or a standard error of exactly 0); ``equivalent`` when the interval lies inside +-ROPE;
``better``/``worse`` when the interval excludes 0 and the Holm-adjusted p-value (over every
interval test of the study) is below alpha; else ``inconclusive``. Seeds that an arm lost
(pruned or failed) cut the lower tail of its differences, so an arm with lost seeds is never
``better`` or ``equivalent`` on the survivors (a baseline's lost seeds likewise block ``worse``
and ``equivalent``). A baseline that did not learn withholds every verdict of the arms compared
with it. The paper's Wilcoxon signed-rank test across the tasks of a category is descriptive
only: the tasks share the same few models, so it is not a valid test and no verdict uses it.

A claim generalises over new seeds and new test items of the same tasks, with the training
data, the tasks and the recipe fixed.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

from objectives.errors import AblationError
from objectives.results import CATEGORIES, OBJECTIVE

__all__ = [
    "ALPHA",
    "BASELINE_NOT_LEARNED",
    "BETTER",
    "EQUIVALENT",
    "INCONCLUSIVE",
    "LOST_SEEDS",
    "METHOD",
    "POPULATION",
    "PRUNED",
    "ROPE",
    "WORSE",
    "Interval",
    "Rope",
    "RopeError",
    "TaskTest",
    "detectable_effect",
    "holm",
    "learned",
    "paired_interval",
    "parse_rope",
    "rope_argument",
    "verdict",
    "verdict_kind",
    "wilcoxon_across_tasks",
]

ROPE = 0.005
ALPHA = 0.05
POWER = 0.8
BETTER, WORSE, EQUIVALENT, INCONCLUSIVE = "better", "worse", "equivalent", "inconclusive"
DECIDED = (BETTER, WORSE, EQUIVALENT)
PRUNED = "pruned (worse on dev)"
LOST_SEEDS = f"{INCONCLUSIVE} (failed seeds)"
DID_NOT_LEARN = "did not learn"
# The only word for an arm compared with a baseline that did not learn (module docstring).
BASELINE_NOT_LEARNED = f"{INCONCLUSIVE} (baseline {DID_NOT_LEARN})"
# Appended to a decided word when the arm alone did not learn: the word stands, flagged.
ARM_NOT_LEARNED = f"arm {DID_NOT_LEARN}"
METHOD = (
    "paired difference vs the baseline over the seeds both completed; 95% interval: Student t with "
    "n-1 df over the seed differences, plus the test-item variance all seeds share (paired "
    "bootstrap over items)"
)
POPULATION = (
    "claims generalise over new seeds and new test items of the same tasks; the training data, "
    "the tasks and the recipe are fixed"
)


class RopeError(AblationError, ValueError):
    """A ``--rope`` value that cannot be read; the message names the fix."""


@dataclass(frozen=True)
class Rope:
    """The region of practical equivalence: a default half-width and one per metric category.

    A task column uses its category's ROPE; the average uses the default.
    """

    default: float = ROPE
    by_category: Mapping[str, float] = field(default_factory=dict)

    def for_column(self, column: str, categories: Mapping[str, str]) -> float:
        category = column if column in CATEGORIES else categories.get(column)
        if column == OBJECTIVE or category is None:
            return self.default
        return self.by_category.get(category, self.default)

    def describe(self) -> str:
        parts = [f"±{self.default}"] + [f"{c} ±{v}" for c, v in self.by_category.items()]
        return ", ".join(parts)


def parse_rope(text: str | float) -> Rope:
    """``0.005``, ``STS=0.005,Retrieval=0.01`` or both (``0.01,STS=0.005``) as a ``Rope``."""
    if isinstance(text, float | int):
        return _checked(Rope(float(text)))
    default, by_category = ROPE, {}
    for part in (p.strip() for p in str(text).split(",") if p.strip()):
        name, _, value = part.rpartition("=")
        try:
            number = float(value)
        except ValueError:
            raise RopeError(
                f"--rope {text!r}: {value!r} is not a number; write e.g. 0.005 or "
                "STS=0.005,Retrieval=0.01"
            ) from None
        if not name:
            default = number
        elif name.strip() in CATEGORIES:
            by_category[name.strip()] = number
        else:
            raise RopeError(
                f"--rope {text!r}: unknown category {name.strip()!r}; use one of "
                f"{', '.join(CATEGORIES)}"
            )
    return _checked(Rope(default, by_category))


def rope_argument(text: str) -> Rope:
    """``parse_rope`` for argparse: a bad value is argparse's one-line usage error, exit 2."""
    try:
        return parse_rope(text)
    except RopeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _checked(rope: Rope) -> Rope:
    if any(v < 0 or not math.isfinite(v) for v in (rope.default, *rope.by_category.values())):
        raise RopeError(f"--rope must be >= 0 everywhere, got {rope.describe()}")
    return rope


@dataclass(frozen=True)
class Interval:
    """The paired mean difference, its interval and the test of 0.

    ``low``, ``high``, ``p`` and ``se`` are ``None`` where there is no variance estimate (fewer
    than 2 seeds, or every source of variation measured exactly 0).
    """

    mean: float
    low: float | None
    high: float | None
    n_seeds: int
    p: float | None
    se: float | None
    df: float | None
    item_level: bool

    @property
    def half_width(self) -> float | None:
        return None if self.low is None or self.high is None else (self.high - self.low) / 2


@dataclass(frozen=True)
class TaskTest:
    """Wilcoxon signed-rank across ``n`` tasks (descriptive; ``p`` is ``None`` when n tasks
    cannot reach alpha)."""

    n: int
    p: float | None
    min_p: float

    def label(self) -> str:
        return f"n/a ({self.n} tasks)" if self.p is None else f"p = {self.p:.3g}"


def paired_interval(
    seed_diffs: Sequence[float], item_draws: np.ndarray | None, alpha: float = ALPHA
) -> Interval:
    """The ``1 - alpha`` interval of the mean of ``seed_diffs`` (module docstring).

    ``item_draws[s, b]`` is seed s's difference recomputed on bootstrap draw b of the test items
    (``None`` when no evidence was stored: the interval is then over seeds only).
    """
    diffs = np.asarray(seed_diffs, dtype=float)
    n, mean = len(diffs), float(np.mean(diffs))
    item_level = item_draws is not None
    if n < 2:
        return Interval(mean, None, None, n, None, None, None, item_level)
    item_var = 0.0
    if item_draws is not None:
        item_mean = item_draws.mean(axis=0)
        within = float(np.mean(np.var(item_draws - item_mean, axis=1, ddof=1)))
        item_var = max(float(np.var(item_mean, ddof=1)) - within / (n - 1), 0.0)
    se = math.sqrt(float(np.var(diffs, ddof=1)) / n + item_var)
    df = n - 1
    if se == 0:
        return Interval(mean, None, None, n, None, None, df, item_level)
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    p = float(2 * stats.t.sf(abs(mean) / se, df))
    return Interval(mean, mean - half, mean + half, n, p, se, df, item_level)


def verdict(
    interval: Interval | None,
    p_adjusted: float | None,
    rope: float,
    alpha: float,
    *,
    baseline_learned: bool | None = True,
    arm_learned: bool | None = True,
    arm_lost: bool = False,
    baseline_lost: bool = False,
    arm_pruned: bool = False,
) -> str:
    """The word for one cell (module docstring).

    ``arm_lost``/``baseline_lost``: seeds the arm or the baseline launched but lost (failed or
    pruned); ``arm_pruned``: the arm's lost seeds include pruned ones (worse on the dev signal).
    """
    if baseline_learned is False:
        return BASELINE_NOT_LEARNED
    word = INCONCLUSIVE
    if interval is not None and interval.low is not None and interval.high is not None:
        if -rope <= interval.low and interval.high <= rope:
            word = EQUIVALENT
        elif p_adjusted is not None and p_adjusted < alpha:
            word = BETTER if interval.low > 0 else WORSE if interval.high < 0 else INCONCLUSIVE
    # Lost seeds bias the survivors: an arm's toward better, a baseline's toward the arm's worse.
    if (arm_lost and word in (BETTER, EQUIVALENT)) or (
        baseline_lost and word in (WORSE, EQUIVALENT)
    ):
        word = INCONCLUSIVE
    if arm_pruned and word == INCONCLUSIVE:
        word = PRUNED
    elif (arm_lost or baseline_lost) and word == INCONCLUSIVE:
        word = LOST_SEEDS
    if arm_learned is False and word in DECIDED:
        word = f"{word} ({ARM_NOT_LEARNED})"
    return word


def verdict_kind(word: str | None) -> str | None:
    """The decided word a cell's text starts with (``better``/``worse``/``equivalent``), else
    ``None``: for colouring, and for counting calls in the calibration benchmark."""
    if word is None:
        return None
    head = word.split(" (")[0]
    return head if head in DECIDED else None


def wilcoxon_across_tasks(diffs: Sequence[float], alpha: float = ALPHA) -> TaskTest:
    """The paper's test on per-task differences (seed means), reported as description only.

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


def learned(
    step0: Sequence[float], final: Sequence[float], alpha: float = ALPHA, rope: float = ROPE
) -> bool | None:
    """Whether training raised the dev signal, tested on the per-seed paired gains.

    With 2 or more seeds: a one-sided t test (scipy) that the mean gain final - step 0 exceeds 0;
    when every seed gained exactly the same (no variance to test), that gain must exceed the ROPE.
    One seed cannot be tested: ``None`` (unknown), and no verdict rests on one seed anyway.
    """
    gains = np.asarray(final, dtype=float) - np.asarray(step0, dtype=float)
    if len(gains) < 2:
        return None
    if np.ptp(gains) == 0:
        return bool(gains[0] > rope)
    return bool(stats.ttest_1samp(gains, 0.0, alternative="greater").pvalue < alpha)
