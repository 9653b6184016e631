"""What the search service costs and what pruning saves, on real smoke trials.

1. Overhead: the same N smoke trials through ``python -m search.launch`` (local Ray, SQLite, one
   trial at a time) versus the bare trial function in a loop; printed as a ratio and as seconds of
   overhead per trial (goal: < 1 s per trial once Ray is up): a Ray worker pays its imports once, in
   its first trial, so that trial is shown apart.
2. Pruning: a plan with one clearly weak arm (``model.max_length`` 4 vs 32), run with
   ``--pruner median`` and ``--pruner none``, one trial at a time and at the default concurrency
   (the machine's CPUs); per concurrency the trial-seconds each spent, the saving, and whether both
   pick the same best arm (goal at the default: >= 30% saved, same best arm). All four launches
   share one local Ray whose workers have imported the training stack beforehand, so no launch's
   first trial carries a cold worker's imports (part 1 measures those).

    python benchmarks/orchestration.py [--tasks-dir ../shared/data] [--seeds 2] [--part pruning]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import optuna
import ray
from optuna.trial import TrialState

from objectives.config import TrialConfig, from_dict
from objectives.trial import run_trial
from search import launch, runner, space
from search.plans import get_plan, load_plan

REPO = Path(__file__).resolve().parent.parent
LEAN = ["--preset", "smoke", "--max-concurrent", "1"]
PRUNING_PLAN = """\
name: tokens
description: input length, a clear quality knob (benchmark plan)
baseline: 32 tokens
arms:
  - {label: 32 tokens, overrides: {}}
  - {label: 4 tokens, overrides: {model.max_length: 4}}
"""
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
    settings = space.Settings(preset="smoke", tasks_dir=tasks_dir)
    arms = space.resolve_arms(plan, settings)
    configs = runner.job_configs(arms.configs, 1.0)
    cells = [(arm, seed) for seed in range(seeds) for arm in arms.labels]

    run_trial(space.with_seed(from_dict(TrialConfig, configs[cells[0][0]]), 0, {}), None, False)
    bare: dict[tuple[str, int], float] = {}  # warm: imports and first-call costs paid above
    for arm, seed in cells:
        start = time.perf_counter()
        run_trial(space.with_seed(from_dict(TrialConfig, configs[arm]), seed, {}), None, False)
        bare[arm, seed] = time.perf_counter() - start

    url = f"sqlite:///{folder / 'overhead.db'}"
    argv = ["--study", "layer-weights", *LEAN, "--seeds", str(seeds), "--tasks-dir", tasks_dir]
    service = _launch([*argv, "--storage", url])
    study = optuna.load_study(study_name="layer-weights.smoke.model5", storage=url)
    ran = sorted(study.trials, key=lambda t: t.datetime_start)
    extra = [_seconds(t) - bare[t.params["arm"], t.params["seed"]] for t in ran]
    in_trials, total_bare, n = sum(map(_seconds, ran)), sum(bare.values()), len(cells)
    print(f"overhead: {n} smoke trials, one at a time (same cells, seconds start to tell)")
    print(f"  bare run_trial loop (warm)       {total_bare:7.1f} s  ({total_bare / n:.2f} s/trial)")
    print(f"  service, whole launch            {service:7.1f} s  ratio {service / total_bare:.2f}")
    print(f"    fixed (imports, Ray, study)    {service - in_trials:7.1f} s")
    print(f"    first trial, cold Ray worker   {extra[0]:+7.2f} s  (imports the training stack)")
    print(f"    later trials, warm worker      {statistics.fmean(extra[1:]):+7.2f} s/trial (mean)")


def _warm_workers() -> None:
    """A local Ray whose every worker has imported what a trial imports (the launcher reuses it)."""
    ray.init(address="local", include_dashboard=False, logging_level="WARNING")
    workers = int(ray.cluster_resources().get("CPU", 1))

    @ray.remote(num_cpus=1)
    def imports() -> int:
        import objectives.trial  # noqa: F401  (the training and evaluation stack)

        time.sleep(2)  # hold the slot so that each task lands in its own worker
        return os.getpid()

    ray.get([imports.remote() for _ in range(workers)])


def pruning(tasks_dir: str, seeds: int, folder: Path) -> None:
    _warm_workers()
    plan_file = folder / "tokens.yaml"
    plan_file.write_text(PRUNING_PLAN)
    plan = load_plan(plan_file)
    print(f"pruning: plan '{plan.name}' ({len(plan.arms)} arms x {seeds} seeds, 8 steps)")
    for concurrency, flags in CONCURRENCY:
        results = {}
        for pruner in ("median", "none"):
            url = f"sqlite:///{folder / f'pruning-{pruner}-{concurrency}.db'}"
            argv = ["--plan", str(plan_file), "--preset", "smoke", *flags, "--seeds", str(seeds)]
            argv += ["--tasks-dir", tasks_dir, "--set", "train.steps=8", "--pruner", pruner]
            wall = _launch([*argv, "--storage", url])
            study = optuna.load_study(study_name=f"{plan.name}.smoke.model5", storage=url)
            results[pruner] = (wall, study.trials)
        for pruner, (wall, found) in results.items():
            pruned = sum(t.state == TrialState.PRUNED for t in found)
            arm, value = _best(found)
            print(
                f"  concurrency {concurrency:<7} --pruner {pruner:<6} trial-seconds "
                f"{sum(map(_seconds, found)):6.1f}  wall {wall:6.1f} s  pruned {pruned}/"
                f"{len(found)}  best arm {arm} ({value:.4f})"
            )
        spent = {p: sum(map(_seconds, found)) for p, (_, found) in results.items()}
        saving = 1 - spent["median"] / spent["none"]
        same = _best(results["median"][1])[0] == _best(results["none"][1])[0]
        print(
            f"  concurrency {concurrency}: saving {saving:.0%} of trial compute; "
            f"same best arm: {same}"
        )
    ray.shutdown()


def _seconds(trial: optuna.trial.FrozenTrial) -> float:
    if trial.datetime_start is None or trial.datetime_complete is None:
        return 0.0
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def _best(found: list[optuna.trial.FrozenTrial]) -> tuple[str, float]:
    by_arm: dict[str, list[float]] = {}
    for trial in found:
        if trial.state == TrialState.COMPLETE:
            by_arm.setdefault(trial.params["arm"], []).append(trial.value)
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
