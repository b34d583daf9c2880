"""OCPP chargers through a grid call to settlement, end to end, OCPP 1.6J and 2.0.1, SQLite and
PostgreSQL: the real daemon (:class:`vpp.server.Daemon`, its aiohttp API and its loops) with its
central system on a free loopback port, on a manual clock the simulated charge point's physics
shares.

The owner registers a charge point through the REST API and gets its password; the simulated
charge point (:mod:`sim.ocpp_chargepoint`, the Modbus chargers' EV physics) connects with it
over a real WebSocket, boots and is enrolled; its meter values become telemetry; the grid calls
by REST, the daemon's own planner curtails the chargers and the limits reach them as charging
profiles that they accept and their metered power follows; at the call's end the chargers are
released (their profiles cleared); the daemon's settle loop settles the event from the stored
telemetry and pays the owner. Nothing is mocked."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from sim.clock import ManualClock
from sim.ocpp_chargepoint import SimChargePoint
from tests.vpp.daemon.harness import daemon_settings, get_json, seed, send_json, wait_for
from vpp.db import session_scope
from vpp.models import GridEvent, OwnerPayout, Setpoint, Settlement
from vpp.server import Daemon
from vpp.timeutil import floor_to_interval

RATED_KW = 7.0
STEP_S = 300  # the manual clock's step through the call (three telemetry samples a 15 min)


def _settings(tmp: Path, engine: Engine):  # type: ignore[no-untyped-def]
    base = daemon_settings(tmp, str(engine.url))
    return base.model_copy(update={
        # a connector polled before its first meter value arrived (failed: offline) is tried
        # again at every poll, not after offline_retry_s on a clock that only the test moves
        "polling": base.polling.model_copy(update={"offline_retry_s": 0.0}),
        "ocpp": base.ocpp.model_copy(update={"enabled": True, "port": 0, "call_timeout_s": 5.0,
                                             "meter_stale_s": 3 * STEP_S}),
        # released at the call's end (the tail is tested with Modbus devices elsewhere)
        "scheduler": base.scheduler.model_copy(update={"event_tail_minutes": 0})})


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_enrol_meter_curtail_release_settle(engine: Engine, tmp_path: Path,
                                                  version: str) -> None:
    tokens = seed(engine)
    clock = ManualClock()
    start = floor_to_interval(clock.now(), 15)
    clock.advance((start + timedelta(seconds=60) - clock.now()).total_seconds())
    daemon = Daemon(_settings(tmp_path, engine), engine, port=0, clock=clock.now)
    base = await daemon.start()
    assert daemon.ocpp is not None
    cp: SimChargePoint | None = None
    task: asyncio.Task[None] | None = None
    try:
        async with aiohttp.ClientSession() as c:
            # 1. the owner registers the charge point; its password comes back once
            reg = await send_json(c, "POST", f"{base}/api/v1/charge-points", tokens.owner, {
                "site": "depot", "identity": "CP-E2E", "connector_ids": [1, 2],
                "rated_power_kw": RATED_KW}, 201)
            ids = reg["gateway"]["device_ids"]
            cp = SimChargePoint("CP-E2E", reg["password"], version, connectors=2,
                                rated_kw=RATED_KW, clock=clock, seed=3, meter_period_s=0.2)
            task = asyncio.create_task(cp.run(daemon.ocpp.url))
            await asyncio.wait_for(cp.booted.wait(), 15)

            # 2. enrolled by its boot; metered: the cars charge at full power
            seen: list = []

            async def metered() -> list | None:
                clock.advance(1.0)  # polls are due by the daemon's clock (period 0.3 s)
                seen[:] = await get_json(c, f"{base}/api/v1/devices", tokens.owner)
                return seen if len(seen) == 2 and all(
                    d["status"] == "active" and d["power_kw"] is not None
                    and d["power_kw"] > 1.0 for d in seen) else None

            try:
                await wait_for(metered, what="both connectors enrolled and metered")
            except AssertionError as exc:
                link = daemon.ocpp.links.get("CP-E2E")
                fleet_rt = daemon.parts.fleet
                raise AssertionError(
                    f"{exc}: devices {seen}; polled {[fleet_rt.has_adapter(i) for i in ids]}, "
                    f"stats {[fleet_rt.poller.stats.get(i) for i in ids]}, link "
                    f"{link and (link.session is not None, link.connectors)}") from None
            g = await get_json(c, f"{base}/api/v1/gateways/{reg['gateway']['id']}",
                               tokens.owner)
            assert g["enrolment_state"] == "active"
            full_kw = cp.power_kw(1) + cp.power_kw(2)
            assert full_kw > 2 * 1.0

            # 3. the grid calls; the daemon's planner curtails the chargers over OCPP
            call = {"external_id": f"rt-ocpp-{version}", "event_type": "real_time",
                    "direction": "peak_shaving", "start": start.isoformat(),
                    "end": (start + timedelta(hours=1)).isoformat(), "requested_kw": 4.0}
            decision = await send_json(c, "POST", f"{base}/api/v1/grid/calls", tokens.grid,
                                       call, 201)
            assert decision["accepted"], decision
            event_id = decision["event_id"]

            def limits() -> dict[int, float | None]:
                assert cp is not None
                return {k: con.limit_kw(clock.now()) for k, con in cp.connectors.items()}

            async def curtailed() -> dict | None:
                got = limits()
                return got if all(v is not None for v in got.values()) and sum(
                    v or 0.0 for v in got.values()) < full_kw - 1.0 else None

            await wait_for(curtailed, what="charging profiles below full power")

            async def recorded() -> dict | None:  # the dispatch records what it wrote
                with session_scope(engine) as s:
                    got = {r.device_id: r.setpoint_kw for r in s.exec(select(Setpoint).where(
                        col(Setpoint.status).in_(("written", "clamped"))))}
                return got if set(got) == set(ids) else None

            written = await wait_for(recorded, what="both setpoints recorded as written")
            held = limits()
            by_connector = dict(zip(sorted(ids), (1, 2), strict=True))
            for dev, kw in written.items():  # the plan's setpoint is the profile's limit
                assert held[by_connector[dev]] == pytest.approx(kw, abs=0.01)
                assert 0.0 <= kw <= RATED_KW
            assert cp.power_kw(1) <= (held[1] or 0) + 1e-6  # the physics follows the profile

            # 4. through the call on the daemon's clock: the metered power follows the limits
            async def sampled_now() -> bool:
                return all(st is not None and st.ts >= clock.now()
                           for st in (daemon.parts.fleet.latest(i) for i in ids))

            for _ in range(3600 // STEP_S):
                clock.advance(STEP_S)
                await wait_for(sampled_now, what="a poll at the new time")
            delivery = await get_json(c, f"{base}/api/v1/events/{event_id}/delivery",
                                      tokens.operator)
            assert delivery["intervals"][0]["metered_kw"] is not None

            # 5. the call is over: released (profiles cleared), then settled by the daemon
            clock.advance(60)

            async def released() -> bool:
                return all(v is None for v in limits().values())

            await wait_for(released, what="the chargers' profiles cleared")

            async def settled() -> Settlement | None:
                with session_scope(engine) as s:
                    ev = s.get(GridEvent, event_id)
                    if ev is None or ev.status not in ("settled", "unsettled"):
                        return None
                    assert ev.status == "settled", ev.detail
                    return s.exec(select(Settlement).where(
                        Settlement.event_id == event_id)).one()

            st = await wait_for(settled, what="the settle loop")
            assert st.response_kwh > 0 and st.revenue_fen > 0, st
            with session_scope(engine) as s:
                payouts = s.exec(select(OwnerPayout)).all()
            assert [p.owner_id for p in payouts] == [tokens.owner_id]
            assert payouts[0].amount_fen > 0
            mine = await get_json(c, f"{base}/api/v1/payouts", tokens.owner)
            assert [p["event_id"] for p in mine] == [event_id]
    finally:
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await daemon.stop()
