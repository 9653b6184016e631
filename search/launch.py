"""``python -m search.launch --study NAME``: run an ablation study, resumably, on Ray.

Everything the user can get wrong (study name, flag values, plan file, data folder, storage URL, Ray
address) is checked before anything is written, and reported in one line with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import ray

from objectives.config import ConfigError
from objectives.presets import PRESETS
from objectives.variants import VARIANTS
from search import runner, space
from search.plans import STUDIES, PlanError, get_plan, load_plan
from search.progress import LiveProgress, describe_plan, print_table
from storage import StorageError, StorageSettings, open_storage, redact, resolve_url

EXIT_INPUT = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
# Environment that workers on other nodes need to find data and stay offline like the driver.
_FORWARDED_ENV = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "ABLATION_TASKS_DIR")


class LaunchError(RuntimeError):
    """Bad input found before the launch writes anything; one line that names the fix."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"error: {message}; see python -m search.launch --help\n")


def build_parser() -> argparse.ArgumentParser:
    studies = "\n".join(f"  {name:<18} {plan.description}" for name, plan in STUDIES.items())
    parser = _Parser(
        prog="python -m search.launch",
        description=__doc__.splitlines()[0],
        epilog=f"studies:\n{studies}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", help="a shipped study (listed below)")
    which.add_argument("--plan", help="a plan file (YAML or TOML, see examples/plan.yaml)")
    parser.add_argument(
        "--storage", help="storage URL (default: $ABLATION_STORAGE, else sqlite:///studies.db)"
    )
    parser.add_argument("--study-name", help="study name in the storage (default: see --dry-run)")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="size preset")
    parser.add_argument("--model", help="backbone: alias, HF model id or local directory")
    parser.add_argument(
        "--tasks-dir", help="offline task data (default: $ABLATION_TASKS_DIR, else MTEB online)"
    )
    parser.add_argument("--seeds", type=_positive_int, help="seeds per arm (default: the plan's)")
    parser.add_argument(
        "--base", choices=sorted(VARIANTS), help="base variant of the multi-layer studies"
    )
    parser.add_argument(
        "--set",
        dest="changes",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="config override applied to every arm, e.g. train.steps=20 (repeatable)",
    )
    parser.add_argument("--pruner", default="median", choices=space.PRUNERS)
    parser.add_argument(
        "--prune-after",
        type=_non_negative_int,
        default=2,
        help="finished trials before the median pruner acts (default 2)",
    )
    parser.add_argument("--address", help="join this Ray cluster (default: a private local one)")
    parser.add_argument("--cpus-per-trial", type=_positive_float, default=1.0)
    parser.add_argument("--gpus-per-trial", type=_non_negative_float, default=0.0)
    parser.add_argument(
        "--max-concurrent",
        type=_positive_int,
        help="trials at once (default: the cluster's CPUs / --cpus-per-trial)",
    )
    parser.add_argument(
        "--grace-period",
        type=_positive_int,
        default=StorageSettings().grace_period,
        help="seconds without a heartbeat before a trial counts as dead and is retried",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the arms x seeds and skipped arms; write nothing",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        plan = load_plan(args.plan) if args.plan else get_plan(args.study)
        if args.seeds:
            plan = replace(plan, seeds=args.seeds)
        settings = space.Settings(
            preset=args.preset,
            base=args.base,
            model=args.model,
            tasks_dir=_tasks_dir(args.tasks_dir),
            changes=tuple(_parse_set(item) for item in args.changes),
        )
        arms = space.resolve_arms(plan, settings)
        name = args.study_name or space.default_study_name(plan, settings)
        if args.dry_run:
            describe_plan(plan, arms, name)
            return 0
        url = resolve_url(args.storage)
        storage_settings = StorageSettings(
            heartbeat_interval=max(1, min(30, args.grace_period // 4)),
            grace_period=args.grace_period,
        )
        storage = open_storage(url, storage_settings)
        _start_ray(args.address)
    except (PlanError, ConfigError, StorageError, LaunchError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    try:
        return _run(args, plan, arms, settings, name, url, storage, storage_settings)
    finally:
        ray.shutdown()


def _run(
    args: argparse.Namespace,
    plan: Any,
    arms: space.Arms,
    settings: space.Settings,
    name: str,
    url: str,
    storage: Any,
    storage_settings: StorageSettings,
) -> int:
    try:
        study = space.prepare_study(storage, name, plan, arms, settings)
    except PlanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    added = space.enqueue_missing(study, plan, arms)
    describe_plan(plan, arms, name)
    print(f"storage {redact(url)}: {len(added)} trials queued now", flush=True)
    resources = runner.Resources(
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent or _default_concurrency(args.cpus_per_trial),
    )
    job = runner.Job(
        study_name=name,
        storage_url=url,
        settings=storage_settings,
        plan=plan,
        configs=runner.job_configs(arms.configs, args.cpus_per_trial),
        pruner=args.pruner,
        prune_after=args.prune_after,
    )
    progress = LiveProgress(study, plan, arms)
    code = 0
    try:
        tracker = runner.run_study(storage, study, job, resources, on_change=progress.update)
    except runner.Interrupted:
        code = EXIT_INTERRUPTED
    finally:
        progress.close()
    if code == 0:
        failed = [o for o in tracker.outcomes if o.state == "FAIL"]
        for outcome in failed:
            print(f"trial {outcome.trial_id} failed: {outcome.error}", file=sys.stderr)
        missing = space.shortfall(study, plan, arms, space.FINISHED)
        code = EXIT_FAILED if missing else 0
    print_table(name, url)
    if code == EXIT_INTERRUPTED:
        print("interrupted: finished trials are kept; relaunch the same command to resume")
    elif code == EXIT_FAILED:
        print("some cells have no finished trial; relaunch the same command to retry them")
    print(f"next: python -m dashboards.serve --storage '{redact(url)}'")
    return code


def _start_ray(address: str | None) -> None:
    """A private local Ray by default (never a stranger's cluster by accident), or ``address``."""
    env = {k: v for k, v in os.environ.items() if k.startswith(_FORWARDED_ENV)}
    try:
        ray.init(
            address=address or "local",
            include_dashboard=False,
            logging_level=logging.WARNING,
            runtime_env={"env_vars": env} if env else None,
        )
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise LaunchError(
            f"cannot reach Ray at '{address}' ({runner.one_line(exc)}); start it with "
            "`ray start --head` or fix --address (leave it out for a private local Ray)"
        ) from None


def _default_concurrency(cpus_per_trial: float) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial))


def _tasks_dir(value: str | None) -> str | None:
    value = value or os.environ.get("ABLATION_TASKS_DIR")
    if value is None:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise LaunchError(
            f"tasks directory '{path}' does not exist; pass --tasks-dir pointing at a folder in the "
            "layout of shared/data (or leave it out to load tasks online by MTEB name)"
        )
    return str(path)


def _parse_set(item: str) -> tuple[str, str]:
    path, sep, value = item.partition("=")
    if not sep or not path.strip():
        raise LaunchError(f"--set '{item}' must look like PATH=VALUE, e.g. train.steps=20")
    return path.strip(), value.strip()


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


def _non_negative_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def _positive_float(text: str) -> float:
    return _number(text, float, lambda v: v > 0, "a number > 0")


def _non_negative_float(text: str) -> float:
    return _number(text, float, lambda v: v >= 0, "a number >= 0")


def _number(text: str, kind: type, ok: Any, what: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
    if not ok(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return value


if __name__ == "__main__":
    sys.exit(main())
