"""Fail any async test in this directory that leaves asyncio tasks running behind it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    before = set(asyncio.all_tasks())
    yield
    await asyncio.sleep(0.05)  # let closing transports settle
    leaked = [t for t in asyncio.all_tasks() - before
              if t is not asyncio.current_task() and not t.done()]
    for t in leaked:
        t.cancel()
    assert not leaked, f"tasks left running: {leaked}"
