"""Plans as data: the five shipped studies and user plans from YAML/TOML in the same shape."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from objectives.config.presets import preset_config
from objectives.config.trial_config import override
from search.plans import STUDIES, PlanError, get_plan, load_plan, objective_value, plan_from_dict

REPO = Path(__file__).resolve().parents[2]


def test_the_five_studies_of_studies_md() -> None:
    expected = {
        "pooling-attention": (["model1", "model2", "model3", "model4", "model5"], "model5"),
        "layer-range": (["first-third", "middle-third", "last-third", "all"], "all"),
        "top-k-layers": (["top-4", "top-8", "top-16", "all"], "all"),
        "cross-attn-width": (["8x512", "16x1024", "32x2048", "64x4096"], "32x2048"),
        "layer-weights": (["W on", "W off"], "W on"),
    }
    assert {
        name: ([a.label for a in p.arms], p.baseline) for name, p in STUDIES.items()
    } == expected
    assert get_plan("layer-weights").action == "remove"
    assert all(p.base == "model5" and p.seeds == 3 for p in STUDIES.values())


def test_every_arm_override_is_a_real_config_field() -> None:
    base = preset_config("smoke")
    for plan in STUDIES.values():
        for arm in plan.arms:
            override(base, arm.overrides)  # raises ConfigError on a wrong path or value
    wide = override(base, get_plan("cross-attn-width").arm("64x4096").overrides)
    assert (wide.model.pooling.heads, wide.model.pooling.head_dim) == (64, 4096)


def test_record_is_what_the_reports_read() -> None:
    record = get_plan("top-k-layers").record()
    assert {
        "name",
        "description",
        "ablated",
        "action",
        "baseline",
        "arms",
        "seeds",
        "metrics",
    } <= set(record)
    assert record["arms"][0] == {"label": "top-4", "overrides": {"model.pooling.layers": "top_k:4"}}
    assert record["seeds"] == [0, 1, 2]


def test_yaml_and_toml_plans_load_the_same(tmp_path: Path) -> None:
    yaml_file = tmp_path / "p.yaml"
    yaml_file.write_text(
        "name: heads\nbaseline: two\nseeds: 2\narms:\n"
        "  - {label: two, overrides: {model.pooling.heads: 2}}\n"
        "  - {label: four, overrides: {model.pooling.heads: 4}}\n"
    )
    toml_file = tmp_path / "p.toml"
    toml_file.write_text(
        'name = "heads"\nbaseline = "two"\nseeds = 2\n'
        '[[arms]]\nlabel = "two"\noverrides = {"model.pooling.heads" = 2}\n'
        '[[arms]]\nlabel = "four"\noverrides = {"model.pooling.heads" = 4}\n'
    )
    assert load_plan(yaml_file) == load_plan(toml_file)
    assert load_plan(yaml_file).seed_values() == [0, 1]


def test_the_example_plan_loads() -> None:
    plan = load_plan(REPO / "examples" / "plan.yaml")
    assert plan.baseline in [a.label for a in plan.arms]
    assert plan.overrides


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: x\nbaseline: a\narms: [{label: a}, {label: a}]\n", "repeats an arm label"),
        ("name: x\nbaseline: z\narms: [{label: a}]\n", "baseline 'z' is not an arm"),
        ("name: x\nbaseline: a\narms: [{label: a}]\ncolour: red\n", "unknown key"),
        ("name: x\narms: [{label: a}]\n", "missing ['baseline']"),
        ("name: x\nbaseline: a\narms: [{label: a}]\nbase: model9\n", "base must be one of"),
        ("name: x\nbaseline: a\narms: [{label: a}]\nmetrics: [Speed]\n", "unknown metrics"),
        ("name: x\nbaseline: a\narms: [{label: a}]\nmetrics: []\n", "unknown metrics []"),
        ("name: [x\n", "is not valid yaml"),
    ],
)
def test_bad_plans_fail_in_one_line(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(PlanError) as info:
        load_plan(path)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_unknown_study_names_the_choices() -> None:
    with pytest.raises(PlanError, match="choose one of pooling-attention"):
        get_plan("cross-attn")


SCORES = {"SICK-R": 0.8, "STS14": 0.6, "SciFactSubset": 0.4}
CATEGORY_SCORES = {"STS": 0.7, "Retrieval": 0.4, "Clustering": 0.1}


@pytest.mark.parametrize(
    ("objective", "metrics", "value"),
    [
        (None, ("STS", "Retrieval", "Classification", "Clustering"), 0.4),  # those present
        (None, ("STS", "Retrieval"), 0.55),
        ("average", ("STS",), 0.4),
        ("Clustering", ("STS",), 0.1),
        ("STS14", ("STS",), 0.6),
    ],
)
def test_objective_value_is_the_mean_of_the_metrics_unless_overridden(
    objective: str | None, metrics: tuple[str, ...], value: float
) -> None:
    assert objective_value(objective, metrics, SCORES, CATEGORY_SCORES) == pytest.approx(value)


def test_yaml_metrics_decide_the_objective_and_the_record_names_it(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "name: heads\nbaseline: two\nmetrics: [Retrieval, STS]\ntasks: [SICK-R, SciFactSubset]\n"
        "arms:\n  - {label: two, overrides: {model.pooling.heads: 2}}\n"
        "  - {label: four, overrides: {model.pooling.heads: 4}}\n"
    )
    plan = load_plan(path)
    assert plan.objective_value(SCORES, CATEGORY_SCORES) == pytest.approx(0.55)
    assert plan.overrides["eval.tasks"] == ("SICK-R", "SciFactSubset")
    record = plan.record()
    assert (record["metrics"], record["objective"]) == (["Retrieval", "STS"], None)
    assert record["objective_name"] == "average of Retrieval, STS"
    assert plan_from_dict(record) == plan  # a stored record reads back as the same plan
    assert get_plan("layer-weights").record()["objective_name"] == "average"


def test_an_objective_the_tasks_cannot_score_is_refused_in_one_line() -> None:
    categories = {"SICK-R": "STS", "SciFactSubset": "Retrieval"}
    plan = replace(get_plan("layer-weights"), objective="SICK-R")
    plan.check_objective(categories)
    with pytest.raises(PlanError, match="objective 'Clustering' is not 'average'"):
        replace(plan, objective="Clustering").check_objective(categories)
    with pytest.raises(PlanError, match=r"no evaluated task \['SICK-R'\] is of the metrics"):
        replace(plan, metrics=("Clustering",)).check_objective({"SICK-R": "STS"})


def test_a_plan_file_of_another_kind_names_the_kinds_read(tmp_path: Path) -> None:
    path = tmp_path / "plan.txt"
    path.write_text("name: x\n")
    with pytest.raises(PlanError, match=r"\.yaml, \.yml or \.toml \(\.md: a planner document\)"):
        load_plan(path)
