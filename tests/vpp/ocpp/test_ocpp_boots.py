"""Boots written in groups (:class:`vpp.ocpp.boots.BootRecorder`), both databases: boots that
arrive together are one transaction, each answered with its committed record; a failed write
fails each boot of its batch (the charge points boot again) and the next batch is written
(the outage is injected: a database that is away for one call)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from sqlmodel import select

from tests.vpp.ocpp.conftest import World
from vpp.daemon.dbexec import Db
from vpp.db import session_scope
from vpp.errors import StorageError
from vpp.models import AuditLog, Gateway
from vpp.ocpp.boots import BootRecorder

T = TypeVar("T")


def _gateway_ids(world: World, n: int, prefix: str) -> dict[str, int]:
    out = {}
    for k in range(n):
        identity = f"{prefix}-{k}"
        world.register(identity, connectors=1)
        with session_scope(world.engine) as s:
            gw = s.exec(select(Gateway).where(Gateway.host == identity)).one()
            out[identity] = int(gw.id or 0)
    return out


async def test_a_boot_storm_is_one_transaction_and_each_boot_is_answered(world: World) -> None:
    gws = _gateway_ids(world, 30, "STORM")
    boots = BootRecorder(world.parts.db)
    records = await asyncio.gather(*(boots.record(g, i, {"vendor": "X"})
                                     for i, g in gws.items()))
    assert boots.batches == 1  # all arrived before the first write started
    assert [r.identity for r in records if r is not None] == list(gws)
    assert {r.state for r in records if r is not None} == {"active"}
    assert all(c.status == "active" for r in records if r is not None for c in r.connectors)
    with session_scope(world.engine) as s:
        audited = s.exec(select(AuditLog).where(AuditLog.action == "charge_point_booted")).all()
    assert sorted(a.subject for a in audited) == sorted(f"gateway:{g}" for g in gws.values())
    await boots.close()


class _AwayOnce(Db):
    """The real database, away for its first call (as a lost connection is: the StorageError
    :class:`vpp.daemon.dbexec.Db` raises). Injected: an outage is outside our control."""

    calls = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        self.calls += 1
        if self.calls == 1:
            raise StorageError("database test failed: connection refused")
        return await super().run(fn, *args)


async def test_a_failed_batch_fails_its_boots_and_the_next_is_written(world: World) -> None:
    gws = _gateway_ids(world, 2, "FAIL")
    (first, g1), (second, g2) = gws.items()
    db = _AwayOnce(world.engine)
    boots = BootRecorder(db)
    try:
        with pytest.raises(StorageError):
            await boots.record(g1, first, {"vendor": "X"})
        record = await boots.record(g2, second, {"vendor": "X"})
        assert record is not None and record.state == "active"
        with session_scope(world.engine) as s:
            gw = s.get(Gateway, g1)
            assert gw is not None and gw.enrolment_state == "registered"  # boots again later
    finally:
        await boots.close()
        db.close()
