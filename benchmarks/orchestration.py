"""What the search service costs and what pruning saves, on real smoke trials.

1. Overhead: the same N smoke trials through ``python -m search.launch`` (local Ray, SQLite, one
   trial at a time) versus the bare trial function in a loop; printed as a ratio and as seconds of
   overhead per cell, each worker's first included (goal: <= 1 s per cell): the time a cell spends
   outside the trial function (claim, Ray, storage, tell; ``worker.run_seconds``), and its duration
   against the same cell's bare run (which also holds any first-call cost inside the trial, and on
   a busy box the load's drift), and the CPU seconds inside the trial function against the bare
   run's (a first-call cost shows there, the load's drift hardly). The launcher warms each slot's Ray worker (imports, storage)
   before giving it a cell, so that cost is in the launch's fixed part, shown apart.
2. Pruning: a plan with one clearly weak arm at the baseline's cost (a learning rate of 1e-2 wrecks
   MiniLM within two steps: dev composite about 0.43 against 0.71), 16 steps with the smoke
   preset's report every 2, run with ``--pruner median`` and ``--pruner none``, one trial at a time
   and at the default concurrency (the machine's CPUs); per concurrency what each spent (the
   trials' CPU seconds, the compute, and their seconds start to tell, which on a shared box also
   hold the other load), the saving, and whether both pick the same best arm (goal at the default:
   >= 30% of the full grid's compute saved, same best arm). All four launches share one local Ray,
   so its start is paid once.

    python benchmarks/orchestration.py [--tasks-dir ../shared/data] [--seeds 2] [--part pruning]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import ray
from optuna.trial import TrialState

from objectives.config.trial_config import TrialConfig, from_dict
from objectives.trial.run import run_trial
from search import launch
from search.arms import Choices, resolve_arms
from search.plans import get_plan, load_plan
from search.study import with_seed
from search.worker import job_configs
from storage.study_records import Cell, WorkerTime, read_cell, read_worker_time

REPO = Path(__file__).resolve().parent.parent
LEAN = ["--preset", "smoke", "--max-concurrent", "1"]
PRUNING_PLAN = """\
name: lr
description: a learning rate that wrecks the backbone, a clearly weak arm (benchmark plan)
baseline: lr 1e-4
arms:
  - {label: lr 1e-4, overrides: {}}
  - {label: lr 1e-2, overrides: {train.lr: 0.01}}
"""
PRUNING_STEPS = 16
# (label, extra launcher flags): one trial at a time, and the launcher's default concurrency.
CONCURRENCY = (("1", ["--max-concurrent", "1"]), ("default", []))


def _launch(argv: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        code = launch.main(argv)
    if code != 0:
        raise SystemExit(f"launch {argv} exited {code}")
    return time.perf_counter() - start


def overhead(tasks_dir: str, seeds: int, folder: Path) -> None:
    plan = get_plan("layer-weights")
    settings = Choices(preset="smoke", tasks_dir=tasks_dir)
    arms = resolve_arms(plan, settings)
    configs = job_configs(arms.configs, 1.0)
    cells = [(arm, seed) for seed in range(seeds) for arm in arms.labels]

    run_trial(with_seed(from_dict(TrialConfig, configs[cells[0][0]]), 0, {}), None, False)
    bare: dict[Cell, float] = {}  # warm: imports and first-call costs paid above
    bare_cpu: dict[Cell, float] = {}
    for arm, seed in cells:
        start, cpu = time.perf_counter(), time.process_time()
        run_trial(with_seed(from_dict(TrialConfig, configs[arm]), seed, {}), None, False)
        bare[Cell(arm, seed)] = time.perf_counter() - start
        bare_cpu[Cell(arm, seed)] = time.process_time() - cpu

    url = f"sqlite:///{folder / 'overhead.db'}"
    argv = ["--study", "layer-weights", *LEAN, "--seeds", str(seeds), "--tasks-dir", tasks_dir]
    service = _launch([*argv, "--storage", url])
    study = optuna.load_study(study_name="layer-weights.smoke.model5", storage=url)
    ran = sorted(study.trials, key=lambda t: t.datetime_start)
    extra = [_seconds(t) - bare[_cell(t)] for t in ran]
    outside = [_seconds(t) - _worker_time(t).run_seconds for t in ran]
    cpu = [_worker_time(t).cpu_seconds - bare_cpu[_cell(t)] for t in ran]
    in_trials, total_bare, n = _wall(ran), sum(bare.values()), len(cells)
    print(f"overhead: {n} smoke trials, one at a time (same cells, seconds start to tell)")
    print(f"  bare run_trial loop (warm)       {total_bare:7.1f} s  ({total_bare / n:.2f} s/trial)")
    print(f"  service, whole launch            {service:7.1f} s  ratio {service / total_bare:.2f}")
    print(f"    fixed (imports, Ray, warm-up)  {service - in_trials:7.1f} s")
    print("    per cell, the worker's first / later (mean) / first included (mean, max):")
    measures = (
        ("outside the trial function", outside),
        ("vs the bare loop", extra),
        ("CPU inside it vs bare", cpu),
    )
    for what, seconds in measures:
        print(
            f"      {what:<28} {seconds[0]:+6.2f} / {statistics.fmean(seconds[1:]):+6.2f} / "
            f"{statistics.fmean(seconds):+6.2f}, {max(seconds):+6.2f} s"
        )


def pruning(tasks_dir: str, seeds: int, folder: Path) -> None:
    ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    plan_file = folder / "lr.yaml"
    plan_file.write_text(PRUNING_PLAN)
    plan = load_plan(plan_file)
    print(
        f"pruning: plan '{plan.name}' ({len(plan.arms)} arms x {seeds} seeds, "
        f"{PRUNING_STEPS} steps, a report every 2)"
    )
    for concurrency, flags in CONCURRENCY:
        results = {}
        for pruner in ("median", "none"):
            url = f"sqlite:///{folder / f'pruning-{pruner}-{concurrency}.db'}"
            argv = ["--plan", str(plan_file), "--preset", "smoke", *flags, "--seeds", str(seeds)]
            argv += ["--tasks-dir", tasks_dir, "--set", f"train.steps={PRUNING_STEPS}"]
            argv += ["--pruner", pruner]
            wall = _launch([*argv, "--storage", url])
            study = optuna.load_study(study_name=f"{plan.name}.smoke.model5", storage=url)
            results[pruner] = (wall, study.trials)
        for pruner, (wall, found) in results.items():
            pruned = sum(t.state == TrialState.PRUNED for t in found)
            arm, value = _best(found)
            print(
                f"  concurrency {concurrency:<7} --pruner {pruner:<6} trial CPU-seconds "
                f"{_cpu(found):6.1f}  trial-seconds {_wall(found):6.1f}  wall "
                f"{wall:6.1f} s  pruned {pruned}/{len(found)}  best arm {arm} ({value:.4f})"
            )
        median, none = results["median"][1], results["none"][1]
        same = _best(median)[0] == _best(none)[0]
        print(
            f"  concurrency {concurrency}: --pruner median saved {1 - _cpu(median) / _cpu(none):.0%} "
            f"of the full grid's trial CPU time ({1 - _wall(median) / _wall(none):.0%} of its "
            f"trial-seconds); same best arm: {same}"
        )
    ray.shutdown()


def _seconds(trial: optuna.trial.FrozenTrial) -> float:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _cell(trial: optuna.trial.FrozenTrial) -> Cell:
    cell = read_cell(trial)
    if cell is None:
        raise SystemExit(f"trial {trial.number} of the benchmark's study has no cell")
    return cell


def _worker_time(trial: optuna.trial.FrozenTrial) -> WorkerTime:
    spent = read_worker_time(trial)
    if spent is None:
        raise SystemExit(f"trial {trial.number} recorded no worker time: did its worker die?")
    return spent


def _cpu(found: list[optuna.trial.FrozenTrial]) -> float:
    """The trials' compute: their workers' CPU seconds, which the box's other load barely moves."""
    return sum(spent.cpu_seconds for spent in map(read_worker_time, found) if spent)


def _wall(found: list[optuna.trial.FrozenTrial]) -> float:
    return sum(map(_seconds, found))


def _best(found: list[optuna.trial.FrozenTrial]) -> tuple[str, float]:
    by_arm: dict[str, list[float]] = {}
    for trial in found:
        if trial.state == TrialState.COMPLETE:
            by_arm.setdefault(_cell(trial).arm, []).append(trial.value)
    arm = max(by_arm, key=lambda a: statistics.fmean(by_arm[a]))
    return arm, statistics.fmean(by_arm[arm])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks-dir", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--part", choices=("all", "overhead", "pruning"), default="all")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        if args.part in ("all", "overhead"):
            overhead(args.tasks_dir, args.seeds, Path(tmp))
        if args.part in ("all", "pruning"):
            pruning(args.tasks_dir, args.seeds, Path(tmp))


if __name__ == "__main__":
    main()
