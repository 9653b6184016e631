"""A plan's arms on the user's choices: one trial config per arm, arms impossible on the backbone or
identical to another skipped with a reason, and the fingerprint of what builds and trains a model.

Arms that build the same model (a layer rule that resolves to the same layers on this backbone, or
pooling fields the head ignores) are one model: the later arm is skipped, with the reason stored with
the study.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from objectives.config.presets import preset_config
from objectives.config.trial_config import ConfigError, TrialConfig, override, to_dict
from objectives.config.variants import VARIANTS, apply_variant
from objectives.model.backbone import num_layers
from objectives.model.layers import resolve_layers
from objectives.model.pooling import HEADS
from search.plans import Plan, PlanError

# Deeper than any backbone: a layer rule that fails here fails on every backbone.
_ANY_DEPTH = 10_000


@dataclass(frozen=True)
class Choices:
    """What the user chose on top of the plan: preset, base variant, backbone, data, overrides."""

    preset: str = "cpu"
    base: str | None = None
    model: str | None = None
    tasks_dir: str | None = None
    overrides: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Arms:
    """The arms that will run (label -> config without seed) and the ones skipped, with reasons."""

    configs: dict[str, TrialConfig]
    skipped: list[dict[str, str]]
    base_config: TrialConfig
    num_layers: int | None

    @property
    def labels(self) -> list[str]:
        return list(self.configs)


def resolve_arms(plan: Plan, choices: Choices) -> Arms:
    """Build every arm's config; skip arms impossible on the backbone and arms identical to an
    earlier one.

    Raises ``ConfigError``/``PlanError`` (one line) for overrides that do not fit the config, a
    layer rule that is no rule, a baseline that cannot be built, a ``--set`` that would silently
    overwrite the ablated part, or a ``--base`` whose variant ignores it (every arm the same model).
    """
    ablated = {path for arm in plan.arms for path in arm.overrides}
    clash = ablated & {path for path, _ in choices.overrides}
    if clash:
        raise PlanError(
            f"--set {', '.join(sorted(clash))} is the part that study '{plan.name}' ablates; "
            "drop it or write a plan file with the arms you want"
        )
    base_name = choices.base or plan.base
    if choices.base and all(set(VARIANTS[base_name]) <= set(a.overrides) for a in plan.arms):
        raise PlanError(
            f"study '{plan.name}' compares the variants themselves; --base does not apply to it"
        )
    arms = _resolve(plan, choices, base_name)
    if plan.baseline not in arms.configs:
        reason = next(s["reason"] for s in arms.skipped if s["arm"] == plan.baseline)
        raise PlanError(f"the baseline arm '{plan.baseline}' of study '{plan.name}': {reason}")
    if choices.base and len(arms.configs) == 1 < len(plan.arms):
        applies = [v for v in VARIANTS if len(_resolve(plan, choices, v).configs) > 1]
        raise PlanError(
            f"--base {choices.base} ignores what study '{plan.name}' ablates ({plan.ablated}): "
            f"every arm builds the same model; use --base {' or '.join(applies)}"
        )
    return arms


def _resolve(plan: Plan, choices: Choices, base_name: str) -> Arms:
    base = apply_variant(preset_config(choices.preset), base_name)
    base = override(base, plan.overrides)
    user = dict(choices.overrides)
    if choices.model:
        user["model.backbone"] = choices.model
    if choices.tasks_dir:
        user["eval.tasks_dir"] = choices.tasks_dir
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
    return Arms(configs=ordered, skipped=skipped, base_config=base, num_layers=layers)


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
