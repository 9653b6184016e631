"""Is an arm better, worse or equivalent to the baseline? Paired intervals valid with few seeds.

An arm's effect on a column is the mean, over the seeds both arms completed, of the paired
difference arm - baseline (same seed: same data order and initialisation). A per-item paired
difference behaves like ``d[s, i] = effect + a_s + u_i + e_si``: a seed effect ``a_s`` (training
noise), an arm x item interaction ``u_i`` that every seed shares (items on which the arm is
consistently better or worse), and seed x item noise ``e_si``. The seed means' sample variance
estimates ``var(a) + var(e) / m`` with ``n - 1`` degrees of freedom; it misses ``var(u) / m``,
which a paired bootstrap over each task's test items (``objectives.evaluation.evidence``; the same draws for
both arms and every seed) estimates from hundreds of items, as in a crossed random-effects ANOVA:
the variance of the seed-averaged difference over draws minus the within-seed part / (n - 1).

Each variance component gets its own quantile, and the two are added in quadrature: the test
rejects 0 at level alpha when ``mean^2 > t(n-1)^2 S^2/n + t(m-1)^2 K m/(m-1)``, with ``S^2`` the
seed variance (n - 1 df), ``K`` the shared item variance and ``m`` the fewest test items of a task in
the column (its own df, and the bootstrap's (m - 1)/m shrinkage undone). The squared threshold is a
mix of two scaled variables each of whose tail is alpha at its own quantile, and the tail
probability is convex in the squared standard error, so the size is at most alpha whatever the mix
(measured: <= 0.05 for seed-, item- and mixed-dominated noise, 0.06 at worst with 20 items and 2
seeds; ``tests/dashboards/test_verdict_null_size.py``). No df depends on the data: Welch-Satterthwaite's did,
jumping towards infinity whenever the 1-df seed variance came out small, and rejected a true null in
9-12% of 2-seed tests. A single t(n-1) over both parts is valid too but multiplies the well-known
item part by 12.7 at 2 seeds and decided almost nothing. Not covered: seed effects far from normal
(a rare collapsed seed) make every t-based test with 3-5 seeds liberal when seeds dominate, and a
sign-flip test cannot reach 0.05 below 6 seeds; the per-seed values are in every export to check.
The p-value is the smallest alpha at which the rule rejects (found by root search; the rule is
monotone in alpha), so Holm can adjust it.

Verdicts (``verdict``): no decided word without a variance estimate (fewer than 2 shared seeds,
or a standard error of exactly 0); ``better``/``worse`` when the Holm-adjusted p-value (over every
difference test of the study) is below alpha; ``equivalent`` when the two one-sided tests against
+-ROPE, with the same quadrature rule, reject after Holm over every equivalence test of the study;
else ``inconclusive``. A column without item evidence for every task (online tasks) has no item
part: its claim covers these test items only, and the word says so. Seeds that an arm lost
(pruned or failed) cut the lower tail of its differences, so an arm with lost seeds is never
``better`` or ``equivalent`` on the survivors (a baseline's lost seeds likewise block ``worse``
and ``equivalent``). A baseline not shown to learn withholds every verdict of the arms compared
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
from scipy import optimize, stats
from statsmodels.stats.multitest import multipletests

from objectives.errors import AblationError
from objectives.trial.results import CATEGORIES, OBJECTIVE

__all__ = [
    "ALPHA",
    "ARM_NOT_LEARNED",
    "BASELINE_NOT_LEARNED",
    "BETTER",
    "EQUIVALENT",
    "INCONCLUSIVE",
    "LOST_SEEDS",
    "METHOD",
    "POPULATION",
    "PRUNED",
    "ROPE",
    "THESE_ITEMS",
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
DID_NOT_LEARN = "not shown to learn"
# The only word for an arm compared with a baseline not shown to learn (module docstring).
BASELINE_NOT_LEARNED = f"{INCONCLUSIVE} (baseline {DID_NOT_LEARN})"
# Appended to a decided word when the arm alone was not shown to learn: the word stands, flagged.
ARM_NOT_LEARNED = f"arm {DID_NOT_LEARN}"
# Appended to a decided word whose column has no item evidence for every task.
THESE_ITEMS = "these test items only"
METHOD = (
    "paired difference vs the baseline over the seeds both completed; 95% interval: the seed "
    "differences' variance with a t(n-1) quantile and the test-item variance all seeds share "
    "(paired bootstrap over items) with a t(m-1) quantile, added in quadrature"
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
    # The seed part S^2/n and the item part K m/(m-1) of the variance, and the item part's df.
    seed_var: float = 0.0
    item_var: float = 0.0
    item_df: float | None = None

    def threshold(self, alpha: float, sides: int = 2) -> float:
        """The rule's critical |difference| at level ``alpha`` (module docstring)."""
        return _threshold(
            self.seed_var, self.item_var, self.n_seeds - 1, self.item_df, alpha, sides
        )

    def equivalence_p(self, rope: float) -> float | None:
        """p of the two one-sided tests that the true difference lies inside +-rope."""
        if self.p is None:
            return None
        return max(self._one_sided_p(self.mean + rope), self._one_sided_p(rope - self.mean))

    def _one_sided_p(self, margin: float) -> float:
        return _p_value(margin, self.seed_var, self.item_var, self.n_seeds - 1, self.item_df, 1)

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
    seed_diffs: Sequence[float],
    item_draws: np.ndarray | None,
    alpha: float = ALPHA,
    items: int | None = None,
) -> Interval:
    """The ``1 - alpha`` interval of the mean of ``seed_diffs`` and its p-value (module docstring).

    ``item_draws[s, b]`` is seed s's difference recomputed on bootstrap draw b of the test items
    (``None`` when no evidence was stored: the interval is then over seeds only); ``items`` is the
    fewest test items of a task behind the column (the item part's df is ``items - 1``).
    """
    diffs = np.asarray(seed_diffs, dtype=float)
    n, mean = len(diffs), float(np.mean(diffs))
    item_level = item_draws is not None
    if n < 2:
        return Interval(mean, None, None, n, None, None, None, item_level)
    item_var, item_df = 0.0, None
    if item_draws is not None:
        item_mean = item_draws.mean(axis=0)
        within = float(np.mean(np.var(item_draws - item_mean, axis=1, ddof=1)))
        item_var = max(float(np.var(item_mean, ddof=1)) - within / (n - 1), 0.0)
        if items is not None and items > 1:
            item_var *= items / (items - 1)  # the bootstrap shrinks a variance by (m - 1)/m
            item_df = float(items - 1)
    seed_var = float(np.var(diffs, ddof=1)) / n
    se = math.sqrt(seed_var + item_var)
    if se == 0:
        return Interval(mean, None, None, n, None, None, n - 1, item_level)
    half = _threshold(seed_var, item_var, n - 1, item_df, alpha, 2)
    p = _p_value(abs(mean), seed_var, item_var, n - 1, item_df, 2)
    return Interval(
        mean, mean - half, mean + half, n, p, se, n - 1, item_level, seed_var, item_var, item_df
    )


def _quantile(alpha: float, sides: int, df: float | None) -> float:
    level = 1 - alpha / sides
    return float(stats.norm.ppf(level) if df is None else stats.t.ppf(level, df))


def _threshold(
    seed_var: float, item_var: float, seed_df: int, item_df: float | None, alpha: float, sides: int
) -> float:
    seed_q, item_q = _quantile(alpha, sides, seed_df), _quantile(alpha, sides, item_df)
    return math.sqrt(seed_q**2 * seed_var + item_q**2 * item_var)


def _p_value(
    margin: float,
    seed_var: float,
    item_var: float,
    seed_df: int,
    item_df: float | None,
    sides: int,
) -> float:
    """The smallest alpha at which ``margin`` exceeds the rule's threshold (1 when it never does).

    The threshold falls as alpha rises (to 0 at alpha = sides / 2, beyond which a quantile would
    change sign), so the root is unique (scipy's brentq).
    """
    if margin <= 0:
        return 1.0

    def excess(alpha: float) -> float:
        return margin - _threshold(seed_var, item_var, seed_df, item_df, alpha, sides)

    low, high = 1e-15, sides / 2 - 1e-12
    if excess(high) <= 0:
        return 1.0
    if excess(low) > 0:
        return low
    return float(optimize.brentq(excess, low, high, xtol=1e-12, rtol=1e-10))


def verdict(
    interval: Interval | None,
    p_adjusted: float | None,
    equivalence_adjusted: float | None,
    alpha: float,
    *,
    baseline_learned: bool | None = True,
    arm_learned: bool | None = True,
    arm_lost: bool = False,
    baseline_lost: bool = False,
    arm_pruned: bool = False,
) -> str:
    """The word for one cell (module docstring).

    ``p_adjusted``/``equivalence_adjusted``: the Holm-adjusted p-values of the difference and of
    the equivalence tests; ``arm_lost``/``baseline_lost``: seeds the arm or the baseline launched
    but lost (failed or pruned); ``arm_pruned``: the arm's lost seeds include pruned ones.
    """
    if baseline_learned is False:
        return BASELINE_NOT_LEARNED
    word = INCONCLUSIVE
    if interval is not None and interval.low is not None and interval.high is not None:
        if p_adjusted is not None and p_adjusted < alpha:
            word = BETTER if interval.mean > 0 else WORSE
        elif equivalence_adjusted is not None and equivalence_adjusted < alpha:
            word = EQUIVALENT
    # Lost seeds bias the survivors: an arm's toward better, a baseline's toward the arm's worse.
    if (arm_lost and word in (BETTER, EQUIVALENT)) or (
        baseline_lost and word in (WORSE, EQUIVALENT)
    ):
        word = INCONCLUSIVE
    if arm_pruned and word == INCONCLUSIVE:
        word = PRUNED
    elif (arm_lost or baseline_lost) and word == INCONCLUSIVE:
        word = LOST_SEEDS
    flags = []
    if word in DECIDED and interval is not None and not interval.item_level:
        flags.append(THESE_ITEMS)
    if arm_learned is False and word in DECIDED:
        flags.append(ARM_NOT_LEARNED)
    return f"{word} ({'; '.join(flags)})" if flags else word


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
    """The smallest true effect this interval's noise detects with about 80% power after Holm's
    worst case (alpha / family tests): the rule's threshold there plus its one-sided 80% point."""
    if interval.se is None:
        return None
    level = alpha / max(family, 1)
    return interval.threshold(level) + interval.threshold(1 - POWER, sides=1)


def learned(
    step0: Sequence[float], final: Sequence[float], alpha: float = ALPHA, rope: float = ROPE
) -> bool | None:
    """Whether training is shown to have raised the dev signal, from the per-seed paired gains.

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
