"""Database work off the event loop: a small thread pool running functions in a session.

``await db.run(fn, *args)`` runs ``fn(session, *args)`` in a worker thread inside
:func:`vpp.db.session_scope` (commit on success, roll back on error), so request handlers and the
control loops never block the event loop on SQL.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from vpp.db import redact, session_scope
from vpp.errors import StorageError

T = TypeVar("T")


class Db:
    """The engine plus the executor that every database call goes through."""

    def __init__(self, engine: Engine, workers: int = 4) -> None:
        self.engine = engine
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vpp-db")

    def _in_session(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            with session_scope(self.engine) as session:
                return fn(session, *args)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StorageError(
                f"database {redact(str(self.engine.url))} failed: {reason}"
            ) from None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(session, *args)`` in a worker thread, in one transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(self._in_session, fn, *args))

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` (engine-level work, e.g. bulk telemetry reads) in a worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


SessionFn = Callable[[Session], Any]
