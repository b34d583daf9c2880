"""LISTEN on a PostgreSQL channel: a supervised loop step that waits up to ``wait_s`` for
notifications on its own connection (psycopg's async connection, autocommit) and calls
``on_notify`` for each; the connection is kept between steps and opened again after an error.
Notifications are a wake-up only, never the record: whoever listens also sweeps the table."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql
from sqlalchemy import Engine

log = logging.getLogger("vpp.cluster.notify")


def conninfo(engine: Engine) -> str:
    """libpq connection string of the engine's database (without SQLAlchemy's driver name)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    def __init__(self, engine: Engine, channel: Callable[[], str], on_notify: Callable[[], None],
                 wait_s: float) -> None:
        self.engine = engine
        self.channel = channel
        self.on_notify = on_notify
        self.wait_s = wait_s
        self._conn: psycopg.AsyncConnection | None = None
        self.received = 0

    async def _connect(self) -> psycopg.AsyncConnection:
        name = await asyncio.to_thread(self.channel)  # may read the database
        conn = await psycopg.AsyncConnection.connect(conninfo(self.engine), autocommit=True,
                                                     connect_timeout=5)
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(name)))
        except BaseException:
            await conn.close()
            raise
        return conn

    async def step(self) -> None:
        """Wait up to ``wait_s`` for notifications (returns early on none)."""
        if self._conn is None or self._conn.closed:
            self._conn = await self._connect()
        try:
            async for _ in self._conn.notifies(timeout=self.wait_s):
                self.received += 1
                self.on_notify()
        except psycopg.Error:
            await self.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
