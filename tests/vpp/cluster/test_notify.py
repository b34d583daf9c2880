"""The commands' wake-up (vpp.cluster.notify, vpp.cluster.commands): a listener on the schema's
channel is woken by a command's insert once it commits, and a command nobody took is given up
(never executed). Real PostgreSQL, in process."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.vpp.cluster.harness import active_fleet, postgres_only
from vpp.cluster import commands
from vpp.cluster.notify import Listener
from vpp.db import session_scope


def _channel(engine: Engine) -> str:
    with session_scope(engine) as s:
        return commands.channel(s)


async def test_a_command_wakes_the_listener_and_one_not_taken_is_given_up(
        engine: Engine) -> None:
    postgres_only(engine)
    gws, _ = await active_fleet(engine, 1)
    woken: list[int] = []
    listener = Listener(engine, lambda: _channel(engine), lambda: woken.append(1), wait_s=0.1)
    try:
        await listener.step()  # connected and listening; nothing sent yet
        assert woken == []
        with engine.connect() as conn:
            device = int(conn.execute(text("SELECT min(id) FROM device")).scalar() or 0)
        with session_scope(engine) as s:
            cid = commands.enqueue(s, device, 3.0)
        listener.wait_s = 5.0
        await listener.step()
        assert woken == [1]
        with session_scope(engine) as s:
            assert commands.give_up(s, cid, "no worker")
            assert not commands.give_up(s, cid, "twice")  # only a pending one
            done = commands.results(s, [cid])[cid]
        assert done.outcome.status == commands.FAILED and done.outcome.error == "no worker"
        assert not done.outcome.written
    finally:
        await listener.close()
        for gw in gws:
            await gw.stop()
