"""``python -m dashboards.serve`` over real HTTP on a PostgreSQL-backed study.

The server runs as a subprocess exactly as a user starts it; the test reads optuna-dashboard's own
JSON API, the one its web page polls, so PRUNED trials and their intermediate values are what the
dashboard shows.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

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


def test_dashboard_lists_study_with_pruned_trials_over_http(postgres_url: str) -> None:
    write_study(postgres_url, name="dash-layer-weights")
    with serving("--storage", postgres_url) as (_, base):
        assert base.startswith("http://127.0.0.1:")  # localhost unless asked otherwise
        studies = get_json(f"{base}/api/studies")["study_summaries"]
        study = next(s for s in studies if s["study_name"] == "dash-layer-weights")
        attrs = {a["key"] for a in study["user_attrs"]}
        assert {"plan", "skipped_arms", "preset", "backbone"} <= attrs

        detail = get_json(f"{base}/api/studies/{study['study_id']}")
        states = [t["state"] for t in detail["trials"]]
        assert len(states) == 12
        assert states.count("Pruned") == 4 and states.count("Fail") == 1
        assert detail["has_intermediate_values"]
        pruned = next(t for t in detail["trials"] if t["state"] == "Pruned")
        assert len(pruned["intermediate_values"]) == 2
        complete = next(t for t in detail["trials"] if t["state"] == "Complete")
        keys = {a["key"] for a in complete["user_attrs"]}
        assert {"average", "category.STS", "cost.train_seconds", "params.total"} <= keys
        assert {p["name"] for p in complete["params"]} == {"arm", "seed"}

        with urllib.request.urlopen(f"{base}/dashboard", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()


def test_all_interfaces_needs_explicit_host_and_warns(sqlite_url: str) -> None:
    write_study(sqlite_url)
    with serving("--storage", sqlite_url, "--host", "0.0.0.0") as (proc, base):
        assert get_json(f"{base}/api/studies")["study_summaries"]
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "warning: listening on all interfaces" in err


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
