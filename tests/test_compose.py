"""docker-compose.yml: the deployment wiring, checked without a docker engine, and once for real.

The file is parsed as YAML (anchors and merge keys resolved as compose does) and interpolated with
.env.example, the way `docker compose` reads .env; the checks are the ones that break a deployment
silently: a dashboard on another database than the workers, no healthcheck, a secret in git.

The last test (marker ``docker``) starts the stack with ``scripts/compose-check.sh``: images built,
a smoke study through ``compose run launch`` with the Ray worker killed mid-study, the dashboard and
the report checked, everything torn down. It takes minutes, so it runs only where a docker daemon
answers and ``ABLATION_COMPOSE_CHECK=1`` is set; everywhere else it is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from storage import parse_url

REPO = Path(__file__).resolve().parent.parent
PROJECT_SERVICES = ("dashboard", "ray-head", "ray-worker", "launch")
_VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _env_example() -> dict[str, str]:
    lines = (REPO / ".env.example").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {key.strip(): value.strip() for key, value in pairs}


def _interpolate(value: object, env: dict[str, str]) -> object:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR:?error} and $$ escapes, applied recursively."""
    if isinstance(value, dict):
        return {k: _interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        name, kind, arg = match.groups()
        if name in env:
            return env[name]
        if kind == "-":
            return arg
        raise AssertionError(f"${{{name}}} is used but .env.example does not define it")

    return _VAR.sub(replace, value.replace("$$", "\0")).replace("\0", "$")


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(raw: dict) -> dict:
    return _interpolate(raw, _env_example())["services"]


def _command(service: dict) -> str:
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else command


def test_services_exist_and_project_ones_use_the_project_image(services: dict) -> None:
    assert set(services) >= {"postgres", *PROJECT_SERVICES}
    for name in PROJECT_SERVICES:
        build = services[name]["build"]
        assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
    assert "dashboards.serve" in _command(services["dashboard"])
    assert "--head" in _command(services["ray-head"])
    assert "--address=ray-head:6379" in _command(services["ray-worker"])
    launch = _command(services["launch"])
    assert "search.launch" in launch and "ray-head:6379" in launch
    assert services["launch"]["profiles"] == ["launch"]  # an example, not started by `up`


def test_postgres_has_a_volume_and_a_healthcheck_the_others_wait_for(raw, services) -> None:
    postgres = services["postgres"]
    volume = next(v for v in postgres["volumes"] if v.endswith(":/var/lib/postgresql/data"))
    assert volume.split(":")[0] in raw["volumes"]  # a named volume: data survives `down`
    check = postgres["healthcheck"]
    assert "pg_isready" in " ".join(check["test"]) and check["retries"] >= 3
    for name in PROJECT_SERVICES:
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_dashboard_workers_and_launch_share_one_storage_url(services: dict) -> None:
    urls = {name: services[name]["environment"]["ABLATION_STORAGE"] for name in PROJECT_SERVICES}
    assert len(set(urls.values())) == 1, urls
    url = parse_url(urls["dashboard"])
    env = services["postgres"]["environment"]
    assert url.get_backend_name() == "postgresql" and url.host == "postgres" and url.port == 5432
    assert (url.username, url.password, url.database) == (
        env["POSTGRES_USER"],
        env["POSTGRES_PASSWORD"],
        env["POSTGRES_DB"],
    )


def test_ports_publish_on_localhost_only(services: dict) -> None:
    dashboard = services["dashboard"]
    assert dashboard["ports"] == ["127.0.0.1:8080:8080"]
    command = dashboard["command"]
    assert command[command.index("--port") + 1] == "8080"
    assert services["ray-head"]["ports"] == ["127.0.0.1:8265:8265"]
    assert "ports" not in services["postgres"] and "ports" not in services["ray-worker"]


def test_no_secret_is_committed(raw: dict) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    password = _env_example()["POSTGRES_PASSWORD"]
    assert password not in text
    assert raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${")
    ignored = (REPO / ".gitignore").read_text().split()
    assert ".env" in ignored


def test_image_installs_pinned_torch_before_the_project() -> None:
    lines = (REPO / "docker" / "Dockerfile").read_text().splitlines()
    torch = next(i for i, line in enumerate(lines) if line.startswith("ARG TORCH_SPEC=torch=="))
    install_torch = next(i for i, line in enumerate(lines) if '"${TORCH_SPEC}"' in line)
    install_project = next(i for i, line in enumerate(lines) if 'pip install ".[decoder]"' in line)
    assert lines[torch].endswith("torch==2.13.0")
    assert torch < install_torch < install_project


def _docker_daemon() -> str | None:
    """Why the docker daemon cannot be used here, or None when it answers."""
    if shutil.which("docker") is None:
        return "no docker CLI on PATH"
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "docker info did not answer in 30 s"
    if info.returncode != 0:
        return f"no docker daemon reachable ({(info.stderr.strip().splitlines() or ['?'])[-1]})"
    return None


@pytest.mark.integration
@pytest.mark.docker
def test_the_stack_runs_a_study_through_a_killed_worker(tasks_dir: Path) -> None:
    unavailable = _docker_daemon()
    if unavailable:
        pytest.skip(f"compose check: {unavailable}")
    if os.environ.get("ABLATION_COMPOSE_CHECK") != "1":
        pytest.skip(
            "compose check takes 3-4 minutes with built images, about 13 building them; "
            "set ABLATION_COMPOSE_CHECK=1 to run scripts/compose-check.sh"
        )
    check = subprocess.run(
        ["bash", str(REPO / "scripts" / "compose-check.sh")],
        env={**os.environ, "ABLATION_DATA_DIR": str(tasks_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=3600,
    )
    print(check.stdout)
    assert check.returncode == 0, check.stdout[-6000:]
    assert "compose check passed" in check.stdout
