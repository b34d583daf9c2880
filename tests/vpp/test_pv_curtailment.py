"""A PV site's curtailment end to end over Modbus (issue 20 item 2, done-when): a simulated
SunSpec PV inverter on a real pymodbus server on 127.0.0.1 is registered and enrolled (probe,
database on SQLite and PostgreSQL), polled, planned into a valley-filling call on its pvlib
forecast, curtailed by the plan's setpoint with read-back, left without a ceiling after the
call, released to unlimited, and dropped to unlimited by its revert timer when the aggregator
goes silent."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from forecasting.pv import ac_output_kw
from sim.clock import ManualClock
from sim.server import SimGateway
from tests.conftest import free_port
from tests.sim.helpers import Case, sim_device
from vpp import fleet
from vpp.config import PollingSettings
from vpp.db import session_scope
from vpp.device_kinds import DeviceKind, PvInverterParams, parse_params
from vpp.enrolment import probe_gateway
from vpp.models import Device, TelemetryReading
from vpp.poller import Poller
from vpp.scheduler import DispatchModel, EventCall, FleetDevice, HorizonData

FAST = PollingSettings(timeout_s=0.5, retries=0, backoff_base_s=0.01, probe_timeout_s=0.5,
                       probe_retries=0)
NOON = datetime(2025, 7, 15, 4, 0, tzinfo=UTC)  # 12:00 in Zhuzhou
PARAMS = {"dc_capacity_kwp": 110.0, "tilt_deg": 15.0}
CASE = Case("sunspec", DeviceKind.PV_INVERTER, 100.0, -100.0, 0.0, PARAMS)
N, CALL_END, TARGET_KW = 8, 4, 25.0


def _register(engine: Engine, port: int) -> int:
    dev = {"name": "roof-1", "kind": "pv_inverter", "unit_id": 2, "profile": "sunspec",
           "rated_power_kw": 100.0, "min_setpoint_kw": -100.0, "max_setpoint_kw": 0.0,
           "params": PARAMS}
    with session_scope(engine) as s:
        o = fleet.add_owner(s, "factory-roof")
        gw = fleet.add_gateway(s, o, "site", {"host": "127.0.0.1", "port": port,
                                              "devices": [dev]})
        return gw.gateway.id or 0


def _planned(row: Device) -> tuple[FleetDevice, np.ndarray]:
    """The enrolled inverter as the planner sees it, and its pvlib forecast from NOON (the
    baseline: minus the clear-sky output, the simulator's sky)."""
    params = parse_params(DeviceKind.PV_INVERTER, row.params)
    assert isinstance(params, PvInverterParams)
    d = FleetDevice(row.id or 0, DeviceKind(row.kind), row.rated_power_kw,
                    row.min_setpoint_kw, row.max_setpoint_kw, params)
    times = pd.date_range(NOON, periods=N, freq="15min")
    mid = times + pd.Timedelta(minutes=7.5)  # each interval's middle
    return d, -ac_output_kw(params, row.rated_power_kw, mid).to_numpy()[None, :]


async def test_a_pv_sites_curtailment_end_to_end(engine: Engine) -> None:
    clock = ManualClock(NOON)
    dev = sim_device(CASE, clock, unit=2)
    gw = SimGateway({2: dev}, port=free_port())
    gid = _register(engine, gw.port)
    async with gw:
        report = await probe_gateway(engine, gid, FAST)
        assert report.ok, report.error
        assert report.devices[0].identity["1.Md"] == "SimPV-3P"
        with session_scope(engine) as s:
            row = s.exec(select(Device)).one()
            assert row.status == "active" and row.kind == "pv_inverter"
            s.expunge(row)
        poller = Poller(engine, FAST)
        try:
            assert await poller.load() == 1
            assert (await poller.poll_once()).ok == 1
            free_kw = -dev.physics.power_kw
            assert free_kw > 50.0  # a clear noon

            d, base = _planned(row)
            assert base[0, 0] == pytest.approx(-free_kw, rel=0.02)  # forecast = the sky served
            call = EventCall(0, CALL_END, TARGET_KW, direction_sign=-1.0)
            plan = DispatchModel([d], N, interval_minutes=15).solve(
                [d], HorizonData(base, np.full(N, 0.6), call, interval_minutes=15))
            assert plan.feasible
            setpoint = float(plan.dispatch_setpoint_kw[0, 0])
            assert setpoint == pytest.approx(base[0, 0] + TARGET_KW, abs=0.2)

            a = poller.adapter(row.id or 0)
            res = await a.apply_setpoint(setpoint)
            assert res.verified and res.error is None and not res.clamped
            assert res.readback_kw == pytest.approx(setpoint, abs=0.1)  # 0.1% steps of WMax
            clock.advance(30)  # within the 60 s revert timer
            assert (await poller.poll_once()).ok == 1
            curtailed = -dev.physics.power_kw
            rise = free_kw - curtailed
            assert rise == pytest.approx(TARGET_KW, abs=1.0)  # the site's net load rose
            with session_scope(engine) as s:
                readings = s.exec(select(TelemetryReading).where(
                    TelemetryReading.device_id == row.id).order_by(
                    col(TelemetryReading.ts))).all()
            last = readings[-1].power_kw
            assert last is not None and last == pytest.approx(-curtailed, abs=0.1)

            after = float(plan.dispatch_setpoint_kw[0, CALL_END])
            assert after == -100.0  # after the call: no ceiling
            assert (await a.apply_setpoint(after)).verified
            assert -dev.physics.power_kw == pytest.approx(free_kw, abs=1.0)

            await a.release()  # back to the inverter's own behaviour: unlimited
            assert dev.setpoint_kw is None and dev.values["123.WMaxLim_Ena"] == 0.0

            assert (await a.apply_setpoint(setpoint)).verified
            clock.advance(61)  # the daemon goes silent past the revert timer
            await poller.poll_once()
            assert dev.watchdog_tripped and dev.setpoint_kw is None
            assert -dev.physics.power_kw == pytest.approx(free_kw, abs=2.0)
        finally:
            await poller.close()
