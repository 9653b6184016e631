"""The HTML ablation report and its table exports, on studies that follow the storage contract.

The report is rendered in real headless Chromium: the DOM must hold the table and plotly's drawn
SVG (so the embedded plotly.js ran offline), and the screenshot must not be blank. The screenshot is
kept under artifacts/ for people to look at.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import statistics
import struct
import subprocess
import zlib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from dashboards.ablation_table import build_table
from dashboards.figures import importance_figures
from dashboards.records import arm_of, load_records
from dashboards.report import main as report_main
from dashboards.report import write_report
from dashboards.verdicts import BASELINE_NOT_LEARNED, LOST_SEEDS, PRUNED
from storage.study_records import read_result, read_study_record, write_result, write_study_record
from tests.study_fixtures import LAYER_WEIGHTS_ARMS, SKIPPED, ArmSpec, add_seeds, write_study

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=8000",
    "--window-size=1400,3000",
]


@pytest.fixture(scope="module")
def fixture_report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | str]:
    """A study with finished, pruned, failed trials and a skipped arm, reported once."""
    folder = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{folder / 'studies.db'}"
    write_study(url)
    out = folder / "report.html"
    code = report_main(
        [
            "--study",
            "layer-weights",
            "--storage",
            url,
            "--out",
            str(out),
            "--export-dir",
            str(folder),
        ]
    )
    assert code == 0
    return {"url": url, "html": out, "folder": folder}


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail(
            "Debian chromium is required (apt-get install -y chromium; scripts/test.sh does it)"
        )
    return path


@pytest.mark.integration
def test_report_renders_in_chromium_with_table_and_plotly_charts(fixture_report) -> None:
    html = fixture_report["html"]
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report_screenshot.png"
    shot.unlink(missing_ok=True)
    url = html.resolve().as_uri()
    subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, f"--screenshot={shot}", url],
        check=True,
        capture_output=True,
        timeout=120,
    )
    dom = subprocess.run(
        [_chromium(), *CHROMIUM_FLAGS, "--dump-dom", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout

    assert 'id="ablation-table"' in dom
    assert "W on (baseline)" in dom
    assert "Paired differences vs the baseline" in dom  # the forest plot was drawn
    # plotly.js ran (offline, embedded): it replaced the empty divs with drawn SVG charts.
    assert dom.count('class="main-svg"') >= 2
    assert "js-plotly-plot" in dom
    assert not re.search(r"<script[^>]*\bsrc=", html.read_text()), "report loads external JS"

    pixels = _read_png(shot)
    assert pixels.shape[:2] == (3000, 1400)
    non_white = (pixels < 250).any(axis=2).mean()
    assert pixels.std() > 10 and non_white > 0.02, (pixels.std(), non_white)


def test_report_lists_failed_pruned_and_skipped_and_counts_only_complete(fixture_report) -> None:
    text = fixture_report["html"].read_text()
    assert 'id="failed-trials"' in text and "CUDA out of memory" in text
    assert 'id="pruned-trials"' in text
    assert SKIPPED[0]["reason"] in text
    assert "Pruning stopped 4 trials early" in text

    rows = {r["arm"]: r for r in csv.DictReader(io.StringIO(_export(fixture_report, ".csv")))}
    study = optuna.load_study(study_name="layer-weights", storage=fixture_report["url"])
    for arm, row in rows.items():
        done = [
            t.value for t in study.get_trials(states=(TrialState.COMPLETE,)) if arm_of(t) == arm
        ]
        assert int(row["complete"]) == len(done)
        if done:
            assert float(row["average_mean"]) == pytest.approx(statistics.fmean(done))
        else:  # every seed pruned: the arm has no result, not a partial one
            assert row["average_mean"] == ""
    assert rows["W off"]["failed"] == "1"
    assert rows["W on, 64 heads"]["pruned"] == "1"
    assert rows["W on"]["baseline"] == "True"


def test_every_export_carries_the_verdict_words_and_the_method(fixture_report) -> None:
    rows = {r["arm"]: r for r in csv.DictReader(io.StringIO(_export(fixture_report, ".csv")))}
    table = build_table(load_records("layer-weights", fixture_report["url"]))
    words = {r.arm: r.cells["average"].verdict for r in table.rows}
    assert {arm: row["average_verdict"] or None for arm, row in rows.items()} == words
    # "W off" is 0.03 below the baseline on every task, but on 2 seeds (one failed) the t interval
    # over seeds (1 df) stays wide: an honest table does not call it yet, and says a seed was lost.
    assert words["W off"] == LOST_SEEDS
    assert "seed 2 failed" in next(r for r in table.rows if r.arm == "W off").notes()
    low, delta, high = (float(rows["W off"][f"average_{k}"]) for k in ("low", "delta", "high"))
    assert low < delta < high and delta == pytest.approx(-0.03, abs=0.01)
    assert float(rows["W off"]["average_p_holm"]) >= float(rows["W off"]["average_p"])
    # Every seed of "W off, 8 heads" was pruned: no numbers, the pruned verdict.
    assert rows["W off, 8 heads"]["average_verdict"] == PRUNED
    # The paper's test (descriptive): 7 tasks can reach alpha on the average; 3 STS tasks cannot.
    assert float(rows["W off"]["average_p_tasks_descriptive"]) == pytest.approx(2 / 2**7)
    assert rows["W off"]["STS_tasks_test"] == "n/a (3 tasks)"
    markdown = _export(fixture_report, ".md")
    w_off = next(line for line in markdown.splitlines() if line.startswith("| W off |"))
    assert "inconclusive" in w_off and "Δ -0.0" in w_off
    assert "Holm-adjusted" in markdown and "t(n-1) quantile" in markdown
    assert "new seeds and new test items of the same tasks" in markdown  # the population
    assert "**W on (baseline)**" in markdown
    assert "relaunch with --seeds 4" in markdown  # W off has 2 of the 3 launched seeds complete
    latex = _export(fixture_report, ".tex")
    assert r"\begin{tabular}{lcccccl}" in latex and r"\textbf{" in latex
    assert r"\underline{W on (baseline)}" in latex and "inconclusive" in latex


def test_an_arm_mean_rests_only_on_seeds_shared_with_the_baseline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    arms = (ArmSpec("base", 0.0, failed_seeds=(2,)), ArmSpec("arm", 0.01, pruned_seeds=(0,)))
    write_study(url, arms=arms, baseline="base")
    table = build_table(load_records("layer-weights", url))
    row = next(r for r in table.rows if r.arm == "arm")
    assert row.complete == 2 and row.shared == 1  # seed 1 only: seed 0 pruned, seed 2 base failed
    assert row.pruned_cells[0].seed == 0 and row.pruned_cells[0].step == 2
    assert row.cells["average"].verdict == PRUNED  # one shared seed decides nothing
    assert "seed 0 pruned at step 2 (dev gap +0.0100)" in row.notes()


def test_a_planted_effect_of_0_05_on_3_seeds_is_called_better_and_none_equivalent(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    arms = (ArmSpec("base", 0.0), ArmSpec("up", 0.05), ArmSpec("down", -0.05), ArmSpec("same", 0.0))
    write_study(url, arms=arms, baseline="base")
    rows = {r.arm: r for r in build_table(load_records("layer-weights", url)).rows}
    assert rows["up"].cells["Retrieval"].verdict == "better"  # every task has item evidence
    assert rows["down"].cells["Classification"].verdict == "worse"
    # The fixture's STS and clustering tasks store no item evidence (as online tasks): a word over
    # them claims these test items only, and says so.
    assert rows["up"].cells["average"].verdict == "better (these test items only)"
    assert rows["down"].cells["average"].verdict == "worse (these test items only)"
    assert rows["same"].cells["average"].verdict in ("equivalent", "inconclusive")
    interval = rows["same"].cells["average"].interval
    assert interval.low < 0 < interval.high
    assert not interval.item_level  # STS and clustering tasks without evidence: partly seeds only
    assert rows["same"].cells["Retrieval"].interval.item_level


def test_a_planted_effect_is_not_called_when_the_baseline_did_not_learn(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    arms = (ArmSpec("base", 0.0), ArmSpec("up", 0.05), ArmSpec("cut", 0.05, pruned_seeds=(0,)))

    def stuck(trial: FrozenTrial) -> None:  # the baseline's dev signal stays at its step-0 value
        if arm_of(trial) == "base":
            start = trial.intermediate_values[0]
            trial.intermediate_values = dict.fromkeys(trial.intermediate_values, start)

    _edited_copy(url, "stuck", stuck, arms=arms, baseline="base")
    table = build_table(load_records("stuck", url))
    rows = {r.arm: r for r in table.rows}
    assert rows["base"].learned is False and rows["up"].learned is True
    assert "not shown to learn (dev signal +0.0000 since step 0)" in rows["base"].notes()
    assert {c: cell.verdict for c, cell in rows["up"].cells.items()} == dict.fromkeys(
        table.columns, BASELINE_NOT_LEARNED
    )
    assert rows["up"].cells["average"].interval.low > 0  # the numbers stay; only the word is held
    assert rows["cut"].cells["average"].verdict == BASELINE_NOT_LEARNED  # not "pruned (worse...)"
    warning = next(w for w in table.warnings if "not shown to learn" in w)
    # A flat dev curve gives no evidence that more steps help: the advice says so, no step count.
    assert "'base'" in warning and "not known to help" in warning
    assert "train.steps=" not in warning


def test_a_cell_with_several_trials_is_its_best_trial_everywhere(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    arms = (ArmSpec("base", 0.0), ArmSpec("arm", 0.02))
    study = write_study(url, arms=arms, baseline="base")
    add_seeds(study, arms, range(3), 3, shift=-0.3)  # a later, much worse TPE trial per cell
    rows = {r.arm: r for r in build_table(load_records("layer-weights", url)).rows}
    best = [t for t in study.trials if arm_of(t) == "arm" and t.number < 6]
    assert rows["arm"].cells["average"].mean == pytest.approx(
        statistics.fmean(t.value for t in best)
    )
    # The paper's test compares the same (best) trials: every task is up by ~0.02, none by -0.28.
    assert rows["arm"].cells["average"].tasks_test.p == pytest.approx(2 / 2**7)
    assert rows["arm"].cells["average"].delta == pytest.approx(0.02, abs=0.01)


def test_a_cell_with_several_trials_is_picked_on_dev_not_on_its_test_scores(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    arms = (ArmSpec("base", 0.0), ArmSpec("arm", 0.0))
    study = write_study(url, arms=arms, baseline="base")
    # A later trial per cell that scores 0.3 higher on the test tasks but lower on dev: picking it
    # would report the luckiest draw on the test set (winner's curse).
    add_seeds(study, arms, range(3), 3, shift=0.3, dev_shift=-0.05)
    table = build_table(load_records("layer-weights", url))
    rows = {r.arm: r for r in table.rows}
    # The search that produced several trials per cell saw the test objective: the table says so.
    assert any("up to 2 trials of a search" in w for w in table.warnings)
    first = [t for t in study.trials if arm_of(t) == "arm" and t.number < 6]
    assert rows["arm"].cells["average"].mean == pytest.approx(
        statistics.fmean(t.value for t in first)
    )


def test_adding_seeds_to_a_study_keeps_the_importance_plot(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = write_study(url, seeds=3)
    add_seeds(study, LAYER_WEIGHTS_ARMS, range(3, 4), 4)  # --seeds 3, then --seeds 4
    assert {str(t.distributions["seed"]) for t in study.trials} == {
        "IntDistribution(high=2, log=False, low=0, step=1)",
        "IntDistribution(high=3, log=False, low=0, step=1)",
    }
    figures = importance_figures(load_records("layer-weights", url))
    assert all(f.figure is not None for f in figures), [f.note for f in figures]


def test_a_column_every_trial_scored_the_same_gets_a_note_not_a_crash(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"

    def same(
        trial: FrozenTrial,
    ) -> None:  # as stored, but every trial with one Classification score
        result = read_result(trial)
        if result is not None:
            scores = {**result.category_scores, "Classification": 0.7}
            write_result(trial, replace(result, category_scores=scores))

    _edited_copy(url, "same", same)
    figures = {f.title: f for f in importance_figures(load_records("same", url))}
    note = figures["Parameter importance for Classification"].note
    assert note == "every finished trial scored Classification the same"
    assert figures["Parameter importance for average"].figure is not None


@pytest.mark.parametrize(
    ("metrics", "objective", "columns"),
    [
        (["STS", "Retrieval"], "average of STS, Retrieval", ("STS", "Retrieval")),
        (["STS", "Retrieval"], "Retrieval", ("STS", "Retrieval")),
        (["STS"], "SICK-R", ("STS", "SICK-R")),
        (["STS"], "average", ("STS", "average")),
    ],
)
def test_the_objective_is_a_column_unless_it_is_a_metric_or_a_mean_of_the_metrics_shown(
    tmp_path: Path, metrics: list[str], objective: str, columns: tuple[str, ...]
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    study = write_study(url)
    record = read_study_record(study)
    plan = {**record.plan, "metrics": metrics, "objective_name": objective}
    write_study_record(study, replace(record, plan=plan))
    assert build_table(load_records("layer-weights", url)).columns == columns


def test_a_study_written_before_evidence_was_kept_gets_seed_only_intervals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _edited_copy(url, "old", lambda trial: trial.system_attrs.clear())  # no evidence, as before
    table = build_table(load_records("old", url))
    intervals = [c.interval for r in table.rows for c in r.cells.values() if c.interval]
    assert intervals and not any(i.item_level for i in intervals)
    assert "no item evidence: seeds only there" in table.legend()


def _edited_copy(url: str, name: str, edit: Callable[[FrozenTrial], None], **fixture: Any) -> None:
    """Store the fixture study (``write_study``'s ``fixture`` arguments) as ``name`` at ``url``,
    each trial changed by ``edit`` first: a study as an older or odder run would have left it."""
    source = write_study(optuna.storages.InMemoryStorage(), **fixture)
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    write_study_record(study, read_study_record(source))
    for trial in source.trials:
        edit(trial)
        study.add_trial(trial)


def _with_provenance(url: str, odd_commit: bool) -> None:
    """The fixture study with each finished trial's provenance; the first one on another commit
    and other task data when ``odd_commit``."""
    finished: list[FrozenTrial] = []

    def recorded(trial: FrozenTrial) -> None:
        result = read_result(trial)
        if result is None:
            return
        odd = odd_commit and not finished
        finished.append(trial)
        provenance = {
            "commit": "b" * 40 if odd else "a" * 40 + "+dirty",
            "data": {"task.STS14": "5" * 16 if odd else "1" * 16, "train": "2" * 16},
        }
        versions = {"torch": "2.5.1", "mteb": "2.1.0"}
        write_result(trial, replace(result, provenance=provenance, versions=versions))

    _edited_copy(url, "layer-weights", recorded)


def test_the_report_header_states_commit_libraries_and_data_hashes_of_the_trials(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _with_provenance(url, odd_commit=False)
    out, markdown = tmp_path / "report.html", tmp_path / "table.md"
    content = write_report("layer-weights", out, url, {"markdown": markdown})
    header = out.read_text().split('<section id="ablation-table">')[0]
    assert f"<b>commit:</b> {'a' * 12}+dirty</li>" in header
    assert "<b>libraries:</b> mteb 2.1.0, torch 2.5.1</li>" in header
    assert f"task.STS14 {'1' * 16}, train {'2' * 16}" in header
    assert not any("different" in w for w in content.table.warnings)
    assert markdown.read_text().startswith(f"commit: {'a' * 12}+dirty; libraries: mteb 2.1.0,")


def test_the_report_says_when_the_trials_ran_on_different_commits_or_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    _with_provenance(url, odd_commit=True)
    out = tmp_path / "report.html"
    content = write_report("layer-weights", out, url)
    header = out.read_text().split('<section id="ablation-table">')[0]
    finished = sum(r.complete for r in content.table.rows)
    commits = f"{'a' * 12}+dirty ({finished - 1} trials) / {'b' * 12} (1 trial)"
    assert commits in header
    assert f"task.STS14 {'1' * 16} ({finished - 1} trials) / {'5' * 16} (1 trial)" in header
    warnings = [w for w in content.table.warnings if "different" in w]
    assert [w.split(", so")[0] for w in warnings] == [
        "the finished trials ran on different commits",
        "the finished trials ran on different data (task.STS14)",  # not train: it agrees
    ]
    assert "Warning: the finished trials ran on different commits" in out.read_text()


def test_importance_note_when_only_the_arm_varies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    write_study(url, seeds=1)
    out = tmp_path / "one-seed.html"
    assert report_main(["--study", "layer-weights", "--storage", url, "--out", str(out)]) == 0
    assert "only arm varies across finished trials" in out.read_text()


def test_unknown_study_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    write_study(url)
    out = tmp_path / "r.html"
    assert report_main(["--study", "nope", "--storage", url, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "layer-weights" in err
    assert not out.exists()


def _export(report: dict, suffix: str) -> str:
    return (report["folder"] / f"layer-weights{suffix}").read_text()


def _read_png(path: Path) -> np.ndarray:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into an (h, w, channels) array."""
    data = path.read_bytes()
    pos, idat = 8, b""
    while pos < len(data):
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + size]
        pos += 12 + size
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
        elif kind == b"IDAT":
            idat += body
    bpp = 3 if color == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows = np.zeros((height, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = np.frombuffer(raw, np.uint8, stride, start + 1).astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: running sum along the row, per channel
            cur = line.reshape(width, bpp).cumsum(axis=0).reshape(-1) & 255
        elif kind == 2:  # Up
            cur = (line + prev) & 255
        else:  # Average / Paeth depend on the pixel just decoded: sequential
            cur = np.array(_unfilter(kind, line.tolist(), prev.tolist(), bpp), dtype=np.int64)
        rows[y] = cur
        prev = cur
    return rows.reshape(height, width, bpp)


def _unfilter(kind: int, line: list[int], up: list[int], bpp: int) -> list[int]:
    cur = [0] * len(line)
    for i, x in enumerate(line):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if kind == 3:
            cur[i] = (x + (a + b) // 2) & 255
            continue
        c = up[i - bpp] if i >= bpp else 0
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        cur[i] = (x + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    return cur


def test_a_metric_no_finished_trial_scored_is_dropped_and_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    clustering = {"ArxivTitles", "Banking77Intents"}

    def without_clustering(trial: FrozenTrial) -> None:  # a preset whose task set has none
        result = read_result(trial)
        if result is not None:
            for task in clustering:
                result.task_scores.pop(task)
                result.task_category.pop(task)
            result.category_scores.pop("Clustering")
            names = (*clustering, "Clustering")
            trial.user_attrs = {
                k: v for k, v in trial.user_attrs.items() if not any(n in k for n in names)
            }
            write_result(trial, result)

    _edited_copy(url, "no-clustering", without_clustering)
    table = build_table(load_records("no-clustering", url))
    assert "Clustering" not in table.columns and "STS" in table.columns
    assert any("scored a task of Clustering" in w for w in table.warnings)
