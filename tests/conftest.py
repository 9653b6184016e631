"""Shared fixtures: the real offline task data, a throw-away PostgreSQL database, SQLite URLs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get(
    "ABLATION_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# Tests never reach the HF hub: everything they load is packaged or built on the fly. Set at import,
# before any test module imports huggingface_hub, which reads these variables only once.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.hookimpl(tryfirst=True)  # before -m selects by the markers
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test on the PostgreSQL server is an integration test: it needs a running service, so it
    is left out of the unit tier (``-m "not integration"``) like the launcher, Ray, Chromium and
    subprocess tests, which are marked where they are written."""
    for item in items:
        if item.get_closest_marker("postgres") or "postgres_url" in item.fixturenames:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def tasks_dir() -> Path:
    """The shared benchmark data (``ABLATION_TASKS_DIR``, else ``../shared/data`` beside the repo)."""
    path = Path(os.environ.get("ABLATION_TASKS_DIR", REPO.parent / "shared" / "data"))
    if not (path / "README.md").exists():
        pytest.fail(f"benchmark data not found at {path}; set ABLATION_TASKS_DIR")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throw-away database on the real server, dropped after the session."""
    import sqlalchemy as sa

    name = f"ablation_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'studies.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_storage_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """Each storage the service supports: the embedded SQLite file, then the real PostgreSQL."""
    return sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 4-layer Qwen2 (width 32) with a Qwen2-style tokenizer, as a local model directory."""
    from tests.tiny_models import tiny_qwen2_dir

    return tiny_qwen2_dir(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 6-layer BERT (width 32) with the MiniLM tokenizer, as a local model directory."""
    from tests.tiny_models import tiny_bert_dir

    return tiny_bert_dir(tmp_path_factory.mktemp("tiny-bert"))
