"""``python -m dashboards.serve`` over real HTTP on a PostgreSQL-backed study.

The server runs as a subprocess exactly as a user starts it; the test reads optuna-dashboard's own
JSON API, the one its web page polls, so PRUNED trials and their intermediate values are what the
dashboard shows.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest

from dashboards.records import arm_of, task_scores
from objectives.config.presets import PRESETS
from storage.evidence import KEY as EVIDENCE_KEY
from storage.study_records import read_evidence
from tests.study_fixtures import write_study

pytestmark = pytest.mark.postgres


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen, str]]:
    """Start the dashboard on a free port and yield it with its base URL from the startup line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dashboards.serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert "/dashboard" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        base = line.split(" at ", 1)[1].split("/dashboard", 1)[0]
        yield proc, base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())


# A smoke study whose second arm's learning rate wrecks the model: with the median pruner acting
# after one finished trial and one trial at a time, that arm is PRUNED at its first report.
SMOKE_PLAN = """
name: dash-smoke
description: a sound arm and one whose learning rate wrecks the model
baseline: lr 1e-4
arms:
  - {label: lr 1e-4, overrides: {train.lr: 1.0e-4}}
  - {label: lr 10, overrides: {train.lr: 10.0}}
seeds: 1
"""


@pytest.fixture(scope="module")
def dashboard(
    postgres_url: str, tasks_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The dashboard on PostgreSQL holding a real smoke study and a contract fixture study."""
    plan = tmp_path_factory.mktemp("plan") / "dash-smoke.yaml"
    plan.write_text(SMOKE_PLAN)
    launch = subprocess.run(
        [
            *(sys.executable, "-m", "search.launch", "--plan", str(plan), "--preset", "smoke"),
            *("--storage", postgres_url, "--tasks-dir", str(tasks_dir)),
            *("--study-name", "dash-smoke", "--prune-after", "1", "--max-concurrent", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert launch.returncode == 0, launch.stderr[-3000:]
    write_study(postgres_url, name="dash-fixture")
    with serving("--storage", postgres_url) as (_, base):
        yield base


def _study(base: str, name: str) -> tuple[dict, dict]:
    studies = get_json(f"{base}/api/studies")["study_summaries"]
    study = next(s for s in studies if s["study_name"] == name)
    return study, get_json(f"{base}/api/studies/{study['study_id']}")


@pytest.mark.integration
def test_dashboard_serves_a_smoke_study_with_its_pruned_trial(
    dashboard: str, postgres_url: str
) -> None:
    assert dashboard.startswith("http://127.0.0.1:")  # localhost unless asked otherwise
    study, detail = _study(dashboard, "dash-smoke")
    assert {"plan", "skipped_arms", "preset", "backbone"} <= {a["key"] for a in study["user_attrs"]}
    trials = {t["params"][0]["param_external_value"]: t for t in detail["trials"]}
    assert {a: t["state"] for a, t in trials.items()} == {"lr 1e-4": "Complete", "lr 10": "Pruned"}
    assert detail["has_intermediate_values"]
    complete = trials["lr 1e-4"]
    every, steps = PRESETS["smoke"]["train.eval_every"], PRESETS["smoke"]["train.steps"]
    shown = {arm: [v["step"] for v in t["intermediate_values"]] for arm, t in trials.items()}
    # Both report the untrained model at step 0; the sound arm then every eval_every steps, the
    # wrecked one stops at its first report after training began.
    sound = [0, *range(every, steps + 1, every)]
    assert shown == {"lr 1e-4": sound, "lr 10": [0, every]}
    stored = optuna.load_study(study_name="dash-smoke", storage=postgres_url).trials
    assert {arm_of(t): t.intermediate_values for t in stored} == {
        arm: {v["step"]: v["value"] for v in t["intermediate_values"]} for arm, t in trials.items()
    }
    keys = {a["key"] for a in complete["user_attrs"]}
    assert {"average", "category.STS", "cost.train_seconds", "params.total"} <= keys
    # The worker stored item-level evidence that reproduces each score, and the dashboard's API
    # never ships it to the browser.
    done = next(t for t in stored if arm_of(t) == "lr 1e-4")
    evidence = read_evidence(done)
    assert set(evidence) == set(task_scores(done))
    for task, score in task_scores(done).items():
        assert evidence[task].score() == pytest.approx(score, abs=5e-6)
    assert EVIDENCE_KEY not in json.dumps(detail)

    with urllib.request.urlopen(f"{dashboard}/dashboard", timeout=30) as page:
        assert page.status == 200 and b"<html" in page.read().lower()


@pytest.mark.integration
def test_dashboard_shows_failed_and_pruned_trials_of_a_contract_study(dashboard: str) -> None:
    _, detail = _study(dashboard, "dash-fixture")
    states = [t["state"] for t in detail["trials"]]
    assert len(states) == 12
    assert states.count("Pruned") == 4 and states.count("Fail") == 1
    failed = next(t for t in detail["trials"] if t["state"] == "Fail")
    assert any(a["key"] == "error" for a in failed["user_attrs"])


@pytest.mark.integration
def test_all_interfaces_needs_explicit_host_and_warns(sqlite_url: str) -> None:
    write_study(sqlite_url)
    with serving("--storage", sqlite_url, "--host", "0.0.0.0") as (proc, base):
        assert get_json(f"{base}/api/studies")["study_summaries"]
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "warning: listening on all interfaces" in err


@pytest.mark.integration
def test_bad_storage_is_one_line_and_exit_2(postgres_url: str) -> None:
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_database_here"
    proc = subprocess.run(
        [sys.executable, "-m", "dashboards.serve", "--storage", missing, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "no_such_database_here" in lines[0] and "createdb" in lines[0]


def test_a_port_in_use_is_one_line_naming_the_fix(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from dashboards.serve import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--storage", sqlite_url, "--port", str(port)]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert lines[0].endswith("pick another --port or --host")
