"""Gateway leases in PostgreSQL (vpp.cluster.leases, vpp.cluster.membership), in process: a
lease passes to another worker only once it has expired, and its epoch moves; a released one
is taken at once; a worker that has not renewed within its lease stops counting as current."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from tests.vpp.cluster.harness import active_fleet, postgres_only
from vpp.cluster import leases
from vpp.cluster.membership import GatewayShare
from vpp.config_cluster import ClusterSettings
from vpp.daemon.dbexec import Db
from vpp.db import session_scope


async def test_a_lease_moves_only_when_expired_and_its_epoch_moves(engine: Engine) -> None:
    postgres_only(engine)
    gws, by_id = await active_fleet(engine, 1)
    gid = next(iter(by_id))
    try:
        with session_scope(engine) as s:
            assert leases.take(s, "w1", gid, 30.0) == 1
        with session_scope(engine) as s:
            assert leases.take(s, "w2", gid, 30.0) is None  # held: not taken
            assert leases.renew(s, "w2", [gid], 30.0) == {}  # nor renewed by another
            assert leases.renew(s, "w1", [gid], 30.0) == {gid: 1}
            leases.release(s, "w1", [gid])
        with session_scope(engine) as s:
            assert leases.take(s, "w2", gid, 30.0) == 2  # released: taken, a new epoch
        with session_scope(engine) as s:
            assert leases.renew(s, "w1", [gid], 30.0) == {}  # w1 lost it
            assert leases.leases(s)[gid].owner == "w2"
    finally:
        for gw in gws:
            await gw.stop()


async def test_a_share_not_renewed_within_its_lease_is_not_current(engine: Engine) -> None:
    postgres_only(engine)
    gws, by_id = await active_fleet(engine, 2)
    db = Db(engine)
    try:
        share = GatewayShare(db, ClusterSettings(heartbeat_s=0.1, lease_s=0.5), "w1")
        assert not share.current()  # never renewed
        await share.step()
        assert share.current() and share.polled() == frozenset(by_id)  # alone: every gateway
        await asyncio.sleep(0.6)  # no renewal for longer than the lease
        assert not share.current()
        await share.leave()
        with session_scope(engine) as s:
            assert all(lease.expired for lease in leases.leases(s).values())
    finally:
        db.close()
        for gw in gws:
            await gw.stop()
