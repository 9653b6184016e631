"""What the launcher shows: the plan before it runs, live progress while it runs, the table after.

Progress is read from the study itself (not from the driver's bookkeeping), so it shows the trials
of other launchers and of a Ray cluster's other nodes too: each running trial's cell, node, last
reported step and dev score as the worker stored them (``trial.report`` from step 0 on, the
``node`` user attr at its start), and "best so far" is the study's best COMPLETE trial.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from dashboards import console_table
from dashboards.verdicts import Rope
from search.arms import Arms
from search.plans import Plan
from search.study import cells
from storage.study_records import Cell, read_cell, read_node

# Seconds between redraws: a terminal redraws in place; in a log file each redraw is a line.
TERMINAL_REFRESH = 1.0
LOG_REFRESH = 30.0
NODE_CHARS = 8  # a Ray node id is 56 hex digits; its head tells the nodes of a cluster apart


def describe_plan(
    plan: Plan,
    arms: Arms,
    study_name: str,
    out: TextIO | None = None,
    phrases: Mapping[str, str] | None = None,
) -> None:
    """The arms x seeds that a launch runs, and the arms it skips with their reasons; with
    ``phrases`` (arm label -> a planner's words; '' for an arm the planner did not list) each arm
    says which phrase it was read from."""
    out = out or sys.stdout
    seeds = plan.seed_values()
    print(
        f"study '{study_name}': {plan.description}\n"
        f"  ablated: {plan.ablated} ({plan.action}); base {arms.base_config.model.backbone}"
        f"{f' ({arms.num_layers} layers)' if arms.num_layers else ''}",
        file=out,
    )
    for label in arms.labels:
        mark = " (baseline)" if label == plan.baseline else ""
        source = f" <- {phrases[label]!r}" if phrases and phrases.get(label) else ""
        if phrases is not None and label in phrases and not phrases[label]:
            mark = f"{mark[:-1]}, added: the current method)" if mark else " (added)"
        overrides = ", ".join(f"{k}={v}" for k, v in plan.arm(label).overrides.items())
        print(f"  arm {label!r}{mark}{source}: {overrides or 'no change'}; seeds {seeds}", file=out)
    for skip in arms.skipped:
        print(f"  skipped arm {skip['arm']!r}: {skip['reason']}", file=out)
    total = len(cells(plan, arms)) * plan.trials_per_cell
    print(f"  {total} trials ({len(arms.labels)} arms x {len(seeds)} seeds)", file=out)


@dataclass(frozen=True)
class RunningTrial:
    """One RUNNING trial as the study holds it; ``None`` for what its worker has not stored yet."""

    number: int
    arm: str
    seed: int
    node: str | None
    step: int | None  # the last reported step
    steps: int  # the trial's train.steps (N of step k/N)
    dev: float | None  # the composite dev score reported at ``step``

    def describe(self) -> str:
        """``#3 W off seed 0 node 3f2a1b4c step 2/4 dev 0.4123``."""
        return (
            f"#{self.number} {self.arm} seed {self.seed} node {_node(self.node)} "
            f"step {_step(self.step, self.steps)} dev {_score(self.dev)}"
        )


@dataclass(frozen=True)
class Snapshot:
    """The study's trials of the launched cells, counted, with the running ones in detail."""

    study: str
    total: int  # trials the launched cells need
    complete: int
    pruned: int
    failed: int
    queued: int
    running: tuple[RunningTrial, ...]
    best: str | None
    race: str | None = None  # a race's state (``search.race.status_line``)

    def counter(self) -> str:
        """``study: 2/6 finished (1 pruned, 0 failed), 2 running, 2 queued; best W on 0.51 (1)``."""
        finished = min(self.complete + self.pruned, self.total)
        text = (
            f"{self.study}: {finished}/{self.total} finished ({self.pruned} pruned, "
            f"{self.failed} failed), {len(self.running)} running, {self.queued} queued"
        )
        text += f"; best {self.best}" if self.best else ""
        return text + (f"; {self.race}" if self.race else "")

    def line(self) -> str:
        """The counter and every running trial on one line: what a log file gets."""
        return " | ".join([self.counter(), *(trial.describe() for trial in self.running)])

    def table(self) -> RenderableType:
        """The counter over a table of the running trials: what a terminal shows, redrawn."""
        view = Table()
        for column in ("trial", "arm", "seed", "node"):
            view.add_column(column)
        view.add_column("step", justify="right")
        view.add_column("dev score", justify="right")
        for trial in self.running:
            view.add_row(
                f"#{trial.number}",
                trial.arm,
                str(trial.seed),
                _node(trial.node),
                _step(trial.step, trial.steps),
                _score(trial.dev),
            )
        return Group(Text(self.counter()), view)


def snapshot(
    study: optuna.Study,
    plan: Plan,
    arms: Arms,
    race_round: tuple[set[tuple[str, int]], str] | None = None,
) -> Snapshot:
    """Read the study's trials of the cells ``plan`` x ``arms`` launches (``race_round``: a
    race's cells so far, which go past the plan's seeds, and its status line)."""
    launched = set(cells(plan, arms))
    if race_round is not None:
        launched |= {Cell(arm, seed) for arm, seed in race_round[0]}
    trials = [t for t in study.get_trials(deepcopy=False) if read_cell(t) in launched]
    states = Counter(t.state for t in trials)
    running = tuple(_running(t, arms) for t in trials if t.state == TrialState.RUNNING)
    return Snapshot(
        study=study.study_name,
        total=len(launched) * plan.trials_per_cell,
        complete=states[TrialState.COMPLETE],
        pruned=states[TrialState.PRUNED],
        failed=states[TrialState.FAIL],
        queued=states[TrialState.WAITING],
        running=running,
        best=best_so_far(trials),
        race=race_round[1] if race_round is not None else None,
    )


def _running(trial: FrozenTrial, arms: Arms) -> RunningTrial:
    arm, seed = read_cell(trial) or Cell("?", None)  # a launched cell: never None here
    # N: a plan's search may tune train.steps per trial; otherwise the arm's config, which is the
    # study's own (prepare_study refuses a launch whose configs differ from the study's).
    steps = trial.params.get("train.steps", arms.configs[arm].train.steps)
    step = max(trial.intermediate_values, default=None)
    return RunningTrial(
        number=trial.number,
        arm=arm,
        seed=seed,
        node=read_node(trial),
        step=step,
        steps=int(steps),
        dev=None if step is None else trial.intermediate_values[step],
    )


def _node(node: str | None) -> str:
    return "?" if node is None else node[:NODE_CHARS] if len(node) > 2 * NODE_CHARS else node


def _step(step: int | None, steps: int) -> str:
    return f"{'-' if step is None else step}/{steps}"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class LiveProgress:
    """The study's progress while the launch runs (``Snapshot``): a live table redrawn in place on
    a terminal, a plain line every ``LOG_REFRESH`` seconds anywhere else (a log file, a pipe)."""

    def __init__(
        self,
        study: optuna.Study,
        plan: Plan,
        arms: Arms,
        console: Console | None = None,
        refresh_seconds: float | None = None,
        race_round: tuple[set[tuple[str, int]], str] | None = None,
    ):
        self._study, self._plan, self._arms = study, plan, arms
        self._race = race_round
        self._console = console or Console()
        terminal = self._console.is_terminal
        self._refresh = refresh_seconds or (TERMINAL_REFRESH if terminal else LOG_REFRESH)
        self._last = 0.0
        self._live: Live | None = None
        if terminal:
            # Redrawn by update() only: each redraw reads the storage, so never on a timer thread.
            self._live = Live(console=self._console, auto_refresh=False)
            self._live.start()

    def update(self, *_: object, force: bool = False) -> None:
        """Redraw when the refresh interval has passed (``force``: now); the scheduler calls it."""
        if not force and time.monotonic() - self._last < self._refresh:
            return
        self._last = time.monotonic()
        state = snapshot(self._study, self._plan, self._arms, self._race)
        if self._live is not None:
            self._live.update(state.table(), refresh=True)
        else:
            self._console.out(state.line(), highlight=False)

    def close(self) -> None:
        """The last state stays on screen (or in the log)."""
        self.update(force=True)
        if self._live is not None:
            self._live.stop()


def best_so_far(trials: list[FrozenTrial]) -> str | None:
    """The arm with the best mean objective over its COMPLETE seeds, e.g. ``top-4 0.5123 (2)``."""
    best: dict[tuple[str, int], float] = {}  # per cell its best trial, as the table counts it
    for trial in trials:
        if trial.state == TrialState.COMPLETE and trial.value is not None:
            cell = read_cell(trial)
            if cell is not None:
                best[cell] = max(best.get(cell, trial.value), trial.value)
    by_arm: dict[str, list[float]] = {}
    for (arm, _), value in best.items():
        by_arm.setdefault(arm, []).append(value)
    if not by_arm:
        return None
    arm, values = max(by_arm.items(), key=lambda item: statistics.fmean(item[1]))
    return f"{arm} {statistics.fmean(values):.4f} ({len(values)})"


def print_table(
    study_name: str, url: str, console: Console | None = None, rope: Rope | None = None
) -> None:
    """The ablation table with a verdict per arm x column (``dashboards``), warnings, skipped arms."""
    console = console or Console()
    if not console.is_terminal:  # a log file or pipe: do not squeeze the table to 80 columns
        console.width = max(console.width, 180)
    for renderable in console_table(study_name, url, rope=rope):
        console.print(renderable)
