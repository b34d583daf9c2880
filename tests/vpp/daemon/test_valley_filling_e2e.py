"""A valley-filling call end to end through the real daemon, over Modbus, settled.

The grid asks the fleet to RAISE its load by REST; the daemon bids on what the batteries can
charge (no history yet: the no-history rule's rise), plans it (the scheduler with the sign
reversed), writes charging setpoints to simulated batteries behind a pymodbus server on
127.0.0.1, meters them, and at the call's end settles the rise above the baseline (response =
metered - baseline) into a balanced ledger transaction. SQLite and PostgreSQL (the ``engine``
fixture). The daemon runs on a manual clock so the test steps it through the call's four
intervals; nothing is mocked.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from sim.clock import ManualClock
from tests.vpp.daemon.harness import (
    daemon_settings,
    enrol_and_poll,
    gateway_spec,
    get_json,
    port,
    seed,
    send_json,
    start_gateway,
    wait_for,
)
from vpp.db import session_scope
from vpp.models import GridEvent, OwnerPayout, Setpoint, Settlement
from vpp.server import Daemon
from vpp.timeutil import floor_to_interval


async def test_a_valley_filling_call_is_planned_dispatched_and_settled(
        engine: Engine, tmp_path: Path) -> None:
    tokens = seed(engine)
    spec = gateway_spec(port())
    gw = await start_gateway(spec)
    clock = ManualClock()
    start = floor_to_interval(clock.now(), 15)
    clock.advance((start + timedelta(seconds=60) - clock.now()).total_seconds())
    daemon = Daemon(daemon_settings(tmp_path, str(engine.url)), engine, port=0,
                    clock=clock.now)
    base = await daemon.start()
    try:
        async with aiohttp.ClientSession() as c:
            await enrol_and_poll(c, base, tokens, spec, 2)
            end = start + timedelta(hours=1)
            call = {"external_id": "rt-valley", "event_type": "real_time",
                    "direction": "valley_filling", "start": start.isoformat(),
                    "end": end.isoformat(), "requested_kw": 6.0}
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call, 201)
            assert decision["accepted"], decision
            declared = decision["declared_kw"]
            assert 0 < declared <= 6.0
            event_id = decision["event_id"]

            # planned and dispatched: both batteries charge (setpoints above their ~0 kW
            # baseline), the simulated devices hold what the daemon wrote and read back
            async def charging() -> bool:
                return all(d.setpoint_kw is not None and d.setpoint_kw > 0.5
                           for d in gw.devices.values())

            await wait_for(charging, what="the batteries charging for the valley")

            # the rows are marked after the writes were read back (a moment later under load)
            async def recorded() -> list[Setpoint]:
                with session_scope(engine) as s:
                    rows = [r for r in s.exec(select(Setpoint)) if r.status == "written"]
                return rows if len(rows) >= len(gw.devices) else []

            written = await wait_for(recorded, what="the written setpoints recorded")
            assert sum(r.setpoint_kw for r in written[:2]) >= declared * 0.99

            # the live view measures the rise (metered - baseline), not a reduction (the
            # poller runs on the daemon's clock: step it for a fresh reading)
            clock.advance(30)

            async def rising() -> dict | None:
                st = await get_json(c, f"{base}/api/v1/fleet/status", tokens.operator)
                d = st.get("delivered_kw")
                return st if d is not None and d > 0.5 * declared else None

            status = await wait_for(rising, what="the fleet's rise above its baseline")
            assert status["target_kw"] == pytest.approx(status["baseline_kw"] + declared)

            # step the clock through the call, metered in every interval
            for k in range(1, 4):
                clock.advance(15 * 60)

                async def metered(k: int = k) -> bool:
                    d = await get_json(c, f"{base}/api/v1/events/{event_id}/delivery",
                                       tokens.operator)
                    return d["intervals"][k]["metered_kw"] is not None

                await wait_for(metered, what=f"interval {k} metered")
            # past the end: the event completes and the daemon settles it
            clock.advance(15 * 60)

            def settled() -> Settlement | None:
                with session_scope(engine) as s:
                    ev = s.get(GridEvent, event_id)
                    assert ev is not None
                    assert ev.status != "unsettled", ev.detail
                    row = s.exec(select(Settlement).where(
                        Settlement.event_id == event_id)).first()
                    if row is not None:
                        s.expunge(row)
                    return row

            async def settled_async() -> Settlement | None:
                return settled()

            st = await wait_for(settled_async, timeout_s=30, what="the settlement")
            result = st.detail["result"]
            assert result["direction"] == "valley_filling"
            for row in result["intervals"]:
                if row["in_event"]:
                    assert row["response_kw"] == pytest.approx(
                        row["metered_kw"] - row["baseline_kw"], abs=1e-6)
            # response = metered - baseline: the batteries' charge, paid within the band
            assert st.metered_kwh > st.baseline_kwh
            assert st.response_kwh == pytest.approx(st.metered_kwh - st.baseline_kwh, abs=0.05)
            assert st.performance_ratio >= 0.5
            assert st.revenue_fen > 0 and st.penalty_fen == 0
            with session_scope(engine) as s:
                payouts = s.exec(select(OwnerPayout).where(
                    OwnerPayout.settlement_id == st.id)).all()
                assert {p.owner_id for p in payouts} == {tokens.owner_id}
                assert sum(p.amount_fen for p in payouts) + st.fee_fen == \
                    st.revenue_fen - st.penalty_fen
    finally:
        await daemon.stop()
        await gw.stop()
