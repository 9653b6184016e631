"""Is an arm different from the baseline? The paper's test, plus one that works with few tasks.

The paper compares two models with a Wilcoxon signed-rank test over their per-task scores. With a
small task subset that test cannot reach p < 0.05 (its exact two-sided p-value is at least
2 / 2**n, so it needs n >= 6 tasks), so every column also gets a paired t-test over the seeds both
arms finished: it asks whether the arm's effect exceeds seed-to-seed noise on this task subset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

WILCOXON_TASKS = "Wilcoxon signed-rank across tasks"
PAIRED_T_SEEDS = "paired t-test across seeds"
MIN_TASKS_FOR_SIGNIFICANCE = 6


@dataclass(frozen=True)
class Comparison:
    """One comparison: which test, on how many pairs, its p-value (``None`` when not computable)."""

    test: str
    n: int
    p: float | None
    note: str = ""

    def significant(self, alpha: float) -> bool:
        return self.p is not None and self.p < alpha


def wilcoxon_across_tasks(arm: dict[str, float], baseline: dict[str, float]) -> Comparison:
    """Two-sided Wilcoxon signed-rank on per-task scores (already averaged over seeds)."""
    tasks = sorted(set(arm) & set(baseline))
    diffs = [arm[t] - baseline[t] for t in tasks]
    n = len(diffs)
    if n < 2:
        return Comparison(WILCOXON_TASKS, n, None, f"needs >= 2 shared tasks, has {n}")
    if all(d == 0 for d in diffs):
        return Comparison(WILCOXON_TASKS, n, 1.0, "identical per-task scores")
    p = float(stats.wilcoxon(diffs).pvalue)
    note = (
        f"only {n} tasks: cannot reach p < 0.05"
        if n < MIN_TASKS_FOR_SIGNIFICANCE and p >= 0.05
        else ""
    )
    return Comparison(WILCOXON_TASKS, n, p, note)


def paired_t_across_seeds(arm: dict[object, float], baseline: dict[object, float]) -> Comparison:
    """Two-sided paired t-test on the seeds both arms finished (same seed = same data order)."""
    seeds = [s for s in arm if s in baseline]
    diffs = [arm[s] - baseline[s] for s in seeds]
    n = len(diffs)
    if n < 2:
        return Comparison(PAIRED_T_SEEDS, n, None, f"needs >= 2 shared seeds, has {n}")
    mean = sum(diffs) / n
    if all(math.isclose(d, mean, abs_tol=1e-12) for d in diffs):
        # Zero variance: t is undefined; identical scores mean no difference, constant ones no noise.
        return Comparison(PAIRED_T_SEEDS, n, None, "differences are constant across seeds")
    p = float(stats.ttest_rel([arm[s] for s in seeds], [baseline[s] for s in seeds]).pvalue)
    return Comparison(PAIRED_T_SEEDS, n, p)
