"""Calibration of the table's verdicts: false-positive rate at no effect, power at a 0.02 effect.

The noise comes from real trials of this project, measured first (``--measure-seeds`` trials of
the baseline config of ``--preset``, default the smoke preset on the default task set, via
``run_trial``; or the COMPLETE trials of ``--study`` in ``--storage``):

- per task, the seed-to-seed std of its score (``seed_std``);
- per task, the item-level standard error of one score (``item_se``: bootstrap over its test
  items, from the stored evidence) and of the paired difference of two trials' scores on the same
  items (``pair_se``: same draws for both), i.e. how much a trial's per-item results move.

Each simulated study has a baseline and one arm, ``--seeds`` seeds, a known true effect on every
task, and per trial per-item evidence drawn from that structure: a fixed item difficulty per task
(spread so one score's item SE is ``item_se``), a per-trial item noise (so a paired difference has
SE ``pair_se``), and a per-trial seed shift (the rest of ``seed_std``). It is written as optuna
trials with the evidence attribute and run through the SAME ``dashboards.ablation_table.build_table``
as every report. The false-positive rate counts every ``better``/``worse`` verdict (all columns)
at true effect 0; power is the share of ``better`` verdicts on the average at true effect 0.02.

It prints the noise it used (the study or the preset's new trials, and the structure per task);
the README quotes the figures. The smoke preset's test subsets are far too small to resolve 0.02;
``--study``/``--storage`` of a ``cpu`` study (the README's main job) measures that preset's noise.
Offline (``HF_HUB_OFFLINE``) new trials need a tasks directory: without one the benchmark stops
in one line that names ``--tasks-dir``/``ABLATION_TASKS_DIR`` instead of reaching for the hub.

Finally a 24-trial study (8 arms x 3 seeds, the measured trials' real evidence, importance plots
and all) is reported to HTML and timed. The last line reads
``verdicts: false-positive rate F (goal <= 0.05), power P at effect 0.02 with 3 seeds``.

    python benchmarks/verdicts.py [--preset smoke] [--studies 400] [--study NAME --storage URL]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a plain script from a checkout, no install needed

from dashboards.ablation_table import build_table  # noqa: E402
from dashboards.records import StudyRecords, load_records  # noqa: E402
from dashboards.report import write_report  # noqa: E402
from dashboards.verdicts import BETTER, WORSE  # noqa: E402
from objectives.cli import one_line_errors  # noqa: E402
from objectives.config import ConfigError  # noqa: E402
from objectives.evidence import RETRIEVAL, TaskEvidence, items_hash  # noqa: E402
from objectives.results import CATEGORIES, OBJECTIVE, TrialResult, category_means  # noqa: E402
from objectives.task_folders import TASKS_DIR_ENV, resolve_tasks_dir  # noqa: E402
from objectives.tasks import hub_offline  # noqa: E402
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
    write_result,
    write_study_record,
)

DRAWS = 400
EFFECT = 0.02


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
        print(f"noise measured on study {args.study!r}, arm {arm!r}: {len(results)} trials")
        return results
    if hub_offline() and resolve_tasks_dir(args.tasks_dir) is None:
        raise ConfigError(
            f"HF_HUB_OFFLINE is set and no tasks directory is given, so the {args.preset} trials "
            f"to measure have no tasks: pass --tasks-dir DIR (the layout of shared/data) or set "
            f"{TASKS_DIR_ENV}, or measure a stored study with --study NAME --storage URL"
        )
    from objectives.presets import preset_config
    from objectives.trial import run_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    config = preset_config(
        args.preset, {"eval.tasks_dir": args.tasks_dir} if args.tasks_dir else {}
    )
    results = []
    for seed in range(args.measure_seeds):
        start = time.perf_counter()
        results.append(run_trial(dataclasses.replace(config, seed=seed), progress=False))
        print(f"measured trial seed {seed}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"noise measured on {len(results)} new trials of the {args.preset} preset's baseline")
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


def simulate(
    structure: dict[str, dict[str, float]], effect: float, seeds: int, rng: np.random.Generator
) -> StudyRecords:
    """One baseline-vs-arm study with per-item evidence following the measured structure."""
    study = optuna.create_study(direction="maximize")
    arms = ["base", "arm"]
    plan = _plan(arms)
    difficulty = {
        t: rng.normal(0, s["item_se"] * np.sqrt(s["n"]), int(s["n"])) for t, s in structure.items()
    }
    categories = {t: s["kind"] for t, s in structure.items()}
    distributions = cell_distributions(arms, seeds)
    for seed in range(seeds):
        for arm, shift in (("base", 0.0), ("arm", effect)):
            evidence, scores = {}, {}
            for task, s in structure.items():
                item_sd = s["pair_se"] * np.sqrt(s["n"] / 2)
                seed_sd = np.sqrt(max(s["seed_std"] ** 2 - s["pair_se"] ** 2 / 2, 0.0))
                values = (
                    s["mean"]
                    + difficulty[task]
                    + shift
                    + rng.normal(0, seed_sd)
                    + rng.normal(0, item_sd, int(s["n"]))
                )
                evidence[task] = TaskEvidence(
                    RETRIEVAL,
                    items_hash(f"{task}{i}" for i in range(int(s["n"]))),
                    {"values": values},
                )
                scores[task] = evidence[task].score()
            cats = category_means(scores, categories)
            average = sum(cats.values()) / len(cats)
            result = TrialResult(scores, cats, average, task_category=categories, evidence=evidence)
            study.add_trial(_frozen(Cell(arm, seed), result, distributions))
    return StudyRecords(study, "memory", plan, [], None, None, study.get_trials(deepcopy=False))


def _plan(arms: list[str]) -> PlanRecord:
    """A plan of ``arms`` against the first, with the metrics and objective the service stores."""
    return PlanRecord(
        baseline=arms[0],
        arms=[ArmRecord(label=arm, overrides={}) for arm in arms],
        metrics=list(CATEGORIES),
        objective_name=OBJECTIVE,
    )


def _frozen(
    cell: Cell, result: TrialResult, distributions: dict[str, BaseDistribution]
) -> FrozenTrial:
    """A COMPLETE trial of ``cell`` storing ``result`` and its evidence as the service does."""
    now = dt.datetime(2025, 1, 1)
    trial = FrozenTrial(
        number=0,
        trial_id=0,
        state=TrialState.COMPLETE,
        value=result.average,
        datetime_start=now,
        datetime_complete=now,
        params=cell_params(cell),
        distributions=distributions,
        user_attrs={},
        system_attrs=evidence_system_attrs(result.evidence),
        intermediate_values={},
    )
    write_result(trial, result)
    return trial


def calibrate(structure: dict, studies: int, seeds: int) -> tuple[float, float]:
    # statsmodels' Holm runs gc.collect() on every call; frozen objects make that cheap.
    gc.freeze()
    rng = np.random.default_rng(2024)
    false, total = 0, 0
    for _ in range(studies):
        row = next(
            r for r in build_table(simulate(structure, 0.0, seeds, rng)).rows if r.arm == "arm"
        )
        words = [c.verdict for c in row.cells.values()]
        false += sum(w in (BETTER, WORSE) for w in words)
        total += len(words)
    hits = 0
    for _ in range(studies):
        row = next(
            r for r in build_table(simulate(structure, EFFECT, seeds, rng)).rows if r.arm == "arm"
        )
        hits += row.cells[OBJECTIVE].verdict == BETTER
    return false / total, hits / studies


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
    parser.add_argument("--studies", type=int, default=400, help="simulated studies per condition")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per simulated study")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results = measured_trials(args)
    structure = noise(results)
    print(f"{'task':26} {'kind':15} {'items':>5} {'seed std':>9} {'item SE':>8} {'paired SE':>9}")
    for task, s in structure.items():
        print(
            f"{task:26} {s['kind']:15} {s['n']:>5} {s['seed_std']:>9.4f} {s['item_se']:>8.4f} "
            f"{s['pair_se']:>9.4f}"
        )
    print(f"report of a 24-trial study: {time_report(results):.1f} s", flush=True)
    start = time.perf_counter()
    false_rate, power = calibrate(structure, args.studies, args.seeds)
    print(f"{2 * args.studies} simulated studies in {time.perf_counter() - start:.0f} s")
    print(
        f"verdicts: false-positive rate {false_rate:.3f} (goal <= 0.05), "
        f"power {power:.2f} at effect {EFFECT} with {args.seeds} seeds"
    )


if __name__ == "__main__":
    sys.exit(main())
