"""Plan documents as planners write them: the two verbatim seed documents, documents worded and
decorated otherwise, AblationBench JSONL, tolerant phrases, skipped sections and one-line refusals."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from pathlib import Path

import pytest
from optuna.trial import TrialState

from search import launch
from search.launch import main
from search.plan_phrases import PhraseError, read_phrase
from search.planner_docs import (
    parse_plan_document,
    parse_planner_doc,
    read_plan_document,
    read_planner_doc,
)
from search.plans import STUDIES, PlanError
from storage.study_records import read_cell, read_result
from tests.search_helpers import trials
from tests.tiny_models import tiny_qwen2_dir

REPO = Path(__file__).resolve().parents[2]
ALL = ("STS", "Retrieval", "Classification", "Clustering")
POOL = "model.pooling."
# The two plans this service was built from, byte for byte as two planners wrote them.
VERBATIM = ("000_8e171a53ea3ea5fc.txt", "001_ec56beb2d253729f.txt")


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
    """The planner documents, beside the shared benchmark data (../shared/plans)."""
    path = tasks_dir.parent / "plans"
    if not all((path / name).is_file() for name in VERBATIM):
        pytest.fail(f"the verbatim planner documents {VERBATIM} are not in {path}")
    return path


@pytest.fixture(scope="module")
def decoder30(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 30-layer Qwen2, as deep as cpu-decoder's SmolLM2-135M."""
    return tiny_qwen2_dir(tmp_path_factory.mktemp("qwen30"), num_layers=30, hidden_size=16)


def test_the_cleaned_copies_read_as_the_verbatim_documents(plans: Path) -> None:
    for clean, verbatim in zip(
        ("layers-and-width.md", "top-k-and-weights.md"), VERBATIM, strict=True
    ):
        assert read_planner_doc(plans / clean) == read_planner_doc(plans / verbatim)


def test_the_verbatim_documents_are_two_studies_each_with_the_shipped_arms(plans: Path) -> None:
    raw = (plans / VERBATIM[0]).read_text(encoding="utf-8")
    assert "<style>" in raw and "ðŸ“‹ Ablation Plan</h2>" in raw  # decoration and charset damage
    first, second = (read_plan_document(plans / name) for name in VERBATIM)
    assert (first.skipped, second.skipped) == ((), ())
    found = {s.plan.name: s for s in first.studies + second.studies}
    assert {name: (_arms(s.plan), s.plan.baseline, s.plan.action) for name, s in found.items()} == {
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
    assert all(s.plan.base == "model5" and s.plan.metrics == ALL for s in found.values())
    # the same configs as the shipped studies' arms, and each arm knows the phrase it came from
    shipped = {
        "layer-selection-ablation": "layer-range",
        "cross-attention-architecture-ablation": "cross-attn-width",
        "multi-layers-pooling-layer-selection": "top-k-layers",
        "multi-layers-pooling-trainable-layer-weights": "layer-weights",
    }
    for name, study in found.items():
        ours = sorted(str(a.overrides) for a in study.plan.arms)
        assert ours == sorted(str(a.overrides) for a in STUDIES[shipped[name]].arms), name
    assert found["layer-selection-ablation"].phrases == {
        "first third": "first_third_layers",
        "middle third": "middle_third_layers",
        "last third": "last_third_layers",
        "all": "",  # not in the plan: the current method, added as the baseline
    }
    assert found["multi-layers-pooling-layer-selection"].phrases["all"] == (
        "All layers (current method)"
    )


@pytest.mark.integration
def test_the_verbatim_documents_dry_run_on_a_30_layer_decoder_and_write_nothing(
    plans: Path,
    decoder30: Path,
    tasks_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "studies.db"
    common = ["--preset", "cpu-decoder", "--model", str(decoder30), "--tasks-dir", str(tasks_dir)]
    for doc in VERBATIM:
        args = ["--plan", str(plans / doc), *common, "--dry-run", "--storage", str(db)]
        assert main(args) == 0
    out = capsys.readouterr().out
    assert f"{VERBATIM[0]}: 2 of 2 sections map to studies" in out
    assert (
        "[1/2] Layer Selection Ablation: 4 arms (first third, middle third, last third, all)" in out
    )
    assert (
        "[2/2] Cross-Attention Architecture Ablation: 4 arms (8x512, 16x1024, 64x4096, 32x2048)"
        in out
    )
    assert "[1/2] Multi-Layers Pooling Layer Selection: 4 arms (top 4, top 8, top 16, all)" in out
    assert "[2/2] Multi-Layers Pooling Trainable Layer Weights: 2 arms (W on, W off)" in out
    # each phrase with the arm and the overrides it became
    assert (
        "arm 'first third' <- 'first_third_layers': model.pooling.layers=first_third; seeds" in out
    )
    assert (
        "arm '64x4096' <- '64_heads_4096_channels': model.pooling.heads=64, "
        "model.pooling.head_dim=4096" in out
    )
    assert "arm 'all' (baseline, added: the current method): model.pooling.layers=all" in out
    assert "arm 'all' (baseline) <- 'All layers (current method)': model.pooling.layers=all" in out
    assert "arm 'W off' <- 'REMOVE The trainable layer weight matrix (W)" in out
    assert "(30 layers)" in out and "skipped" not in out
    assert "12 trials (4 arms x 3 seeds)" in out
    assert not db.exists()


@pytest.mark.integration
@pytest.mark.slow
def test_a_verbatim_section_runs_end_to_end_and_scores_a_new_task(
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
    args = ["--plan", str(plans / VERBATIM[1]), "--section", section]
    args += ["--preset", "smoke", "--seeds", "1", "--tasks", "MySICK", "--tasks-dir", str(local)]
    args += ["--pruner", "none"]  # both arms scored, whatever the smoke signal says
    assert main([*args, "--storage", url]) == 0
    found = trials(url, "multi-layers-pooling-trainable-layer-weights.smoke.model5")
    assert sorted(read_cell(t).arm for t in found if t.state == TrialState.COMPLETE) == [
        "W off",
        "W on",
    ]
    for trial in found:
        result = read_result(trial)
        assert set(result.config["eval"]["tasks"]) == {"MySICK"}
        assert trial.value == pytest.approx(result.task_scores["MySICK"])  # STS only
    out = capsys.readouterr().out
    assert f"{VERBATIM[1]}: section '{section}' of 2" in out
    assert "W on (baseline" in out and "arm 'W off' <- 'REMOVE The trainable layer" in out


@pytest.mark.parametrize(
    ("phrase", "label", "overrides"),
    [
        ("first_third_layers", "first third", {POOL + "layers": "first_third"}),
        ("middle third", "middle third", {POOL + "layers": "middle_third"}),
        ("last third of the layers", "last third", {POOL + "layers": "last_third"}),
        ("Top 4 layers", "top 4", {POOL + "layers": "top_k:4"}),
        ("Top-4", "top 4", {POOL + "layers": "top_k:4"}),
        ("last 4 layers", "top 4", {POOL + "layers": "top_k:4"}),
        ("the final 8", "top 8", {POOL + "layers": "top_k:8"}),
        ("first 4 layers", "first 4", {POOL + "layers": "first_k:4"}),
        ("bottom-2 layers", "first 2", {POOL + "layers": "first_k:2"}),
        ("middle 4 layers", "middle 4", {POOL + "layers": "middle_k:4"}),
        ("4 middle layers only", "middle 4", {POOL + "layers": "middle_k:4"}),
        ("layers 10-20", "layers 10-20", {POOL + "layers": "10-20"}),
        ("Layers 10 – 20", "layers 10-20", {POOL + "layers": "10-20"}),
        ("layers 1, 5 and 9", "layers 1,5,9", {POOL + "layers": "1,5,9"}),
        ("the last layer only", "top 1", {POOL + "layers": "top_k:1"}),
        ("all 30 layers", "all", {POOL + "layers": "all"}),
        ("8_heads_512_channels", "8x512", {POOL + "heads": 8, POOL + "head_dim": 512}),
        ("16 heads x 1024 channels", "16x1024", {POOL + "heads": 16, POOL + "head_dim": 1024}),
        ("16 heads with 1024 channels", "16x1024", {POOL + "heads": 16, POOL + "head_dim": 1024}),
        ("1024 channels, 16 heads", "16x1024", {POOL + "heads": 16, POOL + "head_dim": 1024}),
        ("16x1024", "16x1024", {POOL + "heads": 16, POOL + "head_dim": 1024}),
        ("8 heads × 512", "8x512", {POOL + "heads": 8, POOL + "head_dim": 512}),
        ("head_dim=512, heads=8", "8x512", {POOL + "heads": 8, POOL + "head_dim": 512}),
        ("remove the layer weight matrix", "W off", {POOL + "layer_weights": False}),
        ("w/o W", "W off", {POOL + "layer_weights": False}),
        ("Model 3", "model3", {"model.pooling.kind": "multi_layer", "model.attention": "causal"}),
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
        (
            "Last-Layer Trainable Pooling + Causal Attention (Model 2)",
            "model2",
            {"model.pooling.kind": "last_layer", "model.attention": "causal"},
        ),
        ("causal attention", "causal", {"model.attention": "causal"}),
        ("bidirectional self-attention", "bidirectional", {"model.attention": "bidirectional"}),
    ],
)
def test_arm_phrases_are_understood_tolerantly(phrase: str, label: str, overrides: dict) -> None:
    (plan,) = parse_planner_doc(_doc(_section("S", phrase)))
    assert plan.arm(label).overrides == overrides
    assert _arms(plan)[0] == label


@pytest.mark.parametrize(
    ("phrase", "understood"),
    [
        ("8 heads", "understood 8 heads, but not the channels per head"),
        ("4 layers", "understood 4 layers, but not which"),
        ("last layers", "understood the last layers, but not how many"),
        ("last-layer trainable pooling", "but not the attention (causal or bidirectional)"),
        ("EOS pooling, bidirectional", "which is none of the five variants"),
        ("Model 2 with bidirectional attention", "understood model2, but also bidirectional"),
        ("hierarchical attention", "(causal or bidirectional here) but not 'hierarchical'"),
        ("top 4 layers with mean pooling", "understood the top 4 layers but not 'mean pooling'"),
        ("different hidden state sizes", "understood are layer sets"),
    ],
)
def test_a_phrase_is_never_guessed_and_the_refusal_says_what_was_understood(
    phrase: str, understood: str
) -> None:
    with pytest.raises(PhraseError) as error:
        read_phrase(phrase)
    assert str(error.value).startswith(f"cannot map '{phrase}'; ")
    assert understood in str(error.value) and "\n" not in str(error.value)


def test_a_number_of_layers_part_reads_bare_counts_as_the_top_k_layers() -> None:
    text = _doc(_section("Depth", "1", "2", "4", "8", part="Number of layers fed to the pooling"))
    (plan,) = parse_planner_doc(text)
    assert (_arms(plan), plan.baseline) == (["top 1", "top 2", "top 4", "top 8", "all"], "all")
    assert plan.arm("top 2").overrides == {POOL + "layers": "top_k:2"}
    # the same bare numbers under another part are not layers
    document = parse_plan_document(
        _doc(_section("Depth", "1", "2", part="Hidden state size"), _section("W", "without W")),
        where="doc.md",
    )
    (skip,) = document.skipped
    assert (skip.title, skip.phrase) == ("Depth", "1")
    assert "only under a 'number of layers' ablated part" in skip.reason


def test_the_current_method_is_the_baseline_not_a_new_arm() -> None:
    (plan,) = parse_planner_doc(_doc(_section("S", "Top 8 layers", "All layers (current method)")))
    assert (_arms(plan), plan.baseline) == (["top 8", "all"], "all")
    (plan,) = parse_planner_doc(_doc(_section("S", "8x512", "16x1024 (current method)")))
    assert (_arms(plan), plan.baseline) == (["8x512", "16x1024"], "16x1024")
    (plan,) = parse_planner_doc(_doc(_section("S", "model2", "model1")))
    assert (_arms(plan), plan.baseline) == (["model2", "model1", "model5"], "model5")
    (plan,) = parse_planner_doc(_doc(_section("S", "causal attention")))
    assert (_arms(plan), plan.baseline) == (["causal", "bidirectional"], "bidirectional")
    (plan,) = parse_planner_doc(_doc(_section("S", "remove the layer weight matrix")))
    assert (_arms(plan), plan.baseline) == (["W off", "W on"], "W on")


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


# A planner other than the seed documents' two: HTML headings and lists, charset damage in the
# emoji, a reasoning trace with a list of its own, prose after the plan, and two wishes that no
# config implements. Written for these tests; no planner's exact wording.
HTML_PLAN = f"""<style>.box h3 {{ color: #222; }}</style>
<div class="box"><h2>{"🤔".encode().decode("cp1252")} Thinking</h2>
The authors never vary the depth of the pooled stack:
<ul><li><strong>Action</strong>: think harder</li><li>Top 4 layers</li></ul>
</div>
<div class="box">
<h2>{"📋".encode().decode("cp1252")} Ablation Plan</h2>
<h3>Depth of the pooled stack</h3>
<ul>
<li><strong>Ablated Part:</strong> Number of layers the pooling reads</li>
<li><strong>Action:</strong> <code>REPLACE</code></li>
<li><strong>Replacement:</strong><ul><li>2</li><li>4</li><li>8</li></ul></li>
<li><strong>Metrics:</strong> STS (Spearman), Retrieval (nDCG@10), wall-clock time</li>
</ul>
<h3>Wider hidden states</h3>
<ul><li><b>Ablated Part</b>: hidden size of the backbone</li><li><b>Action</b>: REPLACE</li>
<li><b>Replacement</b>: different hidden state sizes</li></ul>
<h3>Pooling attention</h3>
<ul><li><b>Ablated Part</b>: attention inside the pooling</li><li><b>Action</b>: REPLACE</li>
<li><b>Replacement</b>:<ul><li>hierarchical attention</li><li>4 heads x 256 channels</li></ul></li></ul>
</div>
<p>That is all; run the cheap ones first.</p>
"""

# Another: Markdown '#' headings, the fields as plain lines, a Replacement written inline, an
# ablation as a numbered item, and the W removal in words.
MARKDOWN_PLAN = """Intro prose that mentions Top 4 layers and 8x512 in passing.

# Ablation Plan

## Window of middle layers
Ablated Part: which layers feed multi-layer pooling
Action: Replace
Replacement: middle 4 layers; last 4 layers; layers 10-20
Metrics: STS and Retr.

1. **Layer weights**
   - **Ablated component:** the per-layer weight matrix W
   - **Action:** REMOVE
   - **Metrics:** Clustering

# Afterword
## Not a section
- **Ablated Part**: nothing
- **Action**: REPLACE
"""


def test_a_document_decorated_otherwise_maps_what_it_can_and_skips_the_rest() -> None:
    document = parse_plan_document(HTML_PLAN, where="plan.html")
    (study,) = document.studies
    assert (study.plan.name, _arms(study.plan)) == (
        "depth-of-the-pooled-stack",
        ["top 2", "top 4", "top 8", "all"],
    )
    assert study.plan.metrics == ("STS", "Retrieval")
    assert study.notes == (
        "metric 'wall-clock time' is not measured here; the table shows STS, Retrieval",
    )
    assert [(s.title, s.phrase) for s in document.skipped] == [
        ("Wider hidden states", "different hidden state sizes"),
        ("Pooling attention", "hierarchical attention"),
    ]
    for skip in document.skipped:
        assert f"cannot map '{skip.phrase}'; understood" in skip.line()
    lines = document.summary()
    assert lines[0] == "plan plan.html: 1 of 3 sections map to studies"
    assert "  skipped section 'Wider hidden states': cannot map 'different hidden state" in (
        "\n".join(lines)
    )


def test_markdown_headings_plain_fields_and_numbered_ablations() -> None:
    document = parse_plan_document(MARKDOWN_PLAN, where="plan.md")
    assert document.skipped == ()
    window, weights = document.studies
    assert (_arms(window.plan), window.plan.baseline) == (
        ["middle 4", "top 4", "layers 10-20", "all"],
        "all",
    )
    assert window.plan.metrics == ("STS", "Retrieval")
    assert window.phrases["layers 10-20"] == "layers 10-20"
    assert (weights.plan.name, weights.plan.action, _arms(weights.plan)) == (
        "layer-weights",
        "remove",
        ["W on", "W off"],
    )
    assert weights.plan.metrics == ("Clustering",)


def test_sections_at_the_plan_headings_level_and_json_lines_in_a_fence() -> None:
    record = {"name": "Mask", "ablated_part": "attention mask", "action": "REPLACE"}
    record |= {"replacement": ["causal attention"], "metrics": ["STS"]}
    text = (
        "## Ablation Plan\n\n## 1. Depth\n- **Ablated Part**: number of layers\n"
        "- **Action**: REPLACE\n- **Replacement**: 2, 4\n\n"
        f"## Predictions\n```jsonl\n{json.dumps(record)}\n```\n"
    )
    depth, mask = parse_plan_document(text).studies
    assert (depth.plan.name, _arms(depth.plan)) == ("depth", ["top 2", "top 4", "all"])
    assert (mask.plan.name, _arms(mask.plan), mask.plan.baseline) == (
        "mask",
        ["causal", "bidirectional"],
        "bidirectional",
    )


def test_jsonl_plans_are_records_one_per_line(tmp_path: Path) -> None:
    records = [
        {
            "name": "Top-K layers",
            "ablated_part": "number of layers used by the pooling",
            "action": "REPLACE",
            "replacement": ["4", "8"],
            "metrics": ["STS", "Retrieval"],
        },
        {
            "name": "No W",
            "ablated_part": "layer weight matrix W",
            "action": "REMOVE",
            "replacement": [],
            "metrics": ["STS"],
        },
        {
            "name": "Heads",
            "ablated_part": "cross-attention",
            "action": "ADD",
            "replacement": ["more heads"],
            "metrics": ["STS"],
        },
    ]
    path = tmp_path / "plan.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n", encoding="utf-8")
    document = read_plan_document(path)
    top_k, no_w = document.studies
    assert (top_k.plan.name, _arms(top_k.plan), top_k.plan.metrics) == (
        "top-k-layers",
        ["top 4", "top 8", "all"],
        ("STS", "Retrieval"),
    )
    assert (_arms(no_w.plan), no_w.plan.action) == (["W on", "W off"], "remove")
    ((skip),) = document.skipped
    assert (skip.title, skip.phrase) == ("Heads", "more heads")
    (picked,) = read_planner_doc(path, section="No W")
    assert picked.name == "no-w"
    path.write_text(json.dumps(records[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(PlanError, match=r"plan.jsonl:2: not JSON"):
        read_plan_document(path)


def test_metrics_are_read_as_categories_in_the_tables_order() -> None:
    text = _doc(_section("S", "8x512").replace("STS, Clas., Retr., Clus.", "Retrieval and STS"))
    (plan,) = parse_planner_doc(text)
    assert plan.metrics == ("STS", "Retrieval")
    assert plan.record()["objective_name"] == "average of STS, Retrieval"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (_doc(_section("S", "the penultimate layer")), "cannot map 'the penultimate layer'"),
        (
            _doc(_section("S", "Top 4 layers", "8x512")),
            "it mixes layer sets and heads x channels ('8x512')",
        ),
        (_doc(_section("S", action="REMOVE", part="the MLP")), "cannot map 'the MLP'; REMOVE"),
        (_doc(_section("S", "8x512", action="SWAP")), "Action 'SWAP' is not REPLACE, REMOVE"),
        (_doc(_section("S")), "REPLACE needs the arms as a list"),
        (_doc(_section("S", "8x512", "8 heads x 512")), "'8x512' and '8 heads x 512' are the same"),
        (
            _doc(_section("S", "8x512").replace("STS, Clas., Retr., Clus.", "Speed, FLOPs")),
            "no metric it names is measured here ('Speed', 'FLOPs')",
        ),
        ("# Ideas\n- Top 4 layers\n", "no 'Ablation Plan' heading"),
        (_doc("### S\n- **Action**: REPLACE\n"), "it has no **Ablated Part** field"),
    ],
)
def test_when_nothing_maps_it_is_one_line_naming_the_phrase(text: str, fragment: str) -> None:
    with pytest.raises(PlanError) as error:
        parse_planner_doc(text, where="doc.md")
    message = str(error.value)
    assert fragment in message and "\n" not in message
    if "cannot map '" in fragment and "REMOVE" not in fragment:
        assert "understood are layer sets" in message  # and says what it does understand


def test_a_repeated_title_skips_the_second_section() -> None:
    document = parse_plan_document(_doc(_section("S", "8x512"), _section("S", "16x1024")))
    assert [_arms(s.plan) for s in document.studies] == [["8x512", "32x2048"]]
    assert "same title" in document.skipped[0].reason


def test_section_picks_one_study_by_title_or_name(plans: Path) -> None:
    doc = plans / "layers-and-width.md"
    (plan,) = read_planner_doc(doc, section="cross-attention architecture ablation")
    assert plan.name == "cross-attention-architecture-ablation"
    assert read_planner_doc(doc, section="layer-selection-ablation")[0].description == (
        "Layer Selection Ablation"
    )
    with pytest.raises(PlanError, match="no section 'Widths'; the sections are 'Layer Selection"):
        read_planner_doc(doc, section="Widths")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--section", "Nope"], "no section 'Nope'"),
        (["--study-name", "mine"], "--study-name names one study but"),
        (["--objective", "Speed"], "objective 'Speed' is not 'average'"),
        (["--tasks", "NoSuchTask"], "unknown local task 'NoSuchTask'"),
        (["--section", "Wider hidden states"], "is skipped: cannot map 'different hidden state"),
    ],
)
def test_bad_document_launches_are_one_line_exit_2_and_write_nothing(
    extra: list[str],
    fragment: str,
    tasks_dir: Path,
    tmp_path: Path,
    monkeypatch,
    capsys,
) -> None:
    monkeypatch.chdir(tmp_path)  # the default storage would be ./studies.db
    doc = tmp_path / "plan.md"
    wish = "## Wider hidden states\nAblated Part: hidden size\nAction: REPLACE\n"
    wish += "Replacement: different hidden state sizes\n\n"
    doc.write_text(MARKDOWN_PLAN.replace("# Afterword", wish + "# Afterword"), encoding="utf-8")
    argv = ["--plan", str(doc), "--preset", "smoke", "--tasks-dir", str(tasks_dir), *extra]
    with pytest.raises(SystemExit) as exited:
        sys.exit(main(argv))
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.md"]


@pytest.mark.integration
def test_a_launch_lists_the_skipped_sections_and_runs_the_others(
    tasks_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "plan.html"
    doc.write_text(HTML_PLAN, encoding="utf-8")
    db = tmp_path / "studies.db"
    argv = ["--plan", str(doc), "--preset", "smoke", "--tasks-dir", str(tasks_dir), "--dry-run"]
    assert main([*argv, "--storage", str(db)]) == 0
    out = capsys.readouterr().out
    assert "1 of 3 sections map to studies" in out
    assert "skipped section 'Wider hidden states': cannot map 'different hidden state sizes'" in out
    assert "skipped section 'Pooling attention': cannot map 'hierarchical attention'" in out
    assert "arm 'top 2' <- '2': model.pooling.layers=top_k:2" in out
    assert "[1/1] Depth of the pooled stack: 3 arms" in out  # top 8 > the smoke model's 6 layers
    assert not db.exists()


@pytest.mark.integration
def test_when_no_section_maps_the_launch_is_one_line_exit_2(
    tasks_dir: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    doc = tmp_path / "wishes.md"
    doc.write_text(
        _doc(
            _section("Hidden", "different hidden state sizes"),
            _section("Hierarchy", "hierarchical attention"),
        ),
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as exited:
        sys.exit(main(["--plan", str(doc), "--tasks-dir", str(tasks_dir), "--dry-run"]))
    assert exited.value.code == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "no section maps to a study" in err
    assert "cannot map 'different hidden state sizes'" in err
    assert "cannot map 'hierarchical attention'" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wishes.md"]


@pytest.mark.integration
def test_offline_without_task_data_is_one_line_within_seconds(
    plans: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ABLATION_TASKS_DIR", raising=False)
    argv = ["--plan", str(plans / VERBATIM[1]), "--preset", "smoke", "--dry-run"]
    for offline_env, fragment in (("1", "HF_HUB_OFFLINE is set"), ("", "cannot be reached")):
        monkeypatch.setenv("HF_HUB_OFFLINE", offline_env)
        started = time.monotonic()
        with pytest.raises(SystemExit) as exited:
            sys.exit(main(argv))
        assert exited.value.code == 2 and time.monotonic() - started < 10
        (err,) = capsys.readouterr().err.strip().splitlines()
        assert err.startswith("error: offline") and fragment in err and "--tasks-dir" in err
    assert list(tmp_path.iterdir()) == []


def test_the_hub_check_lets_an_online_user_through(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "")
    seen = []

    class Connection:
        def close(self) -> None:
            seen.append("closed")

    def connect(address, timeout):
        seen.append(address)
        return Connection()

    monkeypatch.setattr(socket, "create_connection", connect)
    launch._require_hub()
    assert seen == [("huggingface.co", 443), "closed"]


def test_the_example_planner_document_parses() -> None:
    found = read_planner_doc(REPO / "examples" / "planner-doc.md")
    assert [p.name for p in found] == ["pooling-and-attention-variants", "head-width"]
    assert found[0].baseline == "model5" and found[1].metrics == ("STS", "Retrieval")
