"""Pruning that respects the grid's design: seeds are paired, so a trial is judged by its own seed.

A seed fixes the data order, LoRA and head initialisation of every arm. On the small presets two
seeds of one arm differ in the intermediate score by far more than two arms of one seed, so
Optuna's MedianPruner, which compares across seeds, cuts the low seeds of every arm and leaves the
ablation table without its spread. Comparing with same-seed
trials cancels the seed effect; a margin keeps arms that are level with the others. When it may act
at all (never at step 0, the last step or on the baseline) is the report bridge's rule
(``search.report_bridge.may_prune``); which cell runs first, so that a reference exists, the scheduler's.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from search.plans import PlanError
from storage.study_records import read_cell


def same_seed_reference(study: optuna.Study, seed: int, step: int) -> float | None:
    """The median intermediate value at ``step`` of the finished (COMPLETE) trials of ``seed``;
    ``None`` while there is none. The scheduler runs each seed's baseline first, so that is it."""
    peers = _peers(study, seed, step)
    return statistics.median(peers) if peers else None


def _peers(study: optuna.Study, seed: int, step: int) -> list[float]:
    return [
        peer.intermediate_values[step]
        for peer in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if step in peer.intermediate_values and _seed(peer) == seed
    ]


def _seed(trial: FrozenTrial) -> int | None:
    cell = read_cell(trial)
    return None if cell is None else cell.seed


class SameSeedMedianPruner(optuna.pruners.BasePruner):
    """Prune a trial whose score at a step is worse than the median of the finished trials with the
    same ``seed`` param at that step by more than ``margin``.

    ``n_startup_trials`` same-seed trials must have finished before it prunes anything.
    """

    def __init__(self, margin: float = 0.01, n_startup_trials: int = 1) -> None:
        if margin < 0 or n_startup_trials < 1:
            raise ValueError("margin must be >= 0 and n_startup_trials >= 1")
        self.margin = margin
        self.n_startup_trials = n_startup_trials

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if step is None:
            return False
        value = trial.intermediate_values[step]
        if math.isnan(value):
            return True
        seed = _seed(trial)
        if seed is None:  # not a cell of the grid: no same-seed peers to judge it by
            return False
        peers = _peers(study, seed, step)
        if len(peers) < self.n_startup_trials:
            return False
        median = statistics.median(peers)
        if study.direction == optuna.study.StudyDirection.MAXIMIZE:
            return value < median - self.margin
        return value > median + self.margin


PRUNERS: tuple[str, ...] = ("median", "halving", "hyperband", "none")


@dataclass(frozen=True)
class Pruning:
    """Which pruner acts on the intermediate score, and how cautiously (the ``--prune*`` flags).

    ``startup`` and ``margin`` apply to ``median`` (``search.pruners.SameSeedMedianPruner``);
    ``halving`` and ``hyperband`` size their rungs from the reported steps.
    """

    name: str = "median"
    startup: int = 1
    margin: float = 0.01


def make_pruner(pruning: Pruning) -> optuna.pruners.BasePruner:
    """The pruner ``pruning`` names."""
    if pruning.name == "median":
        return SameSeedMedianPruner(margin=pruning.margin, n_startup_trials=pruning.startup)
    if pruning.name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource="auto")
    if pruning.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    if pruning.name == "none":
        return optuna.pruners.NopPruner()
    raise PlanError(f"unknown pruner '{pruning.name}'; choose one of {', '.join(PRUNERS)}")
