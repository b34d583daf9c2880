"""One lifecycle for the export rule (issue 17): the daemon's settlement
(:func:`bidding.workflow.settle_from_db`, from the ``telemetry`` table) and the season's
(:func:`sim.aggregator.settle`, from the simulator's :class:`sim.metering.MeterStore`) read the
programme's ``export_counts`` and the owners' site meters the same way, so the same readings
settle to the same money, whether the programme counts export or not.

The synthetic demo fleet (bidding.synthetic): in the event the storage owner's 4,000 kW battery
discharges fully behind a site drawing 1,500 kW, so its site meter reads -2,500 kW.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import update

from bidding.meter_frame import read_meter_frame
from bidding.programme import load_programme
from bidding.workflow import bid_event, owner_devices, settle_from_db
from sim import aggregator
from sim.metering import MeterStore
from tests.bidding.fleet import TZ, add_event, make_fleet, simulate_event_day, simulate_history
from tests.conftest import REPO_ROOT
from vpp.calendar import make_calendar
from vpp.db import make_engine, session_scope, upgrade
from vpp.models import TelemetryReading, table_of

START = datetime(2026, 7, 15, 19, 0, tzinfo=TZ)  # a Wednesday evening
END = START + timedelta(hours=2)
CHINA = make_calendar("china")


def _programmes(tmp: Path, export_counts: bool) -> Path:
    pdir = tmp / f"programmes-{export_counts}"
    pdir.mkdir()
    text = (REPO_ROOT / "config/programmes/hunan-2026.toml").read_text(encoding="utf-8")
    (pdir / "hunan-2026.toml").write_text(
        text.replace("export_counts = false", f"export_counts = {str(export_counts).lower()}"),
        encoding="utf-8")
    return pdir


def _season_view(engine, owners: list[int], devs: dict[int, list[int]]) -> MeterStore:
    """The event's readings recorded into the season's meter store, interval by interval."""
    ids = [d for o in owners for d in devs[o]]
    stop = END + timedelta(minutes=15)  # the store's index holds the window's end too
    power = read_meter_frame(engine, ids, START, stop, 15)
    site = read_meter_frame(engine, ids, START, stop, 15, column="site_import_kw")
    owner_of = np.array([owners.index(o) for o in owners for _ in devs[o]])
    store = MeterStore(power.index.tz_convert(TZ), owner_of, len(owners))
    for k in range(len(power.index)):
        store.record(k, power[ids].to_numpy()[k], site[ids].to_numpy()[k])
    return store


@pytest.mark.parametrize("export_counts", [False, True])
def test_the_daemon_and_the_season_settle_export_alike(tmp_path: Path, export_counts: bool):
    engine = make_engine(f"sqlite:///{tmp_path / 'vpp.sqlite3'}")
    upgrade(engine)
    pdir = _programmes(tmp_path, export_counts)
    devices = make_fleet(engine)
    simulate_history(engine, devices, START.date(), days=12)
    ev = add_event(engine, START)
    _, offer = bid_event(engine, ev, pdir, calendar=CHINA)
    declared = offer.owner_declared_kw()
    simulate_event_day(engine, devices, START, END, declared, dict.fromkeys(declared, 1.0))
    battery = next(d for d in devices if d.kind == "battery")
    t = table_of(TelemetryReading)
    with engine.begin() as conn:
        conn.execute(update(t).where(t.c.device_id == battery.id, t.c.ts >= START,
                                     t.c.ts < END).values(power_kw=-4000.0,
                                                          site_import_kw=-2500.0))
    daemon = settle_from_db(engine, ev, pdir, 15, calendar=CHINA, rebound_hours=0)

    owners = sorted(declared)
    with session_scope(engine) as s:
        devs = owner_devices(s, owners)
    store = _season_view(engine, owners, devs)
    prog = load_programme("hunan-2026", pdir, START)
    assert prog.export_counts is export_counts
    base = np.vstack([daemon.owner_frames[o]["baseline_kw"].to_numpy() for o in owners])
    idx = pd.DatetimeIndex(daemon.result.intervals.index)
    season, rows = aggregator.settle(
        prog, idx, base, store.window(idx[0], idx[-1] + idx.freq),
        {i: declared[o] for i, o in enumerate(owners)}, daemon.bid.price_yuan_per_kwh,
        15.0, 15, store.site_window(idx[0], idx[-1] + idx.freq),
        product=prog.product("day_ahead", "peak_shaving"))

    assert rows == list(range(len(owners)))
    assert season.response_kwh == pytest.approx(daemon.result.response_kwh)
    assert (season.revenue_fen, season.penalty_fen) == (daemon.result.revenue_fen,
                                                         daemon.result.penalty_fen)
    assert [o.payout_fen for o in season.owners] == [o.payout_fen for o in daemon.result.owners]
    stored = {o.owner_id: o for o in daemon.result.owners}[battery.owner_id]
    # over the 2 h event the battery's 4,000 kW discharge is credited in full when export
    # counts, else up to its site's 1,500 kW (response = baseline - credited meter)
    credited_kw = 4000.0 if export_counts else 1500.0
    assert stored.response_kwh == pytest.approx(2 * credited_kw + stored.baseline_kwh, abs=1.0)
    assert Decimal(season.price_yuan_per_kwh) == daemon.bid.price_yuan_per_kwh
