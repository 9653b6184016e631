"""Plan -> Optuna study: arms resolved per backbone, cells enqueued once, the pruner by name."""

from __future__ import annotations

import dataclasses
import re
import shutil
import uuid
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from objectives.config.trial_config import PoolingConfig
from objectives.evaluation.mteb_tasks import load_tasks
from objectives.model.pooling import HEADS, build_pooling
from objectives.trial.provenance import trial_provenance
from search.arms import Arms, Choices, resolve_arms
from search.plans import Arm, Plan, PlanError, get_plan
from search.pruners import Pruning, SameSeedMedianPruner, make_pruner
from search.study import (
    FINISHED,
    default_study_name,
    enqueue_missing,
    prepare_study,
    shortfall,
    study_data_hashes,
)
from storage.study_records import read_data_hashes, read_study_record, suggest_cell

SMOKE = Choices(preset="smoke")


def test_top_k_arms_that_minilm_cannot_build_are_skipped_with_the_reason() -> None:
    arms = resolve_arms(get_plan("top-k-layers"), SMOKE)
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
    arms = resolve_arms(plan, SMOKE)
    assert arms.labels == ["all"]
    assert arms.skipped == [
        {"arm": "top-6", "reason": "builds the same model as arm 'all' on minilm (6 layers)"}
    ]


def test_set_on_the_ablated_part_and_base_on_the_variant_study_are_refused() -> None:
    clash = Choices(preset="smoke", overrides=(("model.pooling.heads", "4"),))
    with pytest.raises(PlanError, match="is the part that study 'cross-attn-width' ablates"):
        resolve_arms(get_plan("cross-attn-width"), clash)
    with pytest.raises(PlanError, match="--base does not apply"):
        resolve_arms(get_plan("pooling-attention"), Choices("smoke", base="model3"))
    causal = resolve_arms(get_plan("layer-weights"), Choices("smoke", base="model3"))
    assert {c.model.attention for c in causal.configs.values()} == {"causal"}


def test_default_study_names_keep_presets_and_backbones_apart() -> None:
    plan = get_plan("layer-range")
    names = {
        default_study_name(plan, Choices("smoke")),
        default_study_name(plan, Choices("cpu")),
        default_study_name(plan, Choices("cpu", base="model3")),
        default_study_name(plan, Choices("cpu", model="org/other-model")),
    }
    assert len(names) == 4
    assert "layer-range.cpu.model5.other-model" in names


def _prepared(url: str, plan: Plan, settings: Choices = SMOKE) -> tuple[optuna.Study, Arms]:
    arms = resolve_arms(plan, settings)
    storage = optuna.storages.RDBStorage(url)
    return prepare_study(storage, "s", plan, arms, settings), arms


def test_cells_are_enqueued_once_and_a_relaunch_adds_only_missing_ones(sqlite_url: str) -> None:
    plan = get_plan("layer-weights")
    study, arms = _prepared(sqlite_url, plan)
    added = enqueue_missing(study, plan, arms)
    assert added == [
        ("W on", 0),
        ("W off", 0),
        ("W on", 1),
        ("W off", 1),
        ("W on", 2),
        ("W off", 2),
    ]
    assert enqueue_missing(study, plan, arms) == []  # idempotent

    def finish(state: TrialState) -> None:
        trial = study.ask()  # takes the oldest queued cell
        suggest_cell(trial, [a.label for a in plan.arms], plan.seeds)
        study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)

    finish(TrialState.COMPLETE)
    finish(TrialState.FAIL)
    finish(TrialState.PRUNED)
    # Only the failed cell comes back; the complete, pruned and still-queued ones do not.
    assert enqueue_missing(study, plan, arms) == [("W off", 0)]
    unfinished = [("W off", 0), ("W off", 1), ("W on", 2), ("W off", 2)]
    assert shortfall(study, plan, arms, FINISHED) == unfinished


def test_study_records_what_the_reports_read(sqlite_url: str) -> None:
    study, _ = _prepared(sqlite_url, get_plan("top-k-layers"))
    record = read_study_record(study)
    assert record.plan["name"] == "top-k-layers"
    assert record.plan["baseline"] == "all"
    assert [a["label"] for a in record.plan["arms"]] == ["top-4", "top-8", "top-16", "all"]
    assert {s["arm"] for s in record.skipped_arms} == {"top-8", "top-16"}
    assert record.preset == "smoke" and record.backbone == "minilm"
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.metric_names == ["average"]  # what optuna-dashboard calls the value


def test_the_study_names_its_value_after_the_plans_objective(sqlite_url: str) -> None:
    plan = dataclasses.replace(get_plan("layer-weights"), metrics=("STS", "Retrieval"))
    study, _ = _prepared(sqlite_url, plan)
    assert study.metric_names == [plan.objective_name()] == ["average of STS, Retrieval"]


def test_a_relaunch_with_other_settings_under_the_same_name_is_refused(
    tasks_dir: Path, tmp_path: Path, sqlite_url: str
) -> None:
    plan = get_plan("layer-weights")
    _prepared(sqlite_url, plan)
    moved = shutil.copytree(tasks_dir, tmp_path / "moved")  # the same data elsewhere: accepted
    _prepared(sqlite_url, plan, Choices("smoke", overrides=(("eval.tasks_dir", str(moved)),)))
    with pytest.raises(PlanError, match="was run with other settings"):
        _prepared(sqlite_url, plan, Choices("smoke", overrides=(("train.steps", "9"),)))


def test_more_seeds_extend_the_same_study(sqlite_url: str) -> None:
    plan = get_plan("layer-weights")
    study, arms = _prepared(sqlite_url, plan)
    enqueue_missing(study, plan, arms)
    wider = Plan(**{**plan.__dict__, "seeds": 4})
    study, arms = _prepared(sqlite_url, wider)
    assert enqueue_missing(study, wider, arms) == [("W on", 3), ("W off", 3)]
    assert read_study_record(study).plan["seeds"] == [0, 1, 2, 3]


def _own_data(tasks_dir: Path, tmp_path: Path) -> tuple[Choices, Path, Path]:
    """Choices whose one task and training file are copies the test may change."""
    task = shutil.copytree(tasks_dir / "sts" / "STSBenchmark", tmp_path / "tasks" / "STSBenchmark")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"query": "a cat", "positive": "a kitten"}\n', encoding="utf-8")
    changes = (("eval.tasks", "STSBenchmark"), ("train.data", str(pairs)))
    settings = Choices("smoke", tasks_dir=str(tmp_path / "tasks"), overrides=changes)
    return settings, task / "test.jsonl", pairs


def test_the_study_stores_the_data_hashes_a_trial_of_it_records(
    tasks_dir: Path, tmp_path: Path, sqlite_url: str
) -> None:
    settings, _, pairs = _own_data(tasks_dir, tmp_path)
    plan = get_plan("layer-weights")
    study, arms = _prepared(sqlite_url, plan, settings)
    config = arms.base_config
    trial_side = trial_provenance(load_tasks(config.eval), config.eval.tasks_dir, str(pairs))
    assert read_data_hashes(study) == trial_side["data"]
    assert set(trial_side["data"]) == {"task.STSBenchmark", "train"}


def test_a_relaunch_on_changed_task_files_or_training_data_is_refused_and_writes_nothing(
    tasks_dir: Path, tmp_path: Path, any_storage_url: str
) -> None:
    settings, task_file, pairs = _own_data(tasks_dir, tmp_path)
    plan = get_plan("layer-weights")
    name = f"data-{uuid.uuid4().hex[:8]}"
    storage = optuna.storages.RDBStorage(any_storage_url)
    arms = resolve_arms(plan, settings)
    study = prepare_study(storage, name, plan, arms, settings)
    enqueue_missing(study, plan, arms)
    before = (study.user_attrs, len(study.trials))
    wider = dataclasses.replace(plan, seeds=4)  # a relaunch that would extend the study
    wider_arms = resolve_arms(wider, settings)
    for changed, key in ((task_file, "task.STSBenchmark"), (pairs, "train")):
        original = changed.read_bytes()
        changed.write_bytes(original + b"\n")
        fix = "pass --study-name to start a separate study, or restore the data it was run on$"
        with pytest.raises(
            PlanError, match=rf"'{name}' was run on other data \({key} differ.*{fix}"
        ):
            prepare_study(storage, name, wider, wider_arms, settings)
        reloaded = optuna.load_study(study_name=name, storage=storage)
        assert (reloaded.user_attrs, len(reloaded.trials)) == before
        changed.write_bytes(original)
    study = prepare_study(storage, name, wider, wider_arms, settings)  # the data restored
    assert read_study_record(study).plan["seeds"] == [0, 1, 2, 3]


def test_a_study_from_before_data_hashes_accepts_a_relaunch_and_records_them(
    sqlite_url: str,
) -> None:
    plan = get_plan("layer-weights")
    study, arms = _prepared(sqlite_url, plan)
    study.set_user_attr("data_hashes", None)  # the stored key: a study from before has none
    assert read_data_hashes(study) is None
    study, _ = _prepared(sqlite_url, plan)
    assert read_data_hashes(study) == study_data_hashes(arms.base_config)


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
    assert isinstance(make_pruner(Pruning(name)), kind)


def test_unknown_pruner_is_one_line() -> None:
    with pytest.raises(PlanError, match="choose one of median, halving, hyperband, none"):
        make_pruner(Pruning("asha"))


def _layer_plan(rules: dict[str, str], baseline: str = "all") -> Plan:
    return Plan(
        name="layers",
        description="d",
        ablated="layers",
        action="replace",
        arms=tuple(Arm(label, {"model.pooling.layers": rule}) for label, rule in rules.items()),
        baseline=baseline,
    )


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        ({"top-4": "top_k:four", "all": "all"}, "arm 'top-4': 'top_k:four': K must be an integer"),
        ({"late": "last_thrid", "all": "all"}, "arm 'late': unknown layer rule 'last_thrid'"),
        ({"first": "top_k:2", "all": "al"}, "arm 'all': unknown layer rule 'al'"),  # the baseline
        ({"zero": "0,1", "all": "all"}, "arm 'zero': layers [0] do not exist"),
    ],
)
def test_a_layer_rule_that_is_no_rule_is_a_plan_error_not_a_skipped_arm(
    rules: dict[str, str], fragment: str
) -> None:
    with pytest.raises(PlanError, match=re.escape(fragment)):
        resolve_arms(_layer_plan(rules), SMOKE)


def test_a_baseline_the_backbone_cannot_build_is_a_plan_error() -> None:
    plan = _layer_plan({"top-16": "top_k:16", "all": "all"}, baseline="top-16")
    with pytest.raises(PlanError, match=r"baseline arm 'top-16'.*needs 16 layers"):
        resolve_arms(plan, SMOKE)


@pytest.mark.parametrize(
    ("study", "base", "applies"),
    [
        ("layer-weights", "model1", "model3 or model5"),
        ("layer-weights", "model4", "model3 or model5"),
        ("top-k-layers", "model2", "model3 or model5"),
        ("layer-range", "model4", "model3 or model5"),
        ("cross-attn-width", "model1", "model2 or model3 or model4 or model5"),
    ],
)
def test_a_base_whose_variant_ignores_the_ablated_part_names_the_bases_that_apply(
    study: str, base: str, applies: str
) -> None:
    with pytest.raises(PlanError, match=f"every arm builds the same model; use --base {applies}$"):
        resolve_arms(get_plan(study), Choices("smoke", base=base))
    last_layer = resolve_arms(get_plan("cross-attn-width"), Choices("smoke", base="model2"))
    assert len(last_layer.labels) == 4  # a last-layer head has the resampler the study varies


TINY_HEAD = {"heads": 2, "head_dim": 4, "n_latents": 2, "mlp_ratio": 2, "layer_summary": "mean"}
CHANGED = {
    "layers": "top_k:2",
    "layer_summary": "eos",
    "heads": 4,
    "head_dim": 8,
    "n_latents": 3,
    "mlp_ratio": 3,
    "layer_weights": False,
    "layer_weight_std": 0.5,
}


def _head_signature(pooling: PoolingConfig) -> list[float]:
    """Parameter shapes and sums, and the output on fixed random states, of a freshly built head."""
    torch.manual_seed(0)
    head = build_pooling(pooling, dim=8, num_layers=4, attention="bidirectional")
    generator = torch.Generator().manual_seed(1)
    states = tuple(torch.randn(2, 3, 8, generator=generator) for _ in range(5))
    features = {
        "last_hidden_state": states[-1],
        "attention_mask": torch.ones(2, 3, dtype=torch.long),
        "hidden_states": states,
    }
    with torch.no_grad():
        output = head(features)
    shapes = [float(n) for p in head.parameters() for n in (*p.shape, p.sum().item())]
    return shapes + output.flatten().tolist()


@pytest.mark.parametrize("kind", ["eos", "mean", "last_layer", "multi_layer"])
def test_the_pooling_fields_a_head_kind_ignores_are_exactly_those_the_model_key_drops(
    kind: str,
) -> None:
    assert set(CHANGED) == {f.name for f in dataclasses.fields(PoolingConfig)} - {"kind"}
    base = PoolingConfig(kind=kind, **TINY_HEAD)
    for name, value in CHANGED.items():
        same = _head_signature(base) == _head_signature(dataclasses.replace(base, **{name: value}))
        assert same == (name not in HEADS[kind].config_fields), (kind, name)
