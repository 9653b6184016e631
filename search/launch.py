"""``python -m search.launch --study NAME``: run an ablation study, resumably, on Ray.

Everything the user can get wrong (study name, flag values, plan file, data folder, storage URL, Ray
address) is checked before anything is written, and reported in one line with exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import optuna
import ray

from dashboards.sequential import MAX_SEEDS_CAP, SPENDINGS
from dashboards.verdicts import rope_argument
from objectives.cli import EXIT_INTERRUPTED, Parser, one_line_errors
from objectives.config.presets import PRESETS
from objectives.config.trial_config import EvalConfig
from objectives.config.variants import VARIANTS
from objectives.errors import EXIT_INPUT, AblationError, one_line
from objectives.evaluation.mteb_tasks import hub_offline, load_tasks, task_category
from objectives.evaluation.task_files import TASKS_DIR_ENV, resolve_tasks_dir
from search import race, scheduler
from search.arms import Arms, Choices, resolve_arms
from search.planner_docs import PlanDocument, read_plan_document
from search.plans import STUDIES, Plan, get_plan, load_plan
from search.progress import LiveProgress, describe_plan, print_table
from search.pruners import PRUNERS, Pruning
from search.study import (
    FINISHED,
    PENDING,
    default_study_name,
    enqueue_missing,
    prepare_study,
    shortfall,
)
from search.worker import Job, job_configs
from storage import StorageSettings, open_storage, redact, resolve_url
from storage.cli import add_storage_argument
from storage.study_records import (
    RaceDesign,
    read_dropped_overlap,
    read_reference,
    write_race_design,
)

EXIT_FAILED = 1
# Environment that workers on other nodes need to find data and stay offline like the driver.
_FORWARDED_ENV = ("HF_", "TRANSFORMERS_", "TOKENIZERS_", "ABLATION_TASKS_DIR")


class LaunchError(AblationError, RuntimeError):
    """Bad input found before the launch writes anything; one line that names the fix."""


def build_parser() -> argparse.ArgumentParser:
    studies = "\n".join(f"  {name:<18} {plan.description}" for name, plan in STUDIES.items())
    parser = Parser(
        prog="python -m search.launch",
        description=__doc__.splitlines()[0],
        epilog=f"studies:\n{studies}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--study", help="a shipped study (listed below)")
    which.add_argument(
        "--plan",
        help="a plan file: YAML or TOML (examples/plan.yaml), AblationBench JSON lines (.jsonl, "
        "one ablation per line), or a planner document as planners write it (Markdown, HTML "
        "around it, any other suffix; examples/planner-doc.md), each of its sections a study",
    )
    parser.add_argument(
        "--section", help="run only this section (title) of a planner document or JSONL plan"
    )
    add_storage_argument(parser)
    parser.add_argument("--study-name", help="study name in the storage (default: see --dry-run)")
    parser.add_argument("--preset", default="cpu", choices=sorted(PRESETS), help="size preset")
    parser.add_argument("--model", help="backbone: alias, HF model id or local directory")
    parser.add_argument(
        "--tasks-dir", help="offline task data (default: $ABLATION_TASKS_DIR, else MTEB online)"
    )
    parser.add_argument(
        "--tasks",
        type=_names,
        metavar="A,B,...",
        help="evaluated tasks by name: local task folders, else MTEB tasks (online only)",
    )
    parser.add_argument(
        "--objective",
        help="what trials are ranked by: a category, a task or 'average' "
        "(default: the mean of the plan's metrics)",
    )
    parser.add_argument("--seeds", type=_positive_int, help="seeds per arm (default: the plan's)")
    parser.add_argument(
        "--arms",
        type=_labels,
        metavar="A,B,...",
        help="run only these arms of the study (its baseline always runs; default: every arm)",
    )
    parser.add_argument(
        "--base", choices=sorted(VARIANTS), help="base variant of the multi-layer studies"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="config override applied to every arm, e.g. train.steps=20 (repeatable)",
    )
    parser.add_argument("--pruner", default="median", choices=PRUNERS)
    parser.add_argument(
        "--prune-after",
        type=_positive_int,
        default=Pruning.startup,
        help="finished same-seed trials before the median pruner acts (default %(default)s)",
    )
    parser.add_argument(
        "--prune-margin",
        type=_non_negative_float,
        default=Pruning.margin,
        help="prune only trials this far below their seed's median score (default %(default)s)",
    )
    parser.add_argument(
        "--results-dir",
        default="results",
        help="MTEB-format results of every finished cell, in mteb's results layout "
        "(default ./results; on a cluster, a path every worker can write)",
    )
    parser.add_argument(
        "--save-models",
        action="store_true",
        help="keep each finished cell's model under RESULTS_DIR/models (re-score it with "
        "python -m objectives.evaluation.saved_model --model DIR)",
    )
    parser.add_argument(
        "--rope",
        type=rope_argument,
        help="paired differences inside +-ROPE are 'equivalent' in the final table: one value "
        "(default 0.005) and/or one per category, e.g. 0.005,Retrieval=0.01",
    )
    parser.add_argument(
        "--until-decided",
        action="store_true",
        help="run seed rounds until every arm's verdicts are decided: every arm starts with the "
        "plan's seeds, undecided arms get one more seed per round up to --max-seeds "
        "(group-sequential alpha spending keeps the study-wide error at 0.05)",
    )
    parser.add_argument(
        "--max-seeds",
        type=_positive_int,
        help=f"with --until-decided: seeds per arm at most (2 to {MAX_SEEDS_CAP})",
    )
    parser.add_argument(
        "--spending",
        choices=SPENDINGS,
        default=SPENDINGS[0],
        help="with --until-decided: how alpha is spent over the seed rounds (default %(default)s)",
    )
    parser.add_argument(
        "--budget-trials",
        type=_positive_int,
        help="with --until-decided: start no round that would take the race past this many trials",
    )
    parser.add_argument(
        "--budget-hours",
        type=_positive_float,
        help="with --until-decided: start no round once the study has run this many hours",
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


@dataclass(frozen=True)
class Launch:
    """A validated launch: what to run and where; built before anything is written."""

    args: argparse.Namespace
    plan: Plan
    arms: Arms
    choices: Choices
    name: str
    url: str
    storage_settings: StorageSettings
    phrases: dict[str, str] = field(default_factory=dict)  # arm label -> the planner's phrase
    race: RaceDesign | None = None  # --until-decided


@one_line_errors
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    launches, document = _validate_all(args)
    if document is not None:
        print("\n".join(document.summary()), flush=True)
    if args.dry_run:
        for number, launch in enumerate(launches, start=1):
            _describe(launch, number, len(launches))
        return 0
    storage = open_storage(launches[0].url, launches[0].storage_settings)
    code = _run_all(launches, storage)
    if document is not None and document.skipped:  # again, after the tables scrolled it away
        print("\n".join(skip.line() for skip in document.skipped))
    return code


def _validate_all(args: argparse.Namespace) -> tuple[list[Launch], PlanDocument | None]:
    """Every study of the launch, all checked before the first one writes anything."""
    _check_race_flags(args)
    plans, document = _plans(args)
    if args.study_name and len(plans) > 1:
        raise LaunchError(
            f"--study-name names one study but {args.plan} has {len(plans)} sections; "
            "add --section TITLE"
        )
    phrases = {s.plan.name: s.phrases for s in document.studies} if document else {}
    scored: dict[EvalConfig, dict[str, str]] = {}
    launches = [
        replace(
            _validate(args, plan, scored),
            phrases=phrases.get(plan.name, {}),
            race=_race_design(args, plan),
        )
        for plan in plans
    ]
    return launches, document


def _check_race_flags(args: argparse.Namespace) -> None:
    """The race flags make sense together (one line naming the fix, before anything is read)."""
    budget = [
        f
        for f, v in (("--budget-trials", args.budget_trials), ("--budget-hours", args.budget_hours))
        if v is not None
    ]
    if not args.until_decided:
        extra = budget + (["--max-seeds"] if args.max_seeds is not None else [])
        if extra:
            raise LaunchError(f"{' and '.join(extra)} only apply with --until-decided; add it")
        return
    if args.max_seeds is None:
        raise LaunchError(
            "--until-decided needs --max-seeds N: the most seeds an undecided arm gets (e.g. 6)"
        )
    if not 2 <= args.max_seeds <= MAX_SEEDS_CAP:
        raise LaunchError(f"--max-seeds must be 2 to {MAX_SEEDS_CAP}, got {args.max_seeds}")


def _race_design(args: argparse.Namespace, plan: Plan) -> RaceDesign | None:
    if not args.until_decided:
        return None
    if args.max_seeds < plan.seeds:
        raise LaunchError(
            f"--max-seeds {args.max_seeds} is below the {plan.seeds} seeds every arm starts with; "
            f"raise --max-seeds or lower --seeds"
        )
    return RaceDesign(
        max_seeds=args.max_seeds,
        plan_seeds=plan.seeds,
        spending=args.spending,
        budget_trials=args.budget_trials,
        budget_hours=args.budget_hours,
    )


def _plans(args: argparse.Namespace) -> tuple[list[Plan], PlanDocument | None]:
    """The shipped study, a plan file (YAML, TOML), or the sections of a plan document: JSON
    lines (.jsonl) or a planner document (any other suffix: Markdown, HTML around it, text)."""
    plan_file = args.plan and Path(args.plan).suffix.lower() in (".yaml", ".yml", ".toml")
    document = None
    if args.section and (not args.plan or plan_file):
        raise LaunchError(
            "--section picks a section of a planner document or JSONL plan (--plan FILE)"
        )
    if args.plan and not plan_file:
        document = read_plan_document(args.plan, args.section)
        plans = document.plans()
    else:
        plans = [load_plan(args.plan) if args.plan else get_plan(args.study)]
    chosen = {"seeds": args.seeds, "objective": args.objective}
    plans = [replace(p, **{k: v for k, v in chosen.items() if v}) for p in plans]
    return ([select_arms(p, args.arms) for p in plans] if args.arms else plans), document


def select_arms(plan: Plan, labels: tuple[str, ...]) -> Plan:
    """``plan`` with only the arms ``labels`` names, in plan order, and always its baseline.

    Raises ``LaunchError`` naming the valid arms when a label is not one of the plan's.
    """
    valid = [arm.label for arm in plan.arms]
    unknown = [label for label in labels if label not in valid]
    if unknown:
        raise LaunchError(
            f"--arms: {', '.join(repr(u) for u in unknown)} not an arm of study '{plan.name}'; "
            f"its arms: {', '.join(valid)} (baseline {plan.baseline}, always run)"
        )
    kept = tuple(a for a in plan.arms if a.label in labels or a.label == plan.baseline)
    return replace(plan, arms=kept)


def _validate(
    args: argparse.Namespace, plan: Plan, scored: dict[EvalConfig, dict[str, str]]
) -> Launch:
    tasks_dir = resolve_tasks_dir(args.tasks_dir)
    if tasks_dir is None:
        _require_hub()
    overrides = [_parse_set(item) for item in args.overrides]
    if args.tasks:
        overrides.append(("eval.tasks", args.tasks))
    choices = Choices(
        preset=args.preset,
        base=args.base,
        model=args.model,
        tasks_dir=str(tasks_dir) if tasks_dir else None,
        overrides=tuple(overrides),
    )
    arms = resolve_arms(plan, choices)
    if args.address and args.address != "auto" and not args.dry_run:
        _probe_ray(args.address)  # before the storage, which SQLite would create
    if arms.base_config.eval not in scored:  # reads every task file: a broken one fails here
        tasks = load_tasks(arms.base_config.eval)
        scored[arms.base_config.eval] = {t.metadata.name: task_category(t) for t in tasks}
    plan.check_objective(scored[arms.base_config.eval])
    return Launch(
        args=args,
        plan=plan,
        arms=arms,
        choices=choices,
        name=args.study_name or _default_name(args, plan, choices, arms.base_config.eval.holdout),
        url=resolve_url(args.storage),
        storage_settings=StorageSettings(
            heartbeat_interval=max(1, min(30, args.grace_period // 4)),
            grace_period=args.grace_period,
        ),
    )


def _default_name(args: argparse.Namespace, plan: Plan, choices: Choices, holdout: bool) -> str:
    """The default study name; a subset of arms (``--arms``) gets its own, so two subsets of one
    study never meet under one name (a relaunch with other arms would be refused), and so does
    the same study scored on held-out texts (``eval.holdout``, suffix ``.holdout``)."""
    if args.arms:
        plan = replace(plan, name=f"{plan.name}.{'+'.join(a.label for a in plan.arms)}")
    name = default_study_name(plan, choices)
    name = f"{name}.holdout" if holdout else name
    # A race spends alpha over its looks: a fixed study of the same plan is another experiment.
    return f"{name}.race" if args.until_decided else name


def _describe(launch: Launch, number: int, total: int) -> None:
    labels = ", ".join(launch.arms.labels)
    print(
        f"[{number}/{total}] {launch.plan.description}: {len(launch.arms.labels)} arms ({labels})"
    )
    describe_plan(launch.plan, launch.arms, launch.name, phrases=launch.phrases)
    if launch.race is not None:
        print(race.describe(launch.race))


def _run_all(launches: list[Launch], storage: optuna.storages.RDBStorage) -> int:
    """The studies one after the other; a study with unfinished cells does not stop the next."""
    codes = []
    for number, launch in enumerate(launches, start=1):
        if len(launches) > 1:
            print(f"[{number}/{len(launches)}] {launch.plan.description}", flush=True)
        codes.append(_run(launch, storage))
        if codes[-1] not in (0, EXIT_FAILED):  # interrupted, or bad input for every study
            return codes[-1]
    return max(codes)


def _run(launch: Launch, storage: optuna.storages.RDBStorage) -> int:
    plan, arms = launch.plan, launch.arms
    race.check_design(storage, launch.name, launch.race)  # before prepare_study writes
    study = prepare_study(storage, launch.name, plan, arms, launch.choices)
    if launch.race is not None:
        write_race_design(study, launch.race)
    added = enqueue_missing(study, plan, arms)
    describe_plan(plan, arms, launch.name, phrases=launch.phrases)
    if launch.race is not None:
        print(race.describe(launch.race))
    print(f"storage {redact(launch.url)}: {len(added)} trials queued now", flush=True)
    code = 0
    if launch.race is not None:
        code = _race(launch, storage, study)
    # No Ray when all is done, unless the study still lacks its reference row.
    elif study.get_trials(deepcopy=False, states=PENDING) or read_reference(study) is None:
        code = _execute(launch, storage, study)
    if code == 0 and shortfall(study, plan, arms, FINISHED):
        code = EXIT_FAILED
    print_table(launch.name, launch.url, rope=launch.args.rope)
    _print_dropped(study)
    if code == EXIT_INTERRUPTED:
        print("interrupted: finished trials are kept; relaunch the same command to resume")
    elif code == EXIT_FAILED:
        print("some cells have no finished trial; relaunch the same command to retry them")
    where = f"--storage '{redact(launch.url)}'"
    print(f"next: python -m dashboards.serve {where}")
    print(f"      python -m dashboards.report --study '{launch.name}' {where}")
    return code


def _race(launch: Launch, storage: optuna.storages.RDBStorage, study: optuna.Study) -> int:
    """Seed rounds until decided (``search.race``), on one Ray for all rounds."""
    assert launch.race is not None
    started = False

    def execute(state: race.RaceState) -> int:
        nonlocal started
        started = started or _start_ray(launch.args.address)
        # The progress counts every cell the race has run or queued, earlier rounds' too.
        cells = set(race.round_cells(state, launch.plan, launch.arms)) | race.race_cells(study)
        return _execute(launch, storage, study, (cells, race.status_line(state)))

    try:
        return race.run_race(
            study, launch.plan, launch.arms, launch.race, execute, rope=launch.args.rope
        )
    finally:
        if started:
            ray.shutdown()


def _execute(
    launch: Launch,
    storage: optuna.storages.RDBStorage,
    study: optuna.Study,
    race_round: tuple[set[tuple[str, int]], str] | None = None,
) -> int:
    """Run the queued trials on Ray with live progress; 130 on Ctrl-C, else 0. ``race_round``:
    a race's cells of this round and its status line, for the progress line."""
    args = launch.args
    started = _start_ray(args.address)
    progress = LiveProgress(study, launch.plan, launch.arms, race_round=race_round)
    try:
        resources = scheduler.Resources(
            cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial,
            max_concurrent=args.max_concurrent or _default_concurrency(args.cpus_per_trial),
        )
        job = Job(
            study_name=launch.name,
            storage_url=launch.url,
            storage_settings=launch.storage_settings,
            # A race's seeds go past the plan's: the workers record seed params up to max_seeds.
            plan=launch.plan
            if launch.race is None
            else replace(launch.plan, seeds=launch.race.max_seeds),
            configs=job_configs(launch.arms.configs, args.cpus_per_trial),
            pruning=Pruning(args.pruner, args.prune_after, args.prune_margin),
            results_dir=str(Path(args.results_dir).expanduser().resolve()),
            save_models=args.save_models,
        )
        warming = scheduler.warm_workers(job, resources)  # each slot imports before its first cell
        # The untrained backbone's scores on the same texts, once per study (objectives.evaluation.reference).
        sides = [] if read_reference(study) else [scheduler.reference_task(job, resources)]
        tracker = scheduler.run_study(
            storage,
            study,
            job,
            resources,
            on_change=progress.update,
            warming=warming,
            side_tasks=sides,
        )
    except scheduler.Interrupted:
        return EXIT_INTERRUPTED
    finally:
        progress.close()
        if started:
            ray.shutdown()
    if tracker.stopped:  # every cell would fail the same way: one line, not one per trial
        print(f"error: {tracker.stopped}; the study was stopped", file=sys.stderr)
        return EXIT_INPUT
    for outcome in tracker.outcomes:
        if outcome.state == optuna.trial.TrialState.FAIL:
            print(f"trial {outcome.trial_id} failed: {outcome.error}", file=sys.stderr)
    for error in tracker.side_errors:  # the table then has no reference row; a relaunch retries
        print(f"{error} (relaunch to retry)", file=sys.stderr)
    return 0


def _print_dropped(study: optuna.Study) -> None:
    """Say so when trials trained without pairs that contained an evaluated text."""
    trials = study.get_trials(deepcopy=False)
    counts = {read_dropped_overlap(t) or 0 for t in trials} - {0}
    if counts:
        listed = ", ".join(str(n) for n in sorted(counts))
        print(f"training pairs dropped because they contain an evaluated text: {listed} per trial")


def _start_ray(address: str | None) -> bool:
    """A private local Ray by default (never a stranger's cluster by accident), or ``address``;
    a Ray this process already runs (a notebook's, a test module's) is used as it is. True when
    started here, so that only then the launch shuts it down."""
    if ray.is_initialized():
        return False
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
            f"cannot reach Ray at '{address}' ({one_line(exc, typed=True)}); start it with "
            "`ray start --head` or fix --address (leave it out for a private local Ray)"
        ) from None
    return True


def _require_hub(timeout: float = 3.0) -> None:
    """Without a tasks directory the tasks come from the MTEB hub: when it is off limits or cannot
    be reached in seconds, say so in one line (the hub client itself retries for half a minute)."""
    fix = f"pass --tasks-dir DIR (task folders in the layout of shared/data) or set {TASKS_DIR_ENV}"
    if hub_offline():
        raise LaunchError(f"offline (HF_HUB_OFFLINE is set) and no task data: {fix}")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    target = urlsplit(proxy or endpoint)
    host = target.hostname or "huggingface.co"
    port = target.port or (80 if target.scheme == "http" else 443)
    failed = _connect_error(host, port, timeout)
    if failed:
        raise LaunchError(
            f"offline: the MTEB hub ({host}:{port}) cannot be reached ({failed}) and there is no "
            f"task data: {fix}"
        )


def _connect_error(host: str, port: int, timeout: float) -> str | None:
    """Why a TCP connection to ``host:port`` fails within ``timeout`` seconds (name lookup
    included, which a socket timeout does not bound); ``None`` when it succeeds."""
    errors: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            errors.append(None)
        except OSError as exc:
            errors.append(str(exc) or type(exc).__name__)

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return errors[0] if errors else f"no answer in {timeout:g} s"


def _probe_ray(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a dead address; ``ray.init`` itself retries for minutes."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise LaunchError(
            f"cannot reach Ray at '{address}' ({exc}); start it with `ray start --head` "
            "or fix --address as HOST:PORT (leave it out for a private local Ray)"
        ) from None


def _default_concurrency(cpus_per_trial: float) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial))


def _parse_set(item: str) -> tuple[str, str]:
    path, sep, value = item.partition("=")
    if not sep or not path.strip():
        raise LaunchError(f"--set '{item}' must look like PATH=VALUE, e.g. train.steps=20")
    return path.strip(), value.strip()


def _names(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no task; use A,B,...")
    return names


def _labels(text: str) -> tuple[str, ...]:
    labels = tuple(label.strip() for label in text.split(",") if label.strip())
    if not labels:
        raise argparse.ArgumentTypeError(f"{text!r} names no arm; use A,B,...")
    return labels


def _positive_int(text: str) -> int:
    return _number(text, int, lambda v: v >= 1, "an integer >= 1")


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
