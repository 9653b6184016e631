"""A plan becomes an Optuna study: one enqueued trial per arm x seed cell, a pruner, a sampler.

Cells are enqueued, not sampled: every arm x seed runs exactly once, in a fixed order (per seed, the
baseline first, so a pruner has a reference early), and enqueueing is idempotent, so relaunching
a study adds only the cells that have no finished, queued or running trial. Arms that cannot
exist on the chosen backbone, or that build the same model as another arm, are skipped with a reason
that is stored with the study. A relaunch must train and score what the study's earlier trials did:
the same config and arms, and the same task files and training data, byte for byte (their content
hashes are stored with the study), or the trials of two experiments would share one table.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.trial import TrialState

from objectives.backbone import num_layers
from objectives.config import ConfigError, TrialConfig, override, to_dict
from objectives.data import pairs_source
from objectives.layers import resolve_layers
from objectives.pooling import HEADS
from objectives.presets import preset_config
from objectives.provenance import data_hashes, hub_record
from objectives.tasks import discover_tasks, task_names
from objectives.variants import VARIANTS, apply_variant
from search.plans import Plan, PlanError
from search.pruners import SameSeedMedianPruner
from storage.study_records import (
    Cell,
    PlanRecord,
    SkippedArm,
    StudyRecord,
    enqueue_cell,
    read_cell,
    read_study_record,
    write_study_record,
)

PRUNERS: tuple[str, ...] = ("median", "halving", "hyperband", "none")
# Deeper than any backbone: a layer rule that fails here fails on every backbone.
_ANY_DEPTH = 10_000
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
PENDING = (TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class Settings:
    """What the user chose on top of the plan: preset, base variant, backbone, data, overrides."""

    preset: str = "cpu"
    base: str | None = None
    model: str | None = None
    tasks_dir: str | None = None
    changes: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Arms:
    """The arms that will run (label -> config without seed) and the ones skipped, with reasons."""

    configs: dict[str, TrialConfig]
    skipped: list[dict[str, str]]
    base: TrialConfig
    num_layers: int | None

    @property
    def labels(self) -> list[str]:
        return list(self.configs)


def resolve_arms(plan: Plan, settings: Settings) -> Arms:
    """Build every arm's config; skip arms impossible on the backbone and arms identical to an
    earlier one.

    Raises ``ConfigError``/``PlanError`` (one line) for overrides that do not fit the config, a
    layer rule that is no rule, a baseline that cannot be built, a ``--set`` that would silently
    overwrite the ablated part, or a ``--base`` whose variant ignores it (every arm the same model).
    """
    ablated = {path for arm in plan.arms for path in arm.overrides}
    clash = ablated & {path for path, _ in settings.changes}
    if clash:
        raise PlanError(
            f"--set {', '.join(sorted(clash))} is the part that study '{plan.name}' ablates; "
            "drop it or write a plan file with the arms you want"
        )
    base_name = settings.base or plan.base
    if settings.base and all(set(VARIANTS[base_name]) <= set(a.overrides) for a in plan.arms):
        raise PlanError(
            f"study '{plan.name}' compares the variants themselves; --base does not apply to it"
        )
    arms = _resolve(plan, settings, base_name)
    if plan.baseline not in arms.configs:
        reason = next(s["reason"] for s in arms.skipped if s["arm"] == plan.baseline)
        raise PlanError(f"the baseline arm '{plan.baseline}' of study '{plan.name}': {reason}")
    if settings.base and len(arms.configs) == 1 < len(plan.arms):
        applies = [v for v in VARIANTS if len(_resolve(plan, settings, v).configs) > 1]
        raise PlanError(
            f"--base {settings.base} ignores what study '{plan.name}' ablates ({plan.ablated}): "
            f"every arm builds the same model; use --base {' or '.join(applies)}"
        )
    return arms


def _resolve(plan: Plan, settings: Settings, base_name: str) -> Arms:
    base = apply_variant(preset_config(settings.preset), base_name)
    base = override(base, plan.overrides)
    user = dict(settings.changes)
    if settings.model:
        user["model.backbone"] = settings.model
    if settings.tasks_dir:
        user["eval.tasks_dir"] = settings.tasks_dir
    base = override(base, user)

    configs = {arm.label: override(base, arm.overrides) for arm in plan.arms}
    layers = _layer_count(base, configs)
    order = [plan.baseline] + [a.label for a in plan.arms if a.label != plan.baseline]
    kept: dict[str, TrialConfig] = {}
    seen: dict[str, str] = {}
    skipped = []
    for label in order:
        config = configs[label]
        try:
            key = _model_key(config, layers)
        except ConfigError as exc:
            _check_rule(label, config)
            skipped.append({"arm": label, "reason": str(exc)})
            continue
        if key in seen:
            depth = f" ({layers} layers)" if layers is not None else ""
            reason = f"builds the same model as arm '{seen[key]}' on {config.model.backbone}{depth}"
            skipped.append({"arm": label, "reason": reason})
            continue
        seen[key] = label
        kept[label] = config
    ordered = {a.label: kept[a.label] for a in plan.arms if a.label in kept}
    return Arms(configs=ordered, skipped=skipped, base=base, num_layers=layers)


def _layer_count(base: TrialConfig, configs: dict[str, TrialConfig]) -> int | None:
    backbones = {
        c.model.backbone for c in configs.values() if c.model.pooling.kind == "multi_layer"
    }
    if not backbones:
        return None
    if len(backbones) > 1:
        raise PlanError(f"arms change the backbone ({sorted(backbones)}); keep one per study")
    return num_layers(backbones.pop())


def _check_rule(label: str, config: TrialConfig) -> None:
    """A layer selection that fails on every backbone is a typo, not an impossible arm."""
    pooling = config.model.pooling
    if pooling.kind != "multi_layer":
        return
    try:
        resolve_layers(pooling.layers, _ANY_DEPTH)
    except ConfigError as exc:
        raise PlanError(f"arm '{label}': {exc}") from None


def _model_key(config: TrialConfig, layers: int | None) -> str:
    """The config with the layer rule resolved, so 'top_k:6' on 6 layers equals 'all', and the
    pooling fields its head kind ignores left out."""
    data = to_dict(config)
    head = HEADS.get(config.model.pooling.kind)
    if head is not None:  # two arms that differ only in fields their head ignores are one model
        pooling = data["model"]["pooling"]
        for name in set(pooling) - {"kind", *head.config_fields}:
            del pooling[name]
    if config.model.pooling.kind == "multi_layer":
        assert layers is not None
        data["model"]["pooling"]["layers"] = list(
            resolve_layers(config.model.pooling.layers, layers)
        )
    return json.dumps(data, sort_keys=True)


def fingerprint(config: TrialConfig) -> str:
    """A short hash of what builds and trains the model (placement fields left out)."""
    data = to_dict(override(config, {path: None for path in ("eval.tasks_dir", "threads")}))
    data.pop("device", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def default_study_name(plan: Plan, settings: Settings) -> str:
    """``<plan>.<preset>.<base>[.<backbone>]``: different presets or backbones never share a study."""
    parts = [plan.name, settings.preset, settings.base or plan.base]
    if settings.model:
        parts.append(settings.model.rstrip("/").rsplit("/", 1)[-1])
    return ".".join(parts)


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


def load(storage: optuna.storages.BaseStorage, name: str, pruning: Pruning) -> optuna.Study:
    """The study with our pruner and sampler (TPE only matters for a plan's ``search`` tunables)."""
    return optuna.load_study(
        study_name=name,
        storage=storage,
        pruner=make_pruner(pruning),
        sampler=optuna.samplers.TPESampler(),
    )


def prepare_study(
    storage: optuna.storages.BaseStorage,
    name: str,
    plan: Plan,
    arms: Arms,
    settings: Settings,
) -> optuna.Study:
    """Create the study or check that an existing one ran the same plan on the same base config
    and data.

    A relaunch may add seeds; a different base config, different arm overrides or other task files
    or training data (``study_data_hashes``) under the same name would mix two experiments, so it
    is refused (``PlanError``, one line with the fix) before anything is written.
    """
    fp = fingerprint(arms.base)
    hashes = study_data_hashes(arms.base)  # read before writing: a broken file changes nothing
    study = optuna.create_study(
        study_name=name, storage=storage, direction="maximize", load_if_exists=True
    )
    old = read_study_record(study)
    record = plan.record()
    if old.plan:
        _check_same_experiment(name, old, record, fp, hashes)
        record["seeds"] = sorted(set(old.plan.get("seeds", [])) | set(record["seeds"]))
    write_study_record(
        study,
        StudyRecord(
            plan=PlanRecord(**record),
            skipped_arms=[SkippedArm(arm=s["arm"], reason=s["reason"]) for s in arms.skipped],
            preset=settings.preset,
            backbone=arms.base.model.backbone,
            base=settings.base or plan.base,
            config_fingerprint=fp,
            data_hashes=hashes,
        ),
    )
    return study


def _check_same_experiment(
    name: str, old: StudyRecord, record: dict[str, Any], fp: str, hashes: dict[str, str]
) -> None:
    old_fp = old.config_fingerprint
    old_arms = {a["label"]: a["overrides"] for a in old.plan.get("arms", [])}
    new_arms = {a["label"]: a["overrides"] for a in record["arms"]}
    if old_fp != fp or old_arms != new_arms:
        raise PlanError(
            f"study '{name}' was run with other settings (config {old_fp}, now {fp}; "
            "or other arms); pass --study-name to start a separate study"
        )
    stored = old.data_hashes
    if stored is None:  # a study from before data hashes were recorded: nothing to compare with
        return
    changed = sorted(k for k in stored.keys() | hashes.keys() if stored.get(k) != hashes.get(k))
    if changed:
        raise PlanError(
            f"study '{name}' was run on other data ({', '.join(changed)} differ in content); "
            "pass --study-name to start a separate study, or restore the data it was run on"
        )


def study_data_hashes(config: TrialConfig) -> dict[str, str]:
    """The content hash of each task and of the training data that trials of ``config`` read, keyed
    as ``objectives.provenance`` keys a trial's: ``task.<name>`` and ``train``.

    A hub task is recorded by its pinned dataset revision, as the trial records it.
    """
    local = discover_tasks(config.eval.tasks_dir)
    names = task_names(config.eval)
    source = pairs_source(config.train, config.eval.tasks_dir)
    hashes = data_hashes({n: local[n].folder for n in names if n in local}, source)
    for name in names:
        if name not in local:
            hashes[f"task.{name}"] = hub_record(_hub_metadata(name))
    return hashes


def _hub_metadata(name: str) -> Any:
    import mteb  # only for hub tasks: its metadata, no download

    return mteb.get_task(name).metadata


def cells(plan: Plan, arms: Arms) -> list[tuple[str, int]]:
    """Every arm x seed cell, per seed the baseline first (the pruner's early reference)."""
    order = [plan.baseline] + [a.label for a in plan.arms if a.label != plan.baseline]
    return [(arm, seed) for seed in plan.seed_values() for arm in order if arm in arms.configs]


def suggest_tunables(trial: optuna.Trial, plan: Plan) -> dict[str, Any]:
    """TPE-suggested values of the plan's ``search`` section, keyed by dotted config path."""
    values: dict[str, Any] = {}
    for path, spec in plan.search.items():
        if spec.kind == "int":
            values[path] = trial.suggest_int(path, int(spec.low), int(spec.high), log=spec.log)
        else:
            values[path] = trial.suggest_float(path, spec.low, spec.high, log=spec.log)
    return values


def shortfall(
    study: optuna.Study, plan: Plan, arms: Arms, states: tuple[TrialState, ...]
) -> list[tuple[str, int]]:
    """One entry per trial a cell lacks: cells with fewer than ``trials_per_cell`` in ``states``."""
    have = Counter(read_cell(t) for t in study.get_trials(deepcopy=False, states=states))
    return [cell for cell in cells(plan, arms) for _ in range(plan.trials_per_cell - have[cell])]


def enqueue_missing(study: optuna.Study, plan: Plan, arms: Arms) -> list[tuple[str, int]]:
    """Enqueue what each cell lacks beyond its finished and pending trials; returns those cells.

    Idempotent: a relaunch adds nothing for a cell that is done, queued or running. FAILed trials
    do not count, so a relaunch re-runs a cell whose every attempt failed.
    """
    added = shortfall(study, plan, arms, FINISHED + PENDING)
    for arm, seed in added:
        enqueue_cell(study, Cell(arm, seed))
    return added


def with_seed(config: TrialConfig, seed: int, tuned: dict[str, Any]) -> TrialConfig:
    """The cell's config: the arm's config with the seed and any TPE-suggested values."""
    return override(replace(config, seed=seed), tuned)
