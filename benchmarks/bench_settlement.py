"""Benchmark: settle a season of demand-response events for a fleet of 10,000 devices.

Setup (not timed): a fresh SQLite database (the embedded default), ``--devices`` synthetic
devices in owners of ``--devices-per-owner``, one event a week (Wednesdays 19:00-21:00) over
``--events`` weeks of summer 2025, a bid per event with every owner's share, and interval meter
data (15 min) for the event window on every working day from a week before the first event to
the last (what the baselines need: the 5 most recent working days). The "dispatch" is the
stand-in response of :mod:`bidding.synthetic` (each owner delivers 30-120% of its share).

Timed, in the same run:
* **read**: for each event, reading the same meter data the settlement reads (all devices,
  the baseline's history span to the event's end: 17 days for 5 working days, see
  ``history_spans``) into an interval x device frame (``read_meter_frame``);
* **settle**: for each event, ``settle_from_db``: that read, one baseline per owner
  (forecasting.baselines, similar days), settlement, owners' split, ledger posting.
Figure: settle / read (how much settling costs on top of just reading its input). A second
pass re-settles every event (idempotent: nothing written) and is reported the same way.

    uv run python benchmarks/bench_settlement.py            # 10,000 devices, 12 events
    uv run python benchmarks/bench_settlement.py --quick    # 1,000 devices, 3 events, < 60 s
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bidding import synthetic as syn  # noqa: E402
from bidding.ledger import check_ledger  # noqa: E402
from bidding.programme import load_programme  # noqa: E402
from bidding.workflow import history_spans, read_meter_frame, settle_from_db  # noqa: E402
from forecasting.calendars import ChineseCalendar  # noqa: E402
from vpp.bids import add_bid, kw_shares  # noqa: E402
from vpp.db import make_engine, session_scope, upgrade  # noqa: E402
from vpp.models import Bid, Device, GridEvent, Owner  # noqa: E402

PROGRAMMES = ROOT / "config" / "programmes"
FIRST_EVENT = date(2025, 7, 2)  # a Wednesday


def _pk(row_id: int | None) -> int:
    """A flushed row's primary key (the database sets it on flush; None means not flushed)."""
    if row_id is None:
        raise RuntimeError("a row was used before it was flushed")
    return row_id


def build(engine: Engine, n_devices: int, per_owner: int, n_events: int, seed: int
          ) -> tuple[list[syn.SyntheticDevice], list[tuple[list[int], list[date]]]]:
    rng = np.random.default_rng(seed)
    n_owners = (n_devices + per_owner - 1) // per_owner
    with session_scope(engine) as s:
        owners = [Owner(name=f"bench-owner-{i}") for i in range(n_owners)]
        s.add_all(owners)
        s.flush()
        from vpp.models import Gateway, Site

        sites = [Site(owner_id=_pk(o.id), name="site") for o in owners]
        s.add_all(sites)
        s.flush()
        gws = [Gateway(site_id=_pk(st.id), owner_id=_pk(o.id), host=f"10.0.{i // 250}.{i % 250}", port=502)
               for i, (o, st) in enumerate(zip(owners, sites, strict=True))]
        s.add_all(gws)
        s.flush()
        devices = []
        for k in range(n_devices):
            i = k // per_owner
            kind = "commercial_building" if k % 3 else "industrial_load"
            rated = float(rng.uniform(50, 500))
            params = ({"max_shed_kw": rated * 0.3} if kind == "commercial_building"
                      else {"max_curtail_kw": rated * 0.4})
            devices.append(Device(
                gateway_id=_pk(gws[i].id), site_id=_pk(sites[i].id), owner_id=_pk(owners[i].id),
                name=f"d{k}", kind=kind, unit_id=k % per_owner + 1, profile="generic",
                rated_power_kw=rated, min_setpoint_kw=0.0, max_setpoint_kw=rated, params=params))
        s.add_all(devices)
        s.flush()
        devs = [syn.SyntheticDevice(_pk(d.id), d.owner_id, d.kind, d.rated_power_kw) for d in devices]
        owner_ids = [_pk(o.id) for o in owners]
    events = [FIRST_EVENT + timedelta(weeks=w) for w in range(n_events)]
    return devs, [(owner_ids, events)]


def write_meters(engine: Engine, devs: list[syn.SyntheticDevice], events: list[date],
                 seed: int) -> int:
    """Event-window meter data on every working day from a week before the first event."""
    cal = ChineseCalendar()
    day = events[0] - timedelta(days=9)
    rows = 0
    rated: dict[int, float] = {}
    for d in devs:
        rated[d.owner_id] = rated.get(d.owner_id, 0.0) + d.rated_power_kw
    rng = np.random.default_rng(seed)
    while day <= events[-1]:
        if bool(cal.is_workday([day])[0]):
            start = datetime(day.year, day.month, day.day, 19, 0, tzinfo=syn.TZ)
            idx = pd.date_range(start, start + timedelta(hours=2), freq="15min", inclusive="left")
            load = syn.device_load_kw(devs, idx, seed=int(rng.integers(1 << 30)))
            if day in events:
                declared = {o: 0.25 * r for o, r in rated.items()}
                delivery = {o: float(rng.uniform(0.3, 1.2)) for o in rated}
                load += syn.dispatch_response(devs, idx, start, start + timedelta(hours=2),
                                              declared, delivery)
            rows += syn.write_meter(engine, devs, idx, load)
        day += timedelta(days=1)
    return rows


def add_events(engine: Engine, devs: list[syn.SyntheticDevice], events: list[date]
               ) -> list[int]:
    rated: dict[int, float] = {}
    for d in devs:
        rated[d.owner_id] = rated.get(d.owner_id, 0.0) + d.rated_power_kw
    ids = []
    with session_scope(engine) as s:
        for k, day in enumerate(events):
            start = datetime(day.year, day.month, day.day, 19, 0, tzinfo=syn.TZ)
            ev = GridEvent(external_id=f"bench-{k}", source="sim", event_type="day_ahead",
                           direction="peak_shaving", programme="hunan-2026", start=start,
                           end=start + timedelta(hours=2), requested_kw=sum(rated.values()) / 4)
            s.add(ev)
            s.flush()
            add_bid(s, Bid(event_id=_pk(ev.id), declared_kw=sum(rated.values()) * 0.25,
                           price_yuan_per_kwh=Decimal("1.5")),
                    kw_shares({o: round(0.25 * r, 3) for o, r in rated.items()}))
            ids.append(_pk(ev.id))
    return ids


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1,000 devices, 3 events (< 60 s)")
    ap.add_argument("--devices", type=int, default=None)
    ap.add_argument("--devices-per-owner", type=int, default=20)
    ap.add_argument("--events", type=int, default=None)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    n_dev = args.devices or (1_000 if args.quick else 10_000)
    n_ev = args.events or (3 if args.quick else 12)

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        upgrade(engine)
        t0 = time.perf_counter()
        devs, [(owner_ids, events)] = build(engine, n_dev, args.devices_per_owner, n_ev, args.seed)
        rows = write_meters(engine, devs, events, args.seed)
        event_ids = add_events(engine, devs, events)
        setup_s = time.perf_counter() - t0
        print(f"setup: {len(devs):,} devices, {len(owner_ids):,} owners, {len(event_ids)} events, "
              f"{rows:,} meter rows in {setup_s:.1f} s", flush=True)

        dev_ids = [d.id for d in devs]
        spec = load_programme("hunan-2026", PROGRAMMES, events[0]).product(
            "day_ahead", "peak_shaving").baseline
        span = history_spans(spec)[0]  # what settle_from_db reads first (enough here)
        read_s = 0.0
        for day in events:
            start = pd.Timestamp(datetime(day.year, day.month, day.day, 19, 0, tzinfo=syn.TZ))
            t = time.perf_counter()
            frame = read_meter_frame(engine, dev_ids, (start.normalize() - pd.Timedelta(days=span))
                                     .to_pydatetime(), (start + pd.Timedelta(hours=2))
                                     .to_pydatetime(), 15)
            read_s += time.perf_counter() - t
            assert frame.shape[1] == len(dev_ids)

        settle_s = 0.0
        revenue = 0
        for ev in event_ids:
            t = time.perf_counter()
            out = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=ChineseCalendar(),
                                 rebound_hours=0, actor="bench")
            settle_s += time.perf_counter() - t
            assert out.posted.created
            revenue += out.result.revenue_fen - out.result.penalty_fen

        resettle_s = 0.0
        for ev in event_ids:
            t = time.perf_counter()
            out = settle_from_db(engine, ev, PROGRAMMES, 15, calendar=ChineseCalendar(),
                                 rebound_hours=0, actor="bench")
            resettle_s += time.perf_counter() - t
            assert not out.posted.created
        with session_scope(engine) as s:
            totals = check_ledger(s)
        engine.dispose()

    owner_events = len(owner_ids) * len(event_ids)
    figures = {
        "bench": "settlement",
        "devices": len(devs),
        "owners": len(owner_ids),
        "events": len(event_ids),
        "meter_rows": rows,
        "read_s": round(read_s, 3),
        "settle_s": round(settle_s, 3),
        "resettle_s": round(resettle_s, 3),
        "settle_over_read": round(settle_s / read_s, 3),
        "resettle_over_read": round(resettle_s / read_s, 3),
        "settle_ms_per_event": round(1000 * settle_s / len(event_ids), 1),
        "settle_us_per_owner_event": round(1e6 * (settle_s - read_s) / owner_events, 1),
        "net_revenue_fen": revenue,
        "ledger_balanced": sum(totals.values()) == 0,
    }
    print(f"read meter data (same rows as settlement reads): {read_s:.2f} s")
    print(f"settle {len(event_ids)} events (read + {len(owner_ids)} baselines/event + settle + "
          f"ledger): {settle_s:.2f} s = {figures['settle_over_read']:.2f} x read")
    print(f"re-settle (idempotent, nothing written): {resettle_s:.2f} s = "
          f"{figures['resettle_over_read']:.2f} x read")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
