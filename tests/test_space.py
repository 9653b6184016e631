"""Plan -> Optuna study: arms resolved per backbone, cells enqueued once, the pruner by name."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from search import space
from search.plans import Arm, Plan, PlanError, get_plan
from search.pruners import SameSeedMedianPruner

SMOKE = space.Settings(preset="smoke")


def test_top_k_arms_that_minilm_cannot_build_are_skipped_with_the_reason() -> None:
    arms = space.resolve_arms(get_plan("top-k-layers"), SMOKE)
    assert arms.num_layers == 6
    assert arms.labels == ["top-4", "all"]
    reasons = {s["arm"]: s["reason"] for s in arms.skipped}
    assert set(reasons) == {"top-8", "top-16"}
    assert "6" in reasons["top-16"] and "top_k:16" in reasons["top-16"]


def test_an_arm_identical_to_another_is_skipped_and_the_baseline_kept() -> None:
    plan = Plan(
        name="same",
        description="d",
        ablated="layers",
        action="replace",
        arms=(Arm("top-6", {"model.pooling.layers": "top_k:6"}), Arm("all", {})),
        baseline="all",
    )
    arms = space.resolve_arms(plan, SMOKE)
    assert arms.labels == ["all"]
    assert arms.skipped == [
        {"arm": "top-6", "reason": "builds the same model as arm 'all' on minilm (6 layers)"}
    ]


def test_set_on_the_ablated_part_and_base_on_the_variant_study_are_refused() -> None:
    clash = space.Settings(preset="smoke", changes=(("model.pooling.heads", "4"),))
    with pytest.raises(PlanError, match="is the part that study 'cross-attn-width' ablates"):
        space.resolve_arms(get_plan("cross-attn-width"), clash)
    with pytest.raises(PlanError, match="--base does not apply"):
        space.resolve_arms(get_plan("pooling-attention"), space.Settings("smoke", base="model3"))
    causal = space.resolve_arms(get_plan("layer-weights"), space.Settings("smoke", base="model3"))
    assert {c.model.attention for c in causal.configs.values()} == {"causal"}


def test_default_study_names_keep_presets_and_backbones_apart() -> None:
    plan = get_plan("layer-range")
    names = {
        space.default_study_name(plan, space.Settings("smoke")),
        space.default_study_name(plan, space.Settings("cpu")),
        space.default_study_name(plan, space.Settings("cpu", base="model3")),
        space.default_study_name(plan, space.Settings("cpu", model="org/other-model")),
    }
    assert len(names) == 4
    assert "layer-range.cpu.model5.other-model" in names


def _prepared(
    url: str, plan: Plan, settings: space.Settings = SMOKE
) -> tuple[optuna.Study, space.Arms]:
    arms = space.resolve_arms(plan, settings)
    storage = optuna.storages.RDBStorage(url)
    return space.prepare_study(storage, "s", plan, arms, settings), arms


def test_cells_are_enqueued_once_and_a_relaunch_adds_only_missing_ones(sqlite_url: str) -> None:
    plan = get_plan("layer-weights")
    study, arms = _prepared(sqlite_url, plan)
    added = space.enqueue_missing(study, plan, arms)
    assert added == [
        ("W on", 0),
        ("W off", 0),
        ("W on", 1),
        ("W off", 1),
        ("W on", 2),
        ("W off", 2),
    ]
    assert space.enqueue_missing(study, plan, arms) == []  # idempotent

    def finish(state: TrialState) -> None:
        trial = study.ask()  # takes the oldest queued cell
        space.suggest_cell(trial, [a.label for a in plan.arms], plan.seeds)
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)

    finish(TrialState.COMPLETE)
    finish(TrialState.FAIL)
    finish(TrialState.PRUNED)
    # Only the failed cell comes back; the complete, pruned and still-queued ones do not.
    assert space.enqueue_missing(study, plan, arms) == [("W off", 0)]
    unfinished = [("W off", 0), ("W off", 1), ("W on", 2), ("W off", 2)]
    assert space.shortfall(study, plan, arms, space.FINISHED) == unfinished


def test_study_records_what_the_reports_read(sqlite_url: str) -> None:
    study, _ = _prepared(sqlite_url, get_plan("top-k-layers"))
    attrs = study.user_attrs
    assert attrs["plan"]["name"] == "top-k-layers"
    assert attrs["plan"]["baseline"] == "all"
    assert [a["label"] for a in attrs["plan"]["arms"]] == ["top-4", "top-8", "top-16", "all"]
    assert {s["arm"] for s in attrs["skipped_arms"]} == {"top-8", "top-16"}
    assert attrs["preset"] == "smoke" and attrs["backbone"] == "minilm"
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_a_relaunch_with_other_settings_under_the_same_name_is_refused(sqlite_url: str) -> None:
    plan = get_plan("layer-weights")
    _prepared(sqlite_url, plan)
    _prepared(sqlite_url, plan, space.Settings("smoke", changes=(("eval.tasks_dir", "/x"),)))
    with pytest.raises(PlanError, match="was run with other settings"):
        _prepared(sqlite_url, plan, space.Settings("smoke", changes=(("train.steps", "9"),)))


def test_more_seeds_extend_the_same_study(sqlite_url: str) -> None:
    plan = get_plan("layer-weights")
    study, arms = _prepared(sqlite_url, plan)
    space.enqueue_missing(study, plan, arms)
    wider = Plan(**{**plan.__dict__, "seeds": 4})
    study, arms = _prepared(sqlite_url, wider)
    assert space.enqueue_missing(study, wider, arms) == [("W on", 3), ("W off", 3)]
    assert study.user_attrs["plan"]["seeds"] == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("median", SameSeedMedianPruner),
        ("halving", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruners_by_name(name: str, kind: type) -> None:
    assert isinstance(space.make_pruner(space.Pruning(name)), kind)


def test_unknown_pruner_is_one_line() -> None:
    with pytest.raises(PlanError, match="choose one of median, halving, hyperband, none"):
        space.make_pruner(space.Pruning("asha"))
