"""The bridge from a trial's ``report(step, proxies)`` to ``trial.report`` / ``trial.should_prune``.

The bridge is where pruning is kept from biasing the table: the baseline is never pruned, nor is any
trial at step 0 (before training) or at its last step (training is paid for); a pruned trial is
judged against the finished trials of its own seed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import optuna

from search.pruners import same_seed_reference
from storage.study_records import (
    write_dev_curve,
    write_pruned,
)


@dataclass(frozen=True)
class ReportRules:
    """What the report bridge of one trial needs to know about its cell."""

    baseline: bool  # the cell is the plan's baseline arm: the reference, never pruned
    steps: int  # the trial's last training step: a report there is never pruned
    metrics: tuple[str, ...]  # the categories the objective averages (the composite's)


def may_prune(rules: ReportRules, step: int) -> bool:
    """Pruning may act only during training, and never on the baseline."""
    return not rules.baseline and 0 < step < rules.steps


def reporter(
    trial: optuna.Trial, rules: ReportRules, seed: int
) -> Callable[[int, dict[str, float]], None]:
    """``report(step, proxies)``: store each proxy and their composite, then maybe prune against
    the finished trials of the cell's ``seed``."""
    from objectives.training.dev_signal import (
        composite,  # worker side only: it loads the eval stack
    )

    curves: dict[str, dict[int, float]] = {}

    def report(step: int, proxies: dict[str, float]) -> None:
        value = composite(proxies, rules.metrics)
        trial.report(value, step)
        for category, proxy in proxies.items():
            curves.setdefault(category, {})[step] = proxy
            write_dev_curve(trial, category, curves[category])
        if not may_prune(rules, step) or not trial.should_prune():
            return
        reference = same_seed_reference(trial.study, seed, step)
        write_pruned(trial, step, None if reference is None else value - reference)
        raise optuna.TrialPruned(f"pruned at step {step} (dev composite {value:.4f})")

    return report
