"""What the launcher shows: the plan before it runs, live progress while it runs, the table after.

Progress is read from the study itself (not from the driver's bookkeeping), so it counts trials of
other launchers and of earlier runs too, and "best so far" is the study's best COMPLETE trial.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from typing import TextIO

import optuna
from optuna.trial import TrialState
from rich.console import Console
from tqdm import tqdm

from dashboards.exports import console_table
from search.plans import Plan
from search.space import Arms, cell_of, cells


def describe_plan(plan: Plan, arms: Arms, study_name: str, out: TextIO | None = None) -> None:
    """The arms x seeds that a launch runs, and the arms it skips with their reasons."""
    out = out or sys.stdout
    seeds = plan.seed_values()
    print(
        f"study '{study_name}': {plan.description}\n"
        f"  ablated: {plan.ablated} ({plan.action}); base {arms.base.model.backbone}"
        f"{f' ({arms.num_layers} layers)' if arms.num_layers else ''}",
        file=out,
    )
    for label in arms.labels:
        mark = " (baseline)" if label == plan.baseline else ""
        overrides = ", ".join(f"{k}={v}" for k, v in plan.arm(label).overrides.items())
        print(f"  arm {label!r}{mark}: {overrides or 'no change'}; seeds {seeds}", file=out)
    for skip in arms.skipped:
        print(f"  skipped arm {skip['arm']!r}: {skip['reason']}", file=out)
    total = len(cells(plan, arms)) * plan.trials_per_cell
    print(f"  {total} trials ({len(arms.labels)} arms x {len(seeds)} seeds)", file=out)


class LiveProgress:
    """A tqdm bar over the study's cells: finished / total, with running, pruned, failed and best."""

    def __init__(
        self, study: optuna.Study, plan: Plan, arms: Arms, refresh_seconds: float | None = None
    ):
        self._study = study
        self._cells = set(cells(plan, arms))
        self._per_cell = plan.trials_per_cell
        # In a log file (nohup, CI) every redraw is a line: every 30 s there, every second on a TTY.
        self._refresh = refresh_seconds or (1.0 if sys.stderr.isatty() else 30.0)
        self._last = 0.0
        self._bar = tqdm(
            total=len(self._cells) * self._per_cell, desc=study.study_name, unit="trial"
        )

    def update(self, *_: object, force: bool = False) -> None:
        if not force and time.monotonic() - self._last < self._refresh:
            return
        self._last = time.monotonic()
        trials = [t for t in self._study.get_trials(deepcopy=False) if cell_of(t) in self._cells]
        states = Counter(t.state for t in trials)
        finished = states[TrialState.COMPLETE] + states[TrialState.PRUNED]
        self._bar.n = min(finished, self._bar.total)
        postfix = {
            "running": states[TrialState.RUNNING],
            "pruned": states[TrialState.PRUNED],
            "failed": states[TrialState.FAIL],
        }
        best = best_so_far(trials)
        if best is not None:
            postfix["best"] = best
        self._bar.set_postfix(postfix, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        self.update(force=True)
        self._bar.close()


def best_so_far(trials: list[optuna.trial.FrozenTrial]) -> str | None:
    """The arm with the best mean objective over its COMPLETE seeds, e.g. ``top-4 0.5123 (2)``."""
    best: dict[tuple[str, int], float] = {}  # per cell its best trial, as the table counts it
    for trial in trials:
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            cell = cell_of(trial)
            best[cell] = max(best.get(cell, trial.value), trial.value)
    by_arm: dict[str, list[float]] = {}
    for (arm, _), value in best.items():
        by_arm.setdefault(arm, []).append(value)
    if not by_arm:
        return None
    arm, values = max(by_arm.items(), key=lambda item: statistics.fmean(item[1]))
    return f"{arm} {statistics.fmean(values):.4f} ({len(values)})"


def print_table(
    study_name: str, url: str, console: Console | None = None, rope: float | None = None
) -> None:
    """The ablation table with a verdict per arm x column (``dashboards``), warnings, skipped arms."""
    console = console or Console()
    if not console.is_terminal:  # a log file or pipe: do not squeeze the table to 80 columns
        console.width = max(console.width, 180)
    for renderable in console_table(study_name, url, rope=rope):
        console.print(renderable)
