"""The real API app served from a background thread (its own event loop) on 127.0.0.1, for
tools that call it synchronously (schemathesis uses ``requests``). Same parts as
``tests/vpp/api/conftest.py``: real aiohttp app, real migrated database, seeded tokens."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from sqlalchemy import Engine

from tests.conftest import free_port
from tests.vpp.daemon.harness import Tokens, daemon_settings, seed
from vpp.api.app import build_app
from vpp.daemon.dbexec import Db
from vpp.daemon.infra import Infra
from vpp.daemon.parts import DaemonParts, build_parts


@dataclass
class Served:
    url: str
    tokens: Tokens
    parts: DaemonParts
    engine: Engine


@contextmanager
def served_api(engine: Engine, tmp_path: Path) -> Iterator[Served]:
    settings = daemon_settings(tmp_path, str(engine.url))
    parts = build_parts(Infra.create(settings, Db(engine)))
    tokens = seed(engine)
    port = free_port()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    runner = web.AppRunner(build_app(parts), access_log=None, shutdown_timeout=1.0)

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", port).start()

        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.run_until_complete(parts.close())
        loop.close()

    thread = threading.Thread(target=run, name="served-api", daemon=True)
    thread.start()
    assert ready.wait(10), "API did not start"
    try:
        yield Served(f"http://127.0.0.1:{port}", tokens, parts, engine)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
