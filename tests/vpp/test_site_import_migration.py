"""Migration 0007 (a device's site meter reading, ``telemetry.site_import_kw``) on SQLite and
PostgreSQL: readings with and without a site reading round-trip through the telemetry store
and the meter frames; downgrade drops the column."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine

from bidding.meter_frame import read_meter_frame, read_owner_site
from vpp import fleet
from vpp.db import _alembic_config, current_revision, session_scope, upgrade
from vpp.telemetry_store import Reading, read_device, write_readings

T0 = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)


def _columns(engine: Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("telemetry")}


def test_site_import_round_trips_and_downgrade_drops_it(empty_engine: Engine) -> None:
    upgrade(empty_engine, "0006")
    assert "site_import_kw" not in _columns(empty_engine)
    upgrade(empty_engine, "0007")
    assert current_revision(empty_engine) == "0007"
    with session_scope(empty_engine) as s:
        owner = fleet.add_owner(s, "o")
        a, b = fleet.add_gateway(s, owner, "site", {"host": "127.0.0.1", "port": 1502, "devices": [
            {"name": f"b{u}", "kind": "battery", "unit_id": u, "profile": "huawei-luna2000",
             "rated_power_kw": 5, "min_setpoint_kw": -5, "max_setpoint_kw": 5,
             "params": {"capacity_kwh": 10}} for u in (1, 2)]}).devices
        ids = {int(owner.id or 0): [int(a.id or 0), int(b.id or 0)]}
    # device a reads the site meter (-1.5 kW: exporting), device b has none
    write_readings(empty_engine, [
        Reading(int(a.id or 0), T0, power_kw=-4.0, site_import_kw=-1.5),
        Reading(int(b.id or 0), T0, power_kw=1.0),
    ])
    frame = read_device(empty_engine, int(a.id or 0), T0, T0 + timedelta(minutes=1))
    assert frame["site_import_kw"].tolist() == [-1.5]
    site = read_meter_frame(empty_engine, ids[int(owner.id or 0)], T0,
                            T0 + timedelta(minutes=15), 15, column="site_import_kw")
    assert site.iloc[0, 0] == -1.5 and math.isnan(site.iloc[0, 1])
    by_owner = read_owner_site(empty_engine, ids, T0, T0 + timedelta(minutes=15), 15)
    # the owner's metering point: a's site meter (-1.5) and b at its own power (1.0)
    assert by_owner.iloc[0].tolist() == [-0.5]
    command.downgrade(_alembic_config(empty_engine), "0006")
    assert "site_import_kw" not in _columns(empty_engine)
    assert current_revision(empty_engine) == "0006"
