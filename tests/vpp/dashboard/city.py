"""A city-scale fleet written straight into the database (SQLAlchemy Core, one bulk insert per
table): ``n`` devices over owners of 25 devices each, one gateway per 5 devices, the kinds and
statuses in a fixed rotation. Rows only: nothing polls these gateways (their hosts are in
192.0.2.0/24, TEST-NET-1), so live power is absent unless a test gives the runtime readings."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlmodel import SQLModel

from vpp.daemon.parts import DaemonParts
from vpp.models import Device, Gateway, Owner, Site, table_of

#: (kind, profile, rated kW, min kW, max kW): a mix a city aggregator might hold
KINDS = [
    ("commercial_building", "generic-building", 400.0, 0.0, 400.0),
    ("industrial_load", "industrial-plc", 1200.0, 0.0, 1200.0),
    ("ev_charger", "keba-p30", 60.0, 0.0, 60.0),
    ("battery", "huawei-luna2000", 250.0, -250.0, 250.0),
]
STATUSES = ["active"] * 8 + ["offline", "pending"]


@dataclass(frozen=True)
class City:
    devices: int
    owners: int
    rated_kw_by_kind: dict[str, float]
    count_by_status: dict[str, int]


def add_city_fleet(engine: Engine, n: int, per_owner: int = 25, per_gateway: int = 5) -> City:
    owners = (n + per_owner - 1) // per_owner
    gateways = (n + per_gateway - 1) // per_gateway
    now = datetime.now(UTC)
    with engine.begin() as c:
        first_owner = _next_id(c, Owner)
        c.execute(insert(table_of(Owner)), [
            {"id": first_owner + i, "name": f"City owner {i + 1:05d}", "contact": "", "created_at": now}
            for i in range(owners)])
        first_site = _next_id(c, Site)
        c.execute(insert(table_of(Site)), [
            {"id": first_site + i, "owner_id": first_owner + i, "name": f"site-{i + 1}",
             "region": "zhuzhou", "created_at": now} for i in range(owners)])
        first_gw = _next_id(c, Gateway)
        c.execute(insert(table_of(Gateway)), [
            {"id": first_gw + g, "site_id": first_site + (g * per_gateway) // per_owner,
             "owner_id": first_owner + (g * per_gateway) // per_owner,
             "host": f"192.0.{2 + g // 250}.{1 + g % 250}", "port": 502,
             "protocol": "modbus", "enrolment_state": "active", "created_at": now} for g in range(gateways)])
        rows: list[dict[str, object]] = []
        for i in range(n):
            kind, profile, kw, lo, hi = KINDS[i % len(KINDS)]
            rows.append({"gateway_id": first_gw + i // per_gateway,
                         "site_id": first_site + i // per_owner,
                         "owner_id": first_owner + i // per_owner,
                         "name": f"{kind}-{i + 1:05d}", "kind": kind, "unit_id": 1 + i % per_gateway,
                         "profile": profile, "rated_power_kw": kw, "min_setpoint_kw": lo,
                         "max_setpoint_kw": hi, "params": {}, "preferences": {},
                         "status": STATUSES[i % len(STATUSES)], "created_at": now})
        c.execute(insert(table_of(Device)), rows)
        if c.dialect.name == "postgresql":  # ids were given: move the sequences past them
            for model in (Owner, Site, Gateway, Device):
                name = table_of(model).name
                c.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                               f"(SELECT max(id) FROM \"{name}\"))"))
    rated: dict[str, float] = {}
    statuses: dict[str, int] = {}
    for i in range(n):
        kind, _, kw, _, _ = KINDS[i % len(KINDS)]
        rated[kind] = rated.get(kind, 0.0) + kw
        status = STATUSES[i % len(STATUSES)]
        statuses[status] = statuses.get(status, 0) + 1
    return City(devices=n, owners=owners, rated_kw_by_kind=rated, count_by_status=statuses)


def _next_id(c: Connection, model: type[SQLModel]) -> int:
    t = table_of(model)
    return int(c.execute(select(func.coalesce(func.max(t.c.id), 0))).scalar_one()) + 1


def given_forecast(parts: DaemonParts, hours_back: int = 20) -> None:
    """A forecast and metered history in the daemon's forecast refresher, as its ``baselines``
    loop leaves them (the forecaster itself is tested in tests/forecasting; here the page is
    under test): sites 1 and 2, P10/P50/P90 over the next 48 h, actuals over ``hours_back``
    hours (less than the page's 24, so that the points it shows do not move with the clock)."""
    import pandas as pd

    from forecasting.forecast import LoadForecast

    now = pd.Timestamp(datetime.now(UTC)).floor("15min")
    future = pd.date_range(now, periods=192, freq="15min")
    past = pd.date_range(now - pd.Timedelta(hours=hours_back), now, freq="15min",
                         inclusive="left")
    daily = [1.0 + 0.4 * math.sin(2 * math.pi * (t.hour + t.minute / 60) / 24) for t in future]
    ref = parts.forecasts
    ref.latest = LoadForecast(origin=now, model="given", quantiles=[0.1, 0.5, 0.9], values_kw={
        q: pd.DataFrame({"1": [900.0 * w * (0.8 + 0.4 * q) for w in daily],
                         "2": [600.0 * w * (0.8 + 0.4 * q) for w in daily]}, index=future)
        for q in (0.1, 0.5, 0.9)})
    ref.history.frame = pd.DataFrame(
        {1: [900.0 * (1.0 + 0.4 * math.sin(2 * math.pi * t.hour / 24)) for t in past],
         2: [600.0 * (1.0 + 0.4 * math.sin(2 * math.pi * t.hour / 24)) for t in past]},
        index=past)
    ref.status.state = "ok"
