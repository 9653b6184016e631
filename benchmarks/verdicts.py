"""Calibration of the table's verdicts: what the table promises, measured on simulated studies.

The noise comes from real trials of this project, measured first: ``--study NAME --storage URL``
reads the COMPLETE baseline trials of a stored study (the README main job's, say), otherwise
``--measure-seeds`` new trials of ``--preset``'s baseline (default the smoke preset) are run. Per
task it measures the seed-to-seed std of the score, the item-level SE of one score and of the paired
difference of two trials on the same items (a bootstrap over the stored evidence). It prints which
source it used.

Each simulated study is built from that structure, with what real studies have: 8 arms (the
baseline and 7 others) x seeds; per-item evidence of the task's own kind (STS pairs resampled by
Spearman, retrieval and classification per-item values, clustering assignments scored by V-measure
over mteb-style experiments), so the table resamples it exactly as it resamples real evidence; an
arm x item interaction every seed of an arm shares; seed quality shared by the arms of the same
seed and by the tasks of the same trial; dev curves from step 0 (so "did not learn" runs), pruned
trials where the arm's dev signal falls behind its seed's baseline, failed trials, and best-of-2
cells picked by the table's rule. The studies are written through ``storage.study_records`` and
read by the SAME ``dashboards.ablation_table.build_table`` as every report; this file shares no
statistics code with the table (the independent size check is ``tests/dashboards/test_verdict_null_size.py``).

It reports, each with a Wilson 95% interval (statsmodels):
- at no effect: the study-wide rate of any false better/worse (what Holm promises, goal <= 0.05),
  the per-test size (unadjusted p < alpha), interval coverage of 0;
- at a true effect of exactly +ROPE on the Retrieval and Classification items: how often the
  Retrieval column is called "equivalent" (goal <= 0.05);
- power on the Retrieval column (its true effect is exact: a shift of every item's value) as a
  curve over effect sizes for 2, 3, 5 and 10 seeds, and wrong-sign calls there.

Finally a 24-trial study (8 arms x 3 seeds, the measured trials' real evidence) is reported to HTML
and timed. The last line reads
``verdicts: false-positive rate F (goal <= 0.05), power P at effect 0.02 with 3 seeds``
with F the study-wide rate at 3 seeds.

    python benchmarks/verdicts.py [--preset smoke] [--studies 5000] [--study NAME --storage URL]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import math
import multiprocessing
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState
from scipy.special import expit
from statsmodels.stats.proportion import proportion_confint

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, no install needed

from dashboards.ablation_table import build_table  # noqa: E402
from dashboards.records import ReportedStudy, load_records  # noqa: E402
from dashboards.report import write_report  # noqa: E402
from dashboards.verdicts import ALPHA, BETTER, EQUIVALENT, ROPE, WORSE, verdict_kind  # noqa: E402
from objectives.categories import Category  # noqa: E402
from objectives.cli import one_line_errors  # noqa: E402
from objectives.config.trial_config import ConfigError  # noqa: E402
from objectives.evaluation.evidence import TaskEvidence, items_hash  # noqa: E402
from objectives.evaluation.mteb_tasks import hub_offline  # noqa: E402
from objectives.evaluation.task_files import TASKS_DIR_ENV, resolve_tasks_dir  # noqa: E402
from objectives.trial.results import CATEGORIES, OBJECTIVE, TrialResult, category_means  # noqa: E402
from storage.study_records import (  # noqa: E402
    ArmRecord,
    Cell,
    PlanRecord,
    StudyRecord,
    cell_distributions,
    cell_params,
    evidence_system_attrs,
    read_evidence,
    read_result,
    write_pruned,
    write_result,
    write_study_record,
)

DRAWS = 400
EFFECT = 0.02
ARMS = 8
POWER_EFFECTS = (0.01, 0.02, 0.05, 0.1)
POWER_SEEDS = (2, 3, 5, 10)
# Simulation assumptions the measured trials cannot show (one arm's seeds say nothing of them):
SEED_SHARED = 0.5  # share of a trial's quality variance common to every arm of the same seed
TASK_SHARED = 0.5  # share of a task's quality variance common to every task of the trial
INTERACTION = 1.0  # arm x item interaction sd, relative to the per-trial item noise sd
PRUNE_MARGIN = 0.01  # the median pruner's margin on the dev signal
# A trial's quality sd per task is at least this: 3 measured trials (2 df) can put it at 0, and a
# simulator without a seed term never meets the regime where a test with few seeds goes wrong.
SEED_FLOOR = 0.01
FAIL_RATE = 0.03  # chance that a trial fails
EXPERIMENTS = 4  # clustering experiments per task (mteb bootstraps several k-means runs)


def measured_trials(args: argparse.Namespace) -> list[TrialResult]:
    """Real trials with evidence: from a stored study, or run now with the preset's baseline."""
    if args.study:
        records = load_records(args.study, args.storage)
        arm = records.baseline or records.arms[0]
        trials = list(records.cells(arm).values())
        if len(trials) < 2:
            raise ConfigError(
                f"study {args.study!r} has {len(trials)} complete trial(s) of arm {arm!r}; the "
                "seed std needs 2 or more: relaunch it with --seeds 2 or more"
            )
        results = [
            dataclasses.replace(result, average=float(t.value), evidence=read_evidence(t))
            for t in trials
            if (result := read_result(t)) is not None
        ]
        print(f"noise source: stored study {args.study!r}, arm {arm!r}, {len(results)} trials")
        return results
    if hub_offline() and resolve_tasks_dir(args.tasks_dir) is None:
        raise ConfigError(
            f"HF_HUB_OFFLINE is set and no tasks directory is given, so the {args.preset} trials "
            f"to measure have no tasks: pass --tasks-dir DIR (the layout of shared/data) or set "
            f"{TASKS_DIR_ENV}, or measure a stored study with --study NAME --storage URL"
        )
    from objectives.config.presets import preset_config
    from objectives.trial.run import run_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = preset_config(
        args.preset, {"eval.tasks_dir": args.tasks_dir} if args.tasks_dir else {}
    )
    results = []
    for seed in range(args.measure_seeds):
        start = time.perf_counter()
        results.append(run_trial(dataclasses.replace(config, seed=seed), progress=False))
        print(f"measured trial seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"noise source: {len(results)} new trials of the {args.preset} preset's baseline")
    return results


def noise(results: list[TrialResult]) -> dict[str, dict[str, float]]:
    """Per task: seed std, item SE of one score, item SE of a paired difference."""
    out = {}
    rng = np.random.default_rng(0)
    for task in results[0].evidence:
        evidence = [r.evidence[task] for r in results if task in r.evidence]
        n = evidence[0].n_items
        draws = rng.integers(0, n, (DRAWS, n))
        scores = [e.resampled(draws) for e in evidence]
        pair = [np.std(a - b, ddof=1) for i, a in enumerate(scores) for b in scores[i + 1 :]]
        out[task] = {
            "kind": evidence[0].kind,
            "n": n,
            "seed_std": float(np.std([e.score() for e in evidence], ddof=1)),
            "item_se": float(np.mean([np.std(s, ddof=1) for s in scores])),
            "pair_se": float(np.mean(pair)),
            "mean": float(np.mean([e.score() for e in evidence])),
        }
    return out


# --- the simulator: per-item latent quality, turned into evidence of each task's kind ----------


@dataclasses.dataclass(frozen=True)
class TaskModel:
    """How one task's evidence is simulated: item count, noise scales, and the kind's mapping.

    Every item of a trial has a latent quality ``difficulty + interaction[arm] + trial shift +
    effect + noise`` in the task's score units; mean-type tasks store it as the item's value,
    STS and clustering turn it into similarities or cluster assignments through a slope fitted so
    that one unit of latent quality moves the score by about one unit.
    """

    name: str
    kind: str
    n: int
    mean: float
    trial_sd: float
    item_sd: float
    difficulty_sd: float
    slope: float = 1.0


def task_models(structure: dict[str, dict[str, float]]) -> list[TaskModel]:
    models = []
    for task, s in structure.items():
        n = int(s["n"])
        item_sd = s["pair_se"] * math.sqrt(n / 2)  # a paired difference of two trials has pair_se
        trial_sd = max(math.sqrt(max(s["seed_std"] ** 2 - s["pair_se"] ** 2 / 2, 0.0)), SEED_FLOOR)
        difficulty_sd = math.sqrt(max(s["item_se"] ** 2 * n - item_sd**2, 0.0))
        model = TaskModel(task, s["kind"], n, s["mean"], trial_sd, item_sd, difficulty_sd)
        models.append(dataclasses.replace(model, slope=_slope(model)))
    return models


def _slope(model: TaskModel) -> float:
    """For STS and clustering, the latent-to-raw slope that moves the score by about one unit per
    unit of latent quality at the task's measured mean (a finite difference on large samples)."""
    if model.kind not in (Category.STS, Category.CLUSTERING):
        return 1.0
    rng = np.random.default_rng(0)
    big = dataclasses.replace(model, n=4000, trial_sd=0.0, item_sd=0.0, difficulty_sd=0.0)
    gap = 0.05
    high = _evidence(big, np.full(4000, gap), rng, big.n).score()
    low = _evidence(big, np.full(4000, -gap), rng, big.n).score()
    return 2 * gap / max(high - low, 1e-6)


def _evidence(
    model: TaskModel, latent: np.ndarray, rng: np.random.Generator, n: int
) -> TaskEvidence:
    """The task's evidence for one trial from its items' latent quality (fixed item identities)."""
    identity = items_hash(f"{model.name}:{i}" for i in range(n))
    item_rng = np.random.default_rng(abs(hash(model.name)) % 2**32)  # fixed per task: the items
    if model.kind == Category.STS:
        gold = item_rng.uniform(0, 5, n)
        # The gold signal is scaled up where quality is high, over a fixed per-pair confusion:
        # Spearman rises with quality, and items differ in how well a model reads them.
        confusion = _noise_for_spearman(model.mean) * item_rng.standard_normal(n)
        similarity = (gold - 2.5) / 1.44 * np.exp(model.slope * latent) + confusion
        return TaskEvidence(Category.STS, identity, {"similarity": similarity, "gold": gold})
    if model.kind == Category.CLUSTERING:
        k = max(2, round(math.sqrt(n) / 2))
        labels = item_rng.integers(0, k, n)
        size = max(k, int(0.8 * n))
        drawn = item_rng.integers(0, n, (EXPERIMENTS, size))
        correct = expit(_logit_for_v(model.mean, k) + model.slope * latent)
        hit = rng.random((EXPERIMENTS, size)) < correct[drawn]
        assigned = np.where(hit, labels[drawn], rng.integers(0, k, (EXPERIMENTS, size)))
        arrays = {"labels": labels, "drawn": drawn, "assigned": assigned}
        return TaskEvidence(Category.CLUSTERING, identity, arrays)
    return TaskEvidence(model.kind, identity, {"values": model.mean + latent})


def _noise_for_spearman(rho: float) -> float:
    """Noise sd (gold in sd units) at which Spearman is about ``rho`` (normal approximation)."""
    pearson = 2 * math.sin(math.pi * min(max(rho, 0.05), 0.95) / 6)
    return math.sqrt(max(1 / pearson**2 - 1, 1e-6))


def _logit_for_v(v: float, k: int) -> float:
    """A rough logit of the share of correctly clustered items for V-measure ``v`` with k labels."""
    share = min(max(v, 0.05), 0.95) ** 0.5
    chance = 1 / k
    p = min(max((share - chance) / (1 - chance), 0.02), 0.98)
    return math.log(p / (1 - p))


@dataclasses.dataclass(frozen=True)
class Design:
    """One simulated study design: arms, seeds, the true effects, and what can happen to trials."""

    seeds: int
    arms: int = ARMS
    effect: float = 0.0  # true effect of arm 1 on the retrieval/classification items
    effect_arms: int = 1  # how many non-baseline arms have it (the others have none)
    best_of: int = 1  # trials per cell, the table picks one on the dev signal
    pruning: bool = False
    failures: bool = False


def simulate(models: list[TaskModel], design: Design, rng: np.random.Generator) -> ReportedStudy:
    """One study of ``design`` whose evidence follows the measured structure."""
    study = optuna.create_study(direction="maximize")
    arms = ["base"] + [f"arm {i}" for i in range(1, design.arms)]
    plan = _plan(arms)
    difficulty = {m.name: rng.normal(0, m.difficulty_sd, m.n) for m in models}
    interaction = {
        (arm, m.name): rng.normal(0, INTERACTION * m.item_sd, m.n) for arm in arms for m in models
    }
    categories = {m.name: m.kind for m in models}
    distributions = cell_distributions(arms, design.seeds)
    for seed in range(design.seeds):
        shared = rng.standard_normal()  # this seed's data order and initialisation, every arm
        base_dev = None
        for arm in arms:
            index = arms.index(arm)
            effect = design.effect if 1 <= index <= design.effect_arms else 0.0
            for _ in range(design.best_of):
                quality = (
                    math.sqrt(SEED_SHARED) * shared
                    + math.sqrt(1 - SEED_SHARED) * rng.standard_normal()
                )
                evidence, scores = {}, {}
                for m in models:
                    own = rng.standard_normal()
                    shift = m.trial_sd * (
                        math.sqrt(TASK_SHARED) * quality + math.sqrt(1 - TASK_SHARED) * own
                    )
                    latent = (
                        difficulty[m.name]
                        + interaction[(arm, m.name)]
                        + shift
                        + (effect if m.kind not in (Category.STS, Category.CLUSTERING) else 0.0)
                        + rng.normal(0, m.item_sd, m.n)
                    )
                    evidence[m.name] = _evidence(m, latent, rng, m.n)
                    scores[m.name] = evidence[m.name].score()
                # The dev signal tracks the trial's quality; training raised it from step 0.
                start = 0.35 + rng.normal(0, 0.01)
                final = 0.6 + 0.02 * quality + effect + rng.normal(0, 0.005)
                state = TrialState.COMPLETE
                if design.failures and rng.random() < FAIL_RATE:
                    state = TrialState.FAIL
                elif arm == "base":
                    base_dev = final
                elif design.pruning and base_dev is not None and final < base_dev - PRUNE_MARGIN:
                    state = TrialState.PRUNED
                cats = category_means(scores, categories)
                result = TrialResult(
                    scores,
                    cats,
                    sum(cats.values()) / len(cats),
                    task_category=categories,
                    evidence=evidence,
                )
                curve = {0: start, 10: final}
                gap = None if base_dev is None else final - base_dev
                study.add_trial(_frozen(Cell(arm, seed), result, distributions, curve, state, gap))
    return ReportedStudy(study, "memory", plan, [], None, None, study.get_trials(deepcopy=False))


def _plan(arms: list[str]) -> PlanRecord:
    """A plan of ``arms`` against the first, with the metrics and objective the service stores."""
    return PlanRecord(
        baseline=arms[0],
        arms=[ArmRecord(label=arm, overrides={}) for arm in arms],
        metrics=list(CATEGORIES),
        objective_name=OBJECTIVE,
        seeds=[],
    )


def _frozen(
    cell: Cell,
    result: TrialResult,
    distributions: dict[str, BaseDistribution],
    curve: dict[int, float] | None = None,
    state: TrialState = TrialState.COMPLETE,
    gap: float | None = None,
) -> FrozenTrial:
    """A trial of ``cell`` stored as the service stores it (result and evidence when COMPLETE)."""
    now = dt.datetime(2025, 1, 1)
    complete = state == TrialState.COMPLETE
    reported = dict(curve or {})
    if state == TrialState.PRUNED:
        reported = {0: reported[0]}
    trial = FrozenTrial(
        number=0,
        trial_id=0,
        state=state,
        value=result.average if complete else None,
        datetime_start=now,
        datetime_complete=now,
        params=cell_params(cell),
        distributions=distributions,
        user_attrs={},
        system_attrs=evidence_system_attrs(result.evidence) if complete else {},
        intermediate_values=reported if state != TrialState.FAIL else {},
    )
    if complete:
        write_result(trial, result)
    elif state == TrialState.PRUNED:
        write_pruned(trial, 10, gap)
    return trial


# --- what the table says about each simulated study --------------------------------------------


@dataclasses.dataclass
class Tally:
    """Counts over simulated studies of one design."""

    studies: int = 0
    false_studies: int = 0  # studies with any better/worse at no effect
    tests: int = 0
    rejected: int = 0  # unadjusted p < alpha at no effect
    covered: int = 0  # intervals containing the true effect (Retrieval column)
    intervals: int = 0
    calls: Counter = dataclasses.field(default_factory=Counter)  # Retrieval column words

    def add(self, other: Tally) -> None:
        self.studies += other.studies
        self.false_studies += other.false_studies
        self.tests += other.tests
        self.rejected += other.rejected
        self.covered += other.covered
        self.intervals += other.intervals
        self.calls.update(other.calls)


def _run(job: tuple[list[TaskModel], Design, int, int]) -> Tally:
    """``count`` studies of ``design`` (a worker process's share)."""
    models, design, count, seed = job
    gc.freeze()  # statsmodels' Holm runs gc.collect() on every call; frozen objects make it cheap
    rng = np.random.default_rng(seed)
    tally = Tally()
    for _ in range(count):
        table = build_table(simulate(models, design, rng))
        tally.studies += 1
        false = False
        for row in table.rows:
            if row.is_baseline:
                continue
            for column, cell in row.cells.items():
                kind = verdict_kind(cell.verdict)
                if design.effect == 0 and kind in (BETTER, WORSE):
                    false = True
                interval = cell.interval
                if design.effect == 0 and interval is not None and interval.p is not None:
                    tally.tests += 1
                    tally.rejected += interval.p < ALPHA
                if column == Category.RETRIEVAL and row.arm == "arm 1":
                    tally.calls[kind or "undecided"] += 1
                    if interval is not None and interval.low is not None:
                        tally.intervals += 1
                        tally.covered += interval.low <= design.effect <= interval.high
        tally.false_studies += false
    return tally


def run_design(models: list[TaskModel], design: Design, studies: int, workers: int) -> Tally:
    shares = [studies // workers + (i < studies % workers) for i in range(workers)]
    jobs = [(models, design, share, 1000 * i + design.seeds) for i, share in enumerate(shares)]
    tally = Tally()
    if workers == 1:
        tally.add(_run(jobs[0]))
        return tally
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for part in pool.map(_run, jobs):
            tally.add(part)
    return tally


def rate(hits: int, total: int) -> str:
    """``r [low, high]``: a share with its Wilson 95% interval (statsmodels)."""
    if total == 0:
        return "n/a"
    low, high = proportion_confint(hits, total, alpha=0.05, method="wilson")
    return f"{hits / total:.3f} [{low:.3f}, {high:.3f}]"


def time_report(results: list[TrialResult]) -> float:
    """Seconds to write the HTML report of a 24-trial study carrying the measured real evidence."""
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/studies.db"
        study = optuna.create_study(study_name="timing", storage=url, direction="maximize")
        arms = [f"arm {i}" for i in range(8)]
        write_study_record(study, StudyRecord(plan=_plan(arms)))
        distributions = cell_distributions(arms, 3)
        for seed in range(3):
            for index, arm in enumerate(arms):  # arms differ, so importance has variance to split
                result = results[(seed + index) % len(results)]
                study.add_trial(_frozen(Cell(arm, seed), result, distributions))
        start = time.perf_counter()
        write_report("timing", Path(folder) / "report.html", url)
        return time.perf_counter() - start


@one_line_errors
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--preset", default="smoke", help="preset whose baseline trials are measured"
    )
    parser.add_argument("--measure-seeds", type=int, default=3, help="real trials to measure")
    parser.add_argument("--tasks-dir", help="tasks directory (else ABLATION_TASKS_DIR)")
    parser.add_argument("--study", help="measure on this stored study's baseline instead")
    parser.add_argument("--storage", help="storage URL of --study")
    parser.add_argument(
        "--studies", type=int, default=5000, help="simulated 8-arm null studies with 3 seeds"
    )
    parser.add_argument(
        "--other-studies", type=int, default=5000, help="the same with 2 and with 5 seeds"
    )
    parser.add_argument(
        "--power-studies", type=int, default=200, help="simulated studies per power point"
    )
    parser.add_argument("--workers", type=int, default=2, help="processes that simulate")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = measured_trials(args)
    structure = noise(results)
    models = task_models(structure)
    print(f"{'task':26} {'kind':15} {'items':>5} {'seed std':>9} {'item SE':>8} {'paired SE':>9}")
    for task, s in structure.items():
        print(
            f"{task:26} {s['kind']:15} {s['n']:>5} {s['seed_std']:>9.4f} {s['item_se']:>8.4f} "
            f"{s['pair_se']:>9.4f}"
        )
    print(
        f"assumed: {SEED_SHARED:.0%} of a trial's quality shared by the arms of its seed, "
        f"{TASK_SHARED:.0%} by the tasks of the trial; arm x item interaction sd = "
        f"{INTERACTION} x the per-trial item noise; trial quality sd at least {SEED_FLOOR}; "
        f"where marked, {FAIL_RATE:.0%} of trials fail and median pruning at margin "
        f"{PRUNE_MARGIN} stops arms behind their seed's baseline"
    )
    print(f"report of a 24-trial study: {time_report(results):.1f} s")
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M}, load average {os.getloadavg()[0]:.1f}", flush=True)

    start = time.perf_counter()
    print(f"\nno effect, {ARMS} arms, half the studies best-of-2 cells (Wilson 95% intervals):")
    print(
        f"{'seeds':>5} {'trials':>14} {'studies':>7}  {'study-wide false better/worse':>30}  "
        f"{'per-test size':>22}  coverage"
    )
    headline = None
    for seeds, lost in ((3, False), (2, False), (5, False), (3, True)):
        tally = Tally()
        studies = args.studies if (seeds, lost) == (3, False) else args.other_studies
        half = studies // 2
        design = Design(seeds, pruning=lost, failures=lost)
        tally.add(run_design(models, design, studies - half, args.workers))
        tally.add(run_design(models, dataclasses.replace(design, best_of=2), half, args.workers))
        fwer = rate(tally.false_studies, tally.studies)
        kind = "pruned, failed" if lost else "all complete"
        print(
            f"{seeds:>5} {kind:>14} {studies:>7}  {fwer:>30}  "
            f"{rate(tally.rejected, tally.tests):>22}  {rate(tally.covered, tally.intervals)}",
            flush=True,
        )
        if (seeds, lost) == (3, False):
            headline = tally.false_studies / tally.studies

    print(f"\n'equivalent' for arm 1 at a true effect of exactly +ROPE ({ROPE}) on Retrieval:")
    for seeds in (3, 5, 10):
        design = Design(seeds, effect=ROPE)
        tally = run_design(models, design, args.power_studies, args.workers)
        print(f"{seeds:>5} seeds: {rate(tally.calls[EQUIVALENT], tally.studies)}", flush=True)

    power = None
    if args.power_studies:  # --power-studies 0: the size rows only
        print(
            f"\npower for arm 1 on Retrieval ('better'; wrong sign = 'worse'), {ARMS} arms, the "
            f"others at no effect, Holm over the whole study ({args.power_studies} studies a point):"
        )
        print(f"{'effect':>7}" + "".join(f"{f'{s} seeds':>24}" for s in POWER_SEEDS))
        for effect in POWER_EFFECTS:
            line = f"{effect:>7}"
            for seeds in POWER_SEEDS:
                tally = run_design(
                    models, Design(seeds, effect=effect), args.power_studies, args.workers
                )
                wrong = tally.calls[WORSE]
                line += f"{tally.calls[BETTER] / tally.studies:>15.3f} (wrong {wrong:>3})"
                if effect == EFFECT and seeds == 3:
                    power = tally.calls[BETTER] / tally.studies
            print(line, flush=True)
    print(f"simulated in {time.perf_counter() - start:.0f} s")
    print(
        f"verdicts: false-positive rate {headline:.3f} (goal <= 0.05), "
        + (
            f"power {power:.2f} at effect {EFFECT} with 3 seeds"
            if power is not None
            else "power not run"
        )
    )


if __name__ == "__main__":
    sys.exit(main())
