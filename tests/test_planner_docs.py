"""Planner documents (Markdown) as plans: the real examples, tolerant phrases, one-line refusals."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from search.launch import main
from search.planner_docs import parse_planner_doc, read_planner_doc
from search.plans import PlanError
from storage.study_records import read_cell, read_result
from tests.search_helpers import trials
from tests.tiny_models import tiny_qwen2_dir

REPO = Path(__file__).resolve().parent.parent
ALL = ("STS", "Retrieval", "Classification", "Clustering")
POOL = "model.pooling."


def _doc(*sections: str, before: str = "", after: str = "") -> str:
    return before + "## Ablation Plan\n\n" + "\n".join(sections) + after


def _section(title: str, *arms: str, action: str = "REPLACE", part: str = "the pooling") -> str:
    items = "".join(f"  - {arm}\n" for arm in arms)
    replacement = f"- **Replacement**: \n{items}" if arms else ""
    return (
        f"### {title}\n- **Ablated Part**: {part}\n- **Action**: {action}\n{replacement}"
        "- **Metrics**: STS, Clas., Retr., Clus.\n"
    )


def _arms(plan) -> list[str]:
    return [arm.label for arm in plan.arms]


@pytest.fixture(scope="session")
def plans(tasks_dir: Path) -> Path:
    """The two real planner documents, beside the shared benchmark data."""
    return tasks_dir.parent / "plans"


@pytest.fixture(scope="module")
def decoder30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 30-layer Qwen2, as deep as cpu-decoder's SmolLM2-135M."""
    return tiny_qwen2_dir(tmp_path_factory.mktemp("qwen30"), num_layers=30, hidden_size=16)


def test_the_two_example_documents_are_four_studies_with_the_shipped_baselines(
    plans: Path,
) -> None:
    found = read_planner_doc(plans / "layers-and-width.md") + read_planner_doc(
        plans / "top-k-and-weights.md"
    )
    assert {p.name: (_arms(p), p.baseline, p.action) for p in found} == {
        "layer-selection-ablation": (
            ["first third", "middle third", "last third", "all"],
            "all",
            "replace",
        ),
        "cross-attention-architecture-ablation": (
            ["8x512", "16x1024", "64x4096", "32x2048"],
            "32x2048",
            "replace",
        ),
        "multi-layers-pooling-layer-selection": (
            ["top 4", "top 8", "top 16", "all"],
            "all",
            "replace",
        ),
        "multi-layers-pooling-trainable-layer-weights": (["W on", "W off"], "W on", "remove"),
    }
    assert all(p.base == "model5" and p.metrics == ALL for p in found)
    by_name = {p.name: p for p in found}
    assert by_name["multi-layers-pooling-layer-selection"].arm("top 16").overrides == {
        POOL + "layers": "top_k:16"
    }
    assert by_name["cross-attention-architecture-ablation"].arm("64x4096").overrides == {
        POOL + "heads": 64,
        POOL + "head_dim": 4096,
    }
    assert by_name["multi-layers-pooling-trainable-layer-weights"].arm("W off").overrides == {
        POOL + "layer_weights": False
    }


def test_the_examples_dry_run_on_a_30_layer_decoder_and_write_nothing(
    plans: Path,
    decoder30: Path,
    tasks_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "studies.db"
    common = ["--preset", "cpu-decoder", "--model", str(decoder30), "--tasks-dir", str(tasks_dir)]
    for doc in ("layers-and-width.md", "top-k-and-weights.md"):
        args = ["--plan", str(plans / doc), *common, "--dry-run", "--storage", str(db)]
        assert main(args) == 0
    out = capsys.readouterr().out
    assert (
        "[1/2] Layer Selection Ablation: 4 arms (first third, middle third, last third, all)" in out
    )
    assert (
        "[2/2] Cross-Attention Architecture Ablation: 4 arms (8x512, 16x1024, 64x4096, 32x2048)"
        in out
    )
    assert "[1/2] Multi-Layers Pooling Layer Selection: 4 arms (top 4, top 8, top 16, all)" in out
    assert "[2/2] Multi-Layers Pooling Trainable Layer Weights: 2 arms (W on, W off)" in out
    assert "(30 layers)" in out and "skipped arm" not in out
    assert "12 trials (4 arms x 3 seeds)" in out
    assert not db.exists()


def test_one_section_of_a_document_runs_end_to_end_and_scores_a_new_task(
    plans: Path, tasks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = tmp_path / "tasks"
    shutil.copytree(tasks_dir / "sts" / "STSBenchmark", local / "sts" / "STSBenchmark")
    (local / "train").mkdir()
    pairs = (tasks_dir / "train" / "pairs.jsonl").read_text(encoding="utf-8").splitlines()
    (local / "train" / "pairs.jsonl").write_text("\n".join(pairs[:300]) + "\n", encoding="utf-8")
    mine = local / "benchmarks" / "MySICK"
    mine.mkdir(parents=True)
    sick = (tasks_dir / "sts" / "SICK-R" / "test.jsonl").read_text(encoding="utf-8").splitlines()
    (mine / "test.jsonl").write_text("\n".join(sick[:60]) + "\n", encoding="utf-8")
    (mine / "task.yaml").write_text(
        "name: MySICK\ntype: STS\ndescription: 60 SICK pairs\nlicense: CC BY-NC-SA 3.0\n"
    )
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    section = "Multi-Layers Pooling Trainable Layer Weights"
    args = ["--plan", str(plans / "top-k-and-weights.md"), "--section", section]
    args += ["--preset", "smoke", "--seeds", "1", "--tasks", "MySICK", "--tasks-dir", str(local)]
    args += ["--pruner", "none"]  # both arms scored, whatever the smoke signal says
    assert main([*args, "--storage", url]) == 0
    found = trials(url, "multi-layers-pooling-trainable-layer-weights.smoke.model5")
    assert sorted(read_cell(t).arm for t in found if t.state.name == "COMPLETE") == [
        "W off",
        "W on",
    ]
    for trial in found:
        result = read_result(trial)
        assert set(result.config["eval"]["tasks"]) == {"MySICK"}
        assert trial.value == pytest.approx(result.task_scores["MySICK"])  # STS only
    assert "W on (baseline)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("phrase", "label", "overrides"),
    [
        ("first_third_layers", "first third", {POOL + "layers": "first_third"}),
        ("middle third", "middle third", {POOL + "layers": "middle_third"}),
        ("last third of the layers", "last third", {POOL + "layers": "last_third"}),
        ("Top 4 layers", "top 4", {POOL + "layers": "top_k:4"}),
        ("Top-4", "top 4", {POOL + "layers": "top_k:4"}),
        ("8_heads_512_channels", "8x512", {POOL + "heads": 8, POOL + "head_dim": 512}),
        ("16 heads x 1024 channels", "16x1024", {POOL + "heads": 16, POOL + "head_dim": 1024}),
        ("8 heads × 512", "8x512", {POOL + "heads": 8, POOL + "head_dim": 512}),
        ("64x4096", "64x4096", {POOL + "heads": 64, POOL + "head_dim": 4096}),
        (
            "EOS last-token pooling, causal",
            "model1",
            {"model.pooling.kind": "eos", "model.attention": "causal"},
        ),
        (
            "Last-Layer Trainable Pooling with bidirectional attention",
            "model4",
            {"model.pooling.kind": "last_layer", "model.attention": "bidirectional"},
        ),
        (
            "multi-layers trainable pooling (causal)",
            "model3",
            {"model.pooling.kind": "multi_layer", "model.attention": "causal"},
        ),
    ],
)
def test_arm_phrases_are_understood_tolerantly(phrase: str, label: str, overrides: dict) -> None:
    (plan,) = parse_planner_doc(_doc(_section("S", phrase)))
    assert plan.arm(label).overrides == overrides
    assert _arms(plan)[0] == label


def test_the_current_method_is_the_baseline_not_a_new_arm() -> None:
    (plan,) = parse_planner_doc(_doc(_section("S", "Top 8 layers", "All layers (current method)")))
    assert (_arms(plan), plan.baseline) == (["top 8", "all"], "all")
    (plan,) = parse_planner_doc(_doc(_section("S", "8x512", "16x1024 (current method)")))
    assert (_arms(plan), plan.baseline) == (["8x512", "16x1024"], "16x1024")
    (plan,) = parse_planner_doc(_doc(_section("S", "model2", "model1")))
    assert (_arms(plan), plan.baseline) == (["model2", "model1", "model5"], "model5")


def test_prose_html_and_other_lists_around_the_plan_never_become_arms() -> None:
    text = _doc(
        _section("Widths", "8x512")
        + "\nWe expect the narrow head to lose:\n- on STS\n- on retrieval\n"
        + "### Notes\nSome thoughts.\n- a bullet\n",
        before="<div class='report'>\n# Report\nProse first.\n- Top 4 layers\n\n<details>\n",
        after="</details>\n## Next steps\n### Later\n- **Ablated Part**: x\n- **Action**: REMOVE\n</div>",
    )
    (plan,) = parse_planner_doc(text)
    assert (plan.name, _arms(plan)) == ("widths", ["8x512", "32x2048"])


def test_metrics_are_read_as_categories_in_the_tables_order() -> None:
    text = _doc(_section("S", "8x512").replace("STS, Clas., Retr., Clus.", "Retrieval and STS"))
    (plan,) = parse_planner_doc(text)
    assert plan.metrics == ("STS", "Retrieval")
    assert plan.record()["objective_name"] == "average of STS, Retrieval"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (_doc(_section("S", "the penultimate layer")), "cannot map 'the penultimate layer'"),
        (_doc(_section("S", "Top 4 layers", "8x512")), "mixes cross-attention widths and layer"),
        (_doc(_section("S", action="REMOVE", part="the MLP")), "cannot remove 'the MLP'"),
        (_doc(_section("S", "8x512", action="SWAP")), "Action 'SWAP' is not REPLACE or REMOVE"),
        (_doc(_section("S")), "REPLACE needs the arms as a nested list"),
        (_doc(_section("S", "8x512", "8 heads x 512")), "lists '8x512' twice"),
        (_doc(_section("S", "8x512").replace("Clus.", "Speed")), "cannot map metric 'Speed'"),
        (_doc(_section("S", "8x512"), _section("S", "16x1024")), "same title"),
        ("# Ideas\n- Top 4 layers\n", "no 'Ablation Plan' heading"),
        (_doc("### S\n- **Action**: REPLACE\n"), "has no **Ablated Part** field"),
    ],
)
def test_what_it_cannot_map_is_one_line_naming_the_phrase(text: str, fragment: str) -> None:
    with pytest.raises(PlanError) as error:
        parse_planner_doc(text, where="doc.md")
    message = str(error.value)
    assert fragment in message and "\n" not in message
    if "cannot map '" in fragment:
        assert "understood are layer sets" in message  # and says what it does understand


def test_section_picks_one_study_by_title_or_name(plans: Path) -> None:
    doc = plans / "layers-and-width.md"
    (plan,) = read_planner_doc(doc, section="cross-attention architecture ablation")
    assert plan.name == "cross-attention-architecture-ablation"
    assert read_planner_doc(doc, section="layer-selection-ablation")[0].description == (
        "Layer Selection Ablation"
    )
    with pytest.raises(PlanError, match="no section 'Widths'; the sections are 'Layer Selection"):
        read_planner_doc(doc, section="Widths")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--section", "Nope"], "no section 'Nope'"),
        (["--study-name", "mine"], "--study-name names one study but"),
        (["--objective", "Speed"], "objective 'Speed' is not 'average'"),
        (["--tasks", "NoSuchTask"], "unknown local task 'NoSuchTask'"),
    ],
)
def test_bad_document_launches_are_one_line_exit_2_and_write_nothing(
    plans: Path,
    extra: list[str],
    fragment: str,
    tasks_dir: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,
) -> None:
    monkeypatch.chdir(tmp_path)  # the default storage would be ./studies.db
    doc = tmp_path / "plan.md"
    shutil.copy(plans / "layers-and-width.md", doc)
    argv = ["--plan", str(doc), "--preset", "smoke", "--tasks-dir", str(tasks_dir), *extra]
    with pytest.raises(SystemExit) as exited:
        sys.exit(main(argv))
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.md"]


def test_the_example_planner_document_parses() -> None:
    found = read_planner_doc(REPO / "examples" / "planner-doc.md")
    assert [p.name for p in found] == ["pooling-and-attention-variants", "head-width"]
    assert found[0].baseline == "model5" and found[1].metrics == ("STS", "Retrieval")
