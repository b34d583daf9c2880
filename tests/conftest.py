"""Shared fixtures: real databases (SQLite file and the PostgreSQL at 127.0.0.1:5432), each test
with a clean, migrated schema; free loopback ports.

PostgreSQL URL: ``$VPP_TEST_PG_URL`` or ``postgresql://postgres@127.0.0.1:5432/test``. If it is
unreachable the PostgreSQL-parametrized tests fail (``.ci/run`` starts it), they never skip.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import Engine, text

from vpp.db import make_engine, upgrade

PG_URL = os.environ.get("VPP_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'vpp.sqlite3').as_posix()}"


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """A fresh PostgreSQL schema for one test; yields (url, schema) and drops it after."""
    admin = make_engine(PG_URL)
    schema = "t_" + uuid.uuid4().hex[:12]
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield PG_URL, schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def _engine_for(backend: str, request: pytest.FixtureRequest) -> Engine:
    if backend == "sqlite":
        return make_engine(request.getfixturevalue("sqlite_url"))
    url, schema = request.getfixturevalue("pg_schema")
    return make_engine(url, search_path=schema)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on an empty database, once for SQLite and once for PostgreSQL."""
    engine = _engine_for(request.param, request)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(empty_engine: Engine) -> Engine:
    """A migrated (Alembic head) database, once per backend."""
    upgrade(empty_engine)
    return empty_engine


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A migrated SQLite database (for tests that need a database but not both backends)."""
    e = make_engine(sqlite_url)
    upgrade(e)
    yield e
    e.dispose()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unused_port() -> int:
    return free_port()


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment for CLI tests; returns the fresh SQLite file the CLI will use.

    Working directory at the repository (so ``config/`` resolves), no ``VPP_*`` variable of the
    caller's, data directory under ``tmp_path``.
    """
    monkeypatch.chdir(REPO_ROOT)
    for k in list(os.environ):
        if k.startswith("VPP_"):
            monkeypatch.delenv(k)
    db = tmp_path / "cli.sqlite3"
    monkeypatch.setenv("VPP_DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setenv("VPP_SERVICE__DATA_DIR", str(tmp_path / "data"))
    return db


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``vpp *args`` in process; return (exit code, stdout, stderr)."""
    from vpp.cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest_asyncio.fixture
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail the test if it leaves asyncio tasks running (directories opt in with autouse)."""
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0.05)  # let closing transports settle
    leaked = [t for t in asyncio.all_tasks() - before
              if t is not asyncio.current_task() and not t.done()]
    for t in leaked:
        t.cancel()
    assert not leaked, f"tasks left running: {leaked}"
