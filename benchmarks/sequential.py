"""Calibration of ``--until-decided``: the whole race simulated, against a fixed design of max seeds.

Each simulated study has a baseline and arms scored on a few columns, item by item, with the
structure of real studies (``dashboards.verdicts``' model): a seed effect per arm and seed, a seed
effect all arms of a seed share, an arm x item interaction every seed of the arm shares, the
baseline's own interaction (shared by every comparison), and seed x item noise; a column's paired
bootstrap over items uses the same draws for every seed and arm. The noise levels are the learning
preset's order of magnitude (``docs/MEASUREMENTS.md``, "Verdict calibration on the learning preset's
noise": seed std 0.02-0.06, paired item SE 0.02-0.05 on 51-128 items). This generator shares no
code with the race or the verdicts; what it runs is the product's decision procedure:
``dashboards.sequential.race`` (looks over seed rounds, Lan-DeMets spending, Holm within each
look, frozen closed arms, stopping rules) on ``dashboards.verdicts.paired_interval``.

Designs, all at alpha 0.05 over the study: the race with O'Brien-Fleming and with Pocock spending
(the plan's ``--plan-seeds`` to start, up to ``--max-seeds``), and the fixed design: every arm runs
``--max-seeds`` seeds and is looked at once (Holm over the study at 0.05, the table's rule).

Scenarios: ``null`` (4 arms, no effect anywhere), ``broken+copy`` (one arm 0.2 worse on every
column, one exact copy of the baseline), ``clear+copy`` (the same with 0.5 worse), ``small`` (arms
at +0.01, +0.02, -0.02 and 0).

Per scenario and design it prints, with Wilson 95% intervals (statsmodels): the study-wide rate of
any false better/worse (an arm without effect called better or worse, or an arm with one called
the wrong way; goal <= 0.05); power (cells of arms with an effect called the right way); calls of
'equivalent' for arms without effect; the mean seeds per arm; and the arm x seed cells run against
the fixed design's (what the race saved).

    python benchmarks/sequential.py [--studies 1000] [--max-seeds 6] [--plan-seeds 3] [--workers 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from statsmodels.stats.proportion import proportion_confint

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, no install needed

from dashboards.sequential import Comparison, race  # noqa: E402
from dashboards.verdicts import ROPE, paired_interval, verdict_kind  # noqa: E402
from storage.study_records import RaceDesign  # noqa: E402

COLUMNS = ("STS", "Retrieval", "Classification")
ITEMS = (128, 51, 128)  # test items behind each column
DRAWS = 100
SEED_SD = (0.02, 0.03, 0.04)  # a trial's quality per column: arm-specific part
SHARED_SEED_SD = 0.02  # the part every arm of the same seed shares (cancels in the pairs)
INTERACTION_SD = 0.15  # arm x item, shared by the arm's seeds
NOISE_SD = 0.3  # seed x item
SCENARIOS: dict[str, dict[str, float]] = {
    "null": {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0},
    "broken+copy": {"broken": -0.2, "copy": 0.0},
    "clear+copy": {"broken": -0.5, "copy": 0.0},
    "small": {"plus1": 0.01, "plus2": 0.02, "minus2": -0.02, "zero": 0.0},
}
DESIGNS = ("obrien-fleming", "pocock", "fixed")


def simulate(effects: dict[str, float], seeds: int, rng: np.random.Generator) -> dict:
    """Per (arm, column): each seed's mean paired difference and its bootstrap replicates."""
    out = {}
    for column, items, seed_sd in zip(COLUMNS, ITEMS, SEED_SD, strict=True):
        draws = rng.integers(0, items, (DRAWS, items))
        shared = rng.normal(0, SHARED_SEED_SD, (seeds, 1))

        base = _scores(0.0, items, seeds, seed_sd, shared, rng)
        for arm, effect in effects.items():
            diff = _scores(effect, items, seeds, seed_sd, shared, rng) - base
            out[(arm, column)] = (diff.mean(axis=1), diff[:, draws].mean(axis=2), items)
    return out


def _scores(
    effect: float,
    items: int,
    seeds: int,
    seed_sd: float,
    shared: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """One arm's item scores per seed (seeds x items), around its true effect."""
    return (
        effect
        + rng.normal(0, INTERACTION_SD, (1, items))
        + shared
        + rng.normal(0, seed_sd, (seeds, 1))
        + rng.normal(0, NOISE_SD, (seeds, items))
    )


@dataclass
class Tally:
    studies: int = 0
    false_studies: int = 0
    right: int = 0  # cells with an effect called the right way
    effect_cells: int = 0
    equivalent: int = 0  # cells without effect called equivalent
    null_cells: int = 0
    seeds: list[float] = field(default_factory=list)  # per arm
    cells_run: int = 0
    cells_fixed: int = 0
    looks: int = 0

    def add(self, other: Tally) -> None:
        for name in ("studies", "false_studies", "right", "effect_cells", "equivalent"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.null_cells += other.null_cells
        self.seeds += other.seeds
        self.cells_run += other.cells_run
        self.cells_fixed += other.cells_fixed
        self.looks += other.looks


def run_one(effects: dict[str, float], args: argparse.Namespace, seed: int) -> dict[str, Tally]:
    """One simulated study run by every design (the same data; each seed count's intervals
    computed once and shared by the designs)."""
    rng = np.random.default_rng(seed)
    data = simulate(effects, args.max_seeds, rng)
    intervals: dict[tuple[str, str, int], object] = {}

    def tests_at(n: int, closed: frozenset[str]) -> list[Comparison]:
        out = []
        for (arm, column), (means, draws, items) in data.items():
            key = (arm, column, n)
            if key not in intervals:
                intervals[key] = paired_interval(means[:n], draws[:n], items=items)
            out.append(Comparison(arm, column, intervals[key], ROPE))
        return out

    tallies = {}
    for design in DESIGNS:
        plan = args.max_seeds if design == "fixed" else args.plan_seeds
        spending = "obrien-fleming" if design == "fixed" else design
        race_design = RaceDesign(max_seeds=args.max_seeds, plan_seeds=plan, spending=spending)
        state = race(race_design, list(effects), tests_at, lambda n, _: True)
        tallies[design] = _tally(state, effects)
    return tallies


def _tally(state, effects: dict[str, float]) -> Tally:
    tally = Tally(studies=1, looks=len(state.looks))
    wrong = False
    for arm, result in state.arms.items():
        effect = effects[arm]
        for word in result.words.values():
            kind = verdict_kind(word)
            if effect == 0:
                tally.null_cells += 1
                tally.equivalent += kind == "equivalent"
                wrong |= kind in ("better", "worse")
            else:
                tally.effect_cells += 1
                tally.right += kind == ("better" if effect > 0 else "worse")
                wrong |= kind == ("worse" if effect > 0 else "better")
        tally.seeds.append(result.seeds)
    tally.false_studies = int(wrong)
    tally.cells_run, tally.cells_fixed = state.trials_run, state.fixed_trials
    return tally


def _job(job: tuple[str, argparse.Namespace, int, int]) -> dict[str, Tally]:
    scenario, args, start, count = job
    total = {design: Tally() for design in DESIGNS}
    for i in range(start, start + count):
        for design, tally in run_one(SCENARIOS[scenario], args, 1_000_003 * i + 17).items():
            total[design].add(tally)
    return total


def run(scenario: str, args: argparse.Namespace, studies: int) -> dict[str, Tally]:
    chunk = max(1, studies // (4 * args.workers))
    jobs = [(scenario, args, s, min(chunk, studies - s)) for s in range(0, studies, chunk)]
    total = {design: Tally() for design in DESIGNS}
    if args.workers > 1:
        with multiprocessing.Pool(args.workers) as pool:
            parts = list(pool.imap_unordered(_job, jobs))
    else:
        parts = [_job(job) for job in jobs]
    for part in parts:
        for design, tally in part.items():
            total[design].add(tally)
    return total


def rate(hits: int, total: int) -> str:
    if not total:
        return "n/a"
    low, high = proportion_confint(hits, total, alpha=0.05, method="wilson")
    return f"{hits / total:.3f} [{low:.3f}, {high:.3f}]"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=1000, help="studies per null scenario")
    parser.add_argument(
        "--other-studies", type=int, default=None, help="studies per other scenario (--studies)"
    )
    parser.add_argument("--max-seeds", type=int, default=6)
    parser.add_argument("--plan-seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args(argv)
    gc.freeze()  # statsmodels' Holm runs gc.collect() on every call; frozen objects make it cheap
    started = time.monotonic()
    print(
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load "
        f"{os.getloadavg()[0]:.1f}: races from {args.plan_seeds} to {args.max_seeds} seeds vs a "
        f"fixed design of {args.max_seeds}; alpha 0.05 over each study; columns "
        f"{', '.join(COLUMNS)}"
    )
    header = (
        f"{'scenario':<12} {'design':<15} {'studies':>7}  {'false better/worse':<24} "
        f"{'power':<24} {'equivalent (no effect)':<24} {'seeds/arm':>9} {'cells run/fixed':>16}"
    )
    print(header)
    for scenario in args.scenarios.split(","):
        studies = args.studies if scenario == "null" else (args.other_studies or args.studies)
        tallies = run(scenario, args, studies)
        for design in DESIGNS:
            t = tallies[design]
            power = rate(t.right, t.effect_cells) if t.effect_cells else "-"
            print(
                f"{scenario:<12} {design:<15} {t.studies:>7}  "
                f"{rate(t.false_studies, t.studies):<24} {power:<24} "
                f"{rate(t.equivalent, t.null_cells):<24} {np.mean(t.seeds):>9.2f} "
                f"{t.cells_run / t.studies:>7.1f}/{t.cells_fixed / t.studies:<8.1f}",
                flush=True,
            )
    print(f"sequential benchmark: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
