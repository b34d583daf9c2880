"""Enrolment end to end: register gateways in the database, serve them with simulated devices
on 127.0.0.1, probe, and check every device kind becomes active, or the exact failure."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from sim.clock import ManualClock
from sim.fleet import demo_gateways
from sim.server import SimGateway
from tests.conftest import free_port
from tests.sim.helpers import BY_PROFILE, sim_device
from vpp import fleet
from vpp.config import OwnerSpec, PollingSettings, load_settings
from vpp.db import session_scope
from vpp.enrolment import probe_gateway
from vpp.errors import ValidationError
from vpp.models import AuditLog, Device, Gateway

FAST = PollingSettings(timeout_s=0.3, retries=0, backoff_base_s=0.01, probe_timeout_s=0.3,
                       probe_retries=0)


def demo_owners(repo_root: Path) -> list[OwnerSpec]:
    """The Zhuzhou demo fleet with its gateways moved to free ports."""
    settings = load_settings(repo_root / "config" / "zhuzhou-demo.toml", with_defaults_file=False)
    owners = [o.model_copy(deep=True) for o in settings.owners]
    for o in owners:
        for s in o.sites:
            for g in s.gateways:
                g.port = free_port()
    return owners


def _register(engine: Engine, owner: str, port: int, devices: list[dict[str, Any]]) -> int:
    with session_scope(engine) as s:
        o = fleet.add_owner(s, owner)
        gw = fleet.add_gateway(s, o, "site", {"host": "127.0.0.1", "port": port,
                                              "devices": devices})
        return gw.gateway.id or 0


def _dev(case: str, unit: int = 1, **over: Any) -> dict[str, Any]:
    c = BY_PROFILE[case]
    d: dict[str, Any] = {"name": f"{case}-{unit}", "kind": c.kind.value, "unit_id": unit, "profile": case,
         "rated_power_kw": c.rated_kw, "min_setpoint_kw": c.min_kw, "max_setpoint_kw": c.max_kw,
         "params": c.params}
    d.update(over)
    return d


async def test_demo_fleet_enrols_every_kind(engine: Engine, repo_root: Path) -> None:
    owners = demo_owners(repo_root)
    with session_scope(engine) as s:
        assert fleet.load_fleet(s, owners) == 9
        gw_ids = [g.id for g in s.exec(select(Gateway).order_by(col(Gateway.id))).all()
                  if g.id is not None]
    gws = demo_gateways(owners, ManualClock())
    for g in gws:
        await g.start()
    try:
        reports = [await probe_gateway(engine, gid, FAST) for gid in gw_ids]
    finally:
        for g in gws:
            await g.stop()
    for r in reports:
        assert r.ok, r.error
    with session_scope(engine) as s:
        devices = s.exec(select(Device)).all()
        assert {d.status for d in devices} == {"active"}
        assert {d.kind for d in devices} == {"commercial_building", "industrial_load",
                                             "ev_charger", "battery"}
        assert {g.enrolment_state for g in s.exec(select(Gateway)).all()} == {"active"}
        audit = s.exec(select(AuditLog).where(AuditLog.action == "gateway_probed")).all()
        assert len(audit) == len(gw_ids)


async def test_sunspec_battery_enrols(sqlite_engine: Engine) -> None:
    clock = ManualClock()
    gw = SimGateway({3: sim_device(BY_PROFILE["sunspec"], clock, 3)}, port=free_port())
    gid = _register(sqlite_engine, "ss", gw.port, [_dev("sunspec", 3)])
    async with gw:
        report = await probe_gateway(sqlite_engine, gid, FAST)
    assert report.ok, report.error
    assert report.devices[0].identity["1.Mn"] == "XiangSim"


@pytest.mark.parametrize(
    ("served", "declared", "fault", "reason"),
    [
        ("alfen-ng9xx", _dev("alfen-ng9xx", unit=9), None, "wrong unit id"),
        ("alfen-ng9xx", _dev("keba-p30"), None, r"illegal address \(profile mismatch\?\).*read holding 1000"),
        ("coolmaster-vrf", _dev("alfen-ng9xx", profile="sunspec", kind="battery",
                                min_setpoint_kw=-22.0, params={"capacity_kwh": 10}), None,
         "no SunSpec marker"),
        ("keba-p30", _dev("keba-p30"), "word_swap", "implausible values"),
        ("keba-p30", _dev("keba-p30", rated_power_kw=2.0, max_setpoint_kw=2.0), None,
         "implausible values: device .*beyond 1.5x its rating of 2 kW"),
        ("huawei-luna2000", _dev("huawei-luna2000"), "silent", "timeout"),
    ],
)
async def test_probe_reports_exactly_what_failed(
    sqlite_engine: Engine, served: str, declared: dict, fault: str | None, reason: str
) -> None:
    clock = ManualClock()
    dev = sim_device(BY_PROFILE[served], clock, 1)
    if fault:
        setattr(dev.faults, fault, True)
    gw = SimGateway({1: dev}, port=free_port())
    gid = _register(sqlite_engine, "o", gw.port, [declared])
    async with gw:
        report = await probe_gateway(sqlite_engine, gid, FAST)
    assert report.state == "failed"
    assert report.devices[0].reason is not None
    assert re.search(reason, report.devices[0].reason), report.devices[0].reason
    with session_scope(sqlite_engine) as s:
        d = s.exec(select(Device)).one()
        assert d.status == "failed" and re.search(reason, d.status_detail or "")
        g = s.get(Gateway, gid)
        assert g is not None and g.enrolment_state == "failed" and g.last_error


@pytest.mark.parametrize(
    ("declared", "reason"),
    [
        (_dev("alfen-ng9xx", profile="huawei-luna2000"),
         "profile 'huawei-luna2000' is for a battery, not a ev_charger"),
        (_dev("sungrow-sh", profile="nope"), "unknown device profile 'nope'"),
        (_dev("keba-p30", profile="sunspec"), "profile 'sunspec' is for batteries"),
    ],
)
def test_registration_refuses_an_unknown_or_wrong_kind_profile(
    sqlite_engine: Engine, declared: dict, reason: str
) -> None:
    """Without a probe: refused at registration, nothing written (issue 23)."""
    with pytest.raises(ValidationError, match=re.escape(reason)):
        _register(sqlite_engine, "o", free_port(), [declared])
    with session_scope(sqlite_engine) as s:
        assert s.exec(select(Gateway)).all() == [] and s.exec(select(Device)).all() == []


async def test_unreachable_gateway(sqlite_engine: Engine) -> None:
    gid = _register(sqlite_engine, "o", free_port(), [_dev("keba-p30")])
    report = await probe_gateway(sqlite_engine, gid, FAST)
    assert report.state == "failed" and "unreachable host" in (report.error or "")
    assert report.devices[0].reason and "unreachable host" in report.devices[0].reason


async def test_one_bad_unit_does_not_fail_the_others(sqlite_engine: Engine) -> None:
    clock = ManualClock()
    gw = SimGateway({1: sim_device(BY_PROFILE["keba-p30"], clock, 1)}, port=free_port())
    gid = _register(sqlite_engine, "o", gw.port, [_dev("keba-p30", 1), _dev("keba-p30", 2)])
    async with gw:
        report = await probe_gateway(sqlite_engine, gid, FAST)
    assert report.state == "active" and not report.ok
    assert [d.ok for d in report.devices] == [True, False]
    assert "unit 2: wrong unit id" in (report.error or "")


async def test_the_probe_has_its_own_timeout(sqlite_engine: Engine) -> None:
    # a gateway answering in 0.4 s is too slow for a 0.2 s poll timeout, but one probe at
    # enrolment gets probe_timeout_s: it is enrolled (and would fail with the poll's timeout)
    clock = ManualClock()
    gw = SimGateway({1: sim_device(BY_PROFILE["keba-p30"], clock, 1)}, port=free_port())
    gw.delay_s = 0.4
    polling = PollingSettings(timeout_s=0.2, retries=0, backoff_base_s=0.01)
    gid = _register(sqlite_engine, "o", gw.port, [_dev("keba-p30", 1)])
    async with gw:
        assert polling.probe_timeout_s >= 1.0
        report = await probe_gateway(sqlite_engine, gid, polling)
        assert report.state == "active" and report.ok, report
        strict = polling.model_copy(update={"probe_timeout_s": 0.2, "probe_retries": 0})
        report = await probe_gateway(sqlite_engine, gid, strict)
        assert report.state == "failed" and "timeout" in (report.error or ""), report
