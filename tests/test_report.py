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
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from dashboards.report import main as report_main
from dashboards.significance import paired_t_across_seeds, wilcoxon_across_tasks
from tests.study_fixtures import SKIPPED, write_study

REPO = Path(__file__).resolve().parent.parent
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
    "--window-size=1400,2400",
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
    # plotly.js ran (offline, embedded): it replaced the empty divs with drawn SVG charts.
    assert dom.count('class="main-svg"') >= 2
    assert "js-plotly-plot" in dom
    assert not re.search(r"<script[^>]*\bsrc=", html.read_text()), "report loads external JS"

    pixels = _read_png(shot)
    assert pixels.shape[:2] == (2400, 1400)
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
            t.value
            for t in study.get_trials(states=(TrialState.COMPLETE,))
            if t.params["arm"] == arm
        ]
        assert int(row["complete"]) == len(done)
        if done:
            assert float(row["average_mean"]) == pytest.approx(statistics.fmean(done))
        else:  # every seed pruned: the arm has no result, not a partial one
            assert row["average_mean"] == ""
    assert rows["W off"]["failed"] == "1"
    assert rows["W on, 64 heads"]["pruned"] == "1"
    assert rows["W on"]["baseline"] == "True"


def test_significance_names_the_tests_and_flags_a_consistently_worse_arm(fixture_report) -> None:
    rows = {r["arm"]: r for r in csv.DictReader(io.StringIO(_export(fixture_report, ".csv")))}
    # "W off" is below the baseline on all 7 tasks: the exact two-sided Wilcoxon p is 2 / 2**7.
    assert float(rows["W off"]["average_p_tasks"]) == pytest.approx(2 / 2**7)
    assert rows["W on"]["average_p_tasks"] == ""
    markdown = _export(fixture_report, ".md")
    assert "Wilcoxon signed-rank across tasks" in markdown
    assert "paired t-test across seeds" in markdown
    assert "**W on (baseline)**" in markdown
    w_off = next(line for line in markdown.splitlines() if line.startswith("| W off |"))
    assert "*" in w_off
    latex = _export(fixture_report, ".tex")
    assert r"\begin{tabular}{lccccc}" in latex and r"\textbf{" in latex
    assert r"\underline{W on (baseline)}" in latex


def test_significance_says_when_a_test_cannot_be_computed() -> None:
    few = wilcoxon_across_tasks({"a": 0.5, "b": 0.6, "c": 0.7}, {"a": 0.4, "b": 0.5, "c": 0.6})
    assert few.p is not None and few.p >= 0.05 and "cannot reach" in few.note
    one_seed = paired_t_across_seeds({0: 0.5}, {0: 0.4, 1: 0.3})
    assert one_seed.p is None and "2 shared seeds" in one_seed.note


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
