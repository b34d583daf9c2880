"""An API server per test: the real aiohttp app over the daemon's real parts
(:func:`vpp.daemon.parts.build_parts`) and a real database, with no loops running."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import Engine

from tests.conftest import free_port
from tests.vpp.daemon.harness import Tokens, daemon_settings, seed
from vpp.api.app import build_app
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.parts import DaemonParts, build_parts


@dataclass
class Api:
    url: str
    tokens: Tokens
    parts: DaemonParts
    http: aiohttp.ClientSession
    engine: Engine


async def _serve(engine: Engine, tmp_path: Path) -> AsyncIterator[Api]:
    settings = daemon_settings(tmp_path, str(engine.url))
    parts = build_parts(Infra.create(settings, Db(engine)))
    tokens = seed(engine)
    runner = web.AppRunner(build_app(parts), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession() as http:
        yield Api(f"http://127.0.0.1:{port}", tokens, parts, http, engine)
    await runner.cleanup()
    await parts.close()


@pytest.fixture
async def api(sqlite_engine: Engine, tmp_path: Path) -> AsyncIterator[Api]:
    """On SQLite (most tests)."""
    async for a in _serve(sqlite_engine, tmp_path):
        yield a


@pytest.fixture
async def api_both(engine: Engine, tmp_path: Path) -> AsyncIterator[Api]:
    """Once on SQLite and once on PostgreSQL."""
    async for a in _serve(engine, tmp_path):
        yield a
