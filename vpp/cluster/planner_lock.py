"""The planner/settlement role of a cluster: one process at a time, under a PostgreSQL advisory
lock (``pg_try_advisory_lock`` on a key derived from the database schema) taken on a connection
of its own, held for as long as the process lives.

Every ``cluster.planner_retry_s`` a standby tries the lock; the holder checks its connection
(``SELECT 1``). PostgreSQL releases a session's advisory lock when the session ends, so when
the holder dies (SIGKILL, a lost machine) its connection closes and a standby's next try takes
the role: the takeover time is ``planner_retry_s`` plus the time the server takes to notice
the connection gone (at once for a killed process on a live machine; a vanished machine is
noticed by TCP keepalives). A holder whose connection fails stops being the planner at once
(its planning loops skip their steps) and tries again like a standby. The lock connection's
``application_name`` is ``vpp-planner:<worker_id>``, so ``pg_stat_activity`` shows the holder.
"""

from __future__ import annotations

import asyncio
import logging

import psycopg
from sqlalchemy import Engine, text

from vpp.cluster.notify import conninfo

log = logging.getLogger("vpp.cluster.planner")


def lock_key(engine: Engine) -> int:
    """The advisory lock key of this database schema's planner (64-bit)."""
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT hashtextextended('vpp-planner:' || current_schema(), 0)")).scalar() or 0)


class PlannerLock:
    def __init__(self, engine: Engine, worker_id: str) -> None:
        self.engine = engine
        self.worker_id = worker_id
        self.held = False
        self.taken = 0  # times this process became the planner
        self._key: int | None = None
        self._conn: psycopg.AsyncConnection | None = None

    async def step(self) -> None:
        """Try the lock (a standby) or check it is still held (the planner)."""
        try:
            if self._conn is None or self._conn.closed:
                self._lost()
                self._conn = await psycopg.AsyncConnection.connect(
                    conninfo(self.engine), autocommit=True, connect_timeout=5,
                    application_name=f"vpp-planner:{self.worker_id}"[:63])
            if self._key is None:  # the engine's schema (its search_path), read once
                self._key = await asyncio.to_thread(lock_key, self.engine)
            if self.held:
                await self._conn.execute("SELECT 1")
                return
            cur = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,))
            row = await cur.fetchone()
            if row is not None and row[0]:
                self.held = True
                self.taken += 1
                log.info("planner role taken", extra={"worker_id": self.worker_id})
        except psycopg.Error:
            await self.close()
            raise

    def _lost(self) -> None:
        if self.held:
            log.error("planner role lost: the lock connection failed",
                      extra={"worker_id": self.worker_id})
        self.held = False

    async def close(self) -> None:
        """Give the role up (closing the connection releases the lock)."""
        self._lost()
        if self._conn is not None:
            await self._conn.close()
            self._conn = None
