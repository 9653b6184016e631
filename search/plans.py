"""Ablation plans as data: the five shipped studies, and users' own plans from YAML/TOML.

A plan says what is compared and nothing about how it runs: a base paper variant, the ablated part,
whether the arms replace or remove it, the arms (a short human label plus dotted-path config
overrides, one of them the baseline), the seeds and the metrics. The search space, the runner and the
reports all read this one shape, so a user plan file (or a planner document, search/planner_docs.py)
is a first-class study. The metrics are the result categories the study is about: they are the
table's columns and, unless ``objective`` says otherwise, the objective is their mean
(``objective_value``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomllib
import yaml

from objectives.categories import CATEGORIES
from objectives.config.trial_config import ConfigError
from objectives.config.variants import VARIANTS
from objectives.errors import AblationError, one_line
from objectives.trial.results import OBJECTIVE

__all__ = [
    "STUDIES",
    "Action",
    "Arm",
    "Plan",
    "PlanError",
    "Tunable",
    "attention_arm",
    "get_plan",
    "layer_weight_arms",
    "layers_arm",
    "load_plan",
    "objective_value",
    "plan_from_dict",
    "variant_arm",
    "width_arm",
]

Action = Literal["replace", "remove"]


class PlanError(AblationError, ValueError):
    """A plan that cannot be used; the message is one line that names the fix."""


@dataclass(frozen=True)
class Arm:
    """One compared configuration: a short label and the overrides that make it."""

    label: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tunable:
    """An extra hyperparameter searched by TPE inside every arm x seed cell (``search`` section)."""

    low: float
    high: float
    log: bool = False
    kind: Literal["float", "int"] = "float"


@dataclass(frozen=True)
class Plan:
    """An ablation study: ``arms`` x ``seeds`` on top of paper variant ``base``.

    ``overrides`` apply to every arm (before the arm's own); ``search`` adds TPE-searched
    hyperparameters, ``trials_per_cell`` of them per arm x seed cell (1 = a plain grid).
    ``objective`` is what a trial is ranked by: ``None`` for the mean of the ``metrics``
    categories, ``average`` for the mean of every category, a category, or a task's main score.
    """

    name: str
    description: str
    ablated: str
    action: Action
    arms: tuple[Arm, ...]
    baseline: str
    base: str = "model5"
    seeds: int = 3
    metrics: tuple[str, ...] = CATEGORIES
    overrides: dict[str, Any] = field(default_factory=dict)
    search: dict[str, Tunable] = field(default_factory=dict)
    trials_per_cell: int = 1
    objective: str | None = None

    def __post_init__(self) -> None:
        labels = [arm.label for arm in self.arms]
        if not self.arms:
            raise PlanError(f"plan '{self.name}' has no arms; list at least two under 'arms'")
        if len(set(labels)) != len(labels):
            raise PlanError(
                f"plan '{self.name}' repeats an arm label in {labels}; make them unique"
            )
        if self.baseline not in labels:
            raise PlanError(
                f"plan '{self.name}': baseline '{self.baseline}' is not an arm; use one of {labels}"
            )
        if self.action not in ("replace", "remove"):
            raise PlanError(f"plan '{self.name}': action must be replace or remove")
        if self.base not in VARIANTS:
            raise PlanError(f"plan '{self.name}': base must be one of {sorted(VARIANTS)}")
        if self.seeds < 1 or self.trials_per_cell < 1:
            raise PlanError(f"plan '{self.name}': seeds and trials_per_cell must be >= 1")
        unknown = set(self.metrics) - set(CATEGORIES)
        if unknown or not self.metrics:
            raise PlanError(
                f"plan '{self.name}': unknown metrics {sorted(unknown) or '[]'}; "
                f"use one or more of {CATEGORIES}"
            )

    def arm(self, label: str) -> Arm:
        return next(a for a in self.arms if a.label == label)

    def seed_values(self) -> list[int]:
        return list(range(self.seeds))

    def record(self) -> dict[str, Any]:
        """The plan as stored in the study's ``plan`` user attribute (read by the reports)."""
        data = asdict(self)
        data["arms"] = [{"label": a.label, "overrides": dict(a.overrides)} for a in self.arms]
        data["seeds"] = self.seed_values()
        data["metrics"] = list(self.metrics)
        data["objective_name"] = self.objective_name()
        return data

    def objective_name(self) -> str:
        """The objective as a column name: ``average``, ``average of STS, Retrieval``, a category
        or a task."""
        if self.objective:
            return self.objective
        if set(self.metrics) == set(CATEGORIES):
            return OBJECTIVE
        return f"{OBJECTIVE} of {', '.join(self.metrics)}"

    def objective_value(
        self, task_scores: Mapping[str, float], category_scores: Mapping[str, float]
    ) -> float:
        """This plan's objective for one trial's scores (see ``objective_value``)."""
        return objective_value(self.objective, self.metrics, task_scores, category_scores)

    def check_objective(self, task_categories: Mapping[str, str]) -> None:
        """Refuse metrics or an objective that the evaluated tasks (name -> category) cannot score."""
        present = set(task_categories.values())
        if not present & set(self.metrics):
            raise PlanError(
                f"plan '{self.name}': no evaluated task {sorted(task_categories)} is of the "
                f"metrics {list(self.metrics)}; add one with --tasks or change the metrics"
            )
        known = {OBJECTIVE, *present, *task_categories}
        if self.objective is not None and self.objective not in known:
            raise PlanError(
                f"plan '{self.name}': objective '{self.objective}' is not '{OBJECTIVE}', an "
                f"evaluated category {sorted(present)} or task {sorted(task_categories)}"
            )


def objective_value(
    objective: str | None,
    metrics: Sequence[str],
    task_scores: Mapping[str, float],
    category_scores: Mapping[str, float],
) -> float:
    """A trial's objective from its per-task main scores and per-category means.

    ``None``: the mean of the ``metrics`` category means present (a task subset may lack a
    category, as for ``TrialResult.average``); ``average``: the mean of every category mean; a
    category: its mean; a task: its main score. ``KeyError`` when that score is missing.
    """
    if objective is None:
        chosen = [category_scores[m] for m in metrics if m in category_scores]
        if not chosen:
            raise KeyError(f"no score of the metrics {list(metrics)}")
        return sum(chosen) / len(chosen)
    if objective == OBJECTIVE:
        return sum(category_scores.values()) / len(category_scores)
    if objective in CATEGORIES:
        return category_scores[objective]
    return task_scores[objective]


_POOL = "model.pooling."


def layers_arm(label: str, rule: str) -> Arm:
    """An arm feeding multi-layers pooling the layers of ``rule`` (objectives/model/layers.py)."""
    return Arm(label, {_POOL + "layers": rule})


def width_arm(heads: int, head_dim: int) -> Arm:
    """An arm whose pooling cross-attention has ``heads`` heads of ``head_dim`` channels each."""
    return Arm(f"{heads}x{head_dim}", {_POOL + "heads": heads, _POOL + "head_dim": head_dim})


def variant_arm(name: str) -> Arm:
    """An arm that is paper variant ``name`` (model1..model5)."""
    return Arm(name, dict(VARIANTS[name]))


def attention_arm(mode: str) -> Arm:
    """An arm that only sets the backbone's self-attention: ``causal`` or ``bidirectional``."""
    return Arm(mode, {"model.attention": mode})


def layer_weight_arms() -> tuple[Arm, Arm]:
    """With and without the trainable layer-weight matrix W (the removal study's arms)."""
    return Arm("W on", {_POOL + "layer_weights": True}), Arm(
        "W off", {_POOL + "layer_weights": False}
    )


def _layer_selection_plan(name: str, description: str, rules: dict[str, str]) -> Plan:
    """A study of which layers feed multi-layers pooling: each rule as an arm, against all layers."""
    return Plan(
        name=name,
        description=description,
        ablated="layers fed to multi-layers pooling",
        action="replace",
        arms=tuple(layers_arm(label, rule) for label, rule in {**rules, "all": "all"}.items()),
        baseline="all",
    )


STUDIES: dict[str, Plan] = {
    plan.name: plan
    for plan in (
        Plan(
            name="pooling-attention",
            description="the paper's main table: the five pooling x attention variants",
            ablated="pooling x attention",
            action="replace",
            arms=tuple(variant_arm(name) for name in sorted(VARIANTS)),
            baseline="model5",
        ),
        _layer_selection_plan(
            "layer-range",
            "which third of the layers multi-layers pooling needs",
            {
                "first-third": "first_third",
                "middle-third": "middle_third",
                "last-third": "last_third",
            },
        ),
        _layer_selection_plan(
            "top-k-layers",
            "the top K layers versus all layers in multi-layers pooling",
            {"top-4": "top_k:4", "top-8": "top_k:8", "top-16": "top_k:16"},
        ),
        Plan(
            name="cross-attn-width",
            description="cross-attention heads x head width of the pooling head",
            ablated="cross-attention heads x head width",
            action="replace",
            arms=tuple(width_arm(h, w) for h, w in ((8, 512), (16, 1024), (32, 2048), (64, 4096))),
            baseline="32x2048",
        ),
        Plan(
            name="layer-weights",
            description="removing the trainable layer-weight matrix W",
            ablated="trainable layer-weight matrix W",
            action="remove",
            arms=layer_weight_arms(),
            baseline="W on",
        ),
    )
}


def get_plan(name: str) -> Plan:
    """A shipped study by name; ``PlanError`` lists the choices."""
    if name not in STUDIES:
        raise PlanError(
            f"unknown study '{name}'; choose one of {', '.join(STUDIES)} or --plan FILE"
        )
    return STUDIES[name]


def load_plan(path: str | Path) -> Plan:
    """A user plan from a YAML (``.yaml``/``.yml``) or TOML (``.toml``) file in the shape of ``Plan``.

    ``arms`` is a list of ``{label, overrides}`` (or a mapping label -> overrides); ``seeds`` a
    count; ``search`` maps a dotted config path to ``{low, high, log?, kind?}``.
    """
    path = Path(path)
    if not path.is_file():
        raise PlanError(f"plan file '{path}' does not exist; pass an existing YAML or TOML file")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise PlanError(
                f"plan file '{path}' must end in .yaml, .yml or .toml (.md: a planner document)"
            )
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as exc:
        first = one_line(exc, first_line=True)
        raise PlanError(f"plan file '{path}' is not valid {path.suffix[1:]}: {first}") from None
    if not isinstance(data, dict):
        raise PlanError(f"plan file '{path}' must hold a mapping with name, arms, baseline, ...")
    return plan_from_dict(data, where=str(path))


def plan_from_dict(data: dict[str, Any], where: str = "plan") -> Plan:
    """Build a ``Plan`` from plain data (a parsed plan file or a stored ``plan`` attribute).

    ``tasks`` (a list or ``A,B``) picks the evaluated tasks: it becomes the ``eval.tasks`` override.
    """
    data = dict(data)
    required = ("name", "arms", "baseline")
    missing = [k for k in required if k not in data]
    if missing:
        raise PlanError(f"{where}: missing {missing}; a plan needs name, arms and baseline")
    data.pop("objective_name", None)  # a stored record's derived column name
    tasks = data.pop("tasks", None)
    if tasks is not None:  # which tasks score the study: every arm evaluates the same ones
        names = tasks.split(",") if isinstance(tasks, str) else list(tasks)
        data["overrides"] = {**(data.get("overrides") or {}), "eval.tasks": tuple(names)}
    known = set(Plan.__dataclass_fields__) | {"tasks"}
    unknown = set(data) - known
    if unknown:
        raise PlanError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
    arms = data["arms"]
    if isinstance(arms, dict):
        arms = [{"label": k, "overrides": v} for k, v in arms.items()]
    try:
        data["arms"] = tuple(Arm(str(a["label"]), dict(a.get("overrides") or {})) for a in arms)
        data["search"] = {k: Tunable(**v) for k, v in (data.get("search") or {}).items()}
    except (TypeError, KeyError, AttributeError) as exc:
        raise PlanError(
            f"{where}: arms must be a list of {{label, overrides}} and search entries "
            f"{{low, high, log, kind}} ({exc})"
        ) from None
    if isinstance(data.get("seeds"), list):  # a stored plan records the seed values
        data["seeds"] = max(data["seeds"]) + 1
    data.setdefault("description", data["name"])
    data.setdefault("ablated", "user plan")
    data.setdefault("action", "replace")
    data["metrics"] = tuple(data.get("metrics", CATEGORIES))
    data["overrides"] = dict(data.get("overrides") or {})
    try:
        return Plan(**data)
    except (TypeError, ConfigError) as exc:
        raise PlanError(f"{where}: {exc}") from None
